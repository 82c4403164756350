"""Faults and hostile input, round two: files that lie about their sizes, ONNX attributes of
the wrong kind, damaged kernel caches, misbehaving plugins, and processes killed or left
waiting. Each case ends in a named error (exit 1 from the CLI), never a traceback, a hang or
lost data."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import ConfigError, InputError, NonfiniteError, ShapeError
from rnnsim.cli import cli

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

RNNSIM = [sys.executable, "-c", "from rnnsim.cli import cli; cli()"]


def rnn_model(attrs=None, p=4, k=2, initializers=None, nodes=()):
    """One ONNX RNN node (tanh by default) with random W and R; input X (T, B, k)."""
    rng = np.random.default_rng(1)
    weights = {"W": rng.standard_normal((1, p, k)).astype(np.float32) * 0.5,
               "R": rng.standard_normal((1, p, p)).astype(np.float32) * 0.5}
    weights.update(initializers or {})
    node = helper.make_node("RNN", ["X", "W", "R"], ["Y"], name="rnn", hidden_size=p,
                            **(attrs or {}))
    graph = helper.make_graph(
        [*nodes, node], "g",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, None, k])],
        [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, n) for n, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def x_feed(T=5, B=2, k=2):
    return {"X": np.random.default_rng(2).standard_normal((T, B, k)).astype(np.float32)}


# ---- ONNX: attributes, outputs, external data, constant shapes (items 5, 10, 11) ----------

@pytest.mark.parametrize("attrs,message", [
    ({"activations": ["LeakyRelu"], "activation_alpha": [float("nan")]},
     "activation_alpha must be a list of finite numbers"),
    ({"activations": ["LeakyRelu"], "activation_alpha": ["a", "b"]},
     "activation_alpha must be a list of finite numbers"),
    ({"activations": ["Affine"], "activation_beta": [float("inf")]},
     "activation_beta must be a list of finite numbers"),
    ({"clip": "big"}, "clip 'big' must be positive and finite"),
    ({"clip": float("nan")}, "clip nan must be positive and finite"),
    ({"clip": numpy_helper.from_array(np.ones(3, np.float32))}, "clip array.* must be positive"),
])
def test_onnx_attributes_of_the_wrong_kind_are_refused_at_load(attrs, message):
    with pytest.raises(ConfigError, match=message):
        rnnsim.from_onnx(rnn_model(attrs))


def test_a_diverging_onnx_node_raises_instead_of_writing_nan(tmp_path):
    """A huge weight overflows float32 to inf, then inf - inf gives NaN: named, not written."""
    big = {"W": np.full((1, 4, 2), 3e38, np.float32)}
    model = rnn_model({"activations": ["Affine"], "activation_alpha": [10.0]}, initializers=big)
    net = rnnsim.from_onnx(model)
    with pytest.raises(NonfiniteError, match=r"node 'rnn' \(RNN\) output 'Y' holds NaN or inf"):
        net.run(x_feed())
    assert not np.isfinite(net.run(x_feed(), check_finite=False)["Y"]).all()
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "feeds.npz", **x_feed())
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "m.onnx"), "--input",
                                      str(tmp_path / "feeds.npz"), "--output",
                                      str(tmp_path / "out.npz")])
    assert result.exit_code == 1 and "NaN or inf" in result.output, result.output
    assert not (tmp_path / "out.npz").exists()


def external_model(tmp_path, **entries):
    """A model whose W lives in weights.bin, its external_data entries then replaced."""
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    onnx.save(rnn_model(), folder / "m.onnx", save_as_external_data=True,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    model = onnx.load(folder / "m.onnx", load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == "W")
    for entry in tensor.external_data:
        if entry.key in entries:
            entry.value = entries.pop(entry.key)
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    onnx.save(model, folder / "hostile.onnx")
    return folder / "hostile.onnx"


@pytest.mark.parametrize("entries,message", [
    ({"location": "weights\0.bin"}, "NUL byte"),
    ({"offset": "ten"}, "must be whole numbers of bytes"),
    ({"length": "1.5"}, "must be whole numbers of bytes"),
    ({"length": "4"}, "its length is 4 bytes, but the tensor's shape and type need 32"),
])
def test_hostile_onnx_external_data_entries_are_named_errors(tmp_path, entries, message):
    path = external_model(tmp_path, **entries)
    with pytest.raises(InputError, match=message):
        rnnsim.from_onnx(path)
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_onnx_external_data_beyond_the_memory_is_refused_before_reading(tmp_path,
                                                                        monkeypatch):
    path = external_model(tmp_path)
    assert rnnsim.from_onnx(path).run(x_feed())["Y"].shape == (5, 1, 2, 4)
    monkeypatch.setenv("RNNSIM_MEMORY_LIMIT", "40")
    with pytest.raises(InputError, match="need about .* more than the 40 B available"):
        rnnsim.from_onnx(path)


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand"])
def test_onnx_shapes_asking_for_terabytes_allocate_nothing(op):
    shape = numpy_helper.from_array(np.array([10 ** 6, 10 ** 6], np.int64), "shape")
    const = helper.make_node("Constant", [], ["shape"], name="shape", value=shape)
    if op == "ConstantOfShape":
        node = helper.make_node(op, ["shape"], ["big"], name="big")
        inputs = {}
    else:
        node = helper.make_node(op, ["one", "shape"], ["big"], name="big")
        inputs = {"one": np.ones((1, 1), np.float32)}
    model = rnn_model(initializers=inputs, nodes=[const, node])
    model.graph.output.append(helper.make_tensor_value_info("big", onnx.TensorProto.FLOAT,
                                                            None))
    with pytest.raises(ConfigError, match=rf"node 'big' \({op}\) fails.*3.6 TiB"):
        rnnsim.from_onnx(model)


def test_a_damaged_zip_as_onnx_feeds_is_a_named_error(tmp_path):
    onnx.save(rnn_model(), tmp_path / "m.onnx")
    np.savez(tmp_path / "feeds.npz", **x_feed())
    data = bytearray((tmp_path / "feeds.npz").read_bytes())
    data[len(data) // 2:] = b"\0" * (len(data) - len(data) // 2)
    (tmp_path / "feeds.npz").write_bytes(bytes(data))
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "m.onnx"), "--input",
                                      str(tmp_path / "feeds.npz")])
    assert result.exit_code == 1 and "feeds.npz" in result.output, result.output
    assert "Traceback" not in result.output


# ---- weights files read with a size check (item 10) ----------------------------------------

def test_safetensors_beyond_the_memory_are_refused_before_reading(tmp_path, monkeypatch):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    from rnnsim.interop.torch import load_state_dict

    arrays = {"weight_ih_l0": np.ones((8, 3), np.float32), "bias": np.arange(5.0)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "w.safetensors"))
    loaded = load_state_dict(tmp_path / "w.safetensors")
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
    monkeypatch.setenv("RNNSIM_MEMORY_LIMIT", "100")
    with pytest.raises(InputError, match=r"weight_ih_l0 \(8, 3\): 96 B.*more than the 100 B"):
        load_state_dict(tmp_path / "w.safetensors")


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    import json

    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("header,data,message", [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "of 4"),
    ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "bytes 0 to 8"),
    ({"w": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "expected a dtype"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "whole numbers"),
    ({"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}, b"\0" * 8, "whole numbers"),
    ([1, 2], b"", "not a JSON object"),
])
def test_hostile_safetensors_headers_are_named_errors(tmp_path, header, data, message):
    from rnnsim.interop.torch import load_state_dict

    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    with pytest.raises(InputError, match=f"cannot be read as .safetensors: .*{message}"):
        load_state_dict(path)
    path.write_bytes((1 << 62).to_bytes(8, "little") + b"{}")
    with pytest.raises(InputError, match="a header of 4611686018427387904 bytes"):
        load_state_dict(path)


def test_the_memory_guard_sees_ulimit_v():
    """RLIMIT_AS below the machine's memory is what a run may use."""
    code = ("import resource; from rnnsim import guards; "
            "before = guards.available_bytes(); "
            "size = [int(l.split()[1]) * 1024 for l in open('/proc/self/status') "
            "        if l.startswith('VmSize:')][0]; "
            "resource.setrlimit(resource.RLIMIT_AS, (size + (300 << 20), resource.RLIM_INFINITY)); "
            "after = guards.available_bytes(); "
            "print(before > after, 0 < after <= 300 << 20)")
    env = {k: v for k, v in os.environ.items() if k != "RNNSIM_MEMORY_LIMIT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_a_streamed_run_of_2_63_steps_allocates_nothing(tmp_path):
    (tmp_path / "c.yaml").write_text("network: {input_size: 1, layers: [{units: 4}]}\n")
    result = subprocess.run(
        [*RNNSIM, "run", str(tmp_path / "c.yaml"), "-T", str(2 ** 63 - 1), "--output",
         str(tmp_path / "o.npy")], capture_output=True, text=True, timeout=120,
        env={**os.environ, "RNNSIM_MEMORY_LIMIT": "2G"})
    assert result.returncode == 1 and "EiB on disk" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# ---- plugins that end the process at import (item 12) --------------------------------------

@pytest.mark.parametrize("body,said", [
    ("import sys\nsys.exit(3)\n", r"called sys.exit\(3\)"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("class Escape(BaseException):\n    pass\nraise Escape('gone')\n", "Escape: gone"),
])
def test_a_plugin_ending_the_process_at_import_is_a_named_error(tmp_path, body, said):
    """An installed package (a real entry point, found by importlib.metadata) whose module
    exits, or raises KeyboardInterrupt or a BaseException, while rnnsim imports it."""
    (tmp_path / "rnnsim_rude.py").write_text(body)
    info = tmp_path / "rnnsim_rude-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnnsim-rude\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[rnnsim]\nrude = rnnsim_rude\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path),
                                                        os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([*RNNSIM, "plugins"], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "plugin 'rude' (package rnnsim-rude 1.0" in result.stderr
    assert re.search(said, result.stderr) and "Traceback" not in result.stderr
    skipped = subprocess.run([*RNNSIM, "--skip-broken-plugins", "plugins"], capture_output=True,
                             text=True, env=env, timeout=120)
    assert skipped.returncode == 0 and "tanh" in skipped.stdout, skipped.stderr


# ---- the kernel cache: damaged entries, a folder others may write in (items 11, 13) ---------

RUN_KERNEL = ("import numpy as np, rnnsim; net = rnnsim.Network.from_config({'network': "
              "{'input_size': 2, 'seed': 4, 'layers': [{'units': 3}]}}); "
              "print(repr(float(net.run(np.ones((6, 2))).output.sum())))")


def run_kernel(cache: Path, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "RNNSIM_CACHE_DIR": str(cache)}
    done = subprocess.run([sys.executable, "-W", "always", "-c", RUN_KERNEL],
                          capture_output=True, text=True, env=env, timeout=300)
    if check:
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("warm") / "cache"
    return cache, run_kernel(cache).stdout


def damage(cache: Path, kind: str) -> list[Path]:
    pattern = {"source": "*.py", "index": "__pycache__/*.nbi",
               "empty data": "__pycache__/*.nbc"}[kind]
    files = sorted(cache.glob(pattern))
    for path in files:
        if kind == "source":
            path.write_bytes(b"\xff\xfe not UTF-8 \xc3\x28" + path.read_bytes()[:50])
        elif kind == "empty data":
            path.write_bytes(b"")
        else:
            path.write_bytes(b"\x80\x04 damaged" + os.urandom(64))
    return files


@pytest.mark.parametrize("kind", ["source", "index", "empty data"])
def test_a_damaged_kernel_cache_entry_is_discarded_and_compiled_again(
        warm_cache, tmp_path, kind):
    import shutil

    warm, expected = warm_cache
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    cache.chmod(0o700)
    assert damage(cache, kind)
    damaged = run_kernel(cache)
    assert damaged.stdout == expected
    if kind != "source":  # a damaged source is rewritten; numba then ignores the stale index
        assert "is damaged" in damaged.stderr and "compiled again" in damaged.stderr
    if kind == "index":  # the entry was written again, whole
        again = run_kernel(cache)
        assert again.stdout == expected and "damaged" not in again.stderr, again.stderr


def test_the_cache_folder_is_private_and_one_others_may_write_is_refused(tmp_path):
    cache = tmp_path / "new" / "cache"
    assert run_kernel(cache).returncode == 0
    assert cache.stat().st_mode & 0o777 == 0o700
    cache.chmod(0o777)
    refused = run_kernel(cache, check=False)
    assert refused.returncode == 1 and "CacheError" in refused.stderr, refused.stderr
    assert "may be written by every user" in refused.stderr and "chmod 700" in refused.stderr
    result = subprocess.run([*RNNSIM, "run", "-T", "3", str(Path(__file__).parents[1] / "configs"
                                                              / "quickstart.yaml")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RNNSIM_CACHE_DIR": str(cache)})
    assert result.returncode == 1 and "may be written by every user" in result.stderr
    assert "Traceback" not in result.stderr


# ---- sweeps: workers die with their parent; a scheduler that never answers (items 8, 9) ----

SWEEP_CONFIG = """
network:
  input_size: 1
  seed: 3
  layers: [{cell: esn, units: 8}]
run: {timesteps: 50}
sweep:
  grid:
    network.layers[0].units: "4:403:58"
  metrics: [spectral_radius]
"""


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            pass
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_workers_of_a_killed_sweep_end_with_it(tmp_path):
    """SIGKILL to the sweep's process while its workers start: none is left waiting."""
    (tmp_path / "sweep.yaml").write_text(SWEEP_CONFIG)
    main = subprocess.Popen([*RNNSIM, "sweep", str(tmp_path / "sweep.yaml"), "-j", "2", "-q",
                             "-o", str(tmp_path / "t.csv")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(spawned) < 3 and main.poll() is None and time.monotonic() < deadline:
            spawned |= children(main.pid)  # two workers and the resource tracker
            time.sleep(0.02)
    finally:
        main.kill()
        main.wait()
    assert len(spawned) >= 3, "the sweep never started its workers"
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in spawned) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in spawned if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "processes outlived the sweep they worked for"


@pytest.fixture
def fake_scheduler():
    """A TCP server that accepts and then stays silent, or sends bytes that are not Dask's."""
    import socket
    import threading

    servers = []

    def start(mode):
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                servers.append(conn)
                if mode == "garbage":
                    conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"\xff" * 4096)

        threading.Thread(target=serve, daemon=True).start()
        return f"tcp://127.0.0.1:{server.getsockname()[1]}"

    yield start
    for s in servers:
        s.close()


@pytest.mark.parametrize("mode", ["silent", "garbage"])
def test_a_scheduler_that_is_no_dask_scheduler_is_a_named_error_in_time(tmp_path,
                                                                        fake_scheduler, mode):
    pytest.importorskip("distributed")
    (tmp_path / "sweep.yaml").write_text(SWEEP_CONFIG)
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    start = time.monotonic()
    result = subprocess.run([*RNNSIM, "sweep", str(tmp_path / "sweep.yaml"), "-q",
                             "--scheduler", fake_scheduler(mode), "-o", str(tmp_path / "t.csv")],
                            capture_output=True, text=True, env=env, timeout=90)
    assert result.returncode == 1, result.stderr
    assert "cannot reach the Dask scheduler" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert time.monotonic() - start < 60
    assert not (tmp_path / "t.csv").exists()


# ---- outputs that cannot be written (item 11) ----------------------------------------------

def test_cli_output_onto_a_folder_or_a_full_disk_is_a_named_error(tmp_path, monkeypatch):
    config = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    (tmp_path / "out.npz").mkdir()
    runner = CliRunner()
    folder = runner.invoke(cli, ["run", config, "-T", "3", "--output", str(tmp_path / "out.npz")])
    assert folder.exit_code == 1 and "it is a folder" in folder.output, folder.output
    assert runner.invoke(cli, ["run", config, "-T", "3", "--output",
                               str(tmp_path / "ok.npz")]).exit_code == 0
    before = (tmp_path / "ok.npz").read_bytes()

    def full(*args, **kwds):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    disk = runner.invoke(cli, ["run", config, "-T", "3", "--output", str(tmp_path / "ok.npz")])
    assert disk.exit_code == 1 and "No space left on device" in disk.output, disk.output
    assert "unchanged" in disk.output and (tmp_path / "ok.npz").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz", "out.npz"]
