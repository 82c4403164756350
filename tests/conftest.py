import os
import sys
from pathlib import Path

import pytest

from rnnsim import plugins

sys.path.insert(0, str(Path(__file__).parent))

# Keras 3 reads its backend once, at import: the test extra installs torch (CPU) for it.
os.environ["KERAS_BACKEND"] = "torch"


@pytest.fixture
def temporary():
    """Register throwaway plugins; always unregistered afterwards."""
    names = []

    def add(plugin, name, package="test-package"):
        plugins.register_plugin(plugin, name=name, package=package)
        names.append(name)

    try:
        yield add
    finally:
        for name in names:
            plugins.unregister_plugin(name)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Install packages for one test: ``installed(name, version, entry_points, **modules)``
    writes the metadata folder pip would (``entry_points`` the text of its entry_points.txt)
    and the modules (name -> source) into a folder first on sys.path, removed afterwards."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(name: str, version: str, entry_points: str, **modules: str) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                       f"Version: {version}\n")
        (info / "entry_points.txt").write_text(entry_points)
        for module, source in modules.items():
            (site / f"{module}.py").write_text(source)
        return info

    return install
