"""The Elman kernel against the NumPy reference, on edge shapes, both dtypes, every activation."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnnsim
from reference import ACTIVATIONS, elman

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def network(k, p, dtype="float64", activation="tanh", layers=1, **layer):
    cfg = {"network": {"input_size": k, "dtype": dtype, "seed": 3,
                       "layers": [dict(units=p, activation=activation, **layer)] * layers,
                       }}
    return rnnsim.Network.from_config(cfg)


def layer_params(net, i=0, suffix=""):
    return (net.params[f"layers.{i}.W{suffix}"], net.params[f"layers.{i}.U{suffix}"],
            net.params.get(f"layers.{i}.b{suffix}", 0.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T,B,k,p", [(1, 3, 4, 5), (7, 1, 3, 4), (6, 2, 1, 3), (5, 2, 3, 1),
                                     (3, 2, 4, 9), (12, 3, 2, 4)],
                         ids=["T=1", "B=1", "k=1", "p=1", "p>T", "p<T"])
def test_edge_shapes_match_reference(T, B, k, p, dtype):
    net = network(k, p, dtype, init={"bias": {"name": "normal", "std": 0.3}})
    x = np.random.default_rng(0).standard_normal((T, B, k)).astype(dtype)
    h0 = np.random.default_rng(1).standard_normal((1, B, p)).astype(dtype)
    result = net.run(x, h0=h0)
    W, U, b = layer_params(net)
    expected = elman(x.astype(np.float64), W, U, b, h0[0])
    assert result.output.dtype == np.dtype(dtype)
    np.testing.assert_allclose(result.output, expected, **TOL[dtype])
    np.testing.assert_allclose(result.final[0][0], expected[-1], **TOL[dtype])


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_builtin_activation_in_the_kernel(name):
    net = network(3, 4, activation=name)
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    W, U, b = layer_params(net)
    expected = elman(x, W, U, b, np.zeros((2, 4)), ACTIVATIONS[name])
    np.testing.assert_allclose(net.run(x).output, expected, rtol=1e-9, atol=1e-12)


def test_activation_parameters_reach_the_kernel():
    spec = {"name": "scaled_tanh", "alpha": 1.7, "beta": 0.4}
    net = network(3, 4, activation=spec)
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    W, U, b = layer_params(net)
    act = lambda v: ACTIVATIONS["scaled_tanh"](v, 1.7, 0.4)  # noqa: E731
    np.testing.assert_allclose(net.run(x).output, elman(x, W, U, b, np.zeros((2, 4)), act),
                               rtol=1e-10)


def test_stacked_bidirectional_layers():
    net = network(3, 4, layers=2, bidirectional=True)
    x = np.random.default_rng(4).standard_normal((6, 2, 3))
    zeros = np.zeros((2, 4))
    h = x
    for i in range(2):
        fwd = elman(h, *layer_params(net, i), zeros)
        bwd = elman(h, *layer_params(net, i, "_reverse"), zeros, reverse=True)
        h = np.concatenate([fwd, bwd], axis=-1)
    result = net.run(x)
    assert result.output.shape == (6, 2, 8)
    np.testing.assert_allclose(result.output, h, rtol=1e-10)
    np.testing.assert_allclose(result.final[1][0], fwd[-1], rtol=1e-10)
    np.testing.assert_allclose(result.final[1][1], bwd[0], rtol=1e-10)
    assert result.h_n.shape == (4, 2, 4)


def test_reverse_direction_is_forward_on_reversed_time():
    net = network(3, 4, bidirectional=True)
    x = np.random.default_rng(5).standard_normal((7, 2, 3))
    W, U, b = layer_params(net, 0, "_reverse")
    out = net.run(x).output[..., 4:]
    forward_on_flipped = elman(x[::-1], W, U, b, np.zeros((2, 4)))
    np.testing.assert_allclose(out, forward_on_flipped[::-1], rtol=1e-10)


def test_batch_first_and_unbatched_layouts():
    cfg = {"network": {"input_size": 3, "dtype": "float64", "batch_first": True,
                       "layers": [{"units": 4}], "head": {"name": "linear", "units": 2}}}
    net = rnnsim.Network.from_config(cfg)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))  # (B, T, k)
    result = net.run(x)
    assert result.output.shape == (2, 5, 4) and result.y.shape == (2, 5, 2)
    time_major = elman(x.swapaxes(0, 1), *layer_params(net), np.zeros((2, 4)))
    np.testing.assert_allclose(result.output, time_major.swapaxes(0, 1), rtol=1e-10)
    single = net.run(x[0].copy())  # (T, k): one sequence, no batch axis
    assert single.output.shape == (5, 4) and single.final[0].shape == (1, 4)
    assert single.y.shape == (5, 2)
    np.testing.assert_allclose(single.output, result.output[0], rtol=1e-12)


def test_serial_and_parallel_variants_agree():
    net = network(4, 6, "float64")
    x = np.random.default_rng(7).standard_normal((9, 5, 4))
    batched = net.run(x).output  # B > 1: the prange variant
    rows = np.stack([net.run(x[:, b:b + 1]).output[:, 0] for b in range(5)], axis=1)
    np.testing.assert_array_equal(batched, rows)


@settings(max_examples=25, deadline=None)
@given(T=st.integers(1, 6), B=st.integers(1, 3), k=st.integers(1, 4), p=st.integers(1, 5),
       layers=st.integers(1, 2), dtype=st.sampled_from(["float32", "float64"]))
def test_random_shapes_match_reference(T, B, k, p, layers, dtype):
    net = network(k, p, dtype, layers=layers)
    x = np.random.default_rng(T * 100 + B).standard_normal((T, B, k)).astype(dtype)
    h = x.astype(np.float64)
    for i in range(layers):
        h = elman(h, *layer_params(net, i), np.zeros((B, p)))
    np.testing.assert_allclose(net.run(x).output, h, **TOL[dtype])
