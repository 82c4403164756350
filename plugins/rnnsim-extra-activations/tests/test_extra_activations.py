"""The plugin is discovered once installed, and its activations run inside rnnsim's kernels."""
import numpy as np
from click.testing import CliRunner

import rnnsim
from rnnsim.cli import cli
from rnnsim.plugins import get_plugins


def test_discovered_through_its_entry_point():
    entry = get_plugins().activations.get("mish", "test")
    assert entry.source.package == "rnnsim-extra-activations"
    assert entry.source.plugin == "extra_activations"
    listing = CliRunner().invoke(cli, ["plugins"]).output
    assert "penalized_tanh" in listing and "rnnsim-extra-activations 0.1.0" in listing


def run_one_unit(activation, x):
    """A 1-unit layer with W = 1, U = 0, b = 0, so that a_t = f(x_t)."""
    cfg = {"network": {"input_size": 1, "dtype": "float64", "layers": [{
        "units": 1, "activation": activation,
        "init": {"input": "ones", "recurrent": "zeros", "bias": "zeros"}}]}}
    net = rnnsim.Network.from_config(cfg)
    return net.run(x.reshape(-1, 1, 1)).output.ravel()


def test_activations_in_the_kernel():
    x = np.linspace(-4, 4, 41)
    np.testing.assert_allclose(run_one_unit("mish", x), x * np.tanh(np.log1p(np.exp(x))),
                               rtol=1e-12)
    np.testing.assert_allclose(run_one_unit({"name": "penalized_tanh", "a": 0.5}, x),
                               np.where(x > 0, np.tanh(x), 0.5 * np.tanh(x)), rtol=1e-12)
    np.testing.assert_allclose(
        run_one_unit({"name": "rectified_tanh", "alpha": 2.0, "beta": 0.5}, x),
        np.maximum(0, 2.0 * np.tanh(0.5 * x)), rtol=1e-12)
