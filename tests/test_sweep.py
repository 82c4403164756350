"""Sweeps: grids of config values, per-point seeds, metrics, resume, processes and Dask."""
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from rnnsim import ConfigError, InputError, Network
from rnnsim.cli import cli
from rnnsim.config import parse
from rnnsim.yamlfile import SafeLoader
from rnnsim.plugins import get_plugins
from rnnsim.sweep import (expand, grid_values, point_seed, points_folder, read_table,
                          run_sweep)

ROOT = Path(__file__).resolve().parents[1]
RADIUS = "network.layers[0].init.recurrent.spectral_radius"
UNITS = "network.layers[0].units"
LEAK = "network.layers[0].leak_rate"


def esn_config(**sweep):
    """A small echo-state network with a ridge readout (the nrmse metric's task)."""
    config = {
        "network": {"input_size": 1, "dtype": "float64", "seed": 3, "layers": [
            {"cell": "esn", "units": 12, "leak_rate": 0.5,
             "init": {"recurrent": {"name": "uniform", "spectral_radius": 0.9}}}],
            "head": {"name": "ridge", "units": 1}},
        "run": {"timesteps": 200, "batch": 2},
    }
    if sweep:
        config["sweep"] = sweep
    return config


def linear_elman():
    """An Elman layer with f = identity and orthogonal U scaled to a spectral radius."""
    return {"network": {"input_size": 2, "dtype": "float64", "seed": 1, "layers": [
        {"cell": "elman", "units": 6, "activation": "identity",
         "init": {"recurrent": {"name": "orthogonal", "spectral_radius": 0.9}}}]},
        "run": {"timesteps": 150, "batch": 1}}


def write_yaml(tmp_path, data, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def invoke(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


CALLS = []


def counted(net, seed):
    """A metric that records every call (for the resume tests, run in this process)."""
    CALLS.append(seed)
    return float(seed % 1000)


def fails_on_wide(net, seed):
    """A metric that fails for layers of more than 12 units, standing in for a crash."""
    if net.layers[0].units > 12:
        raise InputError("simulated failure")
    return 1.0


# --- grid values and key paths ----------------------------------------------------------------

def test_grid_values_ranges_lists_and_scalars():
    assert grid_values("0.5:1.5:11", "g") == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4,
                                               1.5]
    assert grid_values("10:50:5", "g") == [10, 20, 30, 40, 50]
    assert all(type(v) is int for v in grid_values("10:50:5", "g"))
    assert grid_values("10:20:3", "g") == [10, 15, 20]
    assert grid_values("1:2:3", "g") == [1.0, 1.5, 2.0]
    assert grid_values("1e-4:1:5:log", "g") == [1e-4, 1e-3, 1e-2, 0.1, 1.0]
    assert grid_values("50,100", "g") == [50, 100]
    assert grid_values("tanh, relu", "g") == ["tanh", "relu"]
    assert grid_values("true,false", "g") == [True, False]
    assert grid_values("2:2:1", "g") == [2]
    assert grid_values([0.1, 0.2], "g") == [0.1, 0.2]
    assert grid_values(7, "g") == [7]


@pytest.mark.parametrize("text, message", [
    ("1:2", "is not a range"), ("1:2:x", "is not a range"), ("1:2:3:lin", "is not a range"),
    ("0:1:3:log", "START and STOP > 0"), ("1:2:0", "COUNT"), ("1,,2", "empty value"),
    ("1,2,1", "given twice"), ([], "empty"),
])
def test_bad_grid_values_name_the_key(text, message):
    with pytest.raises(ConfigError, match=message) as info:
        grid_values(text, "grid network.layers[0].units")
    assert "network.layers[0].units" in str(info.value)


def test_unknown_key_path_gives_did_you_mean():
    config = parse(esn_config())
    cases = {
        "network.layers[0].unitz": "did you mean 'network.layers[0].units'",
        "network.layers[0].init.recurrent.spectral_radus":
            "did you mean 'network.layers[0].init.recurrent.spectral_radius'",
        "network.layers[0].init.recurrent.hihg": "did you mean "
                                                 "'network.layers[0].init.recurrent.high'",
        "network.layers[3].units": "has 1 entries",
        "network.layer[0].units": "did you mean 'network.layers[0].units'",
        "network..units": "is not a key path",
        "network.layers[0].units[1]": "'network.layers[0].units' is not a list",
        "sweep.repeats": "cannot be swept",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError) as info:
            expand(config, {path: [1, 2]})
        assert path in str(info.value) and message in str(info.value), str(info.value)


def test_every_grid_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        run_sweep(esn_config(), {"network.layers[0].unitz": [1], "network.head.unitz": "1:2"},
                  ["nrmze"], "out.csv")
    message = str(info.value)
    assert "network.layers[0].unitz" in message and "network.head.unitz" in message
    assert "'1:2' is not a range" in message and "did you mean 'nrmse'" in message


def test_spectral_radius_alias_is_the_recurrent_initializers():
    config = parse(esn_config())
    paths, points = expand(config, {"network.layers[0].spectral_radius": [0.5, 1.2]})
    assert paths == [RADIUS]
    assert [p.config["network"]["layers"][0]["init"]["recurrent"]["spectral_radius"]
            for p in points] == [0.5, 1.2]
    with pytest.raises(ConfigError, match="given twice"):
        expand(config, {"network.layers[0].spectral_radius": [1], RADIUS: [2]})


def test_a_bare_plugin_name_takes_a_swept_parameter():
    config = parse({"network": {"input_size": 1, "layers": [
        {"cell": "elman", "units": 3, "activation": "leaky_relu"}]}})
    _, points = expand(config, {"network.layers[0].activation.alpha": [0.1, 0.2]})
    assert [p.config["network"]["layers"][0]["activation"] for p in points] == [
        {"name": "leaky_relu", "alpha": 0.1}, {"name": "leaky_relu", "alpha": 0.2}]


def test_a_point_whose_config_is_invalid_names_the_point():
    with pytest.raises(ConfigError, match=r"(?s)sweep point network.layers\[0\].units=0: .*greater than 0"):
        expand(parse(esn_config()), {UNITS: [4, 0]})


def test_sweep_section_is_validated_with_key_paths(tmp_path):
    schema = esn_config(grid={UNITS: [4]}, metrics=["nrmse"], repeats=0, outptu="t.csv")
    result = invoke("validate", write_yaml(tmp_path, schema), code=1)
    assert "has 2 errors" in result.output and "sweep.repeats: Input should be greater than 0" \
        in result.output and "sweep.outptu: unknown key (did you mean 'output'?)" in result.output
    bad = esn_config(grid={"network.layers[0].unit": [1, 2], LEAK: "1:0.5"},
                     metrics=["nrmse", "speed"])
    result = invoke("validate", write_yaml(tmp_path, bad), code=1)
    assert "has 3 errors" in result.output
    for text in ("sweep.grid: unknown config key path 'network.layers[0].unit' (did you mean "
                 "'network.layers[0].units'?)", f"sweep.grid.{LEAK}: '1:0.5' is not a range",
                 "sweep.metrics[1]: unknown metric 'speed'"):
        assert text in result.output


def test_yaml_ranges_are_strings_not_base_60_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(esn_config()) + f"sweep:\n  grid:\n    {UNITS}: 1:2:10\n"
                    f"    {LEAK}: 0.2:1:5\n  metrics: [spectral_radius]\n")
    sweep = parse(path).sweep
    assert sweep.grid == {UNITS: "1:2:10", LEAK: "0.2:1:5"}
    assert parse(esn_config()).dump() == parse(parse(esn_config()).dump()).dump()
    assert "sweep" not in parse(esn_config()).dump()


# --- seeds ------------------------------------------------------------------------------------

def seeds(config, grid, repeats=1):
    return {(tuple(p.params.items()), i % repeats): p.seed
            for i, p in enumerate(expand(config, grid, repeats)[1])}


@settings(max_examples=25, deadline=None)
@given(radii=st.lists(st.sampled_from([0.5, 0.7, 0.9, 1.1]), min_size=1, max_size=3, unique=True),
       units=st.lists(st.integers(2, 9), min_size=1, max_size=3, unique=True),
       flip=st.booleans())
def test_a_point_gets_the_same_seed_whatever_else_is_swept(radii, units, flip):
    config = parse(esn_config())
    grid = {RADIUS: radii, UNITS: units}
    if flip:
        grid = {UNITS: units[::-1], RADIUS: radii[::-1]}
    _, points = expand(config, grid)
    for point in points:
        alone = expand(config, {k: [v] for k, v in reversed(point.params.items())})[1][0]
        assert alone.seed == point.seed == point.config["network"]["seed"]
        assert alone.key == point.key
    assert len({p.seed for p in points}) == len(points)


def test_seeds_follow_the_base_seed_and_repeats():
    config = parse(esn_config())
    grid = {UNITS: [4, 5]}
    once = expand(config, grid)[1]
    assert [p.seed for p in once] == [point_seed(3, {UNITS: 4}), point_seed(3, {UNITS: 5})]
    other = expand(config, grid, base_seed=4)[1]
    assert {p.seed for p in once}.isdisjoint(p.seed for p in other)
    twice = expand(config, grid, repeats=2)[1]
    assert [p.params[UNITS] for p in twice] == [4, 4, 5, 5]
    assert [twice[0].seed, twice[2].seed] == [p.seed for p in once]
    assert len({p.seed for p in twice}) == 4
    swept = expand(config, {"network.seed": [11, 12]})[1]
    assert [p.seed for p in swept] == [11, 12]
    with pytest.raises(ConfigError, match="repeats must be 1"):
        expand(config, {"network.seed": [11, 12]}, repeats=2)


# --- metrics ----------------------------------------------------------------------------------

def test_metrics_measure_the_points_network(tmp_path):
    table = run_sweep(esn_config(), {RADIUS: [0.5, 1.3], UNITS: [8, 12]},
                      ["spectral_radius", "mean_abs_state", "final_state_norm", "nrmse",
                       "memory_capacity"], tmp_path / "t.csv", workers=1)
    assert table.columns == [RADIUS, UNITS, "seed", "spectral_radius", "mean_abs_state",
                             "final_state_norm", "nrmse", "memory_capacity"]
    assert len(table) == 4
    for row in table:
        assert row["spectral_radius"] == pytest.approx(row[RADIUS], rel=1e-9)
        config = esn_config()
        config["network"]["seed"] = row["seed"]
        config["network"]["layers"][0].update(units=row[UNITS])
        config["network"]["layers"][0]["init"]["recurrent"]["spectral_radius"] = row[RADIUS]
        net = Network.from_config(config)
        x = np.random.default_rng([row["seed"], 1]).standard_normal((200, 2, 1))
        result = net.run(x)
        assert row["mean_abs_state"] == pytest.approx(np.abs(result.output).mean(), rel=1e-12)
        assert row["final_state_norm"] == pytest.approx(
            np.linalg.norm(result.final[0][0], axis=-1).mean(), rel=1e-12)
        assert 0 < row["nrmse"] < 0.5
        assert 0 < row["memory_capacity"] <= row[UNITS] + 1e-6


def test_nrmse_is_the_fit_commands_test_score(tmp_path):
    row = run_sweep(esn_config(), {UNITS: [10]}, ["nrmse"], tmp_path / "t.csv")[0]
    config = esn_config()
    config["network"]["seed"] = row["seed"]
    config["network"]["layers"][0]["units"] = 10
    result = invoke("fit", write_yaml(tmp_path, config, "point.yaml"), "--task", "mackey-glass",
                    "--washout", int(0.1 * 160), "--json")
    assert row["nrmse"] == pytest.approx(json.loads(result.output)["test_nrmse"], rel=1e-9)


def test_largest_lyapunov_of_a_linear_network_is_log_radius(tmp_path):
    table = run_sweep(linear_elman(), {"network.layers[0].spectral_radius": "0.5,0.8"},
                      ["spectral_radius", "largest_lyapunov"], tmp_path / "t.csv", workers=1)
    for row in table:
        assert row["spectral_radius"] == pytest.approx(row[RADIUS], rel=1e-9)
        assert row["largest_lyapunov"] == pytest.approx(math.log(row[RADIUS]), abs=1e-6)


def test_gated_cells_have_no_spectral_radius(tmp_path):
    config = {"network": {"input_size": 1, "layers": [{"cell": "lstm", "units": 3}]}}
    with pytest.raises(ConfigError, match=r"sweep point .*no single square recurrent matrix"):
        run_sweep(config, {UNITS: [3]}, ["spectral_radius"], tmp_path / "t.csv",
                  on_error="fail")


def test_metric_names_and_functions(tmp_path):
    assert {"mean_abs_state", "final_state_norm", "spectral_radius", "nrmse",
            "largest_lyapunov"} <= set(get_plugins().metrics.entries)
    table = run_sweep(esn_config(), {UNITS: [4, 5]}, ["spectral_radius", counted],
                      tmp_path / "t.csv", workers=1)
    assert table.columns[-1] == "counted"
    assert [row["counted"] for row in table] == [float(row["seed"] % 1000) for row in table]
    with pytest.raises(ConfigError, match="given twice"):
        run_sweep(esn_config(), {UNITS: [4]}, ["nrmse", "nrmse"], tmp_path / "t.csv")
    with pytest.raises(ConfigError, match="expected a metric name or a function, got 3"):
        run_sweep(esn_config(), {UNITS: [4]}, [3], tmp_path / "t.csv")


# --- files and resume -------------------------------------------------------------------------

def test_table_and_point_files(tmp_path):
    out = tmp_path / "deep" / "results.csv"
    table = run_sweep(esn_config(), {UNITS: [4, 5, 6]}, ["spectral_radius"], out, workers=1)
    assert read_table(out) == list(table)
    assert out.read_text().splitlines()[0] == f"{UNITS},seed,spectral_radius"
    folder = points_folder(out)
    assert folder == tmp_path / "deep" / "results.points"
    files = sorted(folder.iterdir())
    assert len(files) == 3 and all(f.suffix == ".json" for f in files)
    record = json.loads(files[0].read_text())
    assert set(record) >= {"params", "seed", "metrics", "config"}
    assert record["config"]["network"]["seed"] == record["seed"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_rerun_skips_finished_points(tmp_path):
    out = tmp_path / "t.csv"
    grid = {UNITS: [4, 5, 6, 7]}
    CALLS.clear()
    first = run_sweep(esn_config(), grid, [counted], out, workers=1)
    assert len(CALLS) == 4 and (first.computed, first.resumed) == (4, 0)
    files = sorted(points_folder(out).iterdir())
    kept = {f: f.stat().st_mtime_ns for f in files[:2]}
    for f in files[2:]:
        f.unlink()
    CALLS.clear()
    second = run_sweep(esn_config(), grid, [counted], out, workers=1)
    assert len(CALLS) == 2 and (second.computed, second.resumed) == (2, 2)
    assert list(second) == list(first) and read_table(out) == list(first)
    assert {f: f.stat().st_mtime_ns for f in kept} == kept
    CALLS.clear()
    wider = run_sweep(esn_config(), {UNITS: [4, 5, 6, 7, 8]}, [counted], out, workers=1)
    assert len(CALLS) == 1 and wider[:4] == list(first)
    CALLS.clear()
    more = run_sweep(esn_config(), grid, [counted, "spectral_radius"], out, workers=1)
    assert CALLS == [] and more.computed == 4  # only the new metric ran


def test_a_changed_config_does_not_reuse_points(tmp_path):
    out = tmp_path / "t.csv"
    CALLS.clear()
    run_sweep(esn_config(), {UNITS: [4, 5]}, [counted], out, workers=1)
    changed = esn_config()
    changed["run"]["timesteps"] = 100
    CALLS.clear()
    table = run_sweep(changed, {UNITS: [4, 5]}, [counted], out, workers=1)
    assert len(CALLS) == 2 and table.resumed == 0
    assert len(list(points_folder(out).iterdir())) == 4


def test_an_interrupted_sweep_resumes(tmp_path):
    out = tmp_path / "t.csv"
    grid = {UNITS: [10, 11, 12, 13, 14]}
    with pytest.raises(InputError, match=r"sweep point network.layers\[0\].units=13.*simulated"):
        run_sweep(esn_config(), grid, [counted, fails_on_wide], out, workers=1,
                  on_error="fail")
    assert not out.exists()
    assert len(list(points_folder(out).iterdir())) == 3
    CALLS.clear()
    table = run_sweep(esn_config(), grid, [counted], out, workers=1)
    assert len(CALLS) == 2 and (table.computed, table.resumed) == (2, 3)


def test_processes_give_the_serial_table(tmp_path):
    grid = {RADIUS: "0.6:1.2:3", UNITS: [6, 9]}
    metrics = ["mean_abs_state", "final_state_norm", "spectral_radius", "nrmse"]
    serial = run_sweep(esn_config(), grid, metrics, tmp_path / "serial.csv", workers=1)
    parallel = run_sweep(esn_config(), grid, metrics, tmp_path / "parallel.csv", workers=2)
    assert parallel.computed == 6 and list(parallel) == list(serial)
    assert (tmp_path / "parallel.csv").read_text() == (tmp_path / "serial.csv").read_text()


def test_parquet_table(tmp_path):
    out = tmp_path / "t.parquet"
    table = run_sweep(esn_config(), {UNITS: [4, 5], "network.layers[0].activation": "tanh,relu"},
                      ["spectral_radius"], out, workers=1)
    assert read_table(out) == list(table)
    assert points_folder(out) == tmp_path / "t.points"


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    CALLS.clear()
    with pytest.raises(ConfigError, match=r"pip install 'rnnsim\[parquet\]'"):
        run_sweep(esn_config(), {UNITS: [4]}, [counted], tmp_path / "t.parquet")
    assert CALLS == []
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        run_sweep(esn_config(), {UNITS: [4]}, [counted], tmp_path / "t.xlsx")


# --- CLI --------------------------------------------------------------------------------------

def test_cli_sweep_from_flags(tmp_path):
    config = write_yaml(tmp_path, esn_config())
    out = tmp_path / "t.csv"
    result = invoke("sweep", config, "--grid", "network.layers[0].spectral_radius=0.5:1.5:3",
                    "--grid", f"{UNITS}=5,7", "--metric", "spectral_radius", "-o", out, "-j", 1)
    assert f"wrote {out}: 6 points (6 computed, 0 resumed)" in result.stdout
    assert result.stderr == ""  # the bar shows on a terminal only (tests/test_progress.py)
    rows = read_table(out)
    assert [(r[RADIUS], r[UNITS]) for r in rows] == [(a, b) for a in (0.5, 1.0, 1.5)
                                                      for b in (5, 7)]
    quiet = invoke("sweep", config, "--grid", f"{UNITS}=5,7", "--metric", "spectral_radius",
                   "-o", out, "-q")
    assert quiet.stdout == "" and quiet.stderr == ""
    as_json = invoke("sweep", config, "--grid", f"{UNITS}=5,7", "--metric", "spectral_radius",
                     "-o", out, "--json", "-q")
    printed = json.loads(as_json.stdout)
    assert [r[UNITS] for r in printed] == [5, 7] and read_table(out) == printed
    assert printed[0]["spectral_radius"] == pytest.approx(0.9, rel=1e-9)


def test_cli_sweep_from_the_yaml_section(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_yaml(tmp_path, esn_config(grid={UNITS: "4:6:3"}, metrics=["spectral_radius"],
                                             repeats=2, seed=9, output="from_yaml.csv"))
    invoke("sweep", config, "-j", 1)
    rows = read_table(tmp_path / "from_yaml.csv")
    assert [r[UNITS] for r in rows] == [4, 4, 5, 5, 6, 6]
    assert rows[0]["seed"] == point_seed(9, {UNITS: 4}, 0)
    assert rows[1]["seed"] == point_seed(9, {UNITS: 4}, 1)
    invoke("sweep", config, "--grid", f"{UNITS}=7", "--repeats", 1, "-o", "flags.csv")
    assert [r[UNITS] for r in read_table(tmp_path / "flags.csv")] == [7]


def test_cli_sweep_mistakes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_yaml(tmp_path, esn_config())
    result = invoke("sweep", config, "--grid", "network.layers[0].unitz=1,2", "--metric",
                    "nrmse", code=1)
    assert "ConfigError" in result.output and "did you mean 'network.layers[0].units'" in \
        result.output and "Traceback" not in result.output
    assert "needs grid" in invoke("sweep", config, "--metric", "nrmse", code=1).output
    invoke("sweep", config, "--grid", "network.layers[0].units", code=2)
    invoke("sweep", config, "--grid", f"{UNITS}=1", "--grid", f"{UNITS}=2", code=2)
    assert not list(tmp_path.glob("*.csv"))


def test_every_sweep_config_runs(tmp_path, monkeypatch):
    configs = sorted((ROOT / "configs").glob("sweep_*.yaml"))
    assert configs
    monkeypatch.chdir(tmp_path)
    for path in configs:
        sweep = parse(path).sweep
        invoke("sweep", path, "-j", 1, "-q")
        rows = read_table(tmp_path / sweep.output)
        expected = math.prod(len(grid_values(v, k)) for k, v in sweep.grid.items())
        assert len(rows) == expected * sweep.repeats
        assert all(np.isfinite(r[m]) for r in rows for m in sweep.metrics)


# --- Dask -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dask_cluster():
    import distributed

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_dask_cluster_gives_the_local_table(tmp_path, dask_cluster):
    config = write_yaml(tmp_path, esn_config())
    args = ["--grid", "network.layers[0].spectral_radius=0.6:1.2:2", "--grid", f"{UNITS}=6,9",
            "--metric", "spectral_radius", "--metric", "nrmse", "--metric", "mean_abs_state"]
    invoke("sweep", config, *args, "-o", tmp_path / "local.csv", "-j", 1)
    result = invoke("sweep", config, *args, "-o", tmp_path / "dask.csv",
                    "--scheduler", dask_cluster.scheduler_address)
    assert "4 computed" in result.stdout
    assert (tmp_path / "dask.csv").read_text() == (tmp_path / "local.csv").read_text()
    again = invoke("sweep", config, *args, "-o", tmp_path / "dask.csv",
                   "--scheduler", dask_cluster.scheduler_address)
    assert "(0 computed, 4 resumed)" in again.stdout
    bad = invoke("sweep", config, *args, "-o", tmp_path / "bad.csv", "--scheduler", "host",
                 code=1)
    assert "missing port" in bad.output and "tcp://host:8786" in bad.output


def test_dask_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'rnnsim\[dask\]'"):
        run_sweep(esn_config(), {UNITS: [4]}, ["spectral_radius"], tmp_path / "t.csv",
                  scheduler="tcp://127.0.0.1:8786")


def test_the_docs_examples_are_valid():
    import re
    import shlex

    text = (ROOT / "docs" / "sweeps.md").read_text()
    section = yaml.load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1),
                        Loader=SafeLoader)
    data = yaml.safe_load((ROOT / "configs" / "sweep_reservoir.yaml").read_text())
    assert parse({**data, **section}).sweep.grid == parse(data).sweep.grid
    command = re.search(r"```console\n(rnnsim sweep .*?)```", text, re.S).group(1)
    args = shlex.split(command.replace("\\\n", " "))
    grid = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--grid")
    paths, points = expand(parse(ROOT / args[2]), grid)
    assert len(points) == 22 and paths[0] == RADIUS


def test_failing_points_are_recorded_by_default(tmp_path):
    """A point whose network cannot be built and one whose metric raises: NaN and the error
    in the table, the other points and metrics kept; the failures run again next time."""
    out = tmp_path / "t.csv"
    grid = {UNITS: [4, 13], "network.layers[0].init.recurrent.name": ["uniform", "delay_line"]}
    CALLS.clear()
    table = run_sweep(esn_config(), grid, [counted, fails_on_wide], out, workers=1)
    assert table.columns[-1] == "error" and len(table) == 4 and len(table.failed) == 3
    by_point = {(row[UNITS], row["network.layers[0].init.recurrent.name"]): row
                for row in read_table(out)}
    assert by_point[4, "uniform"]["error"] is None and by_point[4, "uniform"]["fails_on_wide"] == 1
    wide = by_point[13, "uniform"]
    assert math.isnan(wide["fails_on_wide"]) and wide["counted"] == wide["seed"] % 1000
    assert wide["error"] == "metric 'fails_on_wide': InputError: simulated failure"
    for units in (4, 13):
        row = by_point[units, "delay_line"]
        assert math.isnan(row["counted"]) and math.isnan(row["fails_on_wide"])
        assert row["error"].startswith("network: ConfigError: ") and "radius 0" in row["error"]
    assert len(CALLS) == 2
    CALLS.clear()
    again = run_sweep(esn_config(), grid, [counted, fails_on_wide], out, workers=1)
    assert CALLS == [] and again.resumed == 1 and len(again.failed) == 3


def test_on_error_skip_and_fail_from_the_cli(tmp_path):
    config = write_yaml(tmp_path, esn_config())
    out = tmp_path / "t.csv"
    grid = ["--grid", "network.layers[0].init.recurrent.name=uniform,delay_line",
            "--metric", "spectral_radius", "-o", out, "-j", 1]
    result = invoke("sweep", config, *grid, "--on-error", "skip")
    assert "1 failed" in result.output and "delay_line" in result.output
    assert [row["network.layers[0].init.recurrent.name"] for row in read_table(out)] == [
        "uniform"]
    assert "error" not in out.read_text().splitlines()[0]
    result = invoke("sweep", config, *grid, "--on-error", "fail", code=1)
    assert "sweep point network.layers[0].init.recurrent.name='delay_line', seed=" in \
        result.output and "Traceback" not in result.output
    invoke("sweep", config, *grid)
    assert read_table(out)[1]["error"].startswith("network: ConfigError")
    with pytest.raises(ConfigError, match="on_error must be one of fail, record, skip"):
        run_sweep(esn_config(), {UNITS: [4]}, ["spectral_radius"], out, on_error="ignore")


def test_memory_capacity_options_are_swept(tmp_path):
    """run.memory_capacity.max_delay / ridge / washout are grid keys; the metric uses them."""
    from rnnsim.reservoir import memory_capacity

    config = esn_config()
    config["run"] = {"timesteps": 400}
    grid = {"run.memory_capacity.max_delay": [4, 12], "run.memory_capacity.ridge": [1e-6],
            "run.memory_capacity.washout": [30]}
    table = run_sweep(config, grid, ["memory_capacity"], tmp_path / "t.csv", workers=1)
    for row in table:
        point = json.loads(json.dumps(config))
        point["network"]["seed"] = row["seed"]
        net = Network.from_config(point)
        expected = memory_capacity(net, max_delay=row["run.memory_capacity.max_delay"],
                                   timesteps=400, washout=30, ridge=1e-6, seed=row["seed"])
        assert row["memory_capacity"] == expected
    assert table[0]["memory_capacity"] < table[1]["memory_capacity"]


def test_the_lyapunov_warmup_is_swept(tmp_path):
    from rnnsim.dynamics import largest_lyapunov

    config = esn_config()
    config["run"] = {"timesteps": 150}
    table = run_sweep(config, {"run.lyapunov.warmup": [0, 300]}, ["largest_lyapunov"],
                      tmp_path / "t.csv", workers=1)
    for row in table:
        point = json.loads(json.dumps(config))
        point["network"]["seed"] = row["seed"]
        expected = largest_lyapunov(Network.from_config(point), steps=150,
                                    warmup=row["run.lyapunov.warmup"], seed=row["seed"])
        assert row["largest_lyapunov"] == expected
    assert table[0]["largest_lyapunov"] != table[1]["largest_lyapunov"]


# --- the cost of a point ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,sparse", [("float64", False), ("float64", True),
                                          ("float32", False)])
def test_a_point_finds_one_spectral_radius(dtype, sparse, monkeypatch):
    """The build scales W with one eigenvalue computation; the spectral_radius metric reuses
    its radius (float64, exact to rounding) instead of a second one, and computes it again
    where rounding to float32 moved it or the weights were replaced."""
    from rnnsim import sparse as sparse_mod
    from rnnsim.sweep import evaluate_point, resolve_metrics

    calls = []
    original = sparse_mod.spectral_radius
    monkeypatch.setattr(sparse_mod, "spectral_radius",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    config = esn_config()
    config["network"]["dtype"] = dtype
    layer = config["network"]["layers"][0]
    layer["units"], layer["sparse"] = 60, sparse
    layer["init"]["recurrent"] = {"name": "sparse_random", "connectivity": 0.2,
                                  "spectral_radius": 0.83}
    values = evaluate_point(config, resolve_metrics(["spectral_radius"]))
    assert len(calls) == (1 if dtype == "float64" else 2)
    net = Network.from_config(config)
    w = net.layers[0].recurrent_matrix(net.layer_params(0))
    dense = (w.to_dense() if sparse else w).astype(np.float64)
    expected = np.max(np.abs(np.linalg.eigvals(dense)))
    assert values["spectral_radius"] == pytest.approx(expected, rel=1e-13 if dtype ==
                                                      "float64" else 1e-15)
    name = "layers.0.W.data" if sparse else "layers.0.W"
    assert net.known_spectral_radius("layers.0.W") == (0.83 if dtype == "float64" else None)
    net.params[name][0] *= 2  # edited in place
    assert net.known_spectral_radius("layers.0.W") is None
    net.params[name][0] /= 2
    assert net.known_spectral_radius("layers.0.W") == (0.83 if dtype == "float64" else None)
    net.params[name] = net.params[name] * 2  # replaced
    assert net.known_spectral_radius("layers.0.W") is None
