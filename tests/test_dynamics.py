"""Dynamics analysis: analytic Jacobians, Lyapunov spectra, fixed points, gradient norms, CLI."""
import json
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rnnsim
from rnnsim import dynamics, plugins
from rnnsim.cli import cli
from rnnsim.errors import InputError, ShapeError
from rnnsim.cells import maps
from rnnsim.sparse import CSR

DTYPES = ["float32", "float64"]

# Every cell and option the maps handle: (cell, layer options).
VARIANTS = {
    "elman": ("elman", {"activation": "softplus"}),
    "elman-clip": ("elman", {"clip": 0.6}),
    "gru": ("gru", {}),
    "gru-reset-before": ("gru", {"reset_after": False}),
    "gru-clip": ("gru", {"clip": 0.4}),
    "lstm": ("lstm", {}),
    "lstm-peepholes-proj": ("lstm", {"peepholes": True, "proj_size": 3}),
    "lstm-coupled-clip": ("lstm", {"input_forget": True, "clip": 0.7}),
    "esn": ("esn", {"leak_rate": [0.2, 0.5, 0.7, 1.0, 0.9], "input_scaling": [0.5, 2.0, 1.0]}),
    "esn-sparse": ("esn", {"leak_rate": 0.4, "sparse": True,
                           "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.5}}}),
    "ugrnn": ("ugrnn", {}),
    "ugrnn-clip-acts": ("ugrnn", {"clip": 0.5, "activation": "softsign",
                                  "gate_activation": {"name": "hard_sigmoid", "alpha": 0.3,
                                                      "beta": 0.4}}),
}


def network(cell, dtype="float64", units=5, input_size=3, layers=1, **options):
    layer = {"cell": cell, "units": units, **options}
    if "init" not in layer:
        # Non-zero biases and peepholes so that every term of the Jacobian is exercised.
        layer["init"] = {"bias": {"name": "uniform", "low": -0.5, "high": 0.5}}
    net = {"input_size": input_size, "dtype": dtype, "seed": 4, "layers": [layer] * layers}
    return rnnsim.Network.from_config({"network": net})


def elman(U, activation="identity", b=None, dtype="float64"):
    """One Elman layer with recurrent weights ``U`` (and bias ``b``) on 2 input features."""
    net = network("elman", dtype, units=len(U), input_size=2, activation=activation,
                  init={"bias": "zeros"})
    net.params["layers.0.U"] = np.asarray(U, dtype)
    if b is not None:
        net.params["layers.0.b"] = np.asarray(b, dtype)
    return net


def rotation(n, seed):
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]


def sequence(T=12, k=3, seed=0):
    return np.random.default_rng(seed).standard_normal((T, k))


def finite_difference_jacobian(fmap, s, d, e=1e-6):
    eye = np.eye(fmap.size)
    return np.stack([(fmap(s + e * eye[j], d) - fmap(s - e * eye[j], d)) / (2 * e)
                     for j in range(fmap.size)], axis=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_jacobian_matches_finite_differences(variant, dtype):
    cell, options = VARIANTS[variant]
    net = network(cell, dtype, **options)
    if cell == "lstm" and "peepholes" in options:
        net.params["layers.0.P"] = np.random.default_rng(1).uniform(-1, 1, (3, 5)).astype(dtype)
    x = sequence()
    fmap = dynamics.layer_map(net)
    states = dynamics.trajectory(net, x)
    drives = fmap.drive(x)
    for t in (0, 5, 11):
        s = states[t - 1] if t else np.zeros(fmap.size)
        np.testing.assert_allclose(fmap.jacobian(s, drives[t]),
                                   finite_difference_jacobian(fmap, s, drives[t]), atol=2e-8)
    # A whole trajectory at once gives the same Jacobians, one per step.
    js = dynamics.jacobians(net, x)
    assert js.shape == (12, fmap.size, fmap.size)
    np.testing.assert_allclose(js[5], fmap.jacobian(states[4], drives[5]), atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_iterating_the_map_reproduces_run(variant, dtype):
    cell, options = VARIANTS[variant]
    net = network(cell, dtype, **options)
    x = sequence()
    states = dynamics.trajectory(net, x)
    result = net.run(x.astype(dtype))
    q = net.layers[0].hidden_size
    tol = 2e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(states[:, :q], result.output, atol=tol)
    if cell == "lstm":
        np.testing.assert_allclose(states[-1, q:], result.final_c[0][0], atol=tol)


def test_upper_layers_and_reverse_directions_follow_run():
    net = network("gru", layers=2, bidirectional=True)
    x = sequence(9)
    out = net.run(x).output
    upper = dynamics.layer_outputs(net, x)[0]
    forward = dynamics.trajectory(net, x, layer=1)
    reverse = dynamics.trajectory(net, x, layer=1, direction=1)
    np.testing.assert_allclose(forward, out[:, :5], atol=1e-12)
    np.testing.assert_allclose(reverse[::-1], out[:, 5:], atol=1e-12)
    assert upper.shape == (9, 10)


def test_esn_noise_is_part_of_the_trajectory():
    net = network("esn", noise=0.3, noise_seed=5)
    x = sequence()
    np.testing.assert_allclose(dynamics.trajectory(net, x), net.run(x).output, atol=1e-12)


def test_third_party_activation_derivative_by_central_differences():
    def wiggle(x, a):
        return math.sin(a * x) + 0.5 * x

    class Wiggle:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("wiggle", wiggle, params={"a": 1.0})

    plugins.register_plugin(Wiggle(), name="wiggle-test", package="test-package")
    try:
        net = network("elman", activation={"name": "wiggle", "a": 2.0})
        z = np.linspace(-3, 3, 41)
        values, slopes = maps.value_and_slope(net.layers[0].activations[0], z)
        np.testing.assert_allclose(values, np.sin(2 * z) + 0.5 * z, rtol=1e-15)
        np.testing.assert_allclose(slopes, 2 * np.cos(2 * z) + 0.5, atol=1e-9)
        x = sequence()
        np.testing.assert_allclose(dynamics.trajectory(net, x), net.run(x).output, atol=1e-12)
    finally:
        plugins.unregister_plugin("wiggle-test")


@pytest.mark.parametrize("name,derivative", [
    ("tanh", lambda z: 1 - np.tanh(z) ** 2),
    ("sigmoid", lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    ("softplus", lambda z: 1 / (1 + np.exp(-z))),
    ("identity", lambda z: np.ones_like(z)),
    ("relu", lambda z: np.where(z == 0, 0.5, z > 0)),  # the mean of both slopes at the kink
])
def test_builtin_slopes_are_accurate(name, derivative):
    act = network("elman", activation=name).layers[0].activations[0]
    z = np.concatenate([np.linspace(-30, 30, 101), [-1e-3, 1e-3, 1e4]])
    np.testing.assert_allclose(maps.value_and_slope(act, z)[1], derivative(z),
                               atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("variant", [v for v in VARIANTS if not v.startswith("ugrnn")])
def test_the_map_evaluates_each_activation_once(variant, monkeypatch):
    """F alone needs the activations' values: one evaluation per pre-activation, a third
    of what the Jacobian's central differences take."""
    from rnnsim.activations import BoundActivation

    cell, options = VARIANTS[variant]
    fmap = dynamics.layer_map(network(cell, **options))
    s = np.random.default_rng(1).uniform(-1, 1, (4, fmap.size))
    d = fmap.drive(sequence(4, 3))
    evaluated = []
    original = BoundActivation.__call__
    monkeypatch.setattr(BoundActivation, "__call__",
                        lambda self, z: evaluated.append(np.size(z)) or original(self, z))
    fmap(s, d)
    values = sum(evaluated)
    evaluated.clear()
    fmap.jvp(s, d, np.eye(fmap.size))
    assert values > 0 and sum(evaluated) == 3 * values


def test_sparse_matmul_matches_dense_with_empty_rows():
    dense = np.random.default_rng(2).standard_normal((6, 6)) * (
        np.random.default_rng(3).random((6, 6)) < 0.4)
    dense[[0, 3, 5]] = 0.0
    v = np.random.default_rng(4).standard_normal((2, 6, 3))
    np.testing.assert_allclose(maps.matmul(CSR.from_dense(dense), v), dense @ v,
                               atol=1e-15)


# --- Lyapunov spectra ---------------------------------------------------------------------------

def linear_rnn(moduli, seed=0):
    """U = Q diag(moduli) Q^T: eigenvalues ``moduli`` (signs included)."""
    Q = rotation(len(moduli), seed)
    return elman(Q @ np.diag(moduli) @ Q.T)


def test_linear_rnn_exponents_are_log_moduli_of_eigenvalues():
    moduli = [1.1, -0.8, 0.5, -0.3, 0.15]
    net = linear_rnn(moduli)
    expected = np.sort(np.log(np.abs(moduli)))[::-1]
    np.testing.assert_allclose(dynamics.lyapunov_spectrum(net, steps=300), expected, atol=1e-9)
    driven = dynamics.lyapunov_spectrum(net, sequence(250, 2), warmup=50, k=3)
    np.testing.assert_allclose(driven, expected[:3], atol=1e-9)
    assert dynamics.largest_lyapunov(net, steps=300) == pytest.approx(math.log(1.1), abs=1e-9)


def test_non_normal_linear_rnn_converges_to_log_moduli():
    U = np.random.default_rng(5).standard_normal((6, 6))
    U *= 0.9 / np.max(np.abs(np.linalg.eigvals(U)))
    expected = np.sort(np.log(np.abs(np.linalg.eigvals(U))))[::-1]
    np.testing.assert_allclose(dynamics.lyapunov_spectrum(elman(U), steps=5000), expected,
                               atol=0.01)


def test_contracting_network_has_negative_exponents_and_chaotic_one_positive():
    W = np.random.default_rng(6).standard_normal((60, 60)) / np.sqrt(60)
    assert dynamics.largest_lyapunov(elman(0.5 * W, "tanh"), steps=300) < -0.5
    assert dynamics.largest_lyapunov(elman(3.0 * W, "tanh"), steps=1500, seed=1) > 0.05


def naive_benettin(net, x, warmup, k, seed, h0=None):
    """A textbook Benettin loop in NumPy, written apart from rnnsim's maps: the update and its
    Jacobian of an elman or esn layer (tanh) stated here, the Jacobian formed every step and
    QR every step."""
    layer, params = net.layers[0], net.layer_params(0)
    n = layer.units
    if layer.name == "esn":
        W = (layer.recurrent_matrix(params).to_dense() if layer.sparse else params["W"])
        W, lr = np.asarray(W, np.float64), layer.leak_rate()
        drives = x @ params["Win"].T.astype(np.float64) + params["b"]
    else:
        W, lr = np.asarray(params["U"], np.float64), np.ones(n)
        drives = x @ params["W"].T.astype(np.float64) + params["b"]
    rng = np.random.default_rng(seed)
    h = rng.uniform(-1.0, 1.0, n) if h0 is None else (rng.uniform(-1.0, 1.0, n), h0)[1]
    Q = np.linalg.qr(rng.standard_normal((n, k)))[0]
    total = np.zeros(k)
    for t, d in enumerate(drives):
        a = np.tanh(d + W @ h)
        J = np.diag(1.0 - lr) + (lr * (1.0 - a * a))[:, None] * W
        h = (1.0 - lr) * h + lr * a
        Q, R = np.linalg.qr(J @ Q)
        if t >= warmup:
            total += np.log(np.abs(np.diag(R)))
    return np.sort(total / (len(drives) - warmup))[::-1]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("case", ["esn", "esn-sparse", "elman"])
def test_lyapunov_spectrum_matches_a_naive_benettin_loop(case, compiled, monkeypatch):
    # Random weights in every parameter, a driven trajectory short enough that the chaotic
    # case (elman, gain 1.6) keeps the two trajectories together; the compiled tangent kernel
    # (leaky maps, k <= KERNEL_EXPONENTS) and the NumPy path with its QR every few steps.
    if not compiled:
        monkeypatch.setattr(dynamics, "KERNEL_EXPONENTS", 0)
    rng = np.random.default_rng({"esn": 1, "esn-sparse": 2, "elman": 3}[case])
    n = 40
    options = {"activation": "tanh",
               "init": {"bias": {"name": "uniform", "low": -0.3, "high": 0.3},
                        "recurrent": {"name": "kaiming_normal", "gain": 1.6}}}
    if case.startswith("esn"):
        options["leak_rate"] = rng.uniform(0.2, 1.0, n).tolist()
        options["init"]["recurrent"] = {"name": "sparse_random", "connectivity": 0.2,
                                        "spectral_radius": 1.1}
        options["sparse"] = case == "esn-sparse"
    net = network(case.split("-")[0], units=n, input_size=2, **options)
    x = rng.standard_normal((260, 2))
    for k in (1, 6, n):
        expected = naive_benettin(net, x, 60, k, seed=5)
        got = dynamics.lyapunov_spectrum(net, x, warmup=60, k=k, seed=5)
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_collapsed_direction_gives_minus_infinity(compiled, monkeypatch):
    # Dead ReLU units (bias -3, small weights): every slope is 0 from the first step on.
    if not compiled:
        monkeypatch.setattr(dynamics, "KERNEL_EXPONENTS", 0)
    net = elman(0.1 * rotation(4, 1), "relu", b=np.full(4, -3.0))
    assert dynamics.largest_lyapunov(net, steps=50, warmup=5) == -np.inf
    assert (dynamics.lyapunov_spectrum(net, steps=50, warmup=5, k=3) == -np.inf).all()


def test_lyapunov_reorthonormalising_every_few_steps_changes_no_exponent(monkeypatch):
    # A full GRU spectrum (the NumPy path, Jacobian-vector products) whose exponents spread
    # over 0.75 nats per step: 16-step windows would condition the vectors to e^12.
    net = network("gru", units=12, input_size=3)
    x = sequence(400, 3, seed=2)
    windowed = dynamics.lyapunov_spectrum(net, x, warmup=50)
    monkeypatch.setattr(dynamics, "QR_EVERY_MAX", 1)
    every_step = dynamics.lyapunov_spectrum(net, x, warmup=50)
    np.testing.assert_allclose(windowed, every_step, rtol=1e-10, atol=1e-12)
    assert windowed[0] - windowed[-1] > 0.7


def test_lyapunov_errors():
    net = linear_rnn([0.5, 0.2])
    with pytest.raises(InputError, match="k = 3 exponents: choose 1 to the state size 2"):
        dynamics.lyapunov_spectrum(net, k=3)
    with pytest.raises(InputError, match="not more than the warm-up"):
        dynamics.lyapunov_spectrum(net, sequence(50, 2))
    with pytest.raises(ShapeError, match=r"expected real numbers of shape \(T, 2\)"):
        dynamics.lyapunov_spectrum(net, np.zeros((200, 1, 2)))
    with pytest.raises(InputError, match="diverges"):
        dynamics.lyapunov_spectrum(elman(np.diag([20.0, 0.1])), steps=300)
    with pytest.raises(InputError, match="layer 1 does not exist"):
        dynamics.lyapunov_spectrum(net, layer=1)
    with pytest.raises(InputError, match="direction 1 does not exist"):
        dynamics.lyapunov_spectrum(net, direction=1)


# --- fixed points -------------------------------------------------------------------------------

def contracting(bias=None, n=8):
    W = np.random.default_rng(7).standard_normal((n, n))
    return elman(W * 0.6 / np.max(np.abs(np.linalg.eigvals(W))), "tanh", bias)


def test_contracting_network_has_one_stable_fixed_point_at_zero():
    net = contracting()
    (point,) = dynamics.find_fixed_points(net)
    assert point.kind == "fixed" and point.stable
    np.testing.assert_allclose(point.state, 0.0, atol=1e-12)
    U = net.params["layers.0.U"]
    np.testing.assert_allclose(np.sort(np.abs(point.eigenvalues)),
                               np.sort(np.abs(np.linalg.eigvals(U))), atol=1e-9)


def test_fixed_point_with_bias_matches_direct_iteration():
    b = np.random.default_rng(8).uniform(-1, 1, 8)
    net = contracting(b)
    U = net.params["layers.0.U"]
    s = np.zeros(8)
    for _ in range(2000):
        s = np.tanh(U @ s + b)
    (point,) = dynamics.find_fixed_points(net, starts=8, seed=3)
    np.testing.assert_allclose(point.state, s, atol=1e-12)
    slope = 1 - s ** 2
    np.testing.assert_allclose(np.sort(np.abs(point.eigenvalues)),
                               np.sort(np.abs(np.linalg.eigvals(slope[:, None] * U))),
                               atol=1e-8)
    # A constant input moves the fixed point: s = tanh(U s + W u + b).
    u = np.array([0.3, -0.7])
    W = net.params["layers.0.W"]
    for _ in range(2000):
        s = np.tanh(U @ s + W @ u + b)
    (moved,) = dynamics.find_fixed_points(net, x_const=u, starts=8)
    np.testing.assert_allclose(moved.state, s, atol=1e-12)


def test_bistable_units_give_nine_fixed_points_four_stable():
    # s = tanh(2 s) per unit: 0 (unstable) and +-0.9575 (stable); two units make 3 x 3 points.
    net = elman(2.0 * np.eye(2), "tanh")
    root = 0.957504094
    starts = np.array([[a, b] for a in (-1.2, -0.1, 0.1, 1.2) for b in (-1.2, -0.1, 0.1, 1.2)])
    points = dynamics.find_fixed_points(net, starts=starts)
    found = sorted(tuple(np.round(p.state, 6)) for p in points)
    levels = (-round(root, 6), 0.0, round(root, 6))
    assert found == sorted((a, b) for a in levels for b in levels)
    stable = {tuple(np.round(np.abs(p.state), 6)) for p in points if p.stable}
    assert stable == {(round(root, 6), round(root, 6))}
    assert sum(p.stable for p in points) == 4 and all(p.kind == "fixed" for p in points)


def test_a_ghost_of_a_fixed_point_is_a_slow_point():
    # s = tanh(1.5 s + b) loses its negative fixed points at b = 0.208; at b = 0.22 the map
    # still lingers near s = -0.577: a slow point with small q > 0.
    net = elman([[1.5]], "tanh", [0.22])
    points = dynamics.find_fixed_points(net, starts=np.array([[-0.8], [-0.5], [0.9]]),
                                        slow_tol=1e-3)
    kinds = {p.kind: p for p in points}
    assert set(kinds) == {"fixed", "slow"}
    assert kinds["fixed"].stable and kinds["fixed"].state[0] > 0.8
    assert kinds["slow"].state[0] == pytest.approx(-0.58, abs=0.02)
    assert 1e-6 < kinds["slow"].q < 1e-4
    # From -0.5 alone the search slides off the ghost; the state at rest is tried anyway.
    (rest,) = dynamics.find_fixed_points(net, starts=np.array([[-0.5]]))
    assert rest.kind == "fixed" and rest.state[0] == pytest.approx(kinds["fixed"].state[0])


@pytest.mark.parametrize("variant", ["gru", "lstm-peepholes-proj", "esn-sparse"])
def test_fixed_points_of_gated_and_reservoir_cells_are_fixed(variant):
    cell, options = VARIANTS[variant]
    net = network(cell, **options)
    fmap = dynamics.layer_map(net)
    d = fmap.drive(np.zeros((1, 3)), noise=False)[0]
    points = dynamics.find_fixed_points(net, starts=8)
    assert points and all(p.kind == "fixed" for p in points)
    for p in points:
        np.testing.assert_allclose(fmap(p.state, d), p.state, atol=1e-12)


def test_fixed_point_argument_errors():
    net = contracting()
    with pytest.raises(ShapeError, match=r"x_const has shape \(3,\); expected \(2,\)"):
        dynamics.find_fixed_points(net, x_const=np.zeros(3))
    with pytest.raises(ShapeError, match=r"starts has shape \(4, 3\); expected \(S, 8\)"):
        dynamics.find_fixed_points(net, starts=np.zeros((4, 3)))


# --- gradient norms -----------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [0.9, 1.1])
def test_linear_gradient_norms_are_powers_of_the_scale(scale):
    net = elman(scale * rotation(6, 9))
    T = 40
    norms = dynamics.gradient_norms(net, sequence(T, 2))
    np.testing.assert_allclose(norms, scale ** (T - np.arange(T)), rtol=1e-10)
    frobenius = dynamics.gradient_norms(net, sequence(T, 2), ord="fro")
    np.testing.assert_allclose(frobenius, np.sqrt(6) * norms, rtol=1e-10)


def test_contracting_gradient_norms_decay_geometrically():
    net = contracting()
    T = 50
    norms = dynamics.gradient_norms(net, sequence(T, 2))
    radius = np.linalg.norm(net.params["layers.0.U"], 2)
    assert np.all(np.diff(norms) > 0)  # smaller the further back t lies from T
    assert np.all(norms <= radius ** (T - np.arange(T)) * (1 + 1e-9))
    horizon = dynamics.gradient_norms(net, sequence(T, 2), horizon=10)
    assert np.isnan(horizon[:40]).all()
    np.testing.assert_allclose(horizon[40:], norms[40:], rtol=1e-12)


# --- CLI ----------------------------------------------------------------------------------------

def invoke(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def write_config(tmp_path, cell="gru", **options):
    path = tmp_path / "net.yaml"
    layer = {"cell": cell, "units": 6, **options}
    path.write_text(yaml.safe_dump({"network": {"input_size": 2, "dtype": "float64",
                                                "layers": [layer]}}))
    return path


def test_cli_analyze_reports_dynamics_as_json(tmp_path):
    config = write_config(tmp_path)
    report = json.loads(invoke("analyze", config, "--steps", 200, "--exponents", 4,
                               "--starts", 4, "--horizon", 20, "--json"))
    assert set(report) == {"dynamics"}
    (row,) = report["dynamics"]
    assert row["cell"] == "gru" and row["state_size"] == 6
    net = rnnsim.Network.from_config(yaml.safe_load(config.read_text()))
    from rnnsim.tasks import draw_sequence
    expected = dynamics.lyapunov_spectrum(net, draw_sequence(net, 300, 0), k=4)
    np.testing.assert_allclose(row["lyapunov"]["exponents"], expected, rtol=1e-12)
    assert row["lyapunov"]["steps"] == 200 and len(row["gradient_norms"]["by_lag"]) == 20
    assert row["fixed_points"]["points"][0]["kind"] == "fixed"
    assert 0 < row["gradient_norms"]["growth_per_step"] < 1


def test_cli_analyze_text_and_input(tmp_path):
    config = write_config(tmp_path, "lstm", bidirectional=True)
    np.save(tmp_path / "u.npy", sequence(150, 2))
    out = invoke("analyze", config, "--input", tmp_path / "u.npy", "--starts", 2)
    assert out.count("Lyapunov exponents (per step)") == 2
    assert "reverse direction" in out and "150 steps" not in out and "50 steps" in out
    assert "fixed points under zero input (2 starts from the trajectory)" in out
    assert "gradient norm |ds_T/ds_t|" in out
    out = invoke("analyze", config, "--input", tmp_path / "u.npy", "--steps", 10)
    assert f"10 steps of the input in {tmp_path / 'u.npy'} after 100 warm-up steps" in out
    assert "need 200 steps" in invoke("analyze", config, "--input", tmp_path / "u.npy",
                                      "--steps", 100, code=2)
    out = invoke("analyze", config, "--input", tmp_path / "u.npy", "--warmup", 200, code=1)
    assert "InputError" in out and "warm-up" in out


def test_cli_analyze_keeps_the_reservoir_report(tmp_path):
    config = write_config(tmp_path, "esn", leak_rate=0.5,
                          init={"recurrent": {"name": "orthogonal", "spectral_radius": 0.8}})
    report = json.loads(invoke("analyze", config, "--steps", 100, "--starts", 2, "--json"))
    assert report["layers"][0]["spectral_radius"] == pytest.approx(0.8)
    assert report["echo_state"]["holds"]
    assert report["dynamics"][0]["lyapunov"]["largest"] < 0


def test_the_docs_examples_run(monkeypatch):
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "dynamics.md").read_text()
    monkeypatch.chdir(root)
    exec(re.search(r"```python\n(.*?)```", text, re.S).group(1), {})
    command, _, shown = re.search(r"```\n\$ (rnnsim analyze .*?)```", text, re.S).group(1) \
        .partition("\n")
    out = invoke(*shlex.split(command)[1:])
    # Up to the fixed-point count the lines are exact; the point's last digits follow rounding.
    assert out.splitlines()[:4] == shown.splitlines()[:4]


def test_cli_json_stays_valid_with_infinite_exponents(tmp_path):
    # Dead ReLU units: every slope is 0, so every exponent is -inf and every norm 0.
    config = write_config(tmp_path, "elman", activation="relu",
                          init={"input": "zeros", "bias": {"name": "uniform", "low": -3,
                                                           "high": -2}})

    def strict(constant):
        raise ValueError(f"not JSON: {constant}")

    text = invoke("analyze", config, "--steps", 50, "--starts", 2, "--json")
    (row,) = json.loads(text, parse_constant=strict)["dynamics"]
    assert row["lyapunov"]["exponents"] == [None] * 6
    assert row["gradient_norms"]["by_lag"] == [0.0] * 100 and \
        row["gradient_norms"]["growth_per_step"] is None
    assert row["fixed_points"]["points"][0]["stable"]
    out = invoke("analyze", config, "--steps", 50, "--starts", 2)
    assert "largest -inf: nearby trajectories converge" in out


def decoupled_gru(u_z, u_n, b_r, b_z, b_n):
    """A gru layer whose units do not interact: U diagonal per gate, U_r = 0, on zero input."""
    p = len(b_n)
    net = network("gru", units=p, input_size=1, init={"bias": "zeros"})
    u = np.zeros((3 * p, p))
    u[p:2 * p] = np.diag(u_z)
    u[2 * p:] = np.diag(u_n)
    net.params["layers.0.U"] = u
    net.params["layers.0.b"] = np.concatenate([b_r, b_z, b_n])
    return net


def test_gru_fixed_points_and_saddles_match_a_numpy_reference():
    """Three bistable gru units: every fixed point is a product of per-unit roots of
    h = tanh(b_n + r u_n h), found here by bisection; a unit is unstable where the 1-D map's
    slope (1 - z) n' + z exceeds 1. From drawn starts every point found must be one of the 27
    with its index, and the search must reach every attractor and index-1 saddle, and
    saddles of index 2 and 3 (25 of the 27 with this seed)."""
    from scipy.optimize import brentq

    u_z, u_n = np.array([0.5, -0.3, 0.2]), np.array([3.0, 2.5, 3.5])
    b_r, b_z, b_n = np.full(3, 3.0), np.array([0.1, -0.2, 0.0]), np.array([0.05, -0.1, 0.02])
    r = 1 / (1 + np.exp(-b_r))
    roots, unstable = [], []
    for i in range(3):
        g = lambda h: np.tanh(b_n[i] + r[i] * u_n[i] * h) - h  # noqa: E731
        grid = np.linspace(-1, 1, 2001)
        signs = np.flatnonzero(np.sign(g(grid[:-1])) != np.sign(g(grid[1:])))
        unit = np.array([brentq(g, grid[j], grid[j + 1], xtol=1e-15) for j in signs])
        z = 1 / (1 + np.exp(-(b_z[i] + u_z[i] * unit)))
        slope = (1 - z) * (1 - unit ** 2) * r[i] * u_n[i] + z
        roots.append(unit)
        unstable.append(slope > 1)
    assert [len(unit) for unit in roots] == [3, 3, 3]
    expected = {}
    for a in range(3):
        for b in range(3):
            for c in range(3):
                state = (roots[0][a], roots[1][b], roots[2][c])
                expected[tuple(np.round(state, 8))] = sum(
                    int(flags[j]) for flags, j in zip(unstable, (a, b, c)))
    points = dynamics.find_fixed_points(decoupled_gru(u_z, u_n, b_r, b_z, b_n), starts=256)
    assert all(p.kind == "fixed" and p.residual <= 1e-12 for p in points)
    found = {tuple(np.round(p.state, 8)): p.index for p in points}
    assert {key: expected.get(key) for key in found} == found
    indices = sorted(found.values())
    assert indices.count(0) == 8 and indices.count(1) == 12 and {2, 3} <= set(indices)


def test_a_saturated_gru_gate_makes_no_fixed_point():
    """With the update gate saturated (z -> 1 for large h) q is tiny far outside (-1, 1),
    where no gru state can be: starts out there must not come back as points."""
    net = decoupled_gru(np.full(4, 6.0), np.full(4, 0.5), np.zeros(4), np.zeros(4),
                        np.full(4, 0.3))
    starts = np.vstack([np.full((3, 4), 3.0), np.array([[2.5, 4.0, 3.0, 6.0]])])
    points = dynamics.find_fixed_points(net, starts=starts, slow_tol=1e-3)
    assert points and all(np.max(np.abs(p.state)) < 1 for p in points)
    fmap = dynamics.layer_map(net)
    assert np.all(fmap.bounds()[1] == 1.0) and np.all(fmap.bounds()[0] == -1.0)


def test_a_chaotic_tanh_net_keeps_its_unstable_origin():
    """g = 1.5, zero input: the origin is a fixed point with as many unstable directions as
    eigenvalues of W outside the unit circle (NumPy eigvals); drawn starts never go there."""
    n = 40
    w = np.random.default_rng(2).standard_normal((n, n)) * 1.5 / np.sqrt(n)
    net = elman(w, "tanh")
    points = dynamics.find_fixed_points(net, starts=8)
    (origin,) = [p for p in points if np.max(np.abs(p.state)) < 1e-12]
    assert origin.kind == "fixed"
    assert origin.index == int(np.sum(np.abs(np.linalg.eigvals(w)) > 1)) > 0
    arrays = dynamics.fixed_point_arrays(points, n)
    assert arrays["states"].shape == (len(points), n) and arrays["index"].dtype == np.int64
    assert arrays["eigenvalues"].dtype == np.complex128


def chaotic_config(tmp_path, gain=1.8):
    """A tanh net with recurrent weights N(0, gain^2 / N) (the gain g of random-network
    theory: kaiming_normal with mode fan_in) and no bias."""
    path = tmp_path / "chaos.yaml"
    path.write_text(yaml.safe_dump({"network": {"input_size": 1, "dtype": "float64", "seed": 1,
        "layers": [{"cell": "elman", "units": 60, "activation": "tanh", "init": {
            "recurrent": {"name": "kaiming_normal", "gain": gain}, "bias": "zeros"}}]}}))
    return path


def test_cli_analyze_follows_one_trajectory_and_says_which(tmp_path):
    """g = 1.8, zero input: the gradient norms and the largest exponent come from the same
    trajectory (random start, on the chaotic attractor), so the norms grow by about
    exp(lambda) per step instead of by the unstable origin's |eigenvalue| 1.83."""
    config = chaotic_config(tmp_path)
    (row,) = json.loads(invoke("analyze", config, "--input", "zeros", "--steps", 2000,
                               "--horizon", 300, "--exponents", 2, "--starts", 8,
                               "--json"))["dynamics"]
    assert row["input"] == "zero input" and row["initial_state"] == "uniform(-1, 1), seed 0"
    largest = row["lyapunov"]["largest"]
    assert 0 < largest < 0.3
    assert math.log(row["gradient_norms"]["growth_per_step"]) == pytest.approx(largest, abs=0.05)
    origin = [p for p in row["fixed_points"]["points"] if p["max_abs_state"] < 1e-12]
    assert origin and origin[0]["index"] > 0 and row["fixed_points"]["input"] == "zero"
    text = invoke("analyze", config, "--input", "0.25", "--steps", 50, "--starts", 4)
    assert "50 steps of constant input 0.25" in text and "under constant input 0.25" in text


def test_cli_analyze_writes_the_fixed_points(tmp_path):
    config = chaotic_config(tmp_path, gain=1.5)
    out = tmp_path / "pts.npz"
    invoke("analyze", config, "--input", "zeros", "--steps", 200, "--starts", 8,
           "--fixed-points-out", out)
    with np.load(out) as saved:
        states, eigenvalues = saved["layer0.forward.states"], saved["layer0.forward.eigenvalues"]
        index, kind = saved["layer0.forward.index"], saved["layer0.forward.kind"]
    assert states.shape[1] == 60 and eigenvalues.shape == states.shape and len(index) > 0
    net = rnnsim.Network.from_config(yaml.safe_load(config.read_text()))
    fmap = dynamics.layer_map(net)
    d = fmap.drive(np.zeros((1, 1)), noise=False)[0]
    for s, eig, unstable, k in zip(states, eigenvalues, index, kind):
        expected = np.linalg.eigvals(fmap.jacobian(s, d))
        np.testing.assert_allclose(np.sort(np.abs(eig)), np.sort(np.abs(expected)), rtol=1e-9)
        assert unstable == np.sum(np.abs(expected) > 1 + dynamics.STABILITY_MARGIN)
        if k == "fixed":
            np.testing.assert_allclose(fmap(s, d), s, atol=1e-10)
    starts = tmp_path / "starts.npy"
    np.save(starts, np.zeros((1, 60)))
    (row,) = json.loads(invoke("analyze", config, "--input", "zeros", "--steps", 50,
                               "--start-states", starts, "--json"))["dynamics"]
    assert row["fixed_points"]["starts"] == 1


def test_analyze_builds_each_map_once_and_runs_the_network_once(monkeypatch):
    """Three layers, the middle one bidirectional: four maps built, the network run once for
    the upper layers' inputs; the report equals the one of the public functions."""
    layers = [{"cell": "gru", "units": 4}, {"cell": "elman", "units": 3, "bidirectional": True},
              {"cell": "lstm", "units": 3}]
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "dtype": "float64",
                                                  "seed": 2, "layers": layers}})
    x = sequence(80, 2, seed=4)
    built, ran = [], []
    layer_map, layer_outputs = dynamics.layer_map, dynamics.layer_outputs
    monkeypatch.setattr(dynamics, "layer_map", lambda *a: built.append(a[1:]) or layer_map(*a))
    monkeypatch.setattr(dynamics, "layer_outputs",
                        lambda *a: ran.append(a[2:]) or layer_outputs(*a))
    rows = dynamics.analyze(net, x, warmup=20, starts=3, horizon=10, exponents=3)
    assert built == [(0, 0), (1, 0), (1, 1), (2, 0)] and ran == [(2,)]
    monkeypatch.undo()
    s0 = np.random.default_rng(0).uniform(-1.0, 1.0, 4)
    assert rows[0]["lyapunov"]["exponents"] == pytest.approx(dynamics.lyapunov_spectrum(
        net, x, warmup=20, k=3, h0=s0).tolist(), rel=1e-12)
    rng = np.random.default_rng(0)
    for row, (i, d, _) in zip(rows, dynamics.directions(net)):
        n = dynamics.layer_map(net, i, d).size
        s0 = rng.uniform(-1.0, 1.0, n)
        norms = dynamics.gradient_norms(net, x, layer=i, h0=s0, direction=d, horizon=10)
        assert row["gradient_norms"]["by_lag"] == pytest.approx(norms[::-1][:10].tolist(),
                                                                rel=1e-12)
