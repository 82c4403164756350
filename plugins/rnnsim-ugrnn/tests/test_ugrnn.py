"""The UGRNN cell, added to rnnsim only through register_cells: found once installed, equal to
a NumPy reference, and usable everywhere a built-in cell is (streaming, lengths, save/load,
analyze, sweep, plot, the GPU path under numba's simulator)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rnnsim
from rnnsim.cli import cli
from rnnsim.plugins import get_plugins


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def reference(x, W, U, b, h0, lengths=None, reverse=False, clip=np.inf):
    """h_t = g h + (1 - g) c, c = tanh(z_c), g = sigmoid(z_g), z = W x_t + U h + b (clipped),
    for x (T, B, k); zero outputs past each row's length."""
    T, B, _ = x.shape
    p = U.shape[1]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    out, final = np.zeros((T, B, p)), np.array(h0, np.float64)
    for r in range(B):
        h = final[r].copy()
        steps = range(lengths[r] - 1, -1, -1) if reverse else range(lengths[r])
        for t in steps:
            z = np.clip(W @ x[t, r] + U @ h + b, -clip, clip)
            c, g = np.tanh(z[:p]), sigmoid(z[p:])
            h = out[t, r] = g * h + (1 - g) * c
        final[r] = h
    return out, final


def network(dtype="float64", units=4, input_size=3, **layer):
    net = rnnsim.Network.from_config({"network": {
        "input_size": input_size, "dtype": dtype, "seed": 2,
        "layers": [{"cell": "ugrnn", "units": units, **layer}]}})
    rng = np.random.default_rng(7)  # random values in every parameter, the bias included
    for name, value in net.params.items():
        net.params[name] = rng.uniform(-0.8, 0.8, value.shape).astype(dtype)
    return net


def test_discovered_through_its_entry_point():
    entry = get_plugins().cells.get("ugrnn", "test")
    assert entry.source.package == "rnnsim-ugrnn" and entry.cls.name == "ugrnn"


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-6), ("float64", 1e-13)])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_matches_the_numpy_reference_both_directions_with_lengths(dtype, tol, clip):
    net = network(dtype, bidirectional=True, **({} if clip is None else {"clip": clip}))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 3, 3)).astype(dtype)
    h0 = rng.standard_normal((2, 3, 4)).astype(dtype)
    lengths = np.array([7, 3, 0])
    result = net.run(x, h0=[h0], lengths=lengths)
    p = net.params
    for d, suffix in enumerate(("", "_reverse")):
        out, final = reference(x.astype(np.float64), p["layers.0.W" + suffix],
                               p["layers.0.U" + suffix], p["layers.0.b" + suffix], h0[d],
                               lengths, reverse=d == 1, clip=np.inf if clip is None else clip)
        assert result.output.dtype == np.dtype(dtype)
        np.testing.assert_allclose(result.output[..., 4 * d:4 * (d + 1)], out, rtol=tol,
                                   atol=tol)
        np.testing.assert_allclose(result.final[0][d], final, rtol=tol, atol=tol)


def test_streaming_gives_the_bits_of_one_run():
    net = network()
    x = np.random.default_rng(4).standard_normal((6, 2, 3))
    whole = net.run(x)
    state, outputs = net.initial_state(2), []
    for x_t in x:
        y, state = net.step(x_t, state)
        outputs.append(y)
    np.testing.assert_array_equal(np.stack(outputs), whole.output)


def test_save_and_load_keep_the_model(tmp_path):
    net = network()
    net.save(tmp_path / "model")
    loaded = rnnsim.load(tmp_path / "model")
    x = np.random.default_rng(5).standard_normal((5, 2, 3))
    np.testing.assert_array_equal(loaded.run(x).output, net.run(x).output)
    assert yaml.safe_load((tmp_path / "model" / "plugins.yaml").read_text())


def test_the_dynamics_map_and_its_jacobian():
    from rnnsim import dynamics

    net = network()
    x = np.random.default_rng(6).standard_normal((8, 3))
    fmap = dynamics.layer_map(net)
    states = dynamics.trajectory(net, x)
    np.testing.assert_allclose(states, net.run(x).output, atol=1e-12)
    d, s, e = fmap.drive(x)[3], states[2], 1e-6
    eye = np.eye(4)
    numeric = np.stack([(fmap(s + e * eye[j], d) - fmap(s - e * eye[j], d)) / (2 * e)
                        for j in range(4)], axis=1)
    np.testing.assert_allclose(fmap.jacobian(s, d), numeric, atol=1e-8)


def config_file(tmp_path, **extra):
    path = tmp_path / "ugrnn.yaml"
    path.write_text(yaml.safe_dump({"network": {
        "input_size": 2, "seed": 1, "layers": [{"cell": "ugrnn", "units": 6}]},
        "run": {"timesteps": 30, "batch": 2}, **extra}))
    return path


def test_cli_run_analyze_sweep_and_plot(tmp_path):
    path = config_file(tmp_path, sweep={"grid": {"network.layers[0].units": [3, 5]},
                                        "metrics": ["mean_abs_state"],
                                        "output": str(tmp_path / "sweep.csv")})
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(path), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["analyze", str(path), "--json", "--steps", "60"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    row = report["dynamics"][0]
    assert row["cell"] == "ugrnn" and row["state_size"] == 6
    assert len(row["lyapunov"]["exponents"]) == 6 and row["lyapunov"]["largest"] < 0
    assert row["fixed_points"]["points"][0]["kind"] == "fixed"
    result = runner.invoke(cli, ["sweep", str(path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "sweep.csv").read_text().splitlines()) == 3
    result = runner.invoke(cli, ["plot", "eigenvalues", str(path), "-o", str(tmp_path / "e.png")])
    assert result.exit_code == 0, result.output
    from rnnsim import plot
    assert list(plot.recurrent_matrices(rnnsim.Network.from_config(str(path)), 0)) == \
        ["U_c", "U_g"]


CUDA = """
import numpy as np, rnnsim
cfg = {"network": {"input_size": 3, "dtype": "float64", "seed": 2, "layers": [
    {"cell": "ugrnn", "units": 5, "clip": 0.9, "bidirectional": True}]}}
cpu = rnnsim.Network.from_config(cfg)
rng = np.random.default_rng(8)
params = {k: rng.uniform(-0.8, 0.8, v.shape) for k, v in cpu.params.items()}
cpu = rnnsim.Network(cpu.config, params)
gpu = rnnsim.Network(cpu.config, params, device="cuda")
x = rng.standard_normal((6, 3, 3))
lengths = [6, 2, 4]
a, b = cpu.run(x, lengths=lengths), gpu.run(x, lengths=lengths)
print(float(np.abs(a.output - b.output).max()), float(np.abs(a.final[0] - b.final[0]).max()))
"""


def test_the_gpu_kernel_under_the_simulator_agrees_with_the_cpu():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", CUDA], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max(map(float, done.stdout.split())) < 1e-12
