"""reservoirpy 0.4 models with random weights, leak rates and biases, against reservoirpy's own
run in float64: reservoirs alone and stacked, Ridge readouts trained or not, output feedback;
and `rnnsim import reservoirpy FILE.rpy`."""
import numpy as np
import pytest
from click.testing import CliRunner

reservoirpy = pytest.importorskip("reservoirpy")
from reservoirpy import ESN  # noqa: E402
from reservoirpy.nodes import NVAR, Reservoir, Ridge  # noqa: E402

import rnnsim  # noqa: E402
from rnnsim import ConfigError, InputError  # noqa: E402
from rnnsim.cli import cli  # noqa: E402

K, M, STEPS = 3, 2, 300


def data(seed=0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((STEPS, K))
    y = np.stack([np.roll(u[:, 0], 2), np.tanh(u[:, 1] * u[:, 2])], axis=1)
    return u, y


def reservoir(units, seed, **options):
    rng = np.random.default_rng(seed)
    options = {"lr": rng.uniform(0.1, 1.0, units), "sr": 0.9, "input_scaling": 0.6,
               "bias": rng.standard_normal(units) * 0.3, "seed": seed, **options}
    return Reservoir(units, **options)


def agree(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("options", [
    {}, {"lr": 0.3, "bias": 0.2}, {"activation": "sigmoid"}, {"activation": "relu", "sr": 0.5},
    {"input_scaling": np.array([0.5, 1.0, 2.0])}, {"rc_connectivity": 1.0},
], ids=["vector-lr", "scalar-lr-bias", "sigmoid", "relu", "per-feature-scaling", "dense-W"])
def test_reservoir_states_agree(options):
    u, _ = data()
    node = reservoir(40, 1, **options)
    expected = node.run(u)
    net = rnnsim.from_reservoirpy(node)
    agree(net.run(u).output, expected)
    assert net.layers[0].options.input_scaling is None  # folded into Win by reservoirpy


def test_sparse_W_stays_sparse():
    node = reservoir(50, 2)
    node.initialize(np.zeros(K))
    net = rnnsim.from_reservoirpy(node)
    assert net.layers[0].options.sparse and "layers.0.W.data" in net.params
    assert net.params["layers.0.W.data"].size == node.W.nnz


def test_trained_ridge_readout_agrees():
    u, y = data()
    model = reservoir(60, 3) >> Ridge(ridge=1e-4)
    model.fit(u[:200], y[:200], warmup=10)
    model.reset()
    expected = model.run(u)
    result = rnnsim.from_reservoirpy(model).run(u)
    agree(result.y, expected)


def test_stacked_reservoirs_agree():
    u, y = data(1)
    first, second, readout = reservoir(30, 4), reservoir(20, 5), Ridge(ridge=1e-3)
    model = first >> second >> readout
    model.fit(u, y)
    model.reset()
    expected = model.run(u)
    net = rnnsim.from_reservoirpy(model)
    assert [layer.units for layer in net.layers] == [30, 20]
    agree(net.run(u).y, expected)


@pytest.mark.parametrize("build", ["esn", "operator"])
def test_output_feedback_agrees(build):
    u, y = data(2)
    node, readout = reservoir(40, 6), Ridge(ridge=1e-3)
    model = (ESN(reservoir=node, readout=readout, feedback=True) if build == "esn"
             else (node >> readout) & (node << readout))
    model.fit(u, y)
    model.reset()
    expected = model.run(u)
    net = rnnsim.from_reservoirpy(model)
    assert net.layers[0].options.feedback is not None and "layers.0.Wfb" in net.params
    agree(net.run(u).y, expected)


def test_untrained_ridge_becomes_a_zero_head_for_fit():
    u, y = data(3)
    node = reservoir(30, 7)
    node.initialize(np.zeros(K))
    net = rnnsim.from_reservoirpy(node >> Ridge(ridge=1e-6, output_dim=M))
    assert net.config.network.head.name == "ridge"
    np.testing.assert_array_equal(net.params["head.W"], np.zeros((M, 30)))
    with pytest.raises(ConfigError, match="output_dim"):
        rnnsim.from_reservoirpy(node >> Ridge())


@pytest.mark.parametrize("make,match", [
    (lambda: NVAR(2, 2) >> Ridge(), "NVAR.*no rnnsim equivalent"),
    (lambda: Reservoir(10), "not initialized"),
    (lambda: ESN(units=10, input_to_readout=True), "Input.*input_to_readout"),
    (lambda: [Reservoir(10), Reservoir(5)] >> Ridge(), "not a chain"),
])
def test_what_rnnsim_cannot_run_is_refused_by_name(make, match):
    with pytest.raises(ConfigError, match=match):
        rnnsim.from_reservoirpy(make())


def test_cli_import_needs_explicit_trust(tmp_path):
    u, y = data(4)
    model = reservoir(30, 8) >> Ridge(ridge=1e-3)
    model.fit(u, y)
    model.reset()
    expected = model.run(u)
    path = reservoirpy.save(model, tmp_path / "esn.rpy")
    np.save(tmp_path / "u.npy", u)
    runner = CliRunner()
    refused = runner.invoke(cli, ["import", "reservoirpy", path, "-o", str(tmp_path / "m")])
    assert refused.exit_code == 1 and "pickle" in refused.output
    assert "--allow-pickle" in refused.output and not (tmp_path / "m").exists()
    by_type = runner.invoke(cli, ["run", path, "--input", str(tmp_path / "u.npy")])
    assert by_type.exit_code == 1 and "--allow-pickle" in by_type.output
    out = runner.invoke(cli, ["import", "reservoirpy", path, "--allow-pickle", "-o",
                              str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    ran = runner.invoke(cli, ["run", str(tmp_path / "m"), "--input", str(tmp_path / "u.npy"),
                              "--output", str(tmp_path / "out.npz")])
    assert ran.exit_code == 0, ran.output
    with np.load(tmp_path / "out.npz") as written:
        agree(written["y"], expected)
    with pytest.raises(InputError, match="pickle"):
        rnnsim.import_file(path)
