"""The esn cell, reservoir initializers, spectral radii, the ridge readout, ensembles, CLI."""
import json
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim.builtins import reservoir as inits
from rnnsim.cli import cli
from rnnsim.reservoir import (CSR, echo_state_check, ensemble, layer_params, mackey_glass,
                              memory_capacity, nrmse, recurrent_matrix, ridge_regression,
                              run_ensemble, spectral_radius)

TOL = {"float32": 2e-5, "float64": 1e-12}


def esn_config(units=12, input_size=2, dtype="float64", head=True, **layer):
    layer = {"cell": "esn", "units": units,
             "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.3,
                                    "spectral_radius": 0.9},
                      "input": "input_uniform", "bias": {"name": "uniform", "low": -0.1,
                                                         "high": 0.1}}, **layer}
    net = {"input_size": input_size, "dtype": dtype, "seed": 3, "layers": [layer]}
    if head:
        net["head"] = {"name": "ridge", "units": 1}
    return {"network": net}


def reference(W, Win, b, lr, scale, u, f=np.tanh):
    """x[t] = (1-lr) x[t-1] + lr f(W x[t-1] + Win (scale*u[t]) + b), x[-1] = 0; u (T, B, k)."""
    x = np.zeros((u.shape[1], W.shape[0]))
    out = []
    for t in range(u.shape[0]):
        x = (1 - lr) * x + lr * f(x @ W.T + (scale * u[t]) @ Win.T + b)
        out.append(x)
    return np.stack(out)


def dense_params(net):
    """W (dense), Win, b of layer 0 in float64."""
    p = layer_params(net, 0)
    W = recurrent_matrix(net)
    W = W.to_dense() if isinstance(W, CSR) else W
    return W.astype(np.float64), p["Win"].astype(np.float64), p["b"].astype(np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("T,B", [(1, 1), (7, 1), (9, 3)])
def test_dense_and_csr_match_numpy_reference(dtype, T, B):
    lr = np.linspace(0.2, 1.0, 12).tolist()
    outs = []
    for sparse in (False, True):
        net = rnnsim.Network.from_config(esn_config(dtype=dtype, sparse=sparse, leak_rate=lr,
                                                    input_scaling=[0.5, 2.0]))
        u = np.random.default_rng(T).standard_normal((T, B, 2))
        W, Win, b = dense_params(net)
        expected = reference(W, Win, b, np.array(lr), np.array([0.5, 2.0]), u)
        out = net.run(u.astype(dtype)).output
        assert out.dtype == np.dtype(dtype)
        np.testing.assert_allclose(out, expected, rtol=TOL[dtype], atol=TOL[dtype])
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=TOL[dtype], atol=TOL[dtype])


def test_batch_rows_are_independent_sequences():
    net = rnnsim.Network.from_config(esn_config(sparse=True, leak_rate=0.4))
    u = np.random.default_rng(0).standard_normal((20, 4, 2))
    together = net.run(u).output
    for b in range(4):
        np.testing.assert_allclose(together[:, b], net.run(u[:, b]).output, rtol=0, atol=1e-13)


def test_any_activation_plugin_and_sparse_storage():
    net = rnnsim.Network.from_config(esn_config(sparse=True, activation="relu", units=30))
    assert {"layers.0.W.data", "layers.0.W.indices", "layers.0.W.indptr"} <= set(net.params)
    assert "layers.0.W" not in net.params
    assert net.params["layers.0.W.indices"].dtype == np.int32
    W, Win, b = dense_params(net)
    u = np.random.default_rng(1).standard_normal((6, 1, 2))
    np.testing.assert_allclose(net.run(u).output,
                               reference(W, Win, b, 1.0, 1.0, u, lambda z: np.maximum(z, 0)),
                               atol=1e-12)


def test_noise_is_seeded():
    u = np.ones((10, 2))
    runs = [rnnsim.Network.from_config(esn_config(noise=0.1, noise_seed=s)).run(u).output
            for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_save_load_round_trip_is_exact(tmp_path):
    net = rnnsim.Network.from_config(esn_config(sparse=True))
    u = np.random.default_rng(0).standard_normal((50, 2))
    net.fit(u, np.sin(np.arange(50.0)), washout=5)
    loaded = rnnsim.load(net.save(tmp_path / "m"))
    assert loaded.params.keys() == net.params.keys()
    for name, value in net.params.items():
        assert loaded.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.params[name], value)
    np.testing.assert_array_equal(loaded.run(u).y, net.run(u).y)


def test_sparse_reservoir_never_made_dense():
    config = esn_config(units=4000, input_size=1, dtype="float32", head=False, sparse=True)
    config["network"]["layers"][0]["init"]["recurrent"]["connectivity"] = 0.01
    rnnsim.Network.from_config(config).run(np.ones((3, 1), np.float32))  # compile outside
    tracemalloc.start()
    try:
        net = rnnsim.Network.from_config(config)
        net.run(np.ones((3, 1), np.float32))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4000 * 4000 * 4 / 4  # a dense float32 W alone would be 64 MB
    assert net.params["layers.0.W.data"].size == 4000 * 40


@pytest.mark.parametrize("name,kwargs", [
    ("sparse_random", {"connectivity": 0.1, "distribution": "normal"}),
    ("sparse_random", {"connectivity": 0.05, "distribution": "uniform"}),
    ("sparse_random", {"connectivity": 0.2, "distribution": "bernoulli", "scale": 0.5}),
    ("cycle", {"weight": 0.7}), ("cycle_jumps", {"jump": 4}), ("delay_line", {}),
])
def test_recurrent_initializers_are_deterministic(name, kwargs):
    fn = inits.INITIALIZERS[name][0]
    a, b = (fn((40, 40), np.random.default_rng(5), np.float64, **kwargs) for _ in range(2))
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    dense = a.to_dense()
    if name == "sparse_random":
        assert (np.count_nonzero(dense, axis=1) == round(kwargs["connectivity"] * 40)).all()
        if kwargs["distribution"] == "bernoulli":
            assert set(np.abs(a.data)) == {0.5}
    if name == "cycle":
        np.testing.assert_array_equal(dense, 0.7 * np.roll(np.eye(40), 1, axis=0))
    if name == "delay_line":
        np.testing.assert_array_equal(dense, np.eye(40, k=-1))
    if name == "cycle_jumps":
        jumps = dense - 0.9 * np.roll(np.eye(40), 1, axis=0)
        np.testing.assert_array_equal(jumps, jumps.T)
        assert np.count_nonzero(jumps) == 20


def test_input_initializers_connectivity():
    for fn in (inits.input_bernoulli, inits.input_uniform):
        w = fn((2000, 3), np.random.default_rng(0), np.float32, connectivity=0.25, scale=0.5)
        assert w.dtype == np.float32 and abs(np.mean(w != 0) - 0.25) < 0.02
        assert np.abs(w).max() <= 0.5
        np.testing.assert_array_equal(w, fn((2000, 3), np.random.default_rng(0), np.float32,
                                            connectivity=0.25, scale=0.5))


@pytest.mark.parametrize("n", [30, 400])
def test_spectral_radius_sparse_eigs_matches_dense(n):
    w = inits.sparse_random((n, n), np.random.default_rng(n), np.float64, connectivity=0.05)
    dense = w.to_dense()
    expected = np.max(np.abs(np.linalg.eigvals(dense)))
    assert spectral_radius(w) == pytest.approx(expected, rel=1e-7)
    assert spectral_radius(dense) == pytest.approx(expected, rel=1e-7)
    lr = np.random.default_rng(0).uniform(0.1, 1.0, n)
    leaky = np.max(np.abs(np.linalg.eigvals(lr[:, None] * dense + np.diag(1 - lr))))
    assert spectral_radius(w, lr) == pytest.approx(leaky, rel=1e-6)


def test_spectral_radius_scaling_in_a_network():
    config = esn_config(units=300, sparse=True)
    net = rnnsim.Network.from_config(config)
    w = recurrent_matrix(net)
    assert np.max(np.abs(np.linalg.eigvals(w.to_dense()))) == pytest.approx(0.9, rel=1e-7)


def test_ridge_matches_lstsq_with_unregularised_bias():
    rng = np.random.default_rng(0)
    S, Y, ridge = rng.standard_normal((300, 20)) + 0.5, rng.standard_normal((300, 2)), 0.3
    w, b = ridge_regression(S, Y, ridge, chunk=64)
    A = np.block([[S, np.ones((300, 1))], [np.sqrt(ridge) * np.eye(20), np.zeros((20, 1))]])
    sol = np.linalg.lstsq(A, np.vstack([Y, np.zeros((20, 2))]), rcond=None)[0]
    np.testing.assert_allclose(w, sol[:20], atol=1e-10)
    np.testing.assert_allclose(b, sol[20], atol=1e-10)


def test_fit_then_run_forecasts_mackey_glass():
    series = mackey_glass(800)
    assert series.shape == (800, 1) and 0.2 < series.min() < series.max() < 1.5
    np.testing.assert_array_equal(series, mackey_glass(800))
    x = (series - series.mean()) / series.std()
    net = rnnsim.Network.from_config(esn_config(units=100, input_size=1, leak_rate=0.3))
    net.fit(x[:-1], x[1:, 0], washout=50)
    assert nrmse(x[51:], net.run(x[:-1]).y[50:]) < 0.05


def test_ensemble_matches_members_run_alone():
    for sparse in (False, True):
        nets = ensemble(esn_config(sparse=sparse),
                        [{"seed": 1, "leak_rate": 0.3}, {"seed": 2, "leak_rate": 0.9},
                         {"seed": 3, "input_scaling": 0.5}])
        u = np.random.default_rng(0).standard_normal((30, 2))
        result = run_ensemble(nets, u)
        assert result.states.shape == (30, 3, 12) and result.y.shape == (30, 3, 1)
        for m, net in enumerate(nets):
            np.testing.assert_allclose(result.states[:, m], net.run(u).output, atol=1e-13)


def test_analysis_helpers():
    line = {"network": {"input_size": 1, "dtype": "float64", "layers": [
        {"cell": "esn", "units": 20, "activation": "identity", "bias": False,
         "init": {"recurrent": "delay_line", "input": "zeros"}}]}}
    net = rnnsim.Network.from_config(line)
    net.params["layers.0.Win"][0, 0] = 1.0  # unit i holds u[t-i]: delays 1..19 are recalled
    assert memory_capacity(net, max_delay=30) == pytest.approx(19, abs=0.1)
    assert echo_state_check(net, np.zeros((40, 1)))["holds"]
    chaotic = rnnsim.Network.from_config(esn_config(units=50, input_size=1))
    chaotic.params["layers.0.W"] *= 20
    assert not echo_state_check(chaotic, np.zeros((100, 1)))["holds"]


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_cli_fit_run_analyze(tmp_path):
    config = tmp_path / "esn.yaml"
    import yaml
    config.write_text(yaml.safe_dump(esn_config(units=30, input_size=1, leak_rate=0.5)))
    x = (mackey_glass(400) - 0.9) / 0.2
    np.save(tmp_path / "u.npy", x[:-1])
    np.save(tmp_path / "y.npy", x[1:])
    out = invoke("fit", config, "--input", tmp_path / "u.npy", "--target", tmp_path / "y.npy",
                 "--washout", 20, "-o", tmp_path / "model", "--json")
    assert json.loads(out)["train_nrmse"] < 0.1
    out = invoke("run", tmp_path / "model", "--input", tmp_path / "u.npy", "--output",
                 tmp_path / "pred.npz")
    with np.load(tmp_path / "pred.npz") as pred:
        assert nrmse(x[21:], pred["y"][20:]) < 0.1
    report = json.loads(invoke("analyze", config, "--input", tmp_path / "u.npy", "--target",
                               tmp_path / "y.npy", "--washout", 20, "--json"))
    assert report["layers"][0]["spectral_radius"] == pytest.approx(0.9)
    assert report["echo_state"]["holds"] and report["nrmse"] < 0.1
    assert "memory capacity" in invoke("analyze", config)


def test_cli_mackey_glass_task():
    out = invoke("fit", "configs/mackey_glass.yaml", "--task", "mackey-glass", "-T", 600,
                 "--washout", 50)
    assert "test NRMSE" in out


def test_cli_errors(tmp_path):
    invoke("fit", "configs/mackey_glass.yaml", code=2)
    invoke("fit", "configs/quickstart.yaml", "--task", "mackey-glass", code=2)
    np.save(tmp_path / "u.npy", np.zeros((10, 1)))
    np.save(tmp_path / "y.npy", np.zeros((9, 1)))
    out = invoke("fit", "configs/mackey_glass.yaml", "--input", tmp_path / "u.npy",
                 "--target", tmp_path / "y.npy", code=1)
    assert "ShapeError" in out and "(10, 1)" in out


def test_errors_name_key_and_fix():
    with pytest.raises(rnnsim.ConfigError, match=r"layers\[0\].leak_rate.*\(0, 1\]"):
        rnnsim.Network.from_config(esn_config(leak_rate=1.5))
    with pytest.raises(rnnsim.ConfigError, match=r"leak_rate: give one value or one per unit"):
        rnnsim.Network.from_config(esn_config(leak_rate=[0.5, 0.5]))
    with pytest.raises(rnnsim.ConfigError, match=r"input_scaling.*per input feature \(2\)"):
        rnnsim.Network.from_config(esn_config(input_scaling=[1.0, 2.0, 3.0]))
    with pytest.raises(rnnsim.ConfigError, match=r"leak_rate: not an option of cell 'elman'"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [
            {"units": 3, "leak_rate": 0.5}]}})
    bad = esn_config()
    bad["network"]["layers"][0]["init"]["recurrent"]["connectivity"] = 0.0
    with pytest.raises(rnnsim.ConfigError, match="connectivity must lie in"):
        rnnsim.Network.from_config(bad)
    net = rnnsim.Network.from_config(esn_config(head=False))
    with pytest.raises(rnnsim.ConfigError, match="head: fit trains a ridge readout"):
        net.fit(np.zeros((5, 2)), np.zeros(5))
    net = rnnsim.Network.from_config(esn_config())
    with pytest.raises(rnnsim.ShapeError, match=r"target y has shape \(4,\)"):
        net.fit(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(rnnsim.InputError, match="washout = 5 leaves no step"):
        net.fit(np.zeros((5, 2)), np.zeros(5), washout=5)
    params = dict(net.params)
    params["layers.0.W.data"] = params.pop("layers.0.W")
    with pytest.raises(rnnsim.ShapeError, match="unexpected parameter 'layers.0.W.data'"):
        rnnsim.Network(net.config, params)
    with pytest.raises(rnnsim.ConfigError, match="ridge head is linear"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{"units": 2}],
                                                "head": {"name": "ridge",
                                                         "activation": "tanh"}}})
    with pytest.raises(rnnsim.ConfigError, match="run_ensemble: member 1 differs"):
        run_ensemble([rnnsim.Network.from_config(esn_config()),
                      rnnsim.Network.from_config(esn_config(units=5))], np.zeros((3, 2)))
