"""CUDA kernels against the CPU kernels (themselves checked against NumPy references and the
conformance cases): every cell option, edge shapes, both dtypes, every launch variant."""
import numpy as np
import pytest

import rnnsim
from rnnsim import device, plugins
from rnnsim.ensembles import ensemble, run_ensemble

from cuda_helpers import (LAYERS, assert_same, assert_same_run, layer_states, pair,
                          random_input)

DTYPES = ["float32", "float64"]

# (T, B, k, p, dtype): one step, one sequence, one feature, one unit, p > T and p < T.
SHAPES = [(1, 1, 1, 1, "float32"), (1, 1, 1, 1, "float64"), (1, 3, 2, 4, "float64"),
          (6, 1, 3, 1, "float32"), (3, 2, 1, 7, "float64"), (9, 5, 2, 3, "float32")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
def test_every_cell_option_agrees_with_the_cpu(name, dtype):
    bidirectional = LAYERS[name]["cell"] != "esn"
    cpu, gpu = pair([dict(LAYERS[name], units=3, bidirectional=bidirectional)], 2, dtype)
    x, h0, c0 = random_input(cpu, 5, 3)
    lengths = [5, 2, 0]
    assert_same(gpu.run(x, h0, c0, lengths=lengths), cpu.run(x, h0, c0, lengths=lengths), dtype)


@pytest.mark.parametrize("T, B, k, p, dtype", SHAPES)
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru", "esn"])
def test_edge_shapes(cell, T, B, k, p, dtype):
    cpu, gpu = pair([{"cell": cell, "units": p}], k, dtype)
    x, h0, c0 = random_input(cpu, T, B, seed=T * 100 + B * 10 + p)
    assert_same(gpu.run(x, h0, c0), cpu.run(x, h0, c0), dtype)


def test_stacked_layers_batch_first_and_a_head():
    layers = [{"cell": "gru", "units": 5}, {"cell": "lstm", "units": 3, "bidirectional": True},
              {"cell": "elman", "units": 4}]
    cpu, gpu = pair(layers, 2, batch_first=True, head={"name": "linear", "units": 2})
    x = np.random.default_rng(1).standard_normal((3, 6, 2)).astype(np.float32)
    got, expected = gpu.run(x, lengths=[6, 2, 5]), cpu.run(x, lengths=[6, 2, 5])
    assert_same(got, expected, "float32")
    assert_same(got.y, expected.y, "float32")


def test_unbatched_input_and_streaming_steps():
    cpu, gpu = pair([{"cell": "lstm", "units": 4, "proj_size": 2}], 3)
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    assert_same(gpu.run(x), cpu.run(x), "float32")
    state_gpu, state_cpu = gpu.initial_state(), cpu.initial_state()
    for x_t in x:
        y_gpu, state_gpu = gpu.step(x_t, state_gpu)
        y_cpu, state_cpu = cpu.step(x_t, state_cpu)
        assert_same(y_gpu, y_cpu, "float32")
    assert_same(state_gpu.c[0], state_cpu.c[0], "float32")


PLANS = {
    "block1": device.Plan(rows=1, unit_blocks=1, grid=False, threads=16),
    "block4-strided": device.Plan(rows=4, unit_blocks=1, grid=False, threads=2),
    "block8": device.Plan(rows=8, unit_blocks=1, grid=False, threads=5),
    "grid4-one-block": device.Plan(rows=4, unit_blocks=1, grid=True, threads=3),
}


@pytest.mark.parametrize("plan, staged", [(plan, True) for plan in PLANS] + [("block8", False)])
@pytest.mark.parametrize("name", ["elman", "lstm-proj-peepholes", "gru-reset-before", "esn",
                                  "esn-sparse"])
def test_every_launch_variant(name, plan, staged, monkeypatch):
    """Rows per block 1, 4 and 8 (B = 6 leaves a partial block), fewer threads than units,
    the grid variant's barriers, and weights in shared memory or read from global memory."""
    if not staged:
        monkeypatch.setattr(device, "SHARED_BYTES", 0)
    cpu, gpu = pair([dict(LAYERS[name], units=5)], 2, "float64")
    layer = gpu.layers[0]
    x, h0, c0 = random_input(cpu, 4, 6)
    lengths = np.array([4, 1, 3, 0, 4, 2])
    args = (gpu.layer_params(0), x, layer_states(gpu.layers[0], h0[0], c0[0]), lengths)
    got = device.run_layer(layer, *args, plan=PLANS[plan])
    expected = cpu.layers[0].run(*args)
    assert_same_run(got, expected)


def test_time_chunks_carry_the_state(monkeypatch):
    """Inputs projected a few steps at a time (a small CHUNK_BYTES), forward and reverse."""
    monkeypatch.setattr(device, "CHUNK_BYTES", 2 * 3 * 4 * 4 * 4)  # 2 steps of (B=3, 4p=16)
    cpu, gpu = pair([{"cell": "lstm", "units": 4, "bidirectional": True}], 2)
    x, h0, c0 = random_input(cpu, 7, 3)
    lengths = [7, 3, 6]
    assert_same(gpu.run(x, h0, c0, lengths=lengths), cpu.run(x, h0, c0, lengths=lengths),
                "float32")


def scaled_softsign(x, gain):
    return gain * x / (1.0 + abs(x))


class ScaledSoftsign:
    @rnnsim.hookimpl
    def register_activations(self, register):
        register("scaled_softsign", scaled_softsign, params={"gain": 1.0})


def test_a_plugin_activation_is_compiled_for_the_gpu():
    plugins.register_plugin(ScaledSoftsign(), name="scaled-softsign", package="test-package")
    try:
        cpu, gpu = pair([{"cell": "elman", "units": 3,
                          "activation": {"name": "scaled_softsign", "gain": 0.7}}], 2)
        x, h0, _ = random_input(cpu, 5, 2)
        assert_same(gpu.run(x, h0), cpu.run(x, h0), "float32")
    finally:
        plugins.unregister_plugin("scaled-softsign")


# Ensembles are built from configs: their biases drawn, not left at zero.
RANDOM_BIAS = {"name": "uniform", "low": -0.5, "high": 0.5}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sparse", [False, True])
def test_an_ensemble_runs_in_one_launch(sparse, dtype):
    base = {"network": {"input_size": 2, "dtype": dtype, "layers": [
        {"cell": "esn", "units": 6, "sparse": sparse,
         "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.5},
                  "bias": RANDOM_BIAS}}],
        "head": {"name": "ridge", "units": 1, "init": {"bias": RANDOM_BIAS}}}}
    members = [{"seed": 1, "leak_rate": 0.3}, {"seed": 2, "leak_rate": 0.9, "input_scaling": 2.0},
               {"seed": 3, "noise": 0.1}]
    nets = ensemble(base, members)
    u = np.random.default_rng(3).standard_normal((6, 2)).astype(dtype)
    got, expected = run_ensemble(nets, u, device="cuda"), run_ensemble(nets, u)
    assert_same(got.states, expected.states, dtype)
    assert_same(got.y, expected.y, dtype)


def test_an_ensemble_follows_its_members_device():
    nets = ensemble({"network": {"input_size": 1, "device": "cuda", "layers": [
        {"cell": "esn", "units": 3, "init": {"bias": RANDOM_BIAS}}]}}, [{"seed": 1}, {"seed": 2}])
    u = np.linspace(-1, 1, 4, dtype=np.float32)[:, None]
    assert_same(run_ensemble(nets, u).states, run_ensemble(nets, u, device="cpu").states,
                "float32")


def test_weights_edited_in_place_are_picked_up():
    """The device keeps a layer's uploaded weights between runs, and checks them each run."""
    cpu, gpu = pair([{"cell": "lstm", "units": 3, "bidirectional": True}], 2)
    x, _, _ = random_input(cpu, 4, 2)
    before = gpu.run(x).output
    for name in ("layers.0.U_reverse", "layers.0.W", "layers.0.b"):
        gpu.params[name][0] += 0.5  # the same arrays as cpu.params
    after = gpu.run(x)
    assert not np.allclose(after.output, before)
    assert_same(after, cpu.run(x), "float32")
