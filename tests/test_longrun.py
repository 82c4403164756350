"""Runs streamed to disk in chunks: same bits as in memory, atomic files, resume after a kill,
and peak memory that does not grow with the number of steps."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import ConfigError, InputError, NonfiniteError, longrun
from rnnsim.cli import cli
from rnnsim.tasks import draw_input, drawn_input
from rnnsim.io import read_npz

RNNSIM = [sys.executable, "-c", "from rnnsim.cli import cli; cli()"]


def network(cell="gru", layers=2, head=None, **options):
    cfg = {"network": {"input_size": 3, "seed": 5, "layers": [
        {"cell": cell, "units": 6}] * layers, **options}}
    if head is not None:
        cfg["network"]["head"] = head
    return rnnsim.Network.from_config(cfg)


def assert_same_result(streamed, whole):
    np.testing.assert_array_equal(streamed.output, whole.output)
    if whole.y is None:
        assert streamed.y is None
    else:
        np.testing.assert_array_equal(streamed.y, whole.y)
    for a, b in zip(streamed.final + streamed.final_c, whole.final + whole.final_c):
        if b is None:
            assert a is None
        else:
            np.testing.assert_array_equal(a, b)


CASES = {
    "gru, per-step head, lengths": (network("gru", head={"name": "linear", "units": 2}),
                                    (41, 4, 3), [41, 17, 1, 0]),
    "lstm": (network("lstm"), (41, 3, 3), None),
    "elman, batch_first, last_step head": (
        network("elman", batch_first=True, head={"name": "last_step", "units": 2}),
        (3, 41, 3), [5, 41, 40]),
    "esn, one sequence": (network("esn", layers=1), (41, 3), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("chunk_steps", [1, 6, 41, 1000])
def test_streamed_run_equals_the_run_in_memory(tmp_path, case, chunk_steps):
    net, shape, lengths = CASES[case]
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    whole = net.run(x, lengths=lengths)
    streamed = net.run(x, out=tmp_path / "out.npy", lengths=lengths, chunk_steps=chunk_steps)
    assert isinstance(streamed.output, np.memmap)
    assert_same_result(streamed, whole)
    assert_same_result(longrun.completed(net, tmp_path / "out.npy"), whole)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), whole.output)
    left = sorted(p.name for p in tmp_path.iterdir())
    expected = ["out.npy", "out.state.npz"] + (["out.y.npy"] if whole.y is not None and
                                                net.head.per_step else [])
    assert left == sorted(expected)  # no partial folder, no lock file


def test_memmapped_input_and_a_state_to_continue_from(tmp_path):
    net = network("gru")
    x = np.random.default_rng(4).standard_normal((60, 2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    first = net.run(x[:20])
    whole = net.run(x[20:], first.state)
    x_disk = np.load(tmp_path / "x.npy", mmap_mode="r")
    streamed = net.run(x_disk[20:], first.state, out=tmp_path / "out.npy", chunk_steps=7)
    assert_same_result(streamed, whole)
    streamed = net.run(x_disk, out=tmp_path / "all.npy", chunk_steps=9)
    assert_same_result(streamed, net.run(x))


@pytest.mark.parametrize("batch_first", [False, True])
def test_drawn_input_chunks_are_the_numbers_of_one_draw(batch_first):
    net = network("elman", batch_first=batch_first)
    whole = draw_input(net, 50, 3, 7)
    source = drawn_input(net, 50, 3, 7)
    axis = 1 if batch_first else 0
    pieces = [source.read(a, b) for a, b in [(0, 1), (1, 20), (20, 50)]]
    np.testing.assert_array_equal(np.concatenate(pieces, axis=axis), whole)
    later = drawn_input(net, 50, 3, 7).read(33, 50)  # a resumed run starts in the middle
    np.testing.assert_array_equal(later, whole[:, 33:] if batch_first else whole[33:])


def interrupted(net, x, out, fail_at, **options):
    """Run to ``out`` and fail while chunk ``fail_at`` is being read, as a kill would."""
    class Failing(longrun._ArrayInput):
        def read(self, t0, t1):
            if t0 >= fail_at:
                raise KeyboardInterrupt
            return super().read(t0, t1)

    original = longrun._ArrayInput
    longrun._ArrayInput = Failing
    try:
        with pytest.raises(KeyboardInterrupt):
            net.run(x, out=out, **options)
    finally:
        longrun._ArrayInput = original


def test_an_interrupted_run_leaves_no_output_and_resumes_where_it_stopped(tmp_path,
                                                                          monkeypatch):
    net = network("lstm", head={"name": "linear", "units": 2})
    x = np.random.default_rng(5).standard_normal((100, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    interrupted(net, x, out, fail_at=50, chunk_steps=10)
    assert not out.exists() and not longrun.outputs(out)["y"].exists()
    progress = read_npz(longrun.partial_folder(out) / longrun.PROGRESS)
    assert json.loads(str(progress["meta"]))["chunks done"] == 5
    calls = []
    run = net.run
    monkeypatch.setattr(net, "run", lambda *a, **k: calls.append(1) or run(*a, **k))
    resumed = net.run(x, out=out, resume=True)
    assert len(calls) == 1 + 5  # this call, then the five chunks left
    assert_same_result(resumed, run(x))
    assert not longrun.partial_folder(out).exists()


def test_resume_refuses_another_config_weights_input_or_chunking(tmp_path):
    net = network("gru")
    x = np.random.default_rng(6).standard_normal((60, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    interrupted(net, x, out, fail_at=30, chunk_steps=10)
    other = rnnsim.Network.from_config(dict(net.config.dump(), network=dict(
        net.config.dump()["network"], seed=6)))
    with pytest.raises(InputError, match="config, weights differ"):
        other.run(x, out=out, resume=True)
    changed = x.copy()
    changed[3, 1, 2] += 1
    with pytest.raises(InputError, match="first 30 steps of the input differ"):
        net.run(changed, out=out, resume=True)
    with pytest.raises(InputError, match="chunk steps differ"):
        net.run(x, out=out, resume=True, chunk_steps=7)
    changed_tail = x.copy()
    changed_tail[40:] = 0  # steps not read yet may change: the result is that input's run
    assert_same_result(net.run(changed_tail, out=out, resume=True), net.run(changed_tail))


def test_resume_refuses_a_run_with_the_other_math_mode(tmp_path):
    """`--fast-math` on resuming an exact run would mix two modes in one output."""
    net = network("gru")
    x = np.random.default_rng(6).standard_normal((60, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    interrupted(net, x, out, fail_at=30, chunk_steps=10)
    net.fast_math = True
    with pytest.raises(InputError, match="fast math differ"):
        net.run(x, out=out, resume=True)
    net.fast_math = False
    assert_same_result(net.run(x, out=out, resume=True), net.run(x))


def test_a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / ".out.npy.lock").symlink_to(victim)
    with pytest.raises(InputError, match="lock file.*symlink"):
        network().run(np.zeros((4, 3)), out=tmp_path / "out.npy")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out.npy").exists()


def test_without_resume_an_interrupted_run_starts_over(tmp_path):
    net = network("elman")
    x = np.random.default_rng(7).standard_normal((30, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    interrupted(net, x, out, fail_at=10, chunk_steps=5)
    assert_same_result(net.run(x, out=out, chunk_steps=5), net.run(x))


def test_nonfinite_steps_and_input_indices_count_from_the_first_step(tmp_path):
    net = rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{
        "units": 1, "activation": "identity",
        "init": {"input": "ones", "recurrent": {"name": "constant", "value": 10.0}}}]}})
    x = np.ones((60, 1), np.float32)
    with pytest.raises(NonfiniteError) as caught:
        net.run(x)
    step = caught.value.fault.step
    with pytest.raises(NonfiniteError, match=f"at step {step}, unit 0") as streamed:
        net.run(x, out=tmp_path / "out.npy", chunk_steps=7)
    assert streamed.value.fault.step == step > 7
    assert not (tmp_path / "out.npy").exists()
    with pytest.warns(rnnsim.NonfiniteWarning, match=f"at step {step}") as warned:
        net.run(x, out=tmp_path / "out.npy", chunk_steps=7, nonfinite="warn")
    assert len([w for w in warned if issubclass(w.category, rnnsim.NonfiniteWarning)]) == 1
    x = np.zeros((60, 2, 3))
    x[45, 1, 2] = np.nan
    with pytest.raises(InputError, match=r"index \(45, 1, 2\) of shape \(60, 2, 3\) \(step 45"):
        network().run(x, out=tmp_path / "nan.npy", chunk_steps=7)


def test_streaming_refuses_what_chunks_cannot_do(tmp_path):
    x = np.zeros((10, 3), np.float32)
    both_ways = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
        {"cell": "gru", "units": 2, "bidirectional": True}]}})
    with pytest.raises(ConfigError, match=r"layers\[0\].bidirectional"):
        both_ways.run(x, out=tmp_path / "out.npy")
    noisy = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
        {"cell": "esn", "units": 4, "noise": 0.1}]}})
    with pytest.raises(ConfigError, match=r"layers\[0\].noise"):
        noisy.run(x, out=tmp_path / "out.npy")
    with pytest.raises(InputError, match="out.npz.*.npy"):
        network().run(x, out=tmp_path / "out.npz")
    with pytest.raises(InputError, match="chunk_steps=0"):
        network().run(x, out=tmp_path / "out.npy", chunk_steps=0)
    with pytest.raises(InputError, match="give out="):
        network().run(x, chunk_steps=5)


def test_a_second_run_to_the_same_file_is_refused(tmp_path):
    out = tmp_path / "out.npy"
    with open(tmp_path / ".out.npy.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another run is writing"):
            network().run(np.zeros((4, 3)), out=out)
    assert not out.exists()


def test_cli_streamed_output_equals_the_npz_output(tmp_path):
    runner = CliRunner()
    cfg = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    for args in (["--output", str(tmp_path / "a.npz")],
                 ["--output", str(tmp_path / "b.npy"), "--chunk-steps", "7"]):
        result = runner.invoke(cli, ["run", str(cfg), "-T", "50", *args])
        assert result.exit_code == 0, result.output
    assert "b.npy, " in result.output and "b.y.npy" in result.output
    npz = np.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), npz["output"])
    np.testing.assert_array_equal(np.load(tmp_path / "b.y.npy"), npz["y"])
    np.testing.assert_array_equal(np.load(tmp_path / "b.state.npz")["final_0_h"],
                                  npz["final_0_h"])
    result = runner.invoke(cli, ["run", str(cfg), "--resume"])
    assert result.exit_code == 2 and "--output PATH.npy" in result.output


KILL_CONFIG = """
network:
  input_size: 4
  seed: 3
  layers:
    - {cell: gru, units: 24}
  head: {name: linear, units: 3}
"""


def test_a_killed_cli_run_leaves_no_output_and_resumes_bit_for_bit(tmp_path):
    cfg = tmp_path / "kill.yaml"
    cfg.write_text(KILL_CONFIG)
    out = tmp_path / "big.npy"
    args = [*RNNSIM, "run", str(cfg), "-T", "400000", "-B", "2", "--output", str(out),
            "--chunk-steps", "4000"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    progress = longrun.partial_folder(out) / longrun.PROGRESS
    done = 0
    try:
        deadline = time.monotonic() + 120
        while done < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
            if progress.exists():
                done = json.loads(str(read_npz(progress)["meta"]))["chunks done"]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    assert done >= 3
    assert not out.exists() and not longrun.outputs(out)["y"].exists()
    resumed = subprocess.run(args + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    reference = CliRunner().invoke(cli, ["run", str(cfg), "-T", "400000", "-B", "2",
                                         "--output", str(tmp_path / "ref.npz")])
    assert reference.exit_code == 0, reference.output
    expected = np.load(tmp_path / "ref.npz")
    np.testing.assert_array_equal(np.load(out), expected["output"])
    np.testing.assert_array_equal(np.load(longrun.outputs(out)["y"]), expected["y"])
    np.testing.assert_array_equal(np.load(longrun.outputs(out)["state"])["final_0_h"],
                                  expected["final_0_h"])


PEAK_CONFIG = """
network:
  input_size: 1
  layers:
    - {cell: elman, units: 64}
"""

# The peak RSS of this process alone: /proc's VmHWM (ru_maxrss would also count the memory
# of the parent that forked it, recorded at exec).
PEAK_SCRIPT = """
import sys
from rnnsim.cli import cli
try:
    cli(sys.argv[1:])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
print(int(status[0]) * 1024)
"""


def peak_rss(cfg: Path, out: Path, timesteps: int) -> int:
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, "run", str(cfg), "-T", str(timesteps), "-B", "1",
         "--output", str(out), "--chunk-steps", "50000", "--json"],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.load(out, mmap_mode="r").shape == (timesteps, 1, 64)
    out.unlink()
    return int(result.stdout.split()[-1])


def test_peak_memory_of_a_long_run_does_not_grow_with_the_steps(tmp_path):
    cfg = tmp_path / "peak.yaml"
    cfg.write_text(PEAK_CONFIG)
    short, long = 200_000, 2_000_000
    small = peak_rss(cfg, tmp_path / "short.npy", short)
    large = peak_rss(cfg, tmp_path / "long.npy", long)
    output_growth = (long - short) * 64 * 4
    print(f"\npeak RSS: T = {short:,}: {small / 2**20:.1f} MiB, T = {long:,}: "
          f"{large / 2**20:.1f} MiB; the output grew by {output_growth / 2**20:.0f} MiB "
          "(T x B x p float32 written to disk in chunks of 50,000 steps)")
    assert large < small + 24 * 2**20


def test_a_full_disk_keeps_the_finished_chunks_for_resume(tmp_path, monkeypatch):
    import errno

    net = network("gru", head={"name": "linear", "units": 2})
    x = np.random.default_rng(8).standard_normal((50, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    write = longrun._pwrite
    calls = []

    def full(fd, data, position):
        calls.append(position)
        if len(calls) > 6:  # output and y of three chunks, then no space left
            raise OSError(errno.ENOSPC, "No space left on device")
        write(fd, data, position)

    monkeypatch.setattr(longrun, "_pwrite", full)
    with pytest.raises(InputError, match="No space left on device.*run again with resume"):
        net.run(x, out=out, chunk_steps=10)
    assert not out.exists()
    monkeypatch.setattr(longrun, "_pwrite", write)
    assert_same_result(net.run(x, out=out, resume=True), net.run(x))


def test_a_run_killed_while_renaming_its_files_completes_on_resume(tmp_path, monkeypatch):
    net = network("gru", head={"name": "linear", "units": 2})
    x = np.random.default_rng(9).standard_normal((30, 2, 3)).astype(np.float32)
    out = tmp_path / "out.npy"
    replace = os.replace

    def killed_before_output(src, dst):
        if Path(dst) == out:
            raise KeyboardInterrupt
        replace(src, dst)

    monkeypatch.setattr(longrun.os, "replace", killed_before_output)
    with pytest.raises(KeyboardInterrupt):
        net.run(x, out=out, chunk_steps=10)
    assert not out.exists() and longrun.outputs(out)["y"].exists()  # renamed before the kill
    monkeypatch.setattr(longrun.os, "replace", replace)
    assert_same_result(net.run(x, out=out, resume=True), net.run(x))
    assert not longrun.partial_folder(out).exists()
