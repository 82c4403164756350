"""What each cell owns: its gate blocks, its recurrent matrices, its dynamics map and its GPU
runner, reached through the cell, never through a table keyed by its name."""
from typing import Optional

import numpy as np
import pytest
from pydantic import Field

import rnnsim
from rnnsim import dynamics, plot, plugins
from rnnsim.cells.elman import ElmanCell, ElmanOptions
from rnnsim.sweep import expand


def network(layer, input_size=3):
    return rnnsim.Network.from_config({"network": {"input_size": input_size, "dtype": "float64",
                                                   "seed": 5, "layers": [layer]}})


def test_gate_blocks_of_an_lstm_with_projection_and_a_reverse_direction():
    net = network({"cell": "lstm", "units": 4, "proj_size": 2, "bidirectional": True})
    matrices = plot.recurrent_matrices(net, 0)
    assert list(matrices) == [f"U_{g}{d}" for d in ("", " (reverse)") for g in "ifgo"]
    for d, suffix in (("", ""), (" (reverse)", "_reverse")):
        U, R = net.params["layers.0.U" + suffix], net.params["layers.0.R" + suffix]
        for i, g in enumerate("ifgo"):
            np.testing.assert_array_equal(matrices[f"U_{g}{d}"], U[4 * i:4 * (i + 1)] @ R)
            assert matrices[f"U_{g}{d}"].shape == (4, 4)


def test_gru_blocks_and_the_gate_count():
    net = network({"cell": "gru", "units": 5})
    cell = net.layers[0]
    assert (cell.gate_labels, cell.gate_count()) == ("rzn", 3)
    matrices = cell.recurrent_matrices(net.layer_params(0))
    U = net.params["layers.0.U"]
    for i, g in enumerate("rzn"):
        np.testing.assert_array_equal(matrices[f"U_{g}"], U[5 * i:5 * (i + 1)])


def test_a_cell_without_a_map_or_gpu_kernel_says_so(monkeypatch):
    net = network({"cell": "elman", "units": 3})
    monkeypatch.setattr(type(net.layers[0]), "map_class", None)
    with pytest.raises(rnnsim.ConfigError, match="cell 'elman' has no dynamics map"):
        dynamics.layer_map(net, 0)
    monkeypatch.setattr(type(net.layers[0]), "cuda_template", None)
    with pytest.raises(rnnsim.ConfigError, match="cell 'elman' has no CUDA kernel"):
        rnnsim.device.run_layer(net.layers[0], net.layer_params(0), np.zeros((2, 1, 3)),
                                np.zeros((1, 1, 3)))


class GainOptions(ElmanOptions):
    gain: Optional[float] = Field(default=None, gt=0, description="scales x_t (default 1)")


class GainCell(ElmanCell):
    """An elman cell whose input is scaled by its own option ``gain``."""

    name = "gained"
    Options = GainOptions

    def run_direction(self, params, suffix, x, h, lengths, reverse):
        gain = 1.0 if self.options.gain is None else self.options.gain
        return super().run_direction(params, suffix, (x * gain).astype(x.dtype), h, lengths,
                                     reverse)


@pytest.fixture
def gain_cell():
    class Plugin:
        @rnnsim.hookimpl
        def register_cells(self, register):
            register(GainCell)

    plugins.register_plugin(Plugin(), name="gain-cell")
    try:
        yield
    finally:
        plugins.unregister_plugin("gain-cell")


def test_a_plugin_cell_brings_its_own_options(gain_cell, tmp_path):
    """Its keys are valid in configs, sweeps and saved models, and checked with key paths."""
    cfg = {"network": {"input_size": 2, "dtype": "float64", "seed": 1,
                       "layers": [{"cell": "gained", "units": 3, "gain": 2.0}]}}
    net = rnnsim.Network.from_config(cfg)
    plain = rnnsim.Network(rnnsim.config.parse({"network": {**cfg["network"], "layers": [
        {"cell": "elman", "units": 3}]}}), net.params)
    x = np.random.default_rng(0).standard_normal((4, 2))
    np.testing.assert_array_equal(net.run(x).output, plain.run(2 * x).output)
    assert net.config.dump()["network"]["layers"][0]["gain"] == 2.0
    np.testing.assert_array_equal(rnnsim.load(net.save(tmp_path / "m")).run(x).output,
                                  net.run(x).output)
    with pytest.raises(rnnsim.ConfigError, match=r"layers\[0\]\.gain: Input should be greater"):
        rnnsim.Network.from_config({"network": {**cfg["network"], "layers": [
            {"cell": "gained", "units": 3, "gain": -1.0}]}})
    with pytest.raises(rnnsim.ConfigError, match=r"layers\[0\]\.gain: not an option of cell "
                                                 r"'elman' \(it is one of cell 'gained'\)"):
        rnnsim.Network.from_config({"network": {**cfg["network"], "layers": [
            {"cell": "elman", "units": 3, "gain": 2.0}]}})
    with pytest.raises(rnnsim.ConfigError, match=r"layers\[0\]\.gian: unknown key \(did you "
                                                 r"mean 'gain'\?\); not an option of cell"):
        rnnsim.Network.from_config({"network": {**cfg["network"], "layers": [
            {"cell": "gained", "units": 3, "gian": 2.0}]}})
    points = expand(rnnsim.config.parse(cfg), {"network.layers[0].gain": [0.5, 3.0]})[1]
    assert [p.config["network"]["layers"][0]["gain"] for p in points] == [0.5, 3.0]
