"""Networks built twice, on the CPU and on cuda with the same weights, and their comparison."""
import numpy as np
import pytest

import rnnsim
from rnnsim import device
from rnnsim.config import parse

TOLERANCE = {"float32": {"rtol": 2e-5, "atol": 2e-6}, "float64": {"rtol": 1e-12, "atol": 1e-13}}

# Multi-block grid launches need a real GPU: the simulator runs one block at a time.
needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(device.simulated(), reason="the simulator "
                                                  "runs one block at a time; needs a real GPU")]

# Every option of every cell, each used by some layer.
LAYERS = {
    "elman": {"cell": "elman"},
    "elman-leaky-clip-nobias": {"cell": "elman", "activation": {"name": "leaky_relu",
                                                                "alpha": 0.2},
                                "clip": 0.8, "bias": False},
    "lstm": {"cell": "lstm"},
    "lstm-proj-peepholes": {"cell": "lstm", "proj_size": 2, "peepholes": True},
    "lstm-clip-input-forget": {"cell": "lstm", "clip": 0.5, "input_forget": True},
    "gru": {"cell": "gru"},
    "gru-reset-before": {"cell": "gru", "reset_after": False},
    "gru-clip-acts": {"cell": "gru", "clip": 0.6, "activation": "softsign",
                      "gate_activation": {"name": "hard_sigmoid", "alpha": 0.3, "beta": 0.4}},
    "esn": {"cell": "esn", "leak_rate": 0.4},
    "esn-sparse": {"cell": "esn", "sparse": True, "leak_rate": 0.7,
                   "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.5}}},
    "esn-noise-scaling": {"cell": "esn", "noise": 0.05, "input_scaling": 0.5},
    "ugrnn-clip": {"cell": "ugrnn", "clip": 0.7},  # a plugin's cell (plugins/rnnsim-ugrnn)
}


def random_input(cpu, T, B, seed=0):
    """x (T, B, k) and random initial states h0, c0 (one entry per layer) for ``cpu``'s layers."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, cpu.input_size)).astype(cpu.dtype)
    h0 = [rng.standard_normal((layer.directions, B, layer.hidden_size)).astype(cpu.dtype)
          for layer in cpu.layers]
    c0 = [None if layer.cell_size is None else
          rng.standard_normal((layer.directions, B, layer.cell_size)).astype(cpu.dtype)
          for layer in cpu.layers]
    return x, h0, c0


def random_params(params, seed=0):
    """``params`` with every floating-point array drawn anew: biases, peepholes, GRU ``bn``,
    projections and head included (default initializers leave biases and peepholes at zero,
    where a kernel that drops or swaps them still agrees). Integer arrays (a sparse matrix's
    indices) keep their structure. Matrices get U(-1, 1) / sqrt(columns), vectors U(-0.5, 0.5)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in sorted(params.items()):
        if np.issubdtype(value.dtype, np.floating):
            bound = 1.0 / np.sqrt(value.shape[-1]) if value.ndim == 2 else 0.5
            drawn = rng.uniform(-bound, bound, value.shape).astype(value.dtype)
            assert np.all(drawn != 0), name
            value = drawn
        out[name] = value
    return out


def pair(layers, input_size, dtype="float32", **network):
    """The same network (the same random weights, no parameter left at zero) on the CPU and on
    cuda; the two share their parameter arrays."""
    config = parse({"network": {"input_size": input_size, "dtype": dtype, "seed": 3,
                                "layers": layers, **network}})
    cpu = rnnsim.Network(config, random_params(rnnsim.Network(config).params))
    return cpu, rnnsim.Network(config, cpu.params, device="cuda")


def assert_same(gpu, cpu, dtype):
    """Two RunResults (or arrays) agree within the dtype's tolerance."""
    if isinstance(gpu, np.ndarray):
        gpu, cpu = [gpu], [cpu]
    else:
        gpu = [gpu.output, *gpu.final, *(c for c in gpu.final_c if c is not None)]
        cpu = [cpu.output, *cpu.final, *(c for c in cpu.final_c if c is not None)]
    assert len(gpu) == len(cpu)
    for a, b in zip(gpu, cpu):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOLERANCE[dtype])


def layer_states(layer, h0, c0):
    """A cell's states by name from the first and (if it has one) second state arrays."""
    names = list(layer.state_sizes())
    return dict(zip(names, [h0] if c0 is None else [h0, c0]))


def assert_same_run(got, expected):
    """Two ``Cell.run`` results, (output, states by name), agree in float64."""
    np.testing.assert_allclose(got[0], expected[0], **TOLERANCE["float64"])
    assert list(got[1]) == list(expected[1])
    for name in expected[1]:
        np.testing.assert_allclose(got[1][name], expected[1][name], **TOLERANCE["float64"])
