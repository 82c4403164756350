"""Streaming (state, step, continued runs), variable-length batches and ONNX clip/input_forget."""
import numpy as np
import pytest

import rnnsim
from rnnsim import ConfigError, InputError, PluginError, ShapeError
from reference import lstm
from test_lstm_gru import random_network

CELLS = {
    "elman": {"cell": "elman", "units": 5},
    "lstm": {"cell": "lstm", "units": 5},
    "lstm-proj-peep": {"cell": "lstm", "units": 5, "proj_size": 3, "peepholes": True},
    "gru": {"cell": "gru", "units": 5},
    "gru-reset-before": {"cell": "gru", "units": 5, "reset_after": False},
    "esn": {"cell": "esn", "units": 6, "leak_rate": 0.4},
    "esn-sparse": {"cell": "esn", "units": 6, "sparse": True,
                   "init": {"recurrent": {"name": "sparse_random", "connectivity": 0.5}}},
    "ugrnn": {"cell": "ugrnn", "units": 5, "init": {"bias": {"name": "uniform", "low": -1,
                                                             "high": 1}}},
}


def stack(variant, dtype="float64", layers=2, **network):
    net = rnnsim.Network.from_config({"network": {
        "input_size": 3, "dtype": dtype, "seed": 4, "layers": [CELLS[variant]] * layers,
        **network}})
    return net


@pytest.mark.parametrize("variant", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_continued_runs_and_steps_equal_one_long_run(variant, dtype):
    net = stack(variant, dtype, head={"name": "linear", "units": 2})
    x = np.random.default_rng(1).standard_normal((9, 4, 3)).astype(dtype)
    whole = net.run(x)
    first = net.run(x[:4])
    second = net.run(x[4:], first.state)
    np.testing.assert_array_equal(np.concatenate([first.output, second.output]), whole.output)
    np.testing.assert_array_equal(np.concatenate([first.y, second.y]), whole.y)
    for a, b in zip(second.final, whole.final):
        np.testing.assert_array_equal(a, b)
    state, ys = net.initial_state(4), []
    for t in range(len(x)):
        y, state = net.step(x[t], state)
        ys.append(y)
    np.testing.assert_array_equal(np.stack(ys), whole.y)
    for a, b in zip(state.h + tuple(c for c in state.c if c is not None),
                    whole.final + tuple(c for c in whole.final_c if c is not None)):
        np.testing.assert_array_equal(a, b)


def test_unbatched_and_batch_first_streaming():
    net = stack("lstm", batch_first=True)
    x = np.random.default_rng(2).standard_normal((2, 6, 3))
    whole = net.run(x)
    state = net.initial_state(2)
    outs = []
    for t in range(6):
        out, state = net.step(x[:, t], state)
        outs.append(out)
    np.testing.assert_array_equal(np.stack(outs, axis=1), whole.output)
    one = net.run(x[0].copy())
    state = net.initial_state()
    assert state.h[0].shape == (1, 5) and state.c[0].shape == (1, 5)
    for t in range(6):
        out, state = net.step(x[0, t], state)
    np.testing.assert_array_equal(out, one.output[-1])
    np.testing.assert_array_equal(state.h[1], one.final[1])


def test_streaming_errors_say_what_to_do():
    net = stack("gru")
    with pytest.raises(InputError, match="State"):
        net.step(np.zeros((1, 3)), np.zeros((2, 1, 5)))
    with pytest.raises(ShapeError, match=r"state.layers\[0\]\['h'\] has shape \(1, 1, 5\); "
                                         r"expected \(1, 2, 5\)"):
        net.step(np.zeros((2, 3)), net.initial_state(1))
    with pytest.raises(ShapeError, match="x_t"):
        net.step(np.zeros((1, 1, 3)), net.initial_state(1))
    with pytest.raises(ShapeError, match="batch"):
        net.initial_state(0)
    with pytest.raises(ShapeError, match="state has 1 layers; this network has 2"):
        net.step(np.zeros((1, 3)), rnnsim.State(net.initial_state(1).layers[:1]))
    with pytest.raises(ShapeError, match=r"state.layers\[1\] holds \['c', 'h'\]; layer 1 \(gru\) "
                                         r"has the states \['h'\]"):
        first = net.initial_state(1).layers[0]
        net.step(np.zeros((1, 3)), rnnsim.State((first, {**first, "c": first["h"]})))
    with pytest.raises(InputError, match="not both"):
        net.run(np.zeros((2, 1, 3)), net.initial_state(1), np.zeros((2, 1, 5)))
    bi = rnnsim.Network.from_config({"network": {"input_size": 3, "layers": [
        {"cell": "gru", "units": 2, "bidirectional": True}]}})
    with pytest.raises(ConfigError, match="bidirectional"):
        bi.step(np.zeros((1, 3)), bi.initial_state(1))


@pytest.mark.parametrize("variant", sorted(CELLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_lengths_equal_separate_runs_of_each_sequence(variant, dtype):
    bidirectional = not variant.startswith("esn")
    cfg = dict(CELLS[variant], bidirectional=bidirectional)
    net = rnnsim.Network.from_config({"network": {
        "input_size": 3, "dtype": dtype, "seed": 3, "layers": [cfg, cfg]}})
    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 4, 3)).astype(dtype)
    lengths = np.array([7, 3, 0, 5])
    result = net.run(x, lengths=lengths)
    for b, L in enumerate(lengths):
        assert not result.output[L:, b].any()
        if L == 0:
            for f, h0 in zip(result.final, net.initial_state(4).h):
                np.testing.assert_array_equal(f[:, b], h0[:, b])
            continue
        alone = net.run(x[:L, b].copy())
        tol = dict(rtol=2e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(result.output[:L, b], alone.output, **tol)
        for f, g in zip(result.final, alone.final):
            np.testing.assert_allclose(f[:, b], g, **tol)


def test_lengths_with_heads():
    cfg = {"input_size": 3, "seed": 1, "dtype": "float64", "layers": [{"cell": "gru", "units": 4}]}
    x = np.random.default_rng(0).standard_normal((6, 3, 3))
    lengths = np.array([6, 2, 4])
    last = rnnsim.Network.from_config({"network": {**cfg, "head": {"name": "last_step"}}})
    y = last.run(x, lengths=lengths).y
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(y[b], last.run(x[:L, b].copy()).y, rtol=1e-12)
    linear = rnnsim.Network.from_config({"network": {**cfg, "head": {"name": "linear"}}})
    y = linear.run(x, lengths=lengths).y
    assert not y[2:, 1].any() and y[:2, 1].all()


def test_lengths_errors_name_the_problem():
    net = stack("elman", layers=1)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ShapeError, match=r"lengths has shape \(3,\)"):
        net.run(x, lengths=[1, 2, 3])
    with pytest.raises(ShapeError, match=r"\[0, 5\]"):
        net.run(x, lengths=[1, 6])
    with pytest.raises(ShapeError, match="integers"):
        net.run(x, lengths=[1.5, 2.0])

    class NoLengths(rnnsim.Head):
        per_step = False

        def forward(self, params, states):
            return states[-1]

    from rnnsim.plugins import register_plugin, unregister_plugin

    class Plugin:
        @rnnsim.hookimpl
        def register_heads(self, register):
            register("no_lengths", NoLengths)

    name = "no-lengths-test"
    register_plugin(Plugin(), name)
    try:
        net = rnnsim.Network.from_config({"network": {
            "input_size": 3, "layers": [{"units": 2}], "head": {"name": "no_lengths"}}})
        with pytest.raises(PluginError, match="no_lengths"):
            net.run(x, lengths=[1, 2])
    finally:
        unregister_plugin(name)


@pytest.mark.parametrize("input_forget", [False, True])
def test_lstm_clip_and_input_forget(input_forget):
    net = random_network(3, [{"cell": "lstm", "units": 4, "clip": 0.7,
                              "input_forget": input_forget}])
    params = {name: 4 * value for name, value in net.params.items()}
    net = rnnsim.Network(net.config, params)
    x = np.random.default_rng(3).standard_normal((6, 2, 3))
    zeros = np.zeros((2, 4))
    expected = lstm(x, params["layers.0.W"], params["layers.0.U"], params["layers.0.b"], zeros,
                    zeros, clip=0.7, input_forget=input_forget)[0]
    np.testing.assert_allclose(net.run(x).output, expected, rtol=1e-12, atol=1e-13)
    unclipped = lstm(x, params["layers.0.W"], params["layers.0.U"], params["layers.0.b"],
                     zeros, zeros)[0]
    assert input_forget or not np.allclose(expected, unclipped)


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_clip_bounds_every_pre_activation(cell):
    net = random_network(3, [{"cell": cell, "units": 4, "clip": 0.25,
                              "activation": "identity"}])
    x = 10 * np.random.default_rng(4).standard_normal((5, 2, 3))
    out = net.run(x).output
    if cell == "elman":
        assert np.abs(out).max() <= 0.25 and np.isclose(np.abs(out).max(), 0.25)
    else:
        assert np.abs(out).max() <= 0.25 + 1e-12
    with pytest.raises(ConfigError, match="clip"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [
            {"cell": "esn", "units": 2, "clip": 1.0}]}})


def test_cli_run_with_lengths(tmp_path):
    from click.testing import CliRunner

    from rnnsim.cli import cli

    cfg = tmp_path / "net.yaml"
    cfg.write_text("network:\n  input_size: 3\n  layers:\n    - {cell: lstm, units: 4}\n")
    x = np.random.default_rng(0).standard_normal((5, 3, 3)).astype(np.float32)
    expected = rnnsim.Network.from_config(cfg).run(x, lengths=[5, 2, 4]).output
    np.savez(tmp_path / "in.npz", x=x, lengths=np.array([5, 2, 4]))
    np.save(tmp_path / "in.npy", x)
    runs = [["--input", str(tmp_path / "in.npz")],
            ["--input", str(tmp_path / "in.npy"), "--lengths", "5,2,4"]]
    for i, extra in enumerate(runs):
        out = tmp_path / f"out{i}.npz"
        result = CliRunner().invoke(cli, ["run", str(cfg), *extra, "--output", str(out)])
        assert result.exit_code == 0, result.output
        np.testing.assert_array_equal(np.load(out)["output"], expected)
    bad = CliRunner().invoke(cli, ["run", str(cfg), "--input", str(tmp_path / "in.npy"),
                                   "--lengths", "5,9,1"])
    assert bad.exit_code == 1 and "lengths must lie in [0, T] = [0, 5]" in bad.output
    bad = CliRunner().invoke(cli, ["run", str(cfg), "--lengths", "a,b"])
    assert bad.exit_code == 2 and "integers separated by commas" in bad.output
