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
        for peer in row["ratio"]:  # the ratios' values: test_ratios_and_rates_by_hand
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
    assert row.nbytes == 1448 and row.read_gbs > 0 and row.gbs > 0
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


def scripted_seconds(monkeypatch, seconds):
    """``bench._seconds`` runs the candidate as before but returns the next of ``seconds``;
    returns the list of what the candidates returned."""
    script, returned = iter(seconds), []

    def fake(fn):
        returned.append(fn())
        return next(script)

    monkeypatch.setattr(bench, "_seconds", fake)
    return returned


# Seconds of the 3 rounds of (rnnsim, rnnsim_fast, torch, onnxruntime) on the first row (T = 30);
# the second row takes twice as long. Medians: 0.0015, 0.0006, 0.006, 0.0024 s, that is
# 50, 20, 200 and 80 us per step.
ROUNDS = [0.0030, 0.0006, 0.0090, 0.0030,
          0.0009, 0.0012, 0.0045, 0.0018,
          0.0015, 0.0003, 0.0060, 0.0024]


def test_ratios_and_rates_by_hand(tiny, monkeypatch, tmp_path):
    """Scripted timings through the whole command: the medians, peer / rnnsim ratios,
    GFLOP/s and fraction of the peak, worked out by hand."""
    monkeypatch.setitem(bench.PEERS, "torch", lambda net, row, threads:
                        lambda x: net.run(x).output)
    monkeypatch.setitem(bench.PEERS, "onnxruntime", lambda net, row, threads:
                        lambda x: net.run(x).output + 2.0**-40)
    monkeypatch.setitem(bench.PEERS, "reservoirpy", lambda net, row, threads: None)
    monkeypatch.setattr(bench, "gemm_peak", lambda dtype: 0.005)
    scripted_seconds(monkeypatch, ROUNDS + [2 * s for s in ROUNDS])
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--cells", "elman", "--dtype", "float64",
                                      "--repeats", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    first, second = json.loads(out.read_text())["rows"]
    assert first["us"] == pytest.approx({"rnnsim": 50.0, "rnnsim_fast": 20.0, "torch": 200.0,
                                         "onnxruntime": 80.0}, rel=1e-12)
    assert second["us"] == pytest.approx({"rnnsim": 100.0, "rnnsim_fast": 40.0,
                                          "torch": 400.0, "onnxruntime": 160.0}, rel=1e-12)
    for row in (first, second):
        assert row["ratio"] == pytest.approx({"torch": 4.0, "onnxruntime": 1.6}, rel=1e-12)
        assert row["ratio_fast"] == pytest.approx({"torch": 10.0, "onnxruntime": 4.0},
                                                  rel=1e-12)
        assert row["agree"]["torch"] == 0.0
        assert row["agree"]["onnxruntime"] == pytest.approx(2.0**-40, rel=1e-6)
    # elman (B, k, p) = (1, 3, 5): 2 * (5*3 + 5*5) = 80 flops per step; (3, 2, 9): 594
    assert (first["flops_per_step"], second["flops_per_step"]) == (80, 594)
    # at the faster mode's 20 us: 80 / 20e-6 / 1e9 = 0.004 GFLOP/s = 80% of 0.005;
    # 594 / 40e-6 / 1e9 = 0.01485 GFLOP/s = 297%
    rows = [["elman", "float64", "1", "3", "5", "30", "50.00", "20.00", "200.00", "4.00",
             "80.00", "1.60", "-", "-", "0.0", "80%", "-", "-"],
            ["elman", "float64", "3", "2", "9", "30", "100.00", "40.00", "400.00", "4.00",
             "160.00", "1.60", "-", "-", "0.0", "297%", "-", "-"]]
    lines = [line.split() for line in result.output.splitlines()
             if line.split()[:2] == ["elman", "float64"]]
    assert lines == rows + rows  # as each row is measured, then the table


def test_echo_state_rows_give_the_gb_s_of_their_sparse_kernel_by_hand(tiny, monkeypatch,
                                                                      tmp_path):
    """An esn row: the bytes a step streams, the GB/s at the faster mode and its share of the
    plain sum's GB/s measured over as many bytes, worked out by hand."""
    monkeypatch.setitem(bench.PEERS, "reservoirpy", lambda net, row, threads: None)
    summed = []
    monkeypatch.setattr(bench, "read_bandwidth", lambda nbytes: summed.append(nbytes) or 4.0)
    # (rnnsim, rnnsim_fast) x 3 rounds, T = 30: medians 0.003 s (100 us per step) and
    # 21.72e-6 s (0.724 us per step)
    scripted_seconds(monkeypatch, [0.003, 21.72e-6, 0.004, 30e-6, 0.002, 10e-6])
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--cells", "esn", "--dtype", "float64",
                                      "--repeats", "3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["rows"]
    # N = 20 at 20%: 4 nonzeros per row, 80 in all, 8-byte values and uint16 columns; 21
    # int64 offsets; input projection, previous and new state: 3 x 20 float64
    assert row["nbytes"] == 80 * (8 + 2) + 21 * 8 + 3 * 20 * 8 == 1448
    assert summed == [1448] and row["read_gbs"] == 4.0
    assert row["gbs"] == pytest.approx(1448 / 0.724e-6 / 1e9, rel=1e-12)  # 2.0 GB/s
    lines = [line.split() for line in result.output.splitlines()
             if line.split()[:2] == ["esn", "float64"]]
    assert [line[-2:] for line in lines] == [["2.0", "50%"]] * 2
    assert "GB/s" in result.output and "plain sum" in result.output


def test_reservoir_bytes_and_a_real_plain_sum():
    # 70,000 units: uint32 columns; float32 values
    assert bench.reservoir_bytes(70_000, 1000, "float32") == 1000 * 8 + 70_001 * 8 + \
        3 * 70_000 * 4
    assert bench.reservoir_bytes(100, 1000, "float32") == 1000 * 6 + 101 * 8 + 3 * 100 * 4
    assert bench.read_bandwidth(1 << 20, repeats=2) > 0.1  # GB/s of a real 1 MB sum


@pytest.mark.parametrize("size", [1, 7, 1001])
def test_the_plain_sum_reads_every_element_of_every_chunk_each_pass(size):
    from rnnsim.kernels.cpu.bandwidth import read_sum

    buf = np.arange(1.0, size + 1)  # integers: the sums are exact in any order
    for threads in (1, 2):
        assert read_sum(buf, 3, threads) == 3 * size * (size + 1) / 2


def test_gemm_peak_is_the_best_rate_of_a_real_product(monkeypatch):
    products = scripted_seconds(monkeypatch, [0.004, 0.002, 0.003])
    # 2 n^3 flops in the best time: 2 * 64**3 / 0.002 s / 1e9 = 0.262144 GFLOP/s
    assert bench.gemm_peak("float32", n=64, repeats=3) == pytest.approx(0.262144, rel=1e-12)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((64, 64)) for _ in range(2))
    expected = a.astype(np.float32).astype(np.float64) @ b.astype(np.float32).astype(np.float64)
    assert len(products) == 3
    for product in products:
        assert product.dtype == np.float32
        np.testing.assert_allclose(product, expected, rtol=1e-4, atol=1e-4)


# --- what a newcomer hits (issue 16) ---------------------------------------------------------

def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return sorted({pool["num_threads"] for pool in threadpool_info()
                   if pool["user_api"] == "blas"})


@pytest.mark.parametrize("outside", [1, 2])
def test_gemm_peak_is_the_best_of_one_thread_and_the_kernels_threads(monkeypatch, outside):
    """`bench --quick` showed 209% of peak: on a busy machine the multithreaded product came
    out slower than one thread (and a BLAS limited to one thread measured one core against
    rnnsim's threads)."""
    from threadpoolctl import threadpool_limits

    seen, script = [], iter([4.0, 1.0, 2.0, 3.0, 5.0])
    monkeypatch.setattr(bench, "thread_count", lambda: 2)

    def timed(fn):
        seen.append(_blas_threads())
        return next(script)

    monkeypatch.setattr(bench, "_seconds", timed)
    with threadpool_limits(limits=outside, user_api="blas"):
        # 2 * 8**3 flops in the best round, 1 s on one thread: 1.024e-6 GFLOP/s
        assert bench.gemm_peak("float64", n=8, repeats=5) == pytest.approx(1.024e-6)
        assert _blas_threads() == [outside]  # the environment's limit is back afterwards
    assert seen == [[2], [1], [2], [1], [2]]


def test_bench_says_which_peers_are_missing_and_how_to_install_them(tiny, monkeypatch):
    """The torch column was all '-' without a word that torch is not installed."""
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(cli, ["bench", "--cells", "elman", "--dtype", "float32",
                                      "--repeats", "1"])
    assert result.exit_code == 0, result.output
    note = [line for line in result.output.splitlines() if line.startswith("not installed")]
    assert len(note) == 1 and "torch" in note[0] and "pip install 'rnnsim[bench]'" in note[0]
    assert "torch==2.13.0" in note[0]
    monkeypatch.setattr(bench, "missing_peers", lambda: [])
    result = CliRunner().invoke(cli, ["bench", "--cells", "elman", "--dtype", "float32",
                                      "--repeats", "1"])
    assert "not installed" not in result.output


def test_a_share_above_the_peak_is_explained():
    row = bench.Row("elman", "float64", 1, 3, 5, 30, us={"rnnsim": 0.05, "rnnsim_fast": 0.04})
    results = {"machine": {"cpu": "cpu", "cores": 2, "threads": 2}, "rows": [row],
               "gemm_peak_gflops": {"float64": 1.0}, "missing_peers": []}
    # 80 flops per step in 0.04 us: 2 GFLOP/s, 200% of 1
    text = bench.table(results)
    assert "200%" in text and "1 row(s) above 100% of the peak" in text
    assert "best of 1 and 2 BLAS threads" in text
    results["gemm_peak_gflops"]["float64"] = 4.0
    assert "above 100%" not in bench.table(results)


def test_bench_streaming_times_the_stepper_against_torch_and_onnxruntime(tiny, monkeypatch,
                                                                         tmp_path):
    from rnnsim import streambench

    monkeypatch.setattr(streambench, "STREAM_SHAPES", [(3, 5)])
    monkeypatch.setattr(streambench, "CALLS", 5)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "--cells", "gru", "--dtype", "float32",
                                      "--repeats", "1", "--quick", "--streaming", "--json",
                                      str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["streaming"]
    assert [(r["cell"], r["k"], r["p"]) for r in rows] == [
        ("elman", 3, 5), ("lstm", 3, 5), ("gru", 3, 5)]
    for row in rows:  # both peers are test dependencies
        assert set(row["us"]) == {"rnnsim", "torch", "onnxruntime", "rnnsim_onnx"}
        assert row["ratio"]["torch"] == row["us"]["torch"] / row["us"]["rnnsim"]
    assert "| lstm | 3 | 5 |" in result.output


def test_streaming_peers_are_checked_against_run(monkeypatch):
    from rnnsim import streambench

    monkeypatch.setattr(streambench, "torch_stepper",
                        lambda net, row, threads: lambda x: np.zeros((1, row.p)) + 1.0)
    with pytest.raises(AssertionError, match="torch disagrees on elman p = 4"):
        streambench.streaming(["elman"], [(2, 4)], rounds=1)
