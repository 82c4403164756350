"""Activations numba refuses: a PluginError with numba's own reason, file and line, on the CPU
and on the CUDA path (the simulator compiles nothing, so the host checks first)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import PluginError, plugins
from rnnsim.cli import cli

ROOT = Path(__file__).resolve().parents[1]
_TABLE = {1: 2.0}


def reads_a_dict(x):
    return x * _TABLE[1]


def plain_helper(x):
    return x


def calls_a_python_helper(x):
    return plain_helper(x)


def prints_an_object(x):
    print(object())
    return x


REFUSED = {
    "reads_a_dict": (reads_a_dict, "Untyped global name '_TABLE'"),
    "calls_a_python_helper": (calls_a_python_helper, "Untyped global name 'plain_helper'"),
    "prints_an_object": (prints_an_object, "Untyped global name 'object'"),
}


class Refused:
    @rnnsim.hookimpl
    def register_activations(self, register):
        for name, (fn, _) in REFUSED.items():
            register(name, fn)


@pytest.fixture
def refused():
    plugins.register_plugin(Refused(), name="refused", package="refused-package")
    try:
        yield
    finally:
        plugins.unregister_plugin("refused")


def config(activation, device="cpu"):
    return {"network": {"input_size": 1, "dtype": "float64", "device": device,
                        "layers": [{"units": 2, "activation": activation}]}}


@pytest.mark.parametrize("name", REFUSED)
def test_numbas_reason_file_and_line_are_in_the_message(refused, name):
    fn, reason = REFUSED[name]
    with pytest.raises(PluginError) as info:
        rnnsim.Network.from_config(config(name)).run(np.zeros((2, 1, 1)))
    message = str(info.value)
    assert f"'{name}' (plugin 'refused', package refused-package)" in message
    assert reason in message
    assert f'test_activation_errors.py", line {fn.__code__.co_firstlineno + 1}' in message
    assert "Failed in nopython mode" not in message and "During:" not in message


def test_the_cli_prints_numbas_reason(refused, tmp_path):
    import yaml
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(config("reads_a_dict")))
    result = CliRunner().invoke(cli, ["run", str(path), "-T", "3"])
    assert result.exit_code == 1
    assert "Untyped global name '_TABLE'" in result.output
    assert "Traceback" not in result.output


CUDA_SCRIPT = """
import sys
sys.path.insert(0, "tests")
import numpy as np
import rnnsim
from rnnsim import plugins
from test_activation_errors import Refused, config
plugins.register_plugin(Refused(), name="refused", package="refused-package")
for name in sys.argv[1:]:
    try:
        rnnsim.Network.from_config(config(name, "cuda")).run(np.zeros((2, 1, 1)))
        print(name, "ran")
    except rnnsim.PluginError as exc:
        print(name, "refused:", str(exc).splitlines()[0])
"""


def test_the_cuda_path_refuses_what_the_cpu_refuses():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", CUDA_SCRIPT, *REFUSED], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(REFUSED)
    for line, (name, (_, reason)) in zip(lines, REFUSED.items()):
        assert line.startswith(f"{name} refused: ") and reason in line, line
