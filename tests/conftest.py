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
