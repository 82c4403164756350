"""Writers stopped part-way: a writer that fails after part of its bytes, and a process killed
with SIGKILL while writing, both leave the previous file (or model folder) as it was."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnsim
from rnnsim import io as rio

import atomic_writers
from atomic_writers import KINDS, snapshot, write_new, write_old

HERE = Path(__file__).resolve().parent


class Fault(Exception):
    pass


def fail():
    raise Fault("the disk filled up")


@pytest.mark.parametrize("kind", KINDS)
def test_a_writer_failing_part_way_leaves_the_old_file(kind, tmp_path):
    path = tmp_path / KINDS[kind]
    write_old(kind, path)
    before = snapshot(path)
    with pytest.raises(Fault):
        write_new(kind, path, fail)
    assert snapshot(path) == before
    assert sorted(tmp_path.iterdir()) == [path]  # the temporary file or folder is gone


@pytest.mark.parametrize("kind", KINDS)
def test_a_writer_killed_part_way_leaves_the_old_file(kind, tmp_path):
    path = tmp_path / KINDS[kind]
    write_old(kind, path)
    before = snapshot(path)
    child = subprocess.Popen([sys.executable, str(HERE / "atomic_writers.py"), kind, str(path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        if line != "writing\n":
            child.wait(timeout=60)
            pytest.fail(f"the writer never reached its fault: {line!r} {child.stderr.read()}")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
        child.stderr.close()
    assert snapshot(path) == before
    # What the killed writer could not clean up is a hidden temporary beside the file...
    leftovers = [p.name for p in tmp_path.iterdir() if p != path]
    assert leftovers and all(name.startswith(f".{path.name}.rnnsim-") for name in leftovers)
    # ...which the next write removes, since no living writer holds it.
    write_new(kind, path, lambda: None)
    assert snapshot(path) != before
    assert list(tmp_path.iterdir()) == [path]


def test_the_old_content_reads_back_after_a_failed_write(tmp_path):
    """Not only the same bytes: the arrays and the model still load."""
    write_old("write_npz", tmp_path / "out.npz")
    with pytest.raises(Fault):
        write_new("write_npz", tmp_path / "out.npz", fail)
    np.testing.assert_array_equal(rio.read_npz(tmp_path / "out.npz")["x"], np.arange(100.0))
    write_old("model", tmp_path / "model")
    with pytest.raises(Fault):
        write_new("model", tmp_path / "model", fail)
    loaded, saved = rnnsim.load(tmp_path / "model"), atomic_writers.network(1)
    assert loaded.params.keys() == saved.params.keys()
    for name, value in saved.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)


def test_write_atomic_with_no_old_file_leaves_nothing(tmp_path):
    with pytest.raises(Fault):
        write_new("write_atomic", tmp_path / "out.bin", fail)
    assert list(tmp_path.iterdir()) == []


def test_a_completed_write_replaces_the_file_with_a_plain_mode(tmp_path):
    path = tmp_path / "out.bin"
    write_old("write_atomic", path)
    write_new("write_atomic", path, lambda: None)
    assert path.read_bytes() == atomic_writers.NEW
    assert path.stat().st_mode & 0o777 == rio.default_mode()
    assert list(tmp_path.iterdir()) == [path]


def test_a_save_cut_between_its_two_renames_is_recovered(tmp_path):
    """Where the system cannot swap two folders in one step, the previous model folder waits
    under .name.rnnsim-old while the new one is renamed in: a crash there leaves no folder at
    `path`; load and the next save put the old one back."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    model = net.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    model.rename(tmp_path / ".model.rnnsim-old")  # the moment between the renames
    loaded = rnnsim.load(tmp_path / "model")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    np.testing.assert_array_equal(loaded.params["layers.0.U"], net.params["layers.0.U"])
    model.rename(tmp_path / ".model.rnnsim-old")
    net.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_folder_the_writer_did_not_make_is_never_removed(tmp_path):
    """A user's own '.model.old' (the name the old writer used) survives saves and loads."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    (tmp_path / ".model.old").mkdir()
    (tmp_path / ".model.old" / "mine.txt").write_text("mine")
    (tmp_path / ".model.tmp").write_text("mine too")
    net.save(tmp_path / "model")
    net.save(tmp_path / "model")
    rnnsim.load(tmp_path / "model")
    assert (tmp_path / ".model.old" / "mine.txt").read_text() == "mine"
    assert (tmp_path / ".model.tmp").read_text() == "mine too"


def test_save_swaps_the_folder_in_one_step(tmp_path, monkeypatch):
    """With RENAME_EXCHANGE there is no moment without a model at `path`: the fallback's
    first rename (path -> .path.rnnsim-old) never runs."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    net.save(tmp_path / "model")
    real = os.replace

    def replace(src, dst):
        assert Path(src) != tmp_path / "model", "the old folder was renamed away"
        real(src, dst)

    monkeypatch.setattr(rio.os, "replace", replace)
    net.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("where", ["project", "cwd", "parent of cwd", "root", "file"])
def test_save_refuses_folders_it_would_sweep_away(where, tmp_path, monkeypatch):
    """`rnnsim run proj/config.yaml --save proj` must not replace a project folder; `--save .`
    must not move the current folder away; `--save /` is no traceback."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "config.yaml").write_text("network: {}\n")
    (proj / "notes.txt").write_text("mine")
    monkeypatch.chdir(proj)
    if where == "cwd":  # a model folder, which save would otherwise replace
        monkeypatch.chdir(net.save(tmp_path / "model"))
    target = {"project": proj, "cwd": ".", "parent of cwd": "..", "root": "/",
              "file": "notes.txt"}[where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(rnnsim.OutputError, match="notes.txt|current folder|root|file is in"):
        net.save(target)
    assert (proj / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_cli_save_into_a_project_folder_is_a_clear_error(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from rnnsim.cli import cli

    (tmp_path / "config.yaml").write_text(
        "network: {input_size: 2, layers: [{units: 3}]}\n")
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    for target in (str(tmp_path), "."):
        result = CliRunner().invoke(cli, ["run", "config.yaml", "-T", "3", "--save", target])
        assert result.exit_code == 1, result.output
        assert "notes.txt" in result.output or "current folder" in result.output
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notes.txt"]


@pytest.mark.parametrize("fault", ["folder in the way", "read-only folder", "disk full"])
def test_write_failures_are_output_errors_and_keep_the_old_file(fault, tmp_path, monkeypatch):
    path = tmp_path / "out.npz"
    rio.write_npz(path, {"x": np.arange(3.0)})
    before = path.read_bytes()
    if fault == "folder in the way":
        path = tmp_path / "dir.npz"
        path.mkdir()
    elif fault == "read-only folder":  # as the system answers (root would get through chmod)
        def mkstemp(**kwds):
            raise PermissionError(13, "Permission denied", kwds["dir"])

        monkeypatch.setattr(rio.tempfile, "mkstemp", mkstemp)
    else:
        def savez(fh, **arrays):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(rnnsim.OutputError, match=r"cannot .*(folder|Permission|space)"):
        rio.write_npz(path, {"x": np.arange(5.0)})
    assert (tmp_path / "out.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) in (["out.npz"], ["dir.npz", "out.npz"])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_folder_that_refuses_new_files_is_an_output_error_not_a_loop(kind):
    """In /proc every create fails with ENOENT (even as root): the writer must give up."""
    call = ("rio.write_atomic(Path('/proc/rnnsim-out.bin'), lambda tmp: tmp.write_bytes(b'x'))"
            if kind == "file" else
            "rio.write_folder_atomic(Path('/proc/rnnsim-model'), lambda tmp: None)")
    code = ("from pathlib import Path\nfrom rnnsim import io as rio, OutputError\n"
            f"try:\n    {call}\nexcept OutputError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert "cannot write '/proc/rnnsim-" in done.stdout, done.stderr
