"""Throw hostile input and faults at the `rnnsim` command and count how each case ends.

    python benchmarks/hostile.py [--list] [--only WORD ...] [--timeout SECONDS]

Each case runs `rnnsim` (or a short Python program) in a fresh process in a folder of its own
and is counted as one of

- ``clear error``: exit 1 (2 for misuse of the options), a one-paragraph message, no traceback;
- ``ran``: exit 0 where the case is meant to run (a damaged kernel cache, recompiled);
- ``traceback``: a Python traceback, or an exit status other than 0, 1 and 2;
- ``wrong result``: exit 0 where the case should have failed (a NaN output written, a
  mixed-mode resume accepted);
- ``hang``: still running after ``--timeout`` seconds (then killed);

and, separately, ``data lost`` when a file the case keeps beside it (a user's notes, the
previous model, the lock file's symlink target) changed or vanished. The cases follow the
numbered items of issue 20; `docs/reliability.md` quotes the counts. Exits 1 unless every case
ends as a clear error or a run and no data is lost.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RNNSIM = [sys.executable, "-c", "from rnnsim.cli import cli; cli()"]
CONFIG = "network: {input_size: 2, seed: 1, layers: [{cell: gru, units: 8}]}\n"
LAUGHS = "".join(f"{n}: &{n} [{', '.join([f'*{p}' if p else '1'] * 9)}]\n"
                 for p, n in zip([None, *"abcdefg"], "abcdefgh"))


@dataclass
class Spec:
    """What a case runs: ``args`` in ``folder`` with ``env``; ``keep`` files that must
    survive unchanged; ``expect`` 'error' or 'ok'; ``check`` a last look at the folder
    (returns a problem, or None)."""

    args: list
    env: dict = field(default_factory=dict)
    keep: list = field(default_factory=list)
    expect: str = "error"
    check: Callable[[], str | None] | None = None


CASES: dict[str, tuple[int, Callable[[Path], Spec]]] = {}


def case(item: int, name: str):
    def add(setup):
        CASES[name] = (item, setup)
        return setup
    return add


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def project(folder: Path) -> Path:
    proj = folder / "proj"
    write(proj / "config.yaml", CONFIG)
    write(proj / "notes.txt", "my notes")
    return proj


# ---- 1-4: data loss and mixed results ------------------------------------------------------

@case(1, "--save into the project folder that holds the config")
def _(f):
    proj = project(f)
    return Spec([*RNNSIM, "run", proj / "config.yaml", "-T", "3", "--save", proj],
                keep=[proj / "notes.txt", proj / "config.yaml"])


@case(1, "--save . in a model folder")
def _(f):
    model = f / "model"
    subprocess.run([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "2", "--save", model],
                   check=True, capture_output=True)
    return Spec([*RNNSIM, "run", f / "c.yaml", "-T", "3", "--save", "."], env={"CWD": model},
                keep=[model / "weights.npz"])


for _target in ("/", "..", "notes.txt"):
    @case(1, f"--save {_target}")
    def _(f, target=_target):
        proj = project(f)
        return Spec([*RNNSIM, "run", "config.yaml", "-T", "3", "--save", target],
                    env={"CWD": proj}, keep=[proj / "notes.txt"])


@case(2, "SIGKILL while a model is saved, then load and save")
def _(f):
    write(f / "kill_save.py", KILL_SAVE)
    return Spec([sys.executable, f / "kill_save.py", ROOT / "tests"], expect="ok")


KILL_SAVE = """
import os, signal, subprocess, sys
from pathlib import Path
import rnnsim
tests = Path(sys.argv[1]); model = Path("model")
sys.path.insert(0, str(tests)); import atomic_writers
atomic_writers.write_old("model", model)
before = atomic_writers.snapshot(model)
child = subprocess.Popen([sys.executable, str(tests / "atomic_writers.py"), "model", str(model)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert child.stdout.readline() == "writing\\n"
os.kill(child.pid, signal.SIGKILL); child.wait()
assert atomic_writers.snapshot(model) == before, "the old model changed"
rnnsim.load(model)
atomic_writers.network(3).save(model)
left = sorted(p.name for p in Path(".").iterdir() if p.name.startswith(".model"))
assert not left, left
"""


@case(3, "a symlink planted as the lock file")
def _(f):
    victim = write(f / "victim.txt", "precious")
    (f / ".out.npy.lock").symlink_to(victim)
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "50", "--output",
                 f / "out.npy"], keep=[victim])


@case(4, "resume an exact run with --fast-math")
def _(f):
    write(f / "resume.py", RESUME_FAST)
    return Spec([sys.executable, f / "resume.py"], expect="ok")


RESUME_FAST = """
import numpy as np, pytest, rnnsim
from rnnsim import longrun
net = rnnsim.Network.from_config({"network": {"input_size": 2, "seed": 1,
                                  "layers": [{"cell": "gru", "units": 8}]}})
x = np.random.default_rng(0).standard_normal((60, 2, 2)).astype(np.float32)
class Failing(longrun._ArrayInput):
    def read(self, t0, t1):
        if t0 >= 30:
            raise KeyboardInterrupt
        return super().read(t0, t1)
real, longrun._ArrayInput = longrun._ArrayInput, Failing
try:
    net.run(x, out="out.npy", chunk_steps=10)
except KeyboardInterrupt:
    pass
longrun._ArrayInput = real
net.fast_math = True
with pytest.raises(rnnsim.InputError, match="fast math differ"):
    net.run(x, out="out.npy", resume=True)
"""


# ---- 5-7: ONNX NaN, YAML duplicates and bombs ----------------------------------------------

def onnx_model(folder: Path, attrs=None, weights=None, nodes=(), outputs=(),
               external=False) -> Path:
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(1)
    arrays = {"W": rng.standard_normal((1, 4, 2)).astype(np.float32) * 0.5,
              "R": rng.standard_normal((1, 4, 4)).astype(np.float32) * 0.5, **(weights or {})}
    node = helper.make_node("RNN", ["X", "W", "R"], ["Y"], name="rnn", hidden_size=4,
                            **(attrs or {}))
    graph = helper.make_graph(
        [*nodes, node], "g",
        [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, None, 2])],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
         for n in ("Y", *outputs)],
        [numpy_helper.from_array(v, n) for n, v in arrays.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / "m.onnx", save_as_external_data=external,
              all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    np.savez(folder / "feeds.npz",
             X=np.random.default_rng(2).standard_normal((5, 2, 2)).astype(np.float32))
    return folder / "m.onnx"


def onnx_run(f: Path, model: Path, **env) -> Spec:
    return Spec([*RNNSIM, "run", model, "--input", f / "feeds.npz", "--output", f / "y.npz"],
                env=env, check=lambda: "an output was written" if (f / "y.npz").exists()
                else None)


for _name, _attrs in {
        "NaN activation_alpha": {"activations": ["LeakyRelu"], "activation_alpha": [np.nan]},
        "activation_alpha as strings": {"activations": ["LeakyRelu"],
                                        "activation_alpha": ["a"]},
        "inf activation_beta": {"activations": ["Affine"], "activation_beta": [np.inf]},
        "clip as a string": {"clip": "big"},
        "clip NaN": {"clip": np.nan}}.items():
    @case(5 if "NaN" in _name or "inf" in _name else 11, f"ONNX {_name}")
    def _(f, attrs=_attrs):
        return onnx_run(f, onnx_model(f, attrs))


@case(11, "ONNX clip as a tensor")
def _(f):
    from onnx import numpy_helper
    return onnx_run(f, onnx_model(f, {"clip": numpy_helper.from_array(np.ones(3, np.float32))}))


@case(5, "ONNX weights that overflow to NaN")
def _(f):
    return onnx_run(f, onnx_model(f, {"activations": ["Affine"], "activation_alpha": [10.0]},
                                  {"W": np.full((1, 4, 2), 3e38, np.float32)}))


@case(6, "a YAML key given twice")
def _(f):
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", "network:\n  input_size: 2\n"
                                            "  layers: [{units: 3}]\n  input_size: 3\n")])


@case(7, "billion laughs (9^8 values)")
def _(f):
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", LAUGHS + "network: *h\n")])


@case(7, "laughs (9^5 values) in a key that fails validation")
def _(f):
    text = LAUGHS.rsplit("f:", 1)[0] + "network: {input_size: *e, layers: *d}\n"
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", text)])


@case(7, "a YAML alias inside the value it refers to")
def _(f):
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", "network: &a {layers: [*a]}\n")])


@case(7, "YAML aliases nesting 5,400 levels deep")
def _(f):
    text = "".join(f"l{i}: &l{i} " + "[" * 90 + (f"*l{i - 1}" if i else "1") + "]" * 90 + "\n"
                   for i in range(60))
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", text + "network: *l59\n")])


@case(7, "a 100 MB YAML")
def _(f):
    path = f / "big.yaml"
    with open(path, "w") as fh:
        fh.write(CONFIG)
        fh.write(("# " + "x" * 1022 + "\n") * (100 << 10))
    return Spec([*RNNSIM, "run", path, "-T", "3"])


# ---- 8-10: hangs and memory ----------------------------------------------------------------

SWEEP = """network: {input_size: 1, seed: 3, layers: [{cell: esn, units: 8}]}
run: {timesteps: 50}
sweep:
  grid:
    network.layers[0].units: "4:403:58"
  metrics: [spectral_radius]
"""


@case(8, "SIGKILL to a sweep while its workers start")
def _(f):
    write(f / "sweep.yaml", SWEEP)
    write(f / "kill_sweep.py", KILL_SWEEP)
    return Spec([sys.executable, f / "kill_sweep.py"], expect="ok")


KILL_SWEEP = """
import subprocess, sys, time
from pathlib import Path
def children(pid):
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return out
def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False
main = subprocess.Popen([sys.executable, "-c", "from rnnsim.cli import cli; cli()", "sweep",
                         "sweep.yaml", "-j", "2", "-q", "-o", "t.csv"])
seen = set()
while len(seen) < 3 and main.poll() is None:
    seen |= children(main.pid)
    time.sleep(0.02)
main.kill(); main.wait()
deadline = time.monotonic() + 30
while any(alive(p) for p in seen) and time.monotonic() < deadline:
    time.sleep(0.1)
left = [p for p in seen if alive(p)]
assert len(seen) >= 3 and not left, (seen, left)
"""


def fake_scheduler(mode: str) -> str:
    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, _ = server.accept()
            if mode == "garbage":
                conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + b"\xff" * 4096)
            KEPT.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return f"tcp://127.0.0.1:{server.getsockname()[1]}"


KEPT: list = []

for _mode in ("silent", "garbage"):
    @case(9, f"a {_mode} TCP server as the Dask scheduler")
    def _(f, mode=_mode):
        return Spec([*RNNSIM, "sweep", write(f / "sweep.yaml", SWEEP), "-q", "--scheduler",
                     fake_scheduler(mode), "-o", f / "t.csv"],
                    env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"})


@case(10, ".safetensors beyond RNNSIM_MEMORY_LIMIT")
def _(f):
    from safetensors.numpy import save_file
    save_file({"weight_ih_l0": np.ones((64, 2), np.float32),
               "weight_hh_l0": np.ones((64, 64), np.float32)}, str(f / "w.safetensors"))
    return Spec([*RNNSIM, "import", "torch", f / "w.safetensors", "--mode", "RNN",
                 "--input-size", "2", "--hidden-size", "64", "-o", f / "m"],
                env={"RNNSIM_MEMORY_LIMIT": "4K"})


@case(10, "ONNX external data beyond RNNSIM_MEMORY_LIMIT")
def _(f):
    return onnx_run(f, onnx_model(f / "model", external=True), RNNSIM_MEMORY_LIMIT="64")


for _op in ("ConstantOfShape", "Expand"):
    @case(10, f"ONNX {_op} of 10^12 elements")
    def _(f, op=_op):
        from onnx import helper, numpy_helper
        shape = numpy_helper.from_array(np.array([10 ** 6, 10 ** 6], np.int64), "shape")
        nodes = [helper.make_node("Constant", [], ["shape"], name="shape", value=shape)]
        weights = {}
        if op == "ConstantOfShape":
            nodes.append(helper.make_node(op, ["shape"], ["big"], name="big"))
        else:
            weights["one"] = np.ones((1, 1), np.float32)
            nodes.append(helper.make_node(op, ["one", "shape"], ["big"], name="big"))
        return onnx_run(f, onnx_model(f, weights=weights, nodes=nodes, outputs=["big"]))


@case(10, "a streamed run of 2^63 - 1 steps")
def _(f):
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", str(2 ** 63 - 1),
                 "--output", f / "o.npy"])


@case(10, "parameters beyond ulimit -v")
def _(f):
    big = "network: {input_size: 2, layers: [{units: 40000}]}\n"
    return Spec(["bash", "-c", 'ulimit -v 6000000 && exec "$@"', "rnnsim", *RNNSIM, "run",
                 write(f / "c.yaml", big), "-T", "1"])


# ---- 11-13: tracebacks ---------------------------------------------------------------------

@case(11, "YAML nested 5,000 deep")
def _(f):
    return Spec([*RNNSIM, "validate", write(f / "c.yaml", "network: " + "[" * 5000 +
                                            "]" * 5000 + "\n")])


for _name, _entries in {"NUL byte": {"location": "weights\0.bin"},
                        "non-integer offset": {"offset": "ten"},
                        "short length": {"length": "4"}}.items():
    @case(11, f"ONNX external data location with a {_name}")
    def _(f, entries=_entries):
        import onnx
        path = onnx_model(f / "model", external=True)
        model = onnx.load(path, load_external_data=False)
        tensor = next(t for t in model.graph.initializer if t.name == "W")
        for entry in tensor.external_data:
            if entry.key in entries:
                entry.value = entries[entry.key]
        if "length" in entries:
            tensor.external_data.add(key="length", value=entries["length"])
        onnx.save(model, path)
        return onnx_run(f, path)


@case(11, "a damaged zip as ONNX feeds")
def _(f):
    model = onnx_model(f)
    data = bytearray((f / "feeds.npz").read_bytes())
    data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    (f / "feeds.npz").write_bytes(bytes(data))
    return onnx_run(f, model)


@case(11, "--output DIR.npz")
def _(f):
    (f / "out.npz").mkdir()
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "3", "--output",
                 f / "out.npz"])


@case(11, "--output into a read-only file system")
def _(f):
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "3", "--output",
                 "/proc/out.npz"])


@case(11, "--save into a read-only file system")
def _(f):
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "3", "--save",
                 "/proc/model"])


def warm_cache(folder: Path) -> Path:
    cache = folder / "cache"
    subprocess.run([*RNNSIM, "run", write(folder / "c.yaml", CONFIG), "-T", "3"], check=True,
                   capture_output=True, env={**os.environ, "RNNSIM_CACHE_DIR": str(cache)})
    return cache


CACHE_DAMAGE = {"source with invalid UTF-8": ("*.py", b"\xff\xfe\x80 damaged"),
                "numba index of garbage": ("__pycache__/*.nbi", b"\x80\x04 damaged"),
                "empty numba data": ("__pycache__/*.nbc", b"")}
for _kind in CACHE_DAMAGE:
    @case(11, f"kernel cache: {_kind}")
    def _(f, kind=_kind):
        cache = warm_cache(f)
        pattern, data = CACHE_DAMAGE[kind]
        for path in cache.glob(pattern):
            path.write_bytes(data)
        return Spec([*RNNSIM, "run", f / "c.yaml", "-T", "3"], expect="ok",
                    env={"RNNSIM_CACHE_DIR": cache})


PLUGIN_BODIES = {"sys.exit(3)": "import sys\nsys.exit(3)\n",
                 "KeyboardInterrupt": "raise KeyboardInterrupt\n",
                 "a custom BaseException": "class E(BaseException):\n    pass\nraise E()\n"}
for _name, _body in PLUGIN_BODIES.items():
    @case(12, f"a plugin raising {_name} at import")
    def _(f, body=_body):
        write(f / "site" / "rnnsim_rude.py", body)
        write(f / "site" / "rnnsim_rude-1.0.dist-info" / "METADATA",
              "Metadata-Version: 2.1\nName: rnnsim-rude\nVersion: 1.0\n")
        write(f / "site" / "rnnsim_rude-1.0.dist-info" / "entry_points.txt",
              "[rnnsim]\nrude = rnnsim_rude\n")
        return Spec([*RNNSIM, "plugins"], env={"PYTHONPATH": f"{f / 'site'}{os.pathsep}"
                                               f"{os.environ.get('PYTHONPATH', '')}"})


@case(13, "a kernel cache folder writable by every user")
def _(f):
    cache = f / "cache"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    return Spec([*RNNSIM, "run", write(f / "c.yaml", CONFIG), "-T", "3"],
                env={"RNNSIM_CACHE_DIR": cache})


# ---- running -------------------------------------------------------------------------------

def snapshot(paths) -> dict:
    return {str(p): p.read_bytes() if p.is_file() else None for p in map(Path, paths)}


def run_case(name: str, timeout: float) -> dict:
    item, setup = CASES[name]
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        folder = Path(tmp)
        spec = setup(folder)
        env = {**os.environ, "RNNSIM_CACHE_DIR": str(folder / "kernels"),
               **{k: str(v) for k, v in spec.env.items() if k != "CWD"}}
        before = snapshot(spec.keep)
        start = time.monotonic()
        process = subprocess.Popen([str(a) for a in spec.args], cwd=spec.env.get("CWD", folder),
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
            code = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            code = None
        seconds = time.monotonic() - start
        lost = snapshot(spec.keep) != before
        problem = spec.check() if spec.check else None
    if code is None:
        outcome = "hang"
    elif "Traceback" in err or code not in (0, 1, 2):
        outcome = "traceback"
    elif code == 0:
        outcome = "ran" if spec.expect == "ok" and problem is None else "wrong result"
    else:
        outcome = "clear error" if spec.expect == "error" and problem is None else "traceback"
    message = next((line for line in err.splitlines() if line.strip()), "")
    return {"item": item, "case": name, "outcome": outcome, "data lost": lost,
            "seconds": round(seconds, 1), "message": message[:160], "stderr": err[-2000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--only", nargs="+", default=[], help="run the cases naming a word")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a hang")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    names = [n for n in CASES if not args.only or any(w in n for w in args.only)]
    if args.list:
        for name in names:
            print(f"{CASES[name][0]:>2}  {name}")
        return 0
    results = []
    for name in names:
        result = run_case(name, args.timeout)
        results.append(result)
        flag = " DATA LOST" if result["data lost"] else ""
        print(f"{result['item']:>2}  {result['outcome']:<12} {result['seconds']:>5.1f} s  "
              f"{name}{flag}\n      {result['message']}", flush=True)
        if result["outcome"] not in ("clear error", "ran"):
            print(result["stderr"], flush=True)
    counts = {k: sum(r["outcome"] == k for r in results)
              for k in ("clear error", "ran", "traceback", "wrong result", "hang")}
    counts["data lost"] = sum(r["data lost"] for r in results)
    print(f"\n{len(results)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "results": results}, indent=1))
    bad = counts["traceback"] + counts["wrong result"] + counts["hang"] + counts["data lost"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
