"""CUDA kernels on a real GPU only: units spread over a cooperative grid of blocks (the
simulator runs one block at a time), the default launch plans at larger sizes, and numba.cuda's
compile errors (the simulator runs an activation as plain Python and never compiles it)."""
import numpy as np
import pytest

import rnnsim
from rnnsim import PluginError, device, plugins

from cuda_helpers import (LAYERS, assert_same_run, layer_states, needs_gpu, pair,
                          random_input)

pytestmark = needs_gpu


@pytest.mark.parametrize("name", ["elman", "lstm", "lstm-proj-peepholes", "gru",
                                  "gru-reset-before", "esn", "esn-sparse"])
@pytest.mark.parametrize("unit_blocks", [2, 3, 7])
@pytest.mark.parametrize("rows", [1, 8])
def test_units_spread_over_a_grid_of_blocks(name, unit_blocks, rows):
    cpu, gpu = pair([dict(LAYERS[name], units=37)], 5, "float64")
    x, h0, c0 = random_input(cpu, 50, 11)
    lengths = np.array([50, 1, 30, 0, 50, 49, 12, 50, 2, 50, 7])
    args = (gpu.layer_params(0), x, layer_states(gpu.layers[0], h0[0], c0[0]), lengths)
    plan = device.Plan(rows=rows, unit_blocks=unit_blocks, grid=True, threads=32)
    got = device.run_layer(gpu.layers[0], *args, plan=plan)
    assert_same_run(got, cpu.layers[0].run(*args))


def test_large_layers_with_the_default_plans():
    for cell, p, B in [("lstm", 300, 1), ("gru", 256, 64), ("elman", 1024, 2), ("esn", 500, 3)]:
        cpu, gpu = pair([{"cell": cell, "units": p}], 16)
        x, h0, c0 = random_input(cpu, 40, B)
        np.testing.assert_allclose(gpu.run(x, h0, c0).output, cpu.run(x, h0, c0).output,
                                   rtol=1e-4, atol=1e-5)


def test_an_activation_cuda_cannot_compile_is_a_plugin_error():
    def uses_a_list(x):
        return sum([x, x], start={})

    class Uncompilable:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("uncompilable", uses_a_list)

    plugins.register_plugin(Uncompilable(), name="uncompilable-plugin", package="test-package")
    try:
        _, gpu = pair([{"cell": "elman", "units": 2, "activation": "uncompilable"}], 1)
        with pytest.raises(PluginError, match="'uncompilable' \\(plugin 'uncompilable-plugin'"):
            gpu.run(np.zeros((2, 1, 1), np.float32))
    finally:
        plugins.unregister_plugin("uncompilable-plugin")

