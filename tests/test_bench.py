"""`rnnsim bench` on a tiny matrix: the table, the JSON, the chart and the agreement check."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from rnnsim import bench
from rnnsim.cli import cli


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(bench, "SHAPES", [(1, 3, 5, 30), (3, 2, 9, 30)])
    monkeypatch.setattr(bench, "ESN_SHAPES", [(20, 0.2, 30)])
    monkeypatch.setattr(bench, "PAUSE_S", 0.0)
    monkeypatch.setattr(bench, "gemm_peak", lambda dtype: 1.0)


def test_bench_writes_the_table_json_and_chart(tiny, tmp_path):
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    result = CliRunner().invoke(cli, ["bench", "--cells", "lstm,gru", "--dtype", "float32",
                                      "--repeats", "1", "--json", str(out), "--plot",
                                      str(chart)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [(r["cell"], r["B"], r["p"]) for r in rows] == [
        ("lstm", 1, 5), ("lstm", 3, 9), ("gru", 1, 5), ("gru", 3, 9)]
    for row in rows:
        assert row["us"]["rnnsim"] > 0 and row["us"]["rnnsim_fast"] > 0
        assert row["flops_per_step"] == 2 * row["B"] * {"lstm": 4, "gru": 3}[row["cell"]] * \
            row["p"] * (row["k"] + row["p"])
        for peer, ratio in row["ratio"].items():
            assert ratio == pytest.approx(row["us"][peer] / row["us"]["rnnsim"])
            assert row["agree"][peer] <= 1e-4
    assert "onnxruntime" in rows[0]["us"]  # a test dependency
    assert data["gemm_peak_gflops"] == {"float32": 1.0}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "GFLOP/s" in result.output and result.output.count("lstm float32") >= 2
    markdown = CliRunner().invoke(cli, ["bench", "--cells", "gru", "--dtype", "float64",
                                        "--repeats", "1", "--markdown"])
    assert markdown.exit_code == 0, markdown.output
    table = [line for line in markdown.output.splitlines() if line.startswith("| gru")]
    assert len(table) == 2 and all(line.count("|") == table[0].count("|") for line in table)


def test_bench_runs_echo_state_rows_against_reservoirpy_when_installed(tiny):
    results = bench.run_matrix(["esn"], ["float64"], repeats=1)
    (row,) = results["rows"]
    assert row.cell == "esn" and row.p == 20 and row.us["rnnsim"] > 0
    try:
        import reservoirpy  # noqa: F401
    except ImportError:
        assert "reservoirpy" not in row.us
    else:
        assert row.agree["reservoirpy"] <= 1e-10


def test_bench_stops_when_a_peer_disagrees(tiny):
    def wrong(net, row, threads):
        return lambda x: net.run(x).output + 1.0

    row = bench.Row("elman", "float64", 2, 3, 4, 20)
    with pytest.raises(AssertionError, match="wrong disagrees"):
        bench.measure(row, 1, {"wrong": wrong})


def test_bench_rejects_unknown_cells():
    result = CliRunner().invoke(cli, ["bench", "--cells", "lstm,transformer"])
    assert result.exit_code == 1 and "transformer" in result.output


def test_gemm_peak_measures_a_product():
    assert np.isfinite(bench.gemm_peak("float32", n=64, repeats=2))
