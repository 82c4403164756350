"""What each cell owns: its gate blocks, its recurrent matrices, its dynamics map and its GPU
runner, reached through the cell, never through a table keyed by its name."""
import numpy as np
import pytest

import rnnsim
from rnnsim import dynamics, plot


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
