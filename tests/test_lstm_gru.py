"""LSTM and GRU kernels against plain-NumPy references, and properties of their recurrences."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

import rnnsim
from rnnsim import ConfigError, ShapeError
from reference import ACTIVATIONS, elman, gru, lstm

TOL = {"float32": dict(rtol=1e-4, atol=2e-5), "float64": dict(rtol=1e-10, atol=1e-12)}
VARIANTS = {
    "lstm": {"cell": "lstm"},
    "lstm-proj": {"cell": "lstm", "proj_size": 2},
    "lstm-peep": {"cell": "lstm", "peepholes": True},
    "lstm-proj-peep": {"cell": "lstm", "proj_size": 3, "peepholes": True},
    "gru": {"cell": "gru"},
    "gru-reset-before": {"cell": "gru", "reset_after": False},
}


def random_network(k, layers, dtype="float64", seed=0, **network):
    """A network whose every parameter, peepholes and biases included, is drawn at random."""
    cfg = {"network": {"input_size": k, "dtype": dtype, "layers": layers, **network}}
    net = rnnsim.Network.from_config(cfg)
    rng = np.random.default_rng(seed)
    params = {name: 0.6 * rng.standard_normal(shape)
              for name, (_, shape) in net.parameter_shapes().items()}
    return rnnsim.Network(net.config, params)


def reference(net, i, x, h0, c0=None, suffix="", reverse=False):
    """The NumPy reference of layer ``i`` of ``net`` (float64 weights) on x (T, B, k)."""
    cfg = net.config.network.layers[i]
    get = lambda name: net.params.get(f"layers.{i}.{name}{suffix}")  # noqa: E731
    q = net.layers[i].hidden_size
    b = get("b") if cfg.bias else 0.0
    if cfg.cell == "lstm":
        return lstm(x, get("W"), get("U"), b, h0, c0, get("P"), get("R"), reverse=reverse)
    assert not reverse
    bn = get("bn") if cfg.bias else np.zeros(q)
    reset_after = net.layers[i].options.reset_after is not False
    return gru(x, get("W"), get("U"), b, bn, h0, reset_after), None


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T,B,k,p", [(1, 3, 4, 5), (7, 1, 3, 4), (6, 2, 1, 3), (5, 2, 3, 1),
                                     (3, 2, 4, 9), (12, 3, 2, 4)],
                         ids=["T=1", "B=1", "k=1", "p=1", "p>T", "p<T"])
def test_edge_shapes_match_reference(T, B, k, p, dtype, variant):
    layer = dict(VARIANTS[variant], units=p)
    if layer.get("proj_size", 0) >= p:
        layer["proj_size"] = 1
    net = random_network(k, [layer], dtype)
    q, lstm_cell = net.layers[0].hidden_size, layer["cell"] == "lstm"
    rng = np.random.default_rng(1)
    x, h0, c0 = (rng.standard_normal(shape) for shape in [(T, B, k), (1, B, q), (1, B, p)])
    result = net.run(x.astype(dtype), h0=h0, c0=c0 if lstm_cell else None)
    expected, c = reference(net, 0, x.astype(dtype).astype(np.float64), h0[0], c0[0])
    assert result.output.dtype == np.dtype(dtype) and result.output.shape == (T, B, q)
    np.testing.assert_allclose(result.output, expected, **TOL[dtype])
    np.testing.assert_allclose(result.h_n[0], expected[-1], **TOL[dtype])
    if lstm_cell:
        np.testing.assert_allclose(result.c_n[0], c, **TOL[dtype])
    else:
        assert result.final_c == (None,)


@pytest.mark.parametrize("variant", ["lstm", "lstm-proj-peep", "gru"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_beyond_the_caches_match_reference(variant, dtype):
    """Packed weights above ``tiles.PREFETCH_BYTES`` run the tile that fetches ahead; 9 rows
    on 2 threads are chunks of 5 and 4 rows, so both the 4-row and the 1-row tiles run."""
    from rnnsim.kernels.cpu import tiles

    k, p = 64, 288
    layer = dict(VARIANTS[variant], units=p)
    if "proj_size" in layer:
        layer["proj_size"] = 240
    net = random_network(k, [layer], dtype, seed=3)
    q, gates = net.layers[0].hidden_size, net.layers[0].gate_count()
    assert gates * p * (k + q) * np.dtype(dtype).itemsize > tiles.PREFETCH_BYTES
    rng = np.random.default_rng(2)
    x, h0, c0 = (rng.standard_normal(shape) for shape in [(3, 9, k), (1, 9, q), (1, 9, p)])
    lstm_cell = variant.startswith("lstm")
    result = net.run(x.astype(dtype), h0=h0, c0=c0 if lstm_cell else None)
    expected, c = reference(net, 0, x.astype(dtype).astype(np.float64), h0[0], c0[0])
    # sums of 352 terms, outputs up to ~15 with the projection: float32 errors grow with them
    tol = dict(rtol=1e-4, atol=1e-4 * np.abs(expected).max()) if dtype == "float32" else TOL[dtype]
    np.testing.assert_allclose(result.output, expected, **tol)
    if lstm_cell:
        np.testing.assert_allclose(result.c_n[0], c, **tol)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_selectable_activations(cell):
    acts = {"activation": "softsign", "gate_activation": {"name": "hard_sigmoid", "alpha": 0.3}}
    if cell == "lstm":
        acts["cell_activation"] = "relu"
    net = random_network(3, [dict(cell=cell, units=4, **acts)])
    x = np.random.default_rng(2).standard_normal((6, 2, 3))
    gate = lambda v: ACTIVATIONS["hard_sigmoid"](v, 0.3, 0.5)  # noqa: E731
    W, U, b = (net.params[f"layers.0.{n}"] for n in "WUb")
    if cell == "lstm":
        expected, _ = lstm(x, W, U, b, np.zeros((2, 4)), np.zeros((2, 4)),
                           act=ACTIVATIONS["softsign"], gate=gate, cell=ACTIVATIONS["relu"])
    else:
        expected = gru(x, W, U, b, net.params["layers.0.bn"], np.zeros((2, 4)),
                       act=ACTIVATIONS["softsign"], gate=gate)
    np.testing.assert_allclose(net.run(x).output, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=12, deadline=None)
@given(variant=st.sampled_from(sorted(VARIANTS) + ["elman"]), T=st.integers(1, 6),
       B=st.integers(1, 3), k=st.integers(1, 4), p=st.integers(2, 5), seed=st.integers(0, 99))
def test_bidirectional_halves_are_two_single_direction_runs(variant, T, B, k, p, seed):
    """Forward half == forward layer; reverse half == forward layer on time-reversed input."""
    layer = dict(VARIANTS.get(variant, {"cell": "elman"}), units=p)
    bi = random_network(k, [dict(layer, bidirectional=True)], seed=seed)
    one = rnnsim.Network.from_config({"network": {"input_size": k, "dtype": "float64",
                                                  "layers": [layer]}})
    x = np.random.default_rng(seed).standard_normal((T, B, k))
    both = bi.run(x)
    q = bi.layers[0].hidden_size
    for d, suffix in enumerate(["", "_reverse"]):
        params = {name.removesuffix("_reverse"): value for name, value in bi.params.items()
                  if name.endswith("_reverse") == bool(d)}
        single = rnnsim.Network(one.config, params).run(x[::-1] if d else x)
        half = both.output[..., d * q:(d + 1) * q]
        np.testing.assert_allclose(half, single.output[::-1] if d else single.output,
                                   rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(both.final[0][d], single.final[0][0], rtol=1e-12, atol=1e-13)
        if bi.layers[0].cell_size:
            np.testing.assert_allclose(both.final_c[0][d], single.final_c[0][0], rtol=1e-12)


def test_reverse_lstm_matches_the_reference_run_backwards():
    net = random_network(3, [{"cell": "lstm", "units": 4, "peepholes": True,
                              "bidirectional": True}])
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    expected, c = reference(net, 0, x, np.zeros((2, 4)), np.zeros((2, 4)), "_reverse", True)
    result = net.run(x)
    np.testing.assert_allclose(result.output[..., 4:], expected, rtol=1e-10)
    np.testing.assert_allclose(result.final_c[0][1], c, rtol=1e-10)
    np.testing.assert_allclose(result.final[0][1], expected[0], rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lstm_with_open_forget_gate_and_closed_input_gate_keeps_its_cell_state(dtype):
    p = 5
    net = random_network(3, [{"cell": "lstm", "units": p, "peepholes": True}], dtype)
    b = net.params["layers.0.b"]
    b[:p], b[p:2 * p] = -60.0, 60.0  # i = sigmoid(-60) ~ 0, f = sigmoid(60) ~ 1
    net.params["layers.0.P"][:2] = 0.0
    rng = np.random.default_rng(4)
    x, c0 = rng.standard_normal((40, 2, 3)), rng.standard_normal((1, 2, p))
    result = net.run(x, c0=c0)
    np.testing.assert_allclose(result.c_n, c0, **TOL[dtype])
    o_bound = np.abs(np.tanh(c0[0]))
    assert np.all(np.abs(result.output) <= o_bound + 1e-6)


def test_mixed_stack_from_yaml():
    text = """
    network:
      input_size: 3
      batch_first: true
      dtype: float64
      layers:
        - {cell: elman, units: 4, bidirectional: true}
        - {cell: lstm, units: 5, proj_size: 2, peepholes: true}
        - {cell: gru, units: 3, reset_after: false}
    """
    net = random_network(3, **{k: v for k, v in yaml.safe_load(text)["network"].items()
                               if k != "input_size"})
    x = np.random.default_rng(5).standard_normal((2, 6, 3))  # (B, T, k)
    h0 = [np.zeros((2, 2, 4)), np.full((1, 2, 2), 0.5), np.zeros((1, 2, 3))]
    c0 = [None, np.full((1, 2, 5), -0.3), None]
    result = net.run(x, h0=h0, c0=c0)
    assert result.output.shape == (2, 6, 3)
    assert [f.shape for f in result.final] == [(2, 2, 4), (1, 2, 2), (1, 2, 3)]
    assert result.final_c[0] is None and result.final_c[2] is None
    assert result.final_c[1].shape == (1, 2, 5)
    with pytest.raises(ShapeError, match="c_n needs every layer"):
        result.c_n
    a = x.swapaxes(0, 1)
    W, U, b = (net.params[f"layers.0.{n}"] for n in "WUb")
    a = np.concatenate([elman(a, W, U, b, h0[0][0]),
                        elman(a, *(net.params[f"layers.0.{n}_reverse"] for n in "WUb"),
                              h0[0][1], reverse=True)], -1)
    a, c = reference(net, 1, a, h0[1][0], c0[1][0])
    a, _ = reference(net, 2, a, h0[2][0])
    np.testing.assert_allclose(result.output, a.swapaxes(0, 1), rtol=1e-10)
    np.testing.assert_allclose(result.final_c[1][0], c, rtol=1e-10)


def test_unbatched_input_and_state_shapes():
    net = random_network(2, [{"cell": "lstm", "units": 4, "proj_size": 3, "bidirectional": True}])
    x = np.random.default_rng(6).standard_normal((5, 2))
    result = net.run(x, h0=np.zeros((2, 3)), c0=np.ones((2, 4)))
    batched = net.run(x[:, None], h0=np.zeros((2, 1, 3)), c0=np.ones((2, 1, 4)))
    assert result.output.shape == (5, 6) and result.h_n.shape == (2, 3)
    assert result.c_n.shape == (2, 4)
    np.testing.assert_allclose(result.output, batched.output[:, 0])
    np.testing.assert_allclose(result.c_n, batched.c_n[:, 0])


def test_state_errors_name_the_array_and_shape():
    net = random_network(2, [{"cell": "lstm", "units": 4, "proj_size": 3}])
    x = np.zeros((5, 1, 2))
    with pytest.raises(ShapeError, match=r"h0 has shape \(1, 1, 4\); expected \(1, 1, 3\)"):
        net.run(x, h0=np.zeros((1, 1, 4)))
    with pytest.raises(ShapeError, match=r"c0 has shape \(1, 1, 3\); expected \(1, 1, 4\)"):
        net.run(x, c0=np.zeros((1, 1, 3)))
    gru_net = random_network(2, [{"cell": "gru", "units": 4}])
    with pytest.raises(ShapeError, match="no layer has that state"):
        gru_net.run(x, c0=np.zeros((1, 1, 4)))
    with pytest.raises(ShapeError, match=r"c0\[0\] is given but layer 0"):
        gru_net.run(x, c0=[np.zeros((1, 1, 4))])


def test_options_of_other_cells_are_rejected():
    with pytest.raises(ConfigError) as info:
        rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
            {"cell": "gru", "units": 3, "proj_size": 2},
            {"cell": "elman", "units": 3, "gate_activation": "sigmoid"},
            {"cell": "lstm", "units": 3, "reset_after": False}]}})
    message = str(info.value)
    assert "layers[0].proj_size: not an option of cell 'gru'" in message
    assert "layers[1].gate_activation: not an option of cell 'elman'" in message
    assert "layers[2].reset_after: not an option of cell 'lstm'" in message


def test_save_and_load_keep_lstm_options(tmp_path):
    net = random_network(2, [{"cell": "lstm", "units": 4, "proj_size": 2, "peepholes": True},
                             {"cell": "gru", "units": 3, "reset_after": False}])
    x = np.random.default_rng(7).standard_normal((4, 2, 2))
    loaded = rnnsim.load(net.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.run(x).output, net.run(x).output)


def test_gru_tiles_give_the_same_bits_with_16_vector_registers(tmp_path):
    """With AVX-512 the GRU's reset_after tile takes both sub-panels per call (24
    accumulators), on a CPU with 16 vector registers one: each output is the same chain of FMAs
    either way, so a run compiled for Haswell (AVX2 and FMA: ``tiles.VECTOR_REGISTERS`` 16) in
    a subprocess gives this process's bits."""
    from rnnsim.kernels.cpu import gru as template, tiles

    config = {"network": {"input_size": 5, "dtype": "float32", "seed": 4,
                          "layers": [{"cell": "gru", "units": 37}]}}
    script = f"""if True:
        import json
        import numpy as np, rnnsim
        from rnnsim.kernels.cpu import tiles
        net = rnnsim.Network.from_config({config!r})
        x = np.random.default_rng(5).standard_normal((6, 9, 5)).astype("float32")
        y = net.run(x).output
        print(json.dumps([tiles.VECTOR_REGISTERS, y.view(np.uint32).ravel().tolist()]))
    """
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="",
               RNNSIM_CACHE_DIR=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    registers, bits = json.loads(done.stdout.strip().splitlines()[-1])
    assert registers == 16
    net = rnnsim.Network.from_config(config)
    x = np.random.default_rng(5).standard_normal((6, 9, 5)).astype("float32")
    assert net.run(x).output.view(np.uint32).ravel().tolist() == bits
    if tiles.VECTOR_REGISTERS >= 32:
        assert template.PER_CALL == 2
