"""The Python API: weights independent of T, determinism, save/load, initializers, heads."""
import math
import os

import numpy as np
import pytest
import yaml

import rnnsim
from rnnsim import ConfigError, InputError, ShapeError, plugins
from rnnsim.plugins import get_plugins
from reference import elman

CFG = {"network": {"input_size": 8, "dtype": "float64", "seed": 0,
                   "layers": [{"units": 10}, {"units": 6, "activation": "relu"}],
                   "head": {"name": "linear", "units": 2, "activation": "softmax"}}}


def test_parameter_shapes_do_not_depend_on_T():
    net = rnnsim.Network.from_config(CFG)
    shapes = {name: shape for name, (_, shape) in net.parameter_shapes().items()}
    assert shapes == {"layers.0.W": (10, 8), "layers.0.U": (10, 10), "layers.0.b": (10,),
                      "layers.1.W": (6, 10), "layers.1.U": (6, 6), "layers.1.b": (6,),
                      "head.W": (2, 6), "head.b": (2,)}
    x = np.random.default_rng(0).standard_normal((200, 3, 8))
    short, long = net.run(x[:20]), net.run(x)
    assert short.output.shape == (20, 3, 6) and long.output.shape == (200, 3, 6)
    # The first 20 steps of a long run are the short run: one cell reused T times.
    np.testing.assert_array_equal(long.output[:20], short.output)
    np.testing.assert_allclose(long.y.sum(-1), 1.0)


def test_same_seed_same_weights_and_outputs():
    a, b = rnnsim.Network.from_config(CFG), rnnsim.Network.from_config(CFG)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    x = np.random.default_rng(1).standard_normal((9, 2, 8))
    np.testing.assert_array_equal(a.run(x).y, b.run(x).y)
    other = rnnsim.Network.from_config({"network": {**CFG["network"], "seed": 1}})
    assert not np.array_equal(a.params["layers.0.W"], other.params["layers.0.W"])


def test_adding_a_head_keeps_the_layer_weights():
    without = rnnsim.Network.from_config({"network": {**CFG["network"], "head": None}})
    with_head = rnnsim.Network.from_config(CFG)
    np.testing.assert_array_equal(without.params["layers.1.U"], with_head.params["layers.1.U"])


def test_float32_and_float64():
    for dtype in ("float32", "float64"):
        net = rnnsim.Network.from_config({"network": {**CFG["network"], "dtype": dtype}})
        result = net.run(np.ones((4, 2, 8)))
        assert result.output.dtype == dtype and result.y.dtype == dtype
        assert all(p.dtype == dtype for p in net.params.values())


def test_save_load_round_trips_exactly(tmp_path):
    net = rnnsim.Network.from_config(CFG)
    net.save(tmp_path / "model")
    back = rnnsim.load(tmp_path / "model")
    assert back.config == net.config
    assert back.params.keys() == net.params.keys()
    for name, value in net.params.items():
        np.testing.assert_array_equal(back.params[name], value)
        assert back.params[name].dtype == value.dtype
    x = np.random.default_rng(2).standard_normal((5, 2, 8))
    np.testing.assert_array_equal(back.run(x).y, net.run(x).y)
    net.save(tmp_path / "model")  # overwriting a model folder is allowed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_refuses_a_foreign_folder_and_load_checks(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(rnnsim.OutputError, match="it holds keep.txt, which writing it would "
                                                 "delete"):
        rnnsim.Network.from_config(CFG).save(tmp_path / "data")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["keep.txt"]
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="not an rnnsim model folder"):
        rnnsim.load(tmp_path / "data")


def test_weights_that_do_not_fit_are_reported_together():
    net = rnnsim.Network.from_config(CFG)
    params = dict(net.params)
    params["layers.0.U"] = np.zeros((10, 9))
    del params["head.b"]
    params["extra"] = np.zeros(3)
    with pytest.raises(ShapeError) as info:
        rnnsim.Network(net.config, params)
    message = str(info.value)
    assert "layers.0.U' has shape (10, 9); expected (10, 10)" in message
    assert "missing parameter 'head.b'" in message and "unexpected parameter 'extra'" in message


def test_input_errors_name_the_array_and_shape():
    net = rnnsim.Network.from_config(CFG)
    with pytest.raises(ShapeError, match=r"shape \(5, 2, 7\).*input_size = 8"):
        net.run(np.zeros((5, 2, 7)))
    with pytest.raises(ShapeError, match="rank 4"):
        net.run(np.zeros((1, 5, 2, 8)))
    with pytest.raises(ShapeError, match="at least one timestep"):
        net.run(np.zeros((0, 2, 8)))
    with pytest.raises(ShapeError, match="dtype complex128"):
        net.run(np.zeros((5, 2, 8), dtype=complex))
    with pytest.raises(ShapeError, match=r"h0 has shape \(2, 3, 10\)"):
        net.run(np.zeros((5, 2, 8)), h0=np.zeros((2, 3, 10)))
    bad = np.zeros((5, 2, 8))
    bad[1, 0, 4] = np.inf
    with pytest.raises(InputError, match=r"first at index \(1, 0, 4\)"):
        net.run(bad)
    assert np.isnan(net.run(np.where(np.isinf(bad), np.nan, bad), check_finite=False).y).any()


def test_h0_per_layer_list_and_torch_layout():
    net = rnnsim.Network.from_config({"network": {"input_size": 3, "dtype": "float64",
                                                  "layers": [{"units": 4}, {"units": 4}]}})
    x = np.random.default_rng(3).standard_normal((6, 2, 3))
    h0 = np.random.default_rng(4).standard_normal((2, 2, 4))
    stacked = net.run(x, h0=h0)
    listed = net.run(x, h0=[h0[:1], h0[1:]])
    np.testing.assert_array_equal(stacked.output, listed.output)
    first = elman(x, net.params["layers.0.W"], net.params["layers.0.U"],
                  net.params["layers.0.b"], h0[0])
    np.testing.assert_allclose(stacked.final[0][0], first[-1], rtol=1e-12)
    assert stacked.h_n.shape == (2, 2, 4)


def test_last_step_and_softmax_heads():
    base = {"input_size": 3, "dtype": "float64", "layers": [{"units": 5}]}
    x = np.random.default_rng(5).standard_normal((7, 2, 3))
    last = rnnsim.Network.from_config({"network": {**base, "head": {"name": "last_step",
                                                                    "units": 4}}})
    result = last.run(x)
    W, b = last.params["head.W"], last.params["head.b"]
    assert result.y.shape == (2, 4)
    np.testing.assert_allclose(result.y, result.output[-1] @ W.T + b, rtol=1e-12)
    soft = rnnsim.Network.from_config({"network": {**base, "head": {"name": "softmax",
                                                                    "units": 3}}})
    y = soft.run(x).y
    assert y.shape == (7, 2, 3) and soft.head.activation.name == "softmax"
    np.testing.assert_allclose(y.sum(-1), 1.0)
    tanh_head = rnnsim.Network.from_config({"network": {**base, "head": {
        "name": "linear", "activation": {"name": "scaled_tanh", "alpha": 2.0}}}})
    r = tanh_head.run(x)
    z = r.output @ tanh_head.params["head.W"].T + tanh_head.params["head.b"]
    np.testing.assert_allclose(r.y, 2.0 * np.tanh(z), rtol=1e-12)


SHAPE = (40, 40)  # square, so that recurrent-only topologies apply too


def dense(a):
    return a.to_dense() if hasattr(a, "to_dense") else a  # sparse initializers give CSR


@pytest.mark.parametrize("name", sorted(e.name for e in get_plugins().initializers))
def test_every_installed_initializer_is_deterministic(name):
    fn = get_plugins().initializers.get(name, "test").fn
    a = dense(fn(SHAPE, np.random.default_rng(7), np.float32))
    b = dense(fn(SHAPE, np.random.default_rng(7), np.float32))
    assert a.shape == SHAPE and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


def initializer(name):
    return get_plugins().initializers.get(name, "test").fn


def test_initializer_statistics():
    rng = np.random.default_rng
    q = initializer("orthogonal")((30, 30), rng(0), np.float64, gain=2.0)
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(30), atol=1e-12)
    tall = initializer("orthogonal")((40, 10), rng(0), np.float64)
    np.testing.assert_allclose(tall.T @ tall, np.eye(10), atol=1e-12)
    bound = initializer("torch_default")((64, 8), rng(0), np.float64)
    assert np.abs(bound).max() <= 1 / 8 and np.abs(bound).max() > 0.9 / 8
    sparse = initializer("sparse")((200, 200), rng(0), np.float64, connectivity=0.1)
    assert 0.08 < np.count_nonzero(sparse) / sparse.size < 0.12
    signs = initializer("bernoulli")((100, 100), rng(0), np.float64, value=0.5)
    assert set(np.unique(signs)) == {-0.5, 0.5}
    xavier = initializer("xavier_uniform")((300, 100), rng(0), np.float64)
    assert np.abs(xavier).max() <= np.sqrt(6 / 400)
    he = initializer("kaiming_normal")((400, 500), rng(0), np.float64)
    assert he.std() == pytest.approx(np.sqrt(2 / 500), rel=0.02)
    assert (initializer("constant")((3,), rng(0), np.float64, value=0.25) == 0.25).all()


def test_written_files_get_the_umask_mode_not_private(tmp_path):
    """Files go through a private temporary file and a rename; the result is shared as a plain
    ``open`` would make it."""
    from rnnsim.io import write_atomic, write_npz

    old = os.umask(0o027)
    try:
        rnnsim.Network.from_config(CFG).save(tmp_path / "model")
        write_npz(tmp_path / "out.npz", {"y": np.ones(2)})
        write_atomic(tmp_path / "table.csv", lambda tmp: tmp.write_text("a\n1\n"))
    finally:
        os.umask(old)
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.rglob("*")}
    assert modes == {"model": 0o750, "config.yaml": 0o640, "weights.npz": 0o640,
                     "plugins.yaml": 0o640, "out.npz": 0o640, "table.csv": 0o640}
    assert list(np.load(tmp_path / "out.npz")) == ["y"]


def bent_identity(x):
    return (math.sqrt(x * x + 1.0) - 1.0) / 2.0 + x


def bent_init(shape, rng, dtype):
    return rng.uniform(-0.5, 0.5, size=shape).astype(dtype)


class BentActivation:
    @rnnsim.hookimpl
    def register_activations(self, register):
        register("bent_identity", bent_identity)


class BentInitializer:
    @rnnsim.hookimpl
    def register_initializers(self, register):
        register("bent_init", bent_init)


@pytest.fixture
def installed():
    """Register throwaway plugins as if pip-installed; ``installed.remove(name)`` plays
    `pip uninstall`; whatever is left is unregistered afterwards."""
    class Installed:
        def __init__(self):
            self.names = []

        def add(self, plugin, name, package, version):
            plugins.register_plugin(plugin, name=name, package=package, version=version)
            self.names.append(name)

        def remove(self, name):
            plugins.unregister_plugin(name)
            self.names.remove(name)

    helper = Installed()
    try:
        yield helper
    finally:
        for name in helper.names:
            plugins.unregister_plugin(name)


BENT = {"network": {"input_size": 2, "dtype": "float64", "layers": [
    {"units": 3, "activation": "bent_identity", "init": {"recurrent": "bent_init"}}]}}


def test_a_model_records_its_plugins_and_names_the_package_when_one_is_missing(tmp_path,
                                                                                installed):
    installed.add(BentActivation(), "bent", "rnnsim-bent", "0.2.0")
    installed.add(BentInitializer(), "bent-inits", "rnnsim-bent-inits", "1.0")
    net = rnnsim.Network.from_config(BENT)
    net.save(tmp_path / "model")
    record = yaml.safe_load((tmp_path / "model" / "plugins.yaml").read_text())
    assert record["activation"] == {"bent_identity": {
        "plugin": "bent", "package": "rnnsim-bent", "version": "0.2.0"}}
    assert record["initializer"]["bent_init"] == {
        "plugin": "bent-inits", "package": "rnnsim-bent-inits", "version": "1.0"}
    assert record["initializer"]["xavier_uniform"]["package"] == "rnnsim"

    installed.remove("bent")  # `pip uninstall rnnsim-bent`
    with pytest.raises(ConfigError) as missing:
        rnnsim.load(tmp_path / "model")
    message = str(missing.value)
    assert ("network.layers[0].activation: activation 'bent_identity' is not installed. The "
            f"model '{tmp_path / 'model'}' was saved with it from plugin 'bent' (package "
            "rnnsim-bent 0.2.0): install that package (`pip install 'rnnsim-bent==0.2.0'`)"
            ) in message
    assert "did you mean" not in message and "'identity'" not in message

    installed.add(BentActivation(), "bent", "rnnsim-bent", "0.2.0")
    installed.remove("bent-inits")  # the weights are saved: the initializer is not needed
    back = rnnsim.load(tmp_path / "model")
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    np.testing.assert_array_equal(back.run(x).output, net.run(x).output)
    back.save(tmp_path / "again")  # re-saved without the initializer: its record is kept
    again = yaml.safe_load((tmp_path / "again" / "plugins.yaml").read_text())
    assert again == record


def test_a_model_folder_without_a_plugin_record_still_loads(tmp_path, installed):
    installed.add(BentActivation(), "bent", "rnnsim-bent", "0.2.0")
    net = rnnsim.Network.from_config(BENT | {"network": {**BENT["network"], "layers": [
        {"units": 3, "activation": "bent_identity"}]}})
    net.save(tmp_path / "model")
    (tmp_path / "model" / "plugins.yaml").unlink()  # as written before rnnsim recorded them
    x = np.ones((3, 1, 2))
    np.testing.assert_array_equal(rnnsim.load(tmp_path / "model").run(x).output,
                                  net.run(x).output)
    installed.remove("bent")
    with pytest.raises(ConfigError) as missing:
        rnnsim.load(tmp_path / "model")
    message = str(missing.value)
    assert ("activation 'bent_identity' is not installed, and this model folder predates "
            "rnnsim's record of plugin packages") in message
    assert "did you mean" not in message


def test_a_damaged_plugin_record_is_named(tmp_path):
    rnnsim.Network.from_config(CFG).save(tmp_path / "model")
    (tmp_path / "model" / "plugins.yaml").write_text("activation: [tanh]\n")
    with pytest.raises(InputError, match=r"plugins.yaml' holds .*expected a mapping of kind.*"
                                         "delete it to load the model without it"):
        rnnsim.load(tmp_path / "model")


def test_runs_and_steps_from_several_threads_keep_their_own_values():
    """One network called from four threads at once (its kernels release the GIL): each run
    and each step gets the outputs of its own input, as called one by one."""
    from concurrent.futures import ThreadPoolExecutor

    net = rnnsim.Network.from_config({"network": {"input_size": 5, "seed": 1, "layers": [
        {"cell": "lstm", "units": 96}, {"cell": "gru", "units": 17}]}})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1000, 2, 5)).astype(np.float32) for i in range(12)]
    states = [net.initial_state(2) for _ in range(12)]
    for state in states:
        for value in state.arrays("s").values():
            value[...] = rng.standard_normal(value.shape)
    runs = [net.run(x).output for x in xs]
    steps = [net.step(x[0], state)[0] for x, state in zip(xs, states)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            together = pool.map(lambda x: net.run(x).output, xs)
            assert all(np.array_equal(a, b) for a, b in zip(runs, together))
            together = pool.map(lambda c: net.step(c[0][0], c[1])[0], zip(xs, states))
            assert all(np.array_equal(a, b) for a, b in zip(steps, together))
