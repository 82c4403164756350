"""The topology initializers are discovered once installed and build the promised matrices."""
import numpy as np
import pytest

import rnnsim
from rnnsim.plugins import get_plugins


def recurrent(spec, units=12):
    cfg = {"network": {"input_size": 2, "dtype": "float64", "seed": 1,
                       "layers": [{"units": units, "init": {"recurrent": spec}}]}}
    return rnnsim.Network.from_config(cfg).params["layers.0.U"]


def test_discovered_through_its_entry_point():
    for name in ("small_world", "ring", "block_diagonal"):
        assert get_plugins().initializers.get(name, "test").source.package == "rnnsim-topologies"


def test_ring_is_a_cycle():
    u = recurrent({"name": "ring", "weight": 0.5})
    assert (np.count_nonzero(u, axis=0) == 1).all()
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(u)), 0.5)


def test_block_diagonal_blocks_do_not_talk():
    u = recurrent({"name": "block_diagonal", "blocks": 3})
    assert np.count_nonzero(u[:4, 4:]) == 0 and np.count_nonzero(u[4:8, 8:]) == 0
    assert np.count_nonzero(u[:4, :4]) == 16


def test_small_world_degree_and_spectral_radius():
    u = recurrent({"name": "small_world", "neighbours": 4, "rewire": 0.0,
                   "spectral_radius": 0.9}, units=20)
    assert (np.count_nonzero(u, axis=1) == 4).all()
    assert np.max(np.abs(np.linalg.eigvals(u))) == pytest.approx(0.9)


def test_non_square_is_a_config_error():
    cfg = {"network": {"input_size": 2, "layers": [{"units": 5, "init": {"input": "ring"}}]}}
    with pytest.raises(rnnsim.ConfigError, match="network.layers\\[0\\].init.input.*square"):
        rnnsim.Network.from_config(cfg)
