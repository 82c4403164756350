"""Progress: callbacks and tqdm-compatible hooks in the API, a bar on a terminal's stderr in
the CLI (checked on a pseudo-terminal), nothing when stderr is piped or under --quiet."""
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnsim import Network, dynamics
from rnnsim.progress import Bar, Stages, duration, reporter

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")


class FakeTqdm:
    """What rnnsim uses of a tqdm bar: ``total`` and ``update(n)``."""

    def __init__(self):
        self.total, self.n, self.updates = None, 0, 0

    def update(self, n):
        self.n += n
        self.updates += 1


def test_reporter_takes_a_callable_or_a_tqdm_like_bar():
    assert reporter(None) is None
    def callback(done, total):
        pass

    assert reporter(callback) is callback
    bar = FakeTqdm()
    report = reporter(bar)
    for done in (0, 10, 10, 25):
        report(done, 25)
    assert (bar.total, bar.n, bar.updates) == (25, 25, 2)
    with pytest.raises(TypeError, match="progress="):
        reporter(42)


def test_stages_share_one_total():
    calls = []
    stages = Stages(lambda done, total: calls.append((done, total)), 30)
    first, second = stages.stage(10), stages.stage(20)
    first(10)
    second(5)
    second(20)
    assert calls == [(0, 30), (10, 30), (10, 30), (15, 30), (30, 30)]
    assert Stages(None, 5).stage(5) is None


def test_the_bar_shows_steps_rate_and_time_left():
    stream = io.StringIO()
    bar = Bar("run", stream=stream, delay=3600)  # never drawn by its thread
    bar(250, 1000)
    line = bar.line()
    assert line.startswith("run  250/1,000 steps   25%  ")
    assert "steps/s" in line and line.endswith(" left")
    bar(0, 1000)
    assert bar.line() == "run  0/1,000 steps    0%  0:00 elapsed"
    bar.close()
    assert stream.getvalue() == ""  # never shown, so nothing to end
    assert duration(59.6) == "1:00" and duration(3725) == "1:02:05"


def test_a_streamed_run_reports_every_chunk(tmp_path):
    net = Network.from_config(QUICKSTART)
    x = np.random.default_rng(1).standard_normal((100, 2, 8)).astype(np.float32)
    calls = []
    net.run(x, out=tmp_path / "out.npy", chunk_steps=30,
            progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 100), (25, 100), (50, 100), (75, 100), (100, 100)]
    bar = FakeTqdm()
    np.testing.assert_array_equal(net.run(x, progress=bar).output, np.load(tmp_path / "out.npy"))
    assert (bar.total, bar.n) == (100, 100)


def test_analyze_reports_monotone_progress_to_its_total():
    net = Network.from_config(QUICKSTART)
    x = np.random.default_rng(2).standard_normal((150, 8))
    calls = []
    plain = dynamics.analyze(net, x, warmup=50, starts=4, horizon=20)
    shown = dynamics.analyze(net, x, warmup=50, starts=4, horizon=20,
                             progress=lambda done, total: calls.append((done, total)))
    assert shown == plain
    total = 150 + dynamics.FIXED_POINT_ITERATIONS + 20
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    # the Lyapunov steps report at every re-orthonormalisation at least
    assert len(calls) > 150 // dynamics.QR_EVERY_MAX + dynamics.FIXED_POINT_ITERATIONS


def cli(args, tmp_path, terminal: bool):
    """Run ``python -m rnnsim ARGS``; stderr on a pseudo-terminal or a pipe. Returns
    (exit code, stdout, stderr)."""
    env = dict(os.environ, RNNSIM_PROGRESS_DELAY="0", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "rnnsim", *args]
    if not terminal:
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=follower, stdin=subprocess.DEVNULL) as child:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout = child.stdout.read().decode()
        code = child.wait()
    os.close(leader)
    return code, stdout, b"".join(chunks).decode()


RUN = ["run", QUICKSTART, "-T", "4000", "--output", "out.npy", "--chunk-steps", "500"]


def test_run_shows_progress_on_a_terminal(tmp_path):
    code, stdout, stderr = cli(RUN, tmp_path, terminal=True)
    assert code == 0, stdout + stderr
    assert "\rrun  4,000/4,000 steps  100%  " in stderr
    assert "steps/s" in stderr and stderr.endswith("\r\n")  # the line ends with the run
    assert "steps/s" not in stdout and "wrote" in stdout


def test_no_progress_when_piped_or_quiet(tmp_path):
    code, stdout, stderr = cli(RUN, tmp_path, terminal=False)
    assert code == 0, stderr
    assert stderr == "" and "steps/s" not in stdout
    code, stdout, stderr = cli(RUN + ["--quiet"], tmp_path, terminal=True)
    assert code == 0, stdout + stderr
    assert stderr == ""


def test_analyze_shows_progress_on_a_terminal(tmp_path):
    args = ["analyze", QUICKSTART, "--steps", "200", "--starts", "2", "--horizon", "10"]
    code, stdout, stderr = cli(args, tmp_path, terminal=True)
    assert code == 0, stdout + stderr
    assert "\ranalyze  " in stderr and "steps  100%" in stderr
    assert "lyapunov" in stdout.lower()
    code, _, stderr = cli(args, tmp_path, terminal=False)
    assert code == 0 and stderr == ""


def test_a_line_printed_above_the_bar_erases_it_first():
    stream = io.StringIO()
    bar = Bar("bench", unit="rows", stream=stream, delay=3600)
    bar(1, 4)
    bar._draw()
    drawn = stream.getvalue()
    assert drawn.startswith("\rbench  1/4 rows   25%")
    bar.above(lambda: stream.write("a row\n"))
    assert stream.getvalue() == drawn + "\r" + " " * (len(drawn) - 1) + "\r" + "a row\n"
    bar.close()  # drawn again below the row, and the line ended
    assert stream.getvalue().endswith("\n")
    assert stream.getvalue().split("a row\n")[1].startswith("\rbench  1/4 rows")


def test_fit_shows_the_time_elapsed_on_a_terminal(tmp_path):
    args = ["fit", str(ROOT / "configs" / "mackey_glass.yaml"), "--task", "mackey-glass",
            "-T", "600", "--washout", "50"]
    code, stdout, stderr = cli(args, tmp_path, terminal=True)
    assert code == 0, stdout + stderr
    assert "\rfit  0:0" in stderr and " elapsed" in stderr and "NRMSE" in stdout
    code, _, stderr = cli(args + ["-q"], tmp_path, terminal=True)
    assert code == 0 and stderr == ""


def test_sweep_shows_progress_on_a_terminal(tmp_path):
    args = ["sweep", str(ROOT / "configs" / "sweep_reservoir.yaml"), "-j", "1",
            "--grid", "network.layers[0].leak_rate=0.3,0.6,1.0", "--metric", "nrmse",
            "--output", "table.csv"]  # the kernels' first run takes longer than a redraw
    code, stdout, stderr = cli(args, tmp_path, terminal=True)
    assert code == 0, stdout + stderr
    assert "\rsweep  3/3 points  100%" in stderr and stderr.endswith("\r\n")
    assert "wrote table.csv" in stdout
    code, _, stderr = cli(args[:-1] + ["again.csv"], tmp_path, terminal=False)
    assert code == 0 and stderr == ""
