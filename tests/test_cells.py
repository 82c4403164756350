"""What each cell owns: its gate blocks, its recurrent matrices, its dynamics map and its GPU
runner, reached through the cell, never through a table keyed by its name."""
from typing import Optional

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from pydantic import Field

import rnnsim
from rnnsim import dynamics, plot, plugins
from rnnsim.cli import cli
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
                                {"h": np.zeros((1, 1, 3))})


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
def cell_plugin():
    """Register throwaway cell classes as a plugin: ``cell_plugin(cls, ...)``; always
    unregistered afterwards."""
    names = []

    def register_cells(*classes):
        class Plugin:
            @rnnsim.hookimpl
            def register_cells(self, register):
                for cls in classes:
                    register(cls)

        names.append(f"cells-{len(names)}")
        plugins.register_plugin(Plugin(), name=names[-1])

    try:
        yield register_cells
    finally:
        for name in names:
            plugins.unregister_plugin(name)


def test_a_plugin_cell_brings_its_own_options(cell_plugin, tmp_path):
    """Its keys are valid in configs, sweeps and saved models, and checked with key paths."""
    cell_plugin(GainCell)
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


class Unchecked:
    """A type pydantic has no validator for."""


class UncheckedOptions(ElmanOptions):
    odd: Optional[Unchecked] = None


class UncheckedCell(ElmanCell):
    name = "unchecked"
    Options = UncheckedOptions


def test_a_cell_whose_options_pydantic_cannot_build_is_named_where_it_is_used(cell_plugin,
                                                                              tmp_path):
    """Options models are built on first use (listing plugins builds none), so a broken one
    is a PluginError naming the cell and its plugin there, never a pydantic traceback."""
    cell_plugin(UncheckedCell)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0 and "unchecked" in result.output
    message = (r"cell 'unchecked' \(plugin 'cells-0'\) has a model pydantic cannot build, "
               r"UncheckedOptions: Unable to generate pydantic-core schema for .*Unchecked")
    with pytest.raises(rnnsim.PluginError, match=message):
        network({"cell": "unchecked", "units": 2})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"network": {"input_size": 1, "layers": [
        {"cell": "unchecked", "units": 2}]}}))
    for args in (["validate", str(config)], ["schema"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "PluginError: cell 'unchecked' (plugin 'cells-0') has a model" in result.output


class CountingCell(ElmanCell):
    """An elman cell with two more states: the steps each row has run, and the largest |h| it
    has reached per unit (a stand-in for a spiking neuron's counters)."""

    name = "counting"

    def state_sizes(self):
        return {"h": self.units, "steps": 1, "peak": self.units}

    def run_direction(self, params, suffix, x, h, lengths, reverse, steps, peak):
        out = super().run_direction(params, suffix, x, h, lengths, reverse)
        steps += lengths[:, None]
        np.maximum(peak, np.abs(out).max(axis=0, initial=0.0), out=peak)
        return out


def test_a_cell_with_three_states_runs_streams_and_resumes(cell_plugin, tmp_path):
    """State and RunResult carry every state a cell declares, by name: run, continued runs,
    steps, runs streamed to disk and the CLI's output file."""
    cell_plugin(CountingCell)
    cfg = {"network": {"input_size": 2, "dtype": "float64", "seed": 3,
                       "layers": [{"cell": "counting", "units": 3}, {"units": 2}]}}
    net = rnnsim.Network.from_config(cfg)
    x = np.random.default_rng(1).standard_normal((6, 4, 2))
    whole = net.run(x)
    assert [list(s) for s in whole.states] == [["h", "steps", "peak"], ["h"]]
    np.testing.assert_array_equal(whole.states[0]["steps"][0, :, 0], [6, 6, 6, 6])
    first = net.run(x[:2])
    np.testing.assert_array_equal(first.states[0]["steps"][0, :, 0], [2, 2, 2, 2])
    second = net.run(x[2:], first.state)
    for name in ("h", "steps", "peak"):
        np.testing.assert_array_equal(second.states[0][name], whole.states[0][name])
    state = net.initial_state(4)
    for x_t in x:
        _, state = net.step(x_t, state)
    for name in ("h", "steps", "peak"):
        np.testing.assert_array_equal(state.layers[0][name], whole.states[0][name])
    streamed = net.run(x, out=tmp_path / "out.npy", chunk_steps=4)
    np.testing.assert_array_equal(streamed.states[0]["peak"], whole.states[0]["peak"])
    with np.load(tmp_path / "out.state.npz") as saved:
        assert {"final_0_h", "final_0_steps", "final_0_peak", "final_1_h"} <= set(saved.files)
    config = tmp_path / "counting.yaml"
    config.write_text(yaml.safe_dump(cfg))
    result = CliRunner().invoke(cli, ["run", str(config), "-T", "3", "-B", "2", "--output",
                                      str(tmp_path / "o.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "o.npz") as saved:
        np.testing.assert_array_equal(saved["final_0_steps"], np.full((1, 2, 1), 3.0))
    with pytest.raises(rnnsim.ShapeError, match=r"state.layers\[0\] holds \['h'\]; layer 0 "
                                                r"\(counting\) has the states"):
        net.step(x[0], rnnsim.State(({"h": state.layers[0]["h"]}, state.layers[1])))
