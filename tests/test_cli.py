"""The CLI end to end with click's CliRunner: exit codes, output and files."""
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import rnnsim
from rnnsim.cli import cli

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args, code=1):
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def test_version():
    assert rnnsim.__version__ in ok("--version")


def test_run_quickstart_shows_shapes_and_weights_independent_of_T():
    short = ok("run", QUICKSTART)
    long = ok("run", QUICKSTART, "--timesteps", 200)
    for expected in ("W_a", "10 x 8", "U_a", "10 x 10", "b_a", "W_y", "2 x 10", "b_y",
                     "(20, 4, 8)", "(20, 4, 10)", "(20, 4, 2)"):
        assert expected in short
    assert "(200, 4, 8)" in long and "(200, 4, 2)" in long
    fingerprint = [line for line in short.splitlines() if "sha256" in line]
    assert fingerprint and fingerprint[0] in long


def test_run_writes_output_equal_to_api(tmp_path):
    out = tmp_path / "out.npz"
    ok("run", QUICKSTART, "--output", out, "--seed", 5, "-T", 7, "-B", 3)
    with np.load(out) as data:
        assert set(data.files) == {"output", "final_0_h", "y"}
        output, y = data["output"], data["y"]
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg["network"]["seed"] = 5
    net = rnnsim.Network.from_config(cfg)
    x = np.random.default_rng([5, 1]).standard_normal((7, 3, 8)).astype(np.float32)
    result = net.run(x)
    np.testing.assert_array_equal(output, result.output)
    np.testing.assert_array_equal(y, result.y)


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_run_reads_input_files(tmp_path, suffix):
    x = np.random.default_rng(0).standard_normal((20, 8))
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, x)
    elif suffix == ".npz":
        np.savez(path, x=x)
    else:
        np.savetxt(path, x, delimiter=",", header=",".join(f"f{i}" for i in range(8)),
                   comments="")
    out = tmp_path / "out.npz"
    text = ok("run", QUICKSTART, "--input", path, "--output", out)
    assert "(20, 8)" in text
    net = rnnsim.Network.from_config(QUICKSTART)
    with np.load(out) as data:
        np.testing.assert_allclose(data["output"], net.run(x).output, rtol=1e-6)


def test_json_summary():
    summary = json.loads(ok("run", QUICKSTART, "--json", "-T", 30))
    assert summary["input_shape"] == [30, 4, 8]
    assert summary["timesteps"] == 30
    assert {p["symbol"]: p["shape"] for p in summary["parameters"]}["U_a"] == [10, 10]


def test_save_and_run_the_model_folder(tmp_path):
    model = tmp_path / "model"
    first = tmp_path / "a.npz"
    second = tmp_path / "b.npz"
    ok("run", QUICKSTART, "--save", model, "--output", first)
    ok("run", model, "--output", second)
    with np.load(first) as a, np.load(second) as b:
        np.testing.assert_array_equal(a["y"], b["y"])


def test_validate_and_info():
    assert "valid" in ok("validate", QUICKSTART)
    text = ok("info", QUICKSTART)
    assert "layer 0: 190 parameters" in text and "not by the network" in text
    data = json.loads(ok("info", QUICKSTART, "--json"))
    assert data["layers"][0]["units"] == 10


@pytest.mark.parametrize("name", ["c.yaml", "c.txt"])
def test_validate_reads_a_config_once_and_asks_the_importers_once(tmp_path, monkeypatch, name):
    from rnnsim import importers, yamlfile

    calls = []

    def counted(fn):
        return lambda *args, **kwargs: calls.append(fn.__name__) or fn(*args, **kwargs)

    monkeypatch.setattr(yamlfile, "read_yaml_file", counted(yamlfile.read_yaml_file))
    monkeypatch.setattr(importers, "find_importer", counted(importers.find_importer))
    path = tmp_path / name
    path.write_text(QUICKSTART.read_text())
    assert "valid (1 layer(s), 212 parameters)" in ok("validate", path)
    assert sorted(calls) == (["read_yaml_file"] if name.endswith(".yaml")
                             else ["find_importer", "read_yaml_file"])


def test_plugins_lists_every_kind_with_its_package():
    text = ok("plugins")
    for name in ("lstm", "tanh", "leaky_relu", "orthogonal", "torch_default", "last_step",
                 "memory_capacity"):
        assert name in text
    assert "cells:" in text and "metrics:" in text
    rows = json.loads(ok("plugins", "--json"))
    kinds = {row["kind"] for row in rows}
    assert kinds == {"cell", "activation", "initializer", "head", "metric", "importer"}
    assert all(row["package"] for row in rows)
    assert {"kind": "activation", "name": "tanh", "package": "rnnsim"}.items() <= \
        next(r for r in rows if r["name"] == "tanh").items()


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_config_errors_exit_1_and_write_nothing(tmp_path):
    out = tmp_path / "out.npz"
    cfg = write(tmp_path, "network:\n  input_size: 8\n  layers:\n    - {unitz: 10}\n")
    text = fails("run", cfg, "--output", out)
    assert "network.layers[0].unitz" in text and "did you mean 'units'" in text
    assert not out.exists() and list(tmp_path.iterdir()) == [cfg]


def test_malformed_yaml_and_missing_files(tmp_path):
    cfg = write(tmp_path, "network: [\n")
    assert "not valid YAML" in fails("validate", cfg)
    assert "does not exist" in fails("run", tmp_path / "nope.yaml")
    assert "does not exist" in fails("run", QUICKSTART, "--input", tmp_path / "nope.npy")


def test_bad_input_arrays(tmp_path):
    out = tmp_path / "out.npz"
    wrong_k = tmp_path / "k.npy"
    np.save(wrong_k, np.zeros((20, 4, 7)))
    text = fails("run", QUICKSTART, "--input", wrong_k, "--output", out)
    assert "(20, 4, 7)" in text and "input_size = 8" in text
    rank = tmp_path / "rank.npy"
    np.save(rank, np.zeros(8))
    assert "rank 1" in fails("run", QUICKSTART, "--input", rank)
    nan = tmp_path / "nan.npy"
    x = np.zeros((5, 8))
    x[2, 3] = np.nan
    np.save(nan, x)
    text = fails("run", QUICKSTART, "--input", nan, "--output", out)
    assert "NaN/inf" in text and "(2, 3)" in text and "--allow-nonfinite" in text
    assert not out.exists()
    ok("run", QUICKSTART, "--input", nan, "--allow-nonfinite")
    corrupt = tmp_path / "bad.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    assert "cannot be read" in fails("run", QUICKSTART, "--input", corrupt)


def test_existing_output_survives_a_failed_run(tmp_path):
    out = tmp_path / "out.npz"
    ok("run", QUICKSTART, "--output", out)
    before = out.read_bytes()
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 2, 5)))
    fails("run", QUICKSTART, "--input", bad, "--output", out)
    assert out.read_bytes() == before


def test_usage_errors_exit_2(tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 8)))
    fails("run", QUICKSTART, "--input", x, "--timesteps", 5, code=2)
    fails("run", QUICKSTART, "--timesteps", 0, code=2)


def test_every_config_in_configs_runs():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert QUICKSTART in configs
    for path in configs:
        ok("validate", path)
        ok("run", path, "-T", 5)


def test_output_holds_the_lstm_cell_state(tmp_path):
    config = write(tmp_path, "network:\n  input_size: 3\n  layers:\n    - {cell: lstm, units: 4}\n"
                             "    - {cell: elman, units: 2}\n")
    out = tmp_path / "out.npz"
    ok("run", config, "-T", 5, "-B", 2, "--output", out)
    with np.load(out) as data:
        assert data["final_0_c"].shape == (1, 2, 4) and "final_1_c" not in data.files
        assert data["final_0_h"].shape == (1, 2, 4) and data["final_1_h"].shape == (1, 2, 2)


# --- what a newcomer hits (issue 16) ---------------------------------------------------------

NO_NUMBA = """
import sys
from rnnsim.cli import cli
try:
    cli({args!r})
except SystemExit as exc:
    code = exc.code
print("EXIT", code, "numba" in sys.modules, "numpy" in sys.modules, "pluggy" in sys.modules)
"""


@pytest.mark.parametrize("args, code", [
    (["--help"], 0), (["--version"], 0), (["run", "--help"], 0), (["plot", "sweep", "--help"], 0),
    (["sweep", "--help"], 0), (["run"], 2), (["run", "c.yaml", "--timesteps", "0"], 2),
    (["no-such-command"], 2), (["run", "c.yaml", "--input", "x.npy", "-T", "5"], 2),
])
def test_help_version_and_usage_errors_do_not_import_numba(args, code):
    """`rnnsim --help` took 2 s: the CLI imported numba (and numpy) before parsing; nor is
    pluggy needed before a command loads the plugins."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", NO_NUMBA.format(args=args)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == f"EXIT {code} False False False", result.stdout


LOADS_NO_NUMBA = """
import sys, rnnsim, rnnsim.cli, rnnsim.config, rnnsim.plugins
rnnsim.plugins.get_plugins()
rnnsim.Network.from_config({'network': {'input_size': 2, 'layers': [
    {'cell': 'lstm', 'units': 3, 'activation': 'tanh'}]}})
print("EXIT", 0, "numba" in sys.modules)
"""


@pytest.mark.parametrize("code, expected", [
    *((NO_NUMBA.format(args=args), f"EXIT {exit_code} False") for args, exit_code in [
        (["validate", str(QUICKSTART)], 0), (["import", "--help"], 0),
        (["import", "onnx", "--help"], 0), (["plugins"], 0), (["validate"], 2),
        (["validate", "no-such.yaml"], 1), (["import", "onnx"], 2),
        (["run", str(QUICKSTART), "--bogus"], 2)]),
    (LOADS_NO_NUMBA, "EXIT 0 False"),
])
def test_validating_and_listing_do_not_import_numba(code, expected):
    """numba (about a second to import) loads with the first kernel, not for `validate`,
    `import --help`, `plugins`, argument errors, `import rnnsim` or building a network:
    the built-in activations name their numba forms by reference."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert " ".join(result.stdout.splitlines()[-1].split()[:3]) == expected, result.stdout


LIGHT = """
import sys
from rnnsim.cli import cli
try:
    cli({args!r})
except SystemExit as exc:
    code = exc.code
built = []
if "pydantic" in sys.modules:
    from pydantic import BaseModel
    stack = [BaseModel]
    while stack:
        model = stack.pop()
        stack += model.__subclasses__()
        if not model.__module__.startswith("pydantic") and model.__pydantic_complete__:
            built.append(model.__name__)
print("EXIT", code, "importlib.metadata" in sys.modules, "yaml" in sys.modules, sorted(built))
"""


@pytest.mark.parametrize("args, code", [
    (["--help"], 0), (["--version"], 0), (["run", "c.yaml", "--bogus"], 2), (["plugins"], 0),
    (["import", "--help"], 0), (["import", "onnx", "--help"], 0), (["schema", "--help"], 0)])
def test_help_and_listing_import_neither_importlib_metadata_nor_yaml_nor_build_models(args,
                                                                                     code):
    """importlib.metadata (25 ms to import) is not needed to find the plugins' entry points,
    nor pydantic's validators (built on first use) to list what the plugins register, nor yaml
    (15 ms) where no file is read."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", LIGHT.format(args=args)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == f"EXIT {code} False False []", result.stdout


def test_validate_builds_only_the_models_its_config_uses(tmp_path):
    import subprocess
    import sys

    def built(config: Path) -> set:
        result = subprocess.run([sys.executable, "-c", LIGHT.format(args=["validate",
                                                                          str(config)])],
                                capture_output=True, text=True, check=True)
        assert result.stdout.splitlines()[-1].startswith("EXIT 0 "), result.stdout
        return set(eval(result.stdout.splitlines()[-1].split(" ", 4)[4]))

    options = {"ElmanOptions", "LSTMOptions", "GRUOptions", "ESNOptions", "UGRNNOptions"}
    assert built(QUICKSTART) & options == {"ElmanOptions"}
    lstm = tmp_path / "lstm.yaml"
    lstm.write_text(yaml.safe_dump({"network": {"input_size": 2, "layers": [
        {"cell": "lstm", "units": 3}, {"cell": "ugrnn", "units": 2}]}}))
    assert built(lstm) & options == {"LSTMOptions", "UGRNNOptions"}


def test_the_cli_spells_out_the_devices_and_the_built_in_metrics_of_the_api():
    from rnnsim import config as config_mod
    from rnnsim.devices import DEVICES
    from rnnsim.plugins import get_plugins

    assert "[cpu|cuda]" in ok("run", "--help") and DEVICES == ("cpu", "cuda")
    schema = config_mod.Config.model_json_schema()["$defs"]["NetworkConfig"]["properties"]
    assert schema["device"]["enum"] == list(DEVICES)
    builtin = [e.name for e in get_plugins().metrics.entries.values()
               if e.source.plugin.startswith("rnnsim.")]
    help_text = " ".join(ok("sweep", "--help").split())
    assert builtin and all(name in help_text for name in builtin)
    assert "`rnnsim plugins` lists them all" in help_text


def test_lazy_attributes_of_the_package():
    import rnnsim.network

    assert rnnsim.Network is rnnsim.network.Network and rnnsim.load is rnnsim.network.load
    assert rnnsim.config.parse is not None  # submodules stay reachable as attributes
    assert {"Network", "Head", "State"} <= set(dir(rnnsim))
    with pytest.raises(AttributeError, match="no_such_thing"):
        rnnsim.no_such_thing


def test_run_reports_the_kernel_load_apart_from_the_steps(monkeypatch):
    """`ran in 3256 ms (651252 µs per step)` for T = 5 divided the load by T."""
    calls = []
    real = rnnsim.Network.run

    def run(net, x, *args, **kwargs):
        calls.append(np.shape(x))
        return real(net, x, *args, **kwargs)

    monkeypatch.setattr(rnnsim.Network, "run", run)
    summary = json.loads(ok("run", QUICKSTART, "-T", 7, "--json"))
    assert calls == [(1, 4, 8), (1, 4, 8), (7, 4, 8)]  # two one-step warm-ups, then the run
    assert summary["load_seconds"] > 0 and summary["seconds"] > 0
    assert summary["us_per_step"] == pytest.approx(summary["seconds"] / 7 * 1e6)
    text = ok("run", QUICKSTART, "-T", 7)
    assert "kernel load or compilation" in text and "ms (two one-step runs first" in text
    ran = next(line for line in text.splitlines() if line.startswith("ran in"))
    assert "including" not in ran and "µs per step" in ran


def test_run_warm_up_follows_the_layout_lengths_and_teacher(tmp_path, monkeypatch):
    calls = []
    real = rnnsim.Network.run

    def run(net, x, *args, **kwargs):
        calls.append((np.shape(x), kwargs.get("lengths")))
        return real(net, x, *args, **kwargs)

    monkeypatch.setattr(rnnsim.Network, "run", run)
    config = write(tmp_path, "network:\n  input_size: 3\n  batch_first: true\n  layers:\n"
                             "    - {cell: gru, units: 4}\n")
    ok("run", config, "-T", 6, "-B", 2, "--lengths", "6,4")
    assert calls == [((2, 1, 3), [1, 1])] * 2 + [((2, 6, 3), [6, 4])]
    calls.clear()
    ok("run", config, "-T", 6, "-B", 2, "--output", tmp_path / "o.npy")  # streamed
    assert calls[:2] == [((2, 1, 3), None)] * 2


def test_run_with_a_bad_input_still_reports_its_whole_shape(tmp_path):
    bad = tmp_path / "k.npy"
    np.save(bad, np.zeros((20, 4, 7)))
    text = fails("run", QUICKSTART, "--input", bad)
    assert "(20, 4, 7)" in text and "(1, 4, 7)" not in text


def test_the_readmes_analyze_command_with_input_and_steps(tmp_path, monkeypatch):
    """README: `rnnsim analyze CONFIG [--input u.npy] [--steps 1000]` exited 2 together."""
    from rnnsim import dynamics

    readme = (ROOT / "README.md").read_text()
    assert "rnnsim analyze CONFIG [--input u.npy] [--steps 1000]" in readme
    u = np.random.default_rng(0).standard_normal((400, 8))
    np.save(tmp_path / "u.npy", u)
    seen = []
    real = dynamics.analyze
    monkeypatch.setattr(dynamics, "analyze", lambda net, x, **kw: seen.append(x) or real(
        net, x, **kw))
    report = json.loads(ok("analyze", QUICKSTART, "--input", tmp_path / "u.npy", "--steps", 60,
                           "--warmup", 20, "--starts", 2, "--exponents", 2, "--json"))
    np.testing.assert_array_equal(seen[0], u[:80])
    assert report["dynamics"][0]["lyapunov"]["steps"] == 60
    text = fails("analyze", QUICKSTART, "--input", tmp_path / "u.npy", "--steps", 1000, code=2)
    assert "need 1100 steps" in text and "has 400" in text


def test_readme_says_how_to_reach_the_command_and_links_the_learner_material():
    """After `make run`, `rnnsim` was `command not found`; `explain` and the tutorial were
    not linked."""
    readme = (ROOT / "README.md").read_text()
    lines = readme.splitlines()
    assert lines[3].startswith("make run ") and lines[4].startswith("make test ")
    top = readme[:readme.index("## ")]  # before the first section
    assert ". .venv/bin/activate" in top and ".venv/bin/rnnsim" in top
    assert "rnnsim explain" in top and "(docs/units-vs-timesteps.md)" in top
    assert (ROOT / "docs" / "units-vs-timesteps.md").is_file()


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_analyze_runs_its_step_loops_on_one_blas_thread(monkeypatch):
    """`analyze configs/mackey_glass.yaml` took 156-374 s: BLAS threads oversubscribed the
    cores in the Lyapunov, gradient-norm and fixed-point loops."""
    import sys

    from threadpoolctl import threadpool_limits

    pytest.importorskip("scipy.linalg")  # numba's BLAS: loaded before the limits are set
    seen = []

    def recording(real):
        def call(*args, **kwargs):
            if sys._getframe(1).f_globals["__name__"] == "rnnsim.dynamics":
                seen.append(_blas_threads())
            return real(*args, **kwargs)
        return call

    for name in ("qr", "solve", "norm", "eigvals"):
        monkeypatch.setattr(np.linalg, name, recording(getattr(np.linalg, name)))
    with threadpool_limits(limits=2, user_api="blas"):
        ok("analyze", QUICKSTART, "--steps", 30, "--warmup", 5, "--starts", 2,
           "--exponents", 2, "--horizon", 5, "--json")
        assert _blas_threads() and set(_blas_threads()) == {2}  # restored afterwards
    assert seen and all(set(threads) == {1} for threads in seen)


def test_sweep_workers_run_one_numba_and_one_blas_thread():
    import subprocess
    import sys

    code = ("import numba; from threadpoolctl import threadpool_info, threadpool_limits\n"
            "threadpool_limits(limits=2, user_api='blas')\n"
            "from rnnsim.sweep.run import init_worker; init_worker()\n"
            "print(numba.get_num_threads(), sorted({p['num_threads'] for p in "
            "threadpool_info() if p['user_api'] == 'blas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split("\n")[0] == "1 [1]"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"threadpoolctl>=3.1",' in pyproject.split("[project.optional-dependencies]")[0]


def test_a_case_slip_in_a_plugin_name_gets_the_lowercase_name(tmp_path):
    """`cell: LSTM` got no did-you-mean (names are lowercase)."""
    config = write(tmp_path, "network:\n  input_size: 3\n  layers:\n"
                             "    - {cell: LSTM, units: 4}\n")
    text = fails("validate", config)
    assert "network.layers[0].cell: unknown cell 'LSTM' (did you mean 'lstm'?)" in text
    config = write(tmp_path, "network:\n  input_size: 3\n  layers:\n"
                             "    - {cell: elman, units: 2, activation: Leaky_ReLU}\n")
    assert "unknown activation 'Leaky_ReLU' (did you mean 'leaky_relu'?)" in fails(
        "validate", config)


def test_info_counts_the_stored_nonzeros_of_a_sparse_reservoir():
    """`info` counted a 5%-connected 500-unit reservoir as 500 x 500 = 250,000 parameters."""
    config = ROOT / "configs" / "mackey_glass.yaml"
    net = rnnsim.Network.from_config(config)
    nonzeros = net.params["layers.0.W.data"].size
    assert 0 < nonzeros < 500 * 500 // 10
    rows = {row["name"]: row for row in json.loads(ok("info", config, "--json"))["parameters"]}
    assert rows["layers.0.W"]["count"] == nonzeros and rows["layers.0.W"]["sparse"]
    assert rows["layers.0.W"]["shape"] == [500, 500]
    assert not rows["layers.0.Win"]["sparse"] and rows["layers.0.Win"]["count"] == 500
    text = ok("info", config)
    line = next(line for line in text.splitlines() if line.strip().startswith("layers.0.W "))
    assert f"{nonzeros:,}  nonzeros stored (sparse, 5.0%)" in line and "250,000" not in text
    assert f"layer 0: {500 + nonzeros + 500:,} parameters" in text
    assert f"{500 + nonzeros + 500 + 501:,} parameters" in ok("validate", config)


def test_python_dash_m_runs_the_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "rnnsim", "--version"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.startswith("rnnsim, version ")
    done = subprocess.run([sys.executable, "-m", "rnnsim", "--help"], capture_output=True,
                          text=True, check=True)
    assert "Usage: rnnsim " in done.stdout
