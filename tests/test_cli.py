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
        assert set(data.files) == {"output", "final_0", "y"}
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


def test_plugins_lists_every_kind_with_its_package():
    text = ok("plugins")
    for name in ("tanh", "leaky_relu", "orthogonal", "torch_default", "last_step"):
        assert name in text
    rows = json.loads(ok("plugins", "--json"))
    kinds = {row["kind"] for row in rows}
    assert kinds == {"activation", "initializer", "head"}
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
        assert data["final_c_0"].shape == (1, 2, 4) and "final_c_1" not in data.files
        assert data["final_0"].shape == (1, 2, 4) and data["final_1"].shape == (1, 2, 2)
