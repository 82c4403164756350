"""The esn cell, reservoir initializers, spectral radii, the ridge readout, ensembles, CLI."""
import json
import tracemalloc

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim.builtins import reservoir as inits
from rnnsim.cli import cli
from rnnsim.ensembles import ensemble, run_ensemble
from rnnsim.reservoir import (echo_state_check, mackey_glass, memory_capacity,
                              nrmse, recurrent_matrix, ridge_regression)
from rnnsim.sparse import CSR, arnoldi_radius, scale_spectral_radius, spectral_radius

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
    p = net.layer_params(0)
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
    """The reported test NRMSE against an independent computation: the NumPy recurrence, a
    ridge readout solved with its bias column unpenalised, the NRMSE of the last 20%."""
    T, washout, ridge = 600, 50, 1e-6  # fit's default ridge
    net = rnnsim.Network.from_config("configs/mackey_glass.yaml")
    W, Win, b = dense_params(net)
    series = mackey_glass(T + 1)
    series = (series - series.mean()) / series.std()
    u, y = series[:-1], series[1:, 0]
    states = reference(W, Win, b, 0.3, 1.0, u[:, None, :])[:, 0]  # the config's leak rate
    split = int(0.8 * T)
    design = np.hstack([states, np.ones((T, 1))])
    train = design[washout:split]
    penalty = np.diag(np.r_[np.full(W.shape[0], ridge), 0.0])
    readout = np.linalg.solve(train.T @ train + penalty, train.T @ y[washout:split])
    error = y[split:] - design[split:] @ readout
    expected = np.sqrt(np.mean(error**2)) / np.std(y[split:])

    args = ("fit", "configs/mackey_glass.yaml", "--task", "mackey-glass", "-T", T,
            "--washout", washout)
    assert json.loads(invoke(*args, "--json"))["test_nrmse"] == pytest.approx(expected,
                                                                             rel=1e-5)
    (line,) = [line for line in invoke(*args).splitlines() if line.startswith("test NRMSE")]
    assert line.split()[3:] == ["(steps", "480..600)"]
    assert float(line.split()[2]) == pytest.approx(expected, rel=5e-4)  # 4 digits printed


def test_cli_errors(tmp_path):
    invoke("fit", "configs/mackey_glass.yaml", code=2)
    out = invoke("fit", "configs/quickstart.yaml", "--task", "mackey-glass", code=1)
    assert "network.input_size: the Mackey-Glass task feeds one feature" in out
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


# ---- output feedback, closed-loop generation, kernel schedules, spectral radius fallback ----

def feedback_config(sparse=True, dtype="float64", units=16, outputs=2, **layer):
    config = esn_config(units=units, input_size=2, dtype=dtype, sparse=sparse, leak_rate=0.6,
                        input_scaling=[0.5, 1.5], feedback={"scaling": [0.3, 0.7][:outputs]},
                        **layer)
    config["network"]["layers"][0]["init"]["feedback"] = {"name": "input_uniform", "scale": 0.8}
    config["network"]["head"]["units"] = outputs
    return config


def feedback_net(**kwargs):
    """A feedback esn whose readout is set to random weights, so that y_{t-1} matters."""
    net = rnnsim.Network.from_config(feedback_config(**kwargs))
    rng = np.random.default_rng(11)
    net.params["head.W"] = rng.normal(0, 0.4, net.params["head.W"].shape).astype(net.dtype)
    net.params["head.b"] = rng.normal(0, 0.2, net.params["head.b"].shape).astype(net.dtype)
    return net


def feedback_parts(net):
    """W (dense), Win and Wfb with their scalings folded in (Wfb = 0 without feedback), b,
    Wout, bout in float64."""
    W, Win, b = dense_params(net)
    feedback = net.layers[0].options.feedback
    Wfb = (np.zeros((W.shape[0], net.head.units)) if feedback is None
           else net.layer_params(0)["Wfb"].astype(np.float64) * feedback.scaling)
    return (W, Win * [0.5, 1.5], b, Wfb, net.params["head.W"].astype(np.float64),
            net.params["head.b"].astype(np.float64))


def feedback_reference(parts, lr, u, teacher=None, closed=False, x0=None, y0=None):
    """x[t] = (1-lr) x[t-1] + lr tanh(W x[t-1] + Win u[t] + Wfb y[t-1] + b) with y[t] the
    teacher's y[t] or Wout x[t] + bout, y[-1] = y0 (default 0); closed: u[t] = y[t-1].
    u (T, B, k). Returns the states (T, B, N) and the readouts Wout x[t] + bout."""
    W, Win, b, Wfb, Wout, bout = parts
    x = np.zeros((u.shape[1], W.shape[0])) if x0 is None else x0
    y = np.zeros((u.shape[1], Wout.shape[0])) if y0 is None else y0
    states = []
    for t in range(u.shape[0]):
        x = (1 - lr) * x + lr * np.tanh(x @ W.T + (y if closed else u[t]) @ Win.T + y @ Wfb.T + b)
        y = teacher[t] if teacher is not None else x @ Wout.T + bout
        states.append(x)
    states = np.stack(states)
    return states, states @ Wout.T + bout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [False, True])
def test_feedback_matches_numpy_reference(dtype, sparse):
    net = feedback_net(sparse=sparse, dtype=dtype)
    assert net.layers[0].cell_size == 2 and net.params["layers.0.Wfb"].shape == (16, 2)
    parts = feedback_parts(net)
    rng = np.random.default_rng(2)
    u = rng.uniform(-1, 1, (25, 3, 2))
    teacher = rng.uniform(-1, 1, (25, 3, 2))
    tol = 10 * TOL[dtype]
    result = net.run(u.astype(dtype))  # the head's own outputs fed back, inside the kernel
    states, ys = feedback_reference(parts, 0.6, u)
    np.testing.assert_allclose(result.output, states, rtol=tol, atol=tol)
    np.testing.assert_allclose(result.y, ys, rtol=tol, atol=tol)
    np.testing.assert_allclose(result.final_c[0][0], ys[-1], rtol=tol, atol=tol)
    forced = net.run(u.astype(dtype), teacher=teacher.astype(dtype))
    states, ys = feedback_reference(parts, 0.6, u, teacher=teacher)
    np.testing.assert_allclose(forced.output, states, rtol=tol, atol=tol)
    np.testing.assert_allclose(forced.y, ys, rtol=tol, atol=tol)
    np.testing.assert_array_equal(forced.final_c[0][0], teacher[-1].astype(dtype))
    lengths = np.array([25, 9, 0])
    short = net.run(u.astype(dtype), lengths=lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(short.output[:n, b], result.output[:n, b], rtol=tol, atol=tol)
        assert not short.output[n:, b].any()
    np.testing.assert_array_equal(short.final_c[0][0, 2], 0)


def test_feedback_reference_holds_through_a_saved_model_and_fit(tmp_path):
    net = feedback_net()
    u = np.random.default_rng(3).uniform(-1, 1, (60, 2))
    y = np.stack([np.sin(np.arange(60) / 4), np.cos(np.arange(60) / 7)], 1)
    net.fit(u, y, washout=10, ridge=1e-4)
    states, _ = feedback_reference(feedback_parts(net), 0.6, u[:, None], teacher=y[:, None])
    w, b = ridge_regression(states[10:, 0], y[10:], 1e-4)  # teacher-forced states
    np.testing.assert_allclose(net.params["head.W"], w.T, atol=1e-9)
    np.testing.assert_allclose(net.params["head.b"], b, atol=1e-9)
    loaded = rnnsim.load(net.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.run(u).y, net.run(u).y)
    _, ys = feedback_reference(feedback_parts(loaded), 0.6, u[:, None])
    np.testing.assert_allclose(loaded.run(u).y, ys[:, 0], atol=1e-12)


def test_feedback_continues_from_a_state_and_steps_like_a_run():
    net = feedback_net()
    u = np.random.default_rng(4).uniform(-1, 1, (30, 2, 2))
    whole = net.run(u)
    first = net.run(u[:12])
    rest = net.run(u[12:], h0=first.state)
    np.testing.assert_array_equal(np.concatenate([first.output, rest.output]), whole.output)
    np.testing.assert_array_equal(rest.final_c[0], whole.final_c[0])
    state = net.initial_state(2)
    for t in range(30):
        y_t, state = net.step(u[t], state)
        np.testing.assert_array_equal(y_t, whole.y[t])
    np.testing.assert_array_equal(state.c[0], whole.final_c[0])


@pytest.mark.parametrize("feedback", [False, True])
def test_generate_closed_loop_matches_reference(feedback):
    config = feedback_config(outputs=2)
    if not feedback:
        del config["network"]["layers"][0]["feedback"]
    net = rnnsim.Network.from_config(config)
    net.params["head.W"] *= 0.2
    parts = feedback_parts(net)
    u = np.random.default_rng(5).uniform(-1, 1, (20, 3, 2))
    warm = net.run(u)
    generated = net.generate(15, warm.state)
    x0 = warm.output[-1]
    y0 = warm.final_c[0][0] if feedback else warm.y[-1]
    states, ys = feedback_reference(parts, 0.6, np.zeros((15, 3, 2)), closed=True, x0=x0, y0=y0)
    np.testing.assert_allclose(generated.output, states, atol=1e-12)
    np.testing.assert_allclose(generated.y, ys, atol=1e-12)
    again = net.generate(5, generated.state)  # continues where it stopped
    longer = net.generate(20, warm.state)
    np.testing.assert_allclose(again.y, longer.y[15:], atol=1e-12)
    one = net.generate(4, net.run(u[:, 0]).state, y0=np.array([0.1, -0.2]))
    _, ys = feedback_reference(parts, 0.6, np.zeros((4, 1, 2)), closed=True,
                               x0=net.run(u[:, 0]).output[-1][None], y0=np.array([[0.1, -0.2]]))
    assert one.y.shape == (4, 2)
    np.testing.assert_allclose(one.y, ys[:, 0], atol=1e-12)


def test_feedback_ensemble_matches_members_run_alone():
    nets = ensemble(feedback_config(), [{"seed": 1}, {"seed": 2, "leak_rate": 0.9}])
    for net in nets:
        net.params["head.W"] = np.full(net.params["head.W"].shape, 0.05)
    u = np.random.default_rng(6).uniform(-1, 1, (30, 2))
    result = run_ensemble(nets, u)
    for m, net in enumerate(nets):
        alone = net.run(u)
        np.testing.assert_allclose(result.states[:, m], alone.output, atol=1e-13)
        np.testing.assert_allclose(result.y[:, m], alone.y, atol=1e-13)


def test_feedback_errors_name_key_and_fix():
    config = feedback_config()
    config["network"]["layers"].append({"cell": "esn", "units": 4})
    with pytest.raises(rnnsim.ConfigError, match=r"layers\[0\].feedback: only the top layer"):
        rnnsim.Network.from_config(config)
    config = feedback_config()
    config["network"]["head"] = {"name": "linear", "units": 2}
    with pytest.raises(rnnsim.ConfigError, match=r"feedback: output feedback needs a ridge"):
        rnnsim.Network.from_config(config)
    config = feedback_config()
    config["network"]["layers"][0]["feedback"]["scaling"] = [1.0, 2.0, 3.0]
    with pytest.raises(rnnsim.ConfigError, match=r"feedback.scaling: .*head.units = 2"):
        rnnsim.Network.from_config(config)
    config = feedback_config()
    config["network"]["device"] = "cuda"
    with pytest.raises(rnnsim.ConfigError, match=r"feedback: output feedback runs on the CPU"):
        rnnsim.Network.from_config(config)
    plain = rnnsim.Network.from_config(esn_config())
    with pytest.raises(rnnsim.ConfigError, match="teacher forcing feeds targets back"):
        plain.run(np.zeros((5, 2)), teacher=np.zeros(5))
    net = feedback_net()
    with pytest.raises(rnnsim.ShapeError, match=r"teacher has shape \(5, 1\); expected \(5, 2\)"):
        net.run(np.zeros((5, 2)), teacher=np.zeros((5, 1)))
    with pytest.raises(rnnsim.ShapeError, match=r"target y has shape \(4, 2\)"):
        net.fit(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(rnnsim.ConfigError, match="head's 1 outputs become the next input"):
        rnnsim.Network.from_config(esn_config()).generate(3)
    with pytest.raises(rnnsim.ShapeError, match=r"y0 has shape \(3,\); expected \(2,\)"):
        net.generate(3, y0=np.zeros(3))
    with pytest.raises(rnnsim.InputError, match="steps must be a positive integer"):
        net.generate(0)
    assert net.generate(3).y.shape == (3, 2)  # from zeros


def test_cli_feedback_fit_run_generate(tmp_path):
    config = tmp_path / "fb.yaml"
    import yaml
    data = esn_config(units=40, input_size=1, leak_rate=0.5, feedback={"scaling": 0.2})
    config.write_text(yaml.safe_dump(data))
    x = (mackey_glass(400) - 0.9) / 0.2
    np.save(tmp_path / "u.npy", x[:-1])
    np.save(tmp_path / "y.npy", x[1:])
    scores = json.loads(invoke("fit", config, "--input", tmp_path / "u.npy", "--target",
                               tmp_path / "y.npy", "--washout", 20, "-o", tmp_path / "m",
                               "--json"))
    assert scores["feedback"] and scores["train_nrmse"] < 0.2
    out = invoke("run", tmp_path / "m", "--input", tmp_path / "u.npy", "--teacher",
                 tmp_path / "y.npy", "--generate", 30, "--output", tmp_path / "g.npz")
    assert "generated_y  (30, 1)" in out
    net = rnnsim.load(tmp_path / "m")
    forced = net.run(x[:-1], teacher=x[1:])
    with np.load(tmp_path / "g.npz") as saved:
        np.testing.assert_array_equal(saved["output"], forced.output)
        np.testing.assert_array_equal(saved["final_0_y"], forced.final_c[0])
        np.testing.assert_array_equal(saved["generated_y"], net.generate(30, forced.state).y)
    assert "ConfigError" in invoke("run", configs_path("mackey_glass.yaml"), "--teacher",
                                   tmp_path / "y.npy", code=1)
    assert "--teacher and --generate run in memory" in invoke(
        "run", tmp_path / "m", "--generate", 3, "--output", tmp_path / "o.npy", code=2)


def configs_path(name):
    return "configs/" + name


def test_cli_feedback_example_config():
    out = invoke("fit", configs_path("mackey_glass_feedback.yaml"), "--task", "mackey-glass",
                 "-T", 800, "--washout", 100, "--json")
    scores = json.loads(out)
    assert scores["feedback"] and scores["test_nrmse"] < 0.1


@pytest.mark.parametrize("sparse", [False, True])
def test_kernel_schedules_give_the_same_bits(monkeypatch, sparse):
    """Serial, batch-parallel and row-split steps (in timed chunks of steps), uint16 and
    uint32 columns: one result, and lengths handled across chunks."""
    from rnnsim.cells import esn as esn_cell

    net = feedback_net(sparse=sparse, units=40)
    u = np.random.default_rng(7).uniform(-1, 1, (20, 3, 2))
    runs = {}
    for name, work, uint16_units in [("serial", 1 << 60, 1 << 16), ("parallel", 0, 1 << 16),
                                     ("uint32", 0, 4)]:
        monkeypatch.setattr(esn_cell, "PARALLEL_WORK", work)
        monkeypatch.setattr(esn_cell, "SPLIT_WORK", work)
        monkeypatch.setattr(esn_cell, "ADAPT_STEPS", 3)  # split and whole chunks alternate
        monkeypatch.setattr(esn_cell, "RETIME", 2)
        monkeypatch.setattr(esn_cell, "UINT16_UNITS", uint16_units)
        short = net.run(u[:, :1], lengths=np.array([8]))
        runs[name] = (net.run(u).output, net.run(u[:, :1]).output,  # B = 3 and B = 1
                      short.output, short.final[0], short.final_c[0])
    for name in ("parallel", "uint32"):
        for got, expected in zip(runs[name], runs["serial"]):
            np.testing.assert_array_equal(got, expected)


def test_schedule_splits_rows_by_work():
    import numba

    from rnnsim.cells.esn import schedule

    if numba.get_num_threads() < 2:
        assert schedule(1, 10**9, np.ones(10))[0] == "serial"
        return
    threads = numba.get_num_threads()
    assert schedule(1, 100, np.ones(100))[0] == "serial"
    variant, bounds = schedule(1, 10**6, np.r_[np.full(50, 3), np.ones(150)])
    assert variant == "parallel" and len(bounds) == threads + 1
    assert bounds[0] == 0 and bounds[-1] == 200 and (np.diff(bounds) >= 0).all()
    if threads == 2:
        assert bounds[1] == 50  # equal work, not equal rows
    assert len(schedule(threads, 10**6, np.ones(100))[1]) == 2  # one chunk per row


def test_spectral_radius_without_scipy_uses_arnoldi(monkeypatch):
    import sys

    w = inits.sparse_random((400, 400), np.random.default_rng(1), np.float64, connectivity=0.05)
    expected = np.max(np.abs(np.linalg.eigvals(w.to_dense())))
    monkeypatch.setitem(sys.modules, "scipy.sparse.linalg", None)  # import fails
    assert spectral_radius(w) == pytest.approx(expected, rel=1e-8)
    lr = np.linspace(0.1, 1.0, 400)
    leaky = np.max(np.abs(np.linalg.eigvals(lr[:, None] * w.to_dense() + np.diag(1 - lr))))
    assert spectral_radius(w, lr) == pytest.approx(leaky, rel=1e-8)
    diagonal = np.resize([0.5, -3.0, 1.5, 0.1, 2.0], 300)  # a Krylov space that closes at 5
    assert arnoldi_radius(lambda x: diagonal * x, 300) == pytest.approx(3.0, rel=1e-12)


def test_one_rescaler_for_dense_and_sparse():
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(300, 300))
    scaled = scale_spectral_radius(dense, 0.5, "here")
    assert np.max(np.abs(np.linalg.eigvals(scaled))) == pytest.approx(0.5, rel=1e-10)
    sparse = scale_spectral_radius(CSR.from_dense(dense), 0.5, "here")
    np.testing.assert_allclose(sparse.to_dense(), scaled, rtol=1e-8)
    with pytest.raises(rnnsim.ConfigError, match=r"here.spectral_radius: only square"):
        scale_spectral_radius(dense[:, :5], 0.5, "here")
    with pytest.raises(rnnsim.ConfigError, match=r"here.spectral_radius: .*radius 0"):
        scale_spectral_radius(inits.delay_line((200, 200), rng, np.float64), 0.5, "here")


def test_feedback_agrees_with_reservoirpy():
    """reservoirpy 0.4 feeds the readout back as extra input columns (``ESN(feedback=True)``):
    fitted with the target y[t-1] fed back, y[-1] = 0, then run on its own predictions."""
    from reservoirpy import ESN
    from reservoirpy.nodes import Reservoir, Ridge

    net = rnnsim.Network.from_config(feedback_config(units=30))
    parts = feedback_parts(net)
    rng = np.random.default_rng(0)
    u = rng.uniform(-1, 1, (400, 2))
    y = np.stack([np.sin(np.cumsum(u[:, 0]) * 0.3), np.cos(np.cumsum(u[:, 1]) * 0.2)], 1)
    reservoir = Reservoir(W=recurrent_matrix(net).to_scipy().tocsr(),
                          Win=np.hstack([parts[1], parts[3]]), bias=parts[2], lr=0.6,
                          activation="tanh", input_dim=4)
    model = ESN(reservoir=reservoir, readout=Ridge(ridge=1e-6), feedback=True)
    model.fit(u[:300], y[:300], warmup=20)
    predicted = model.run(u[300:])
    net.fit(u[:300], y[:300], washout=20, ridge=1e-6)
    np.testing.assert_allclose(net.params["head.W"].T, model.readout.Wout, atol=1e-9)
    np.testing.assert_allclose(net.params["head.b"], model.readout.bias, atol=1e-9)
    state = net.run(u[:300], teacher=y[:300]).state  # where reservoirpy's fit leaves it
    np.testing.assert_allclose(net.run(u[300:], h0=state).y, predicted, atol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("B", [5, 16, 37])
def test_batched_sparse_kernel_gives_the_row_kernels_bits(dtype, B, monkeypatch):
    """Many rows of one sparse reservoir run in blocks (esn_batched); the per-row kernel,
    forced by an unreachable block fill, must give the same bits, lengths and states too."""
    from rnnsim.cells import esn as esn_cell

    net = rnnsim.Network.from_config({"network": {"input_size": 3, "dtype": dtype, "seed": 4,
                                                  "layers": [{"cell": "esn", "units": 90,
                                                              "sparse": True,
                                                              "leak_rate": 0.4}]}})
    rng = np.random.default_rng(B)
    x = rng.standard_normal((25, B, 3)).astype(dtype)
    lengths = rng.integers(0, 26, B)
    h0 = rng.standard_normal((1, B, 90)).astype(dtype)
    batched = net.run(x, h0, lengths=lengths)
    monkeypatch.setattr(esn_cell, "BATCHED_BLOCK_FILL", 1e9)
    rows = net.run(x, h0, lengths=lengths)
    np.testing.assert_array_equal(batched.output, rows.output)
    np.testing.assert_array_equal(batched.state.h[0], rows.state.h[0])
    for b in range(B):
        assert not batched.output[lengths[b]:, b].any()


class MeanHead(rnnsim.Head):
    """A plugin's head that fits itself: the mean target, whatever the states."""

    def forward(self, params, states):
        return self.linear(params, states)

    def fit(self, states, targets, ridge):
        return {"W": np.zeros((self.units, self.in_features)), "b": targets.mean(axis=0)}


def test_network_fit_calls_the_heads_own_fit():
    """Core never checks for the ridge head: any head with a fit method can be trained, and
    one without says how to get one."""
    from rnnsim import plugins

    class Plugin:
        @rnnsim.hookimpl
        def register_heads(self, register):
            register("mean_head", MeanHead)

    plugins.register_plugin(Plugin(), name="mean-head")
    try:
        cfg = {"network": {"input_size": 1, "dtype": "float64", "layers": [
            {"cell": "esn", "units": 5}], "head": {"name": "mean_head", "units": 1}}}
        net = rnnsim.Network.from_config(cfg)
        u = np.random.default_rng(0).standard_normal((30, 1))
        y = np.random.default_rng(1).standard_normal(30)
        net.fit(u, y, washout=10)
        np.testing.assert_allclose(net.params["head.b"], [y[10:].mean()])
        np.testing.assert_allclose(net.run(u).y[:, 0], y[10:].mean())
        cfg["network"]["head"] = {"name": "linear", "units": 1}
        with pytest.raises(rnnsim.ConfigError, match="fit trains a ridge readout"):
            rnnsim.Network.from_config(cfg).fit(u, y)
        cfg["network"]["layers"][0]["feedback"] = True
        cfg["network"]["head"] = {"name": "mean_head", "units": 1}
        with pytest.raises(rnnsim.ConfigError, match="output feedback needs a ridge head"):
            rnnsim.Network.from_config(cfg)
    finally:
        plugins.unregister_plugin("mean-head")


def test_ridge_gives_the_same_bits_whatever_the_blas_threads():
    """A Dask worker and a sweep's process pool run BLAS on different thread counts; the
    readout must not depend on it (it differed by ~5e-17 before the solve was pinned)."""
    from threadpoolctl import threadpool_limits

    from rnnsim.reservoir.readout import ridge_regression

    rng = np.random.default_rng(0)
    states, targets = np.tanh(rng.standard_normal((3000, 400))), rng.standard_normal((3000, 2))
    fits = []
    for threads in (1, 2, 4):
        with threadpool_limits(limits=threads, user_api="blas"):
            fits.append(ridge_regression(states, targets, 1e-6))
    for w, b in fits[1:]:
        np.testing.assert_array_equal(w, fits[0][0])
        np.testing.assert_array_equal(b, fits[0][1])


def linear_reservoir(n, seed):
    return rnnsim.Network.from_config({"network": {"input_size": 1, "dtype": "float64", "seed": seed,
        "layers": [{"cell": "esn", "units": n, "activation": "identity", "leak_rate": 1.0,
                    "init": {"recurrent": {"name": "normal", "spectral_radius": 0.8},
                             "bias": "zeros"}}]}})


def test_memory_curve_of_a_linear_reservoir_matches_the_gramian():
    """x_t = W x_{t-1} + w u_t with i.i.d. u: the best linear estimate of u_{t-d} explains
    r2(d) = (W^d w)^T G^-1 (W^d w) of its variance, G the controllability Gramian
    (scipy's discrete Lyapunov solver), and the r2 of all delays d >= 0 sum to N."""
    from scipy.linalg import solve_discrete_lyapunov

    from rnnsim.reservoir import memory_capacity, memory_curve

    n = 8
    net = linear_reservoir(n, 5)
    w, win = net.params["layers.0.W"], net.params["layers.0.Win"][:, 0]
    gram = solve_discrete_lyapunov(w, np.outer(win, win))
    columns = [np.linalg.matrix_power(w, d) @ win for d in range(1, 31)]
    expected = np.array([c @ np.linalg.solve(gram, c) for c in columns])
    assert expected.sum() + win @ np.linalg.solve(gram, win) == pytest.approx(n, abs=1e-4)
    curve = memory_curve(net, max_delay=30, timesteps=40000, seed=1)
    assert curve["test_fraction"] == 0.5 and curve["test_steps"] == 20000
    np.testing.assert_allclose(curve["r2"], expected, atol=0.02)  # sampling error ~ 0.005
    assert curve["capacity"] == pytest.approx(expected.sum(), abs=0.05)
    # In-sample scoring overstates short runs; held out it does not.
    short = dict(max_delay=30, timesteps=400, seed=2)
    assert memory_capacity(net, test_fraction=0.0, **short) > expected.sum() + 0.1
    assert memory_capacity(net, **short) < memory_capacity(net, test_fraction=0.0, **short)
    with pytest.raises(rnnsim.InputError, match="washout of at least 30"):
        memory_curve(net, max_delay=30, washout=10)


def test_fit_and_score_runs_the_reservoir_once(monkeypatch):
    """One sequence without feedback: one run serves fit and prediction, with the scores of
    fitting on a run of the training steps and predicting from a second run."""
    from rnnsim.reservoir import fit_and_score, mackey_glass

    config = {"network": {"input_size": 1, "dtype": "float64", "seed": 3, "layers": [
        {"cell": "esn", "units": 40, "leak_rate": 0.4,
         "init": {"recurrent": {"name": "sparse_random", "spectral_radius": 0.9}}}],
        "head": {"name": "ridge", "units": 1}}}
    series = mackey_glass(601)
    u, y = series[:-1], series[1:]
    net = rnnsim.Network.from_config(config)
    runs = []
    real_run = type(net).run
    monkeypatch.setattr(type(net), "run", lambda self, *a, **k: runs.append(1) or
                        real_run(self, *a, **k))
    scores = fit_and_score(net, u, y, split=480, washout=50, ridge=1e-6)
    assert len(runs) == 1
    monkeypatch.undo()
    other = rnnsim.Network.from_config(config)
    other.fit(u[:480], y[:480], washout=50, ridge=1e-6)
    prediction = other.run(u).y
    np.testing.assert_allclose(net.params["head.W"], other.params["head.W"], rtol=1e-10)
    expected = np.sqrt(np.mean((prediction[480:] - y[480:]) ** 2)) / np.std(y[480:])
    assert scores["test_nrmse"] == pytest.approx(expected, rel=1e-9)
