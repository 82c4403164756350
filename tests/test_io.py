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
    assert leftovers and all(name.startswith(f".{path.name}.") for name in leftovers)
    # ...which the next write neither needs nor trips over.
    write_new(kind, path, lambda: None)
    assert snapshot(path) != before
    assert [p.name for p in tmp_path.iterdir() if p != path] == leftovers


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
    """The previous model folder waits under .name.old while the new one is renamed in: a
    crash there leaves no folder at `path`; load and the next save put the old one back."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    model = net.save(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    model.rename(tmp_path / ".model.old")  # the moment between the renames
    loaded = rnnsim.load(tmp_path / "model")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    np.testing.assert_array_equal(loaded.params["layers.0.U"], net.params["layers.0.U"])
    model.rename(tmp_path / ".model.old")
    net.save(tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_refuses_a_folder_that_holds_other_files(tmp_path):
    """`rnnsim run proj/config.yaml --save proj` must not replace a project folder."""
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [{"units": 3}]}})
    (tmp_path / "config.yaml").write_text("network: {}\n")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(rnnsim.InputError, match="not an rnnsim model folder.*notes.txt"):
        net.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
