"""The on-disk kernel cache: a key that covers everything a kernel's code depends on, a size
cap, ``rnnsim cache info|clear``, and errors matched without file paths."""
import ast
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from rnnsim import cache
from rnnsim.cli import cli

# A plugin package whose activation calls an @njit helper in another module, which calls a
# helper's helper in a third one.
FILES = {
    "scaleact/__init__.py": """
        import rnnsim
        from .act import scaled

        class Plugin:
            @rnnsim.hookimpl
            def register_activations(self, register):
                register("scaled", scaled, description="helper(x)")
    """,
    "scaleact/act.py": """
        from . import helpers

        def scaled(x):
            return helpers.helper(x)
    """,
    "scaleact/helpers.py": """
        import numba
        from .deeper import inner

        @numba.njit
        def helper(x):
            return FACTOR * inner(x)

        FACTOR = 1.0
    """,
    "scaleact/deeper.py": """
        import numba

        @numba.njit
        def inner(x):
            return 1.0 * x
    """,
}

RUN = """
import json, sys
import numpy as np
import rnnsim
from rnnsim import plugins
import scaleact
plugins.register_plugin(scaleact.Plugin(), name="scaleact", package="scaleact")
net = rnnsim.Network.from_config({"network": {"input_size": 1, "dtype": "float64", "layers": [
    {"units": 1, "activation": "scaled",
     "init": {"input": "ones", "recurrent": "zeros", "bias": "zeros"}}]}})
try:
    out = net.run(np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)).output.ravel().tolist()
except rnnsim.RnnsimError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(0)
print(json.dumps({"output": out}))
"""


@pytest.fixture
def package(tmp_path):
    """The plugin's source folder and a private kernel cache; ``run()`` is a fresh process."""
    src = tmp_path / "src"
    for name, text in FILES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    env = dict(os.environ, RNNSIM_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(src))
    env.pop("NUMBA_CACHE_DIR", None)  # numba's machine code sits beside the generated file

    def edit(name, old, new):
        path = src / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))
        for pyc in (src / "scaleact" / "__pycache__").glob("*.pyc"):
            pyc.unlink()  # stale bytecode would hide the edit on a coarse-mtime file system

    def run():
        done = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    return src, edit, run, tmp_path / "cache", env


def test_editing_a_helper_or_a_helpers_helper_gives_a_new_kernel(package):
    src, edit, run, folder, env = package
    assert run() == {"output": [1.0, 2.0, 3.0]}
    assert run() == {"output": [1.0, 2.0, 3.0]}  # found again on disk
    kernels = cache.info(folder)["kernels"]
    edit("scaleact/deeper.py", "1.0 * x", "3.0 * x")
    assert run() == {"output": [3.0, 6.0, 9.0]}
    edit("scaleact/helpers.py", "FACTOR = 1.0", "FACTOR = 2.0")
    assert run() == {"output": [6.0, 12.0, 18.0]}
    assert cache.info(folder)["kernels"] == kernels + 2


def test_a_run_time_error_is_matched_after_the_plugin_moves(package, tmp_path):
    """The message names the activation and its plugin, whatever path the cached kernel
    recorded: the same plugin installed from another folder raises the same PluginError."""
    src, edit, run, folder, env = package
    edit("scaleact/act.py", "return helpers.helper(x)",
         "if x > 2.5:\n        raise ValueError('x too large')\n    return helpers.helper(x)")
    first = run()
    assert first["error"] == "PluginError"
    assert "'scaled'" in first["message"] and "ValueError: x too large" in first["message"]
    moved = tmp_path / "elsewhere"
    src.rename(moved)
    done = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True,
                          timeout=300, env=dict(env, PYTHONPATH=str(moved)))
    assert done.returncode == 0, done.stderr
    second = json.loads(done.stdout.strip().splitlines()[-1])
    assert second == first


def test_the_cache_keeps_under_its_cap_least_recently_used_first(tmp_path):
    for i, stem in enumerate(["old", "mid", "new"]):
        (tmp_path / f"{stem}.py").write_bytes(b"x" * 100)
        (tmp_path / "__pycache__").mkdir(exist_ok=True)
        (tmp_path / "__pycache__" / f"{stem}.kernel-3.py311.nbi").write_bytes(b"y" * 100)
        os.utime(tmp_path / f"{stem}.py", (1000 + i, 1000 + i))
    assert [e.stem for e in cache.entries(tmp_path)] == ["old", "mid", "new"]
    assert cache.entries(tmp_path)[0].size == 200
    assert cache.prune(keep={"old"}, folder=tmp_path, limit=400) == ["mid"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "new.kernel-3.py311.nbi", "new.py", "old.kernel-3.py311.nbi", "old.py"]
    cache.touch(tmp_path / "old.py")
    assert cache.prune(folder=tmp_path, limit=200) == ["new"]


def test_cache_info_and_clear_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RNNSIM_CACHE_MAX_MB", "1")
    (tmp_path / "__pycache__").mkdir()
    for stem in ("a", "b"):
        (tmp_path / f"{stem}.py").write_text("pass\n")
        (tmp_path / "__pycache__" / f"{stem}.f-1.py311.nbi").write_bytes(b"z" * 10)
    result = CliRunner().invoke(cli, ["cache", "info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["folder"] == str(tmp_path) and info["kernels"] == 2
    assert info["bytes"] == 30 and info["max_bytes"] == 2**20
    result = CliRunner().invoke(cli, ["cache", "info"])
    assert "2 kernels" in result.output and str(tmp_path) in result.output
    result = CliRunner().invoke(cli, ["cache", "clear"])
    assert result.exit_code == 0 and "removed 2 kernels" in result.output
    assert not any(tmp_path.rglob("*.py")) and not (tmp_path / "__pycache__").exists()


def test_a_real_run_prunes_to_the_cap(tmp_path, monkeypatch):
    """Generating a kernel into a full folder removes the least recently used others, never
    the one just written."""
    monkeypatch.setenv("RNNSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("RNNSIM_CACHE_MAX_MB", "0.001")
    (tmp_path / "stale.py").write_bytes(b"s" * 5000)
    os.utime(tmp_path / "stale.py", (1000, 1000))
    from rnnsim.kernels import codegen
    path = codegen._write("fresh_0123.py", "x = 1\n")
    assert path is not None and path.exists()
    assert not (tmp_path / "stale.py").exists()
    np.testing.assert_equal(cache.info(tmp_path)["kernels"], 1)


def test_a_run_makes_and_compiles_only_the_variant_it_runs():
    """Each kernel's serial and parallel variants are made on first use: a run of the serial
    kernel never makes (nor compiles) the parallel one."""
    from numba.core import event

    import rnnsim

    compiled = []

    class Listener(event.Listener):
        def on_start(self, ev):
            pass

        def on_end(self, ev):
            compiled.append(ev.data["dispatcher"].py_func.__name__)

    def halved(x):  # a closure's activation: compiled in this process, not loaded
        return 0.5 * x

    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
        {"cell": "elman", "units": 3}]}})
    from dataclasses import replace

    bound = net.layers[0].activations[0]
    net.layers[0].activations[0] = replace(bound, entry=replace(
        bound.entry, functions={"fn": halved}))
    with event.install_listener("numba:compile", Listener()):
        net.run(np.ones((3, 1, 2), np.float32))
    module = net.layers[0].kernels()
    assert "elman_forward_serial" in compiled and not any("parallel" in n for n in compiled)
    assert "elman_forward_parallel" not in vars(module)
    assert module.elman_forward_parallel is module.elman_forward_parallel  # made once


def test_an_activation_in_two_slots_compiles_once():
    """LSTM's output and cell-input activations are both tanh by default: the kernel module
    binds one dispatcher to both slots (here to all three), so tanh compiles for a signature
    once."""
    import rnnsim

    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
        {"cell": "lstm", "units": 3, "gate_activation": "tanh"}]}})
    net.run(np.ones((3, 1, 2), np.float32))
    module = net.layers[0].kernels()
    assert module.act0 is module.act1 is module.act2
    other = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
        {"cell": "lstm", "units": 3, "gate_activation": "sigmoid"}]}})
    assert other.layers[0].kernels().act1 is not other.layers[0].kernels().act0


def test_a_first_run_compiles_each_row_helper_once(tmp_path):
    """The kernels call ``rows`` and ``team`` helpers with step 0 as an int64 (``rows.step0``):
    a literal 0 would compile them once more, for that literal, on every empty cache."""
    script = textwrap.dedent("""
        import numpy as np, rnnsim
        from rnnsim.kernels.cpu import rows, team
        for cell in ("lstm", "gru", "elman"):
            net = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
                {"cell": cell, "units": 4}]}})
            for batch in (1, 3):
                net.run(np.ones((2, batch, 3), np.float32))
        print({f"{module.__name__}.{name}": [str(s) for s in getattr(module, name).signatures]
               for module in (rows, team) for name in dir(module)
               if hasattr(getattr(module, name), "signatures")})
    """)
    env = dict(os.environ, RNNSIM_CACHE_DIR=str(tmp_path / "kernels"),
               NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    compiled = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    for name in ("rows.load_inputs", "rows.step_time", "team.meet"):
        assert len(compiled[f"rnnsim.kernels.cpu.{name}"]) == 1, compiled
    assert all(len(signatures) <= 1 for signatures in compiled.values()), compiled
