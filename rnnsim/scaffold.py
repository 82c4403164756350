"""`rnnsim new-plugin NAME`: a plugin package that installs and passes its test as created."""
from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError
from .io import write_folder_atomic

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "rnnsim-{name}"
version = "0.1.0"
description = "rnnsim plugin: {name}"
requires-python = ">=3.10"
dependencies = ["rnnsim"]

[project.entry-points.rnnsim]
{module} = "rnnsim_{module}"

[tool.setuptools]
packages = ["rnnsim_{module}"]

[tool.pytest.ini_options]
pythonpath = ["."]
'''

MODULE = '''"""rnnsim plugin {name}: hookimpls only, no other import-time side effects."""
import math

import rnnsim


def {module}_tanh(x, gain):
    """gain * tanh(x): a scalar function in numba's subset, compiled into rnnsim's kernels."""
    return gain * math.tanh(x)


@rnnsim.hookimpl
def register_activations(register):
    register("{module}_tanh", {module}_tanh, params={{"gain": 1.0}}, description="gain*tanh(x)")
'''

TEST = '''import numpy as np

import rnnsim
import rnnsim_{module}
from rnnsim import plugins


def test_activation_runs_in_a_network():
    installed = "{module}_tanh" in plugins.get_plugins().activations
    if not installed:  # not pip-installed yet: register the module for this test only
        plugins.register_plugin(rnnsim_{module}, name="{module}", package="rnnsim-{name}")
    try:
        net = rnnsim.Network.from_config({{"network": {{"input_size": 1, "dtype": "float64",
            "layers": [{{"units": 1, "activation": {{"name": "{module}_tanh", "gain": 2.0}},
                        "init": {{"input": "ones", "recurrent": "zeros", "bias": "zeros"}}}}]}}}})
        x = np.linspace(-3, 3, 13)
        out = net.run(x.reshape(-1, 1, 1)).output.ravel()
        np.testing.assert_allclose(out, 2.0 * np.tanh(x), rtol=1e-12)
    finally:
        if not installed:
            plugins.unregister_plugin("{module}")
'''


def scaffold(name: str, directory: Path) -> Path:
    """Create ``directory/rnnsim-<name>``; refuses to overwrite anything."""
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise InputError(f"plugin name {name!r} is not valid: use lowercase letters, digits, "
                         "'-' and '_', starting with a letter (e.g. 'my-activations').")
    module = name.replace("-", "_")
    folder = Path(directory) / f"rnnsim-{name}"
    if folder.exists():
        raise InputError(f"'{folder}' already exists; choose another name or directory.")
    files = {
        "pyproject.toml": PYPROJECT,
        f"rnnsim_{module}/__init__.py": MODULE,
        f"tests/test_{module}.py": TEST,
    }

    def write(tmp: Path) -> None:
        for relative, template in files.items():
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(template.format(name=name, module=module))

    write_folder_atomic(folder, write)
    return folder
