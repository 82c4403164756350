"""Keras 3 models (KERAS_BACKEND=torch, set in conftest) with random values in every weight,
imported live (from_keras), from .keras files and from .weights.h5 files, against Keras'
own predict; and `rnnsim import keras` / `rnnsim run model.keras`."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

keras = pytest.importorskip("keras")

import rnnsim  # noqa: E402
from rnnsim import ConfigError, InputError  # noqa: E402
from rnnsim.cli import cli  # noqa: E402
from rnnsim.interop.keras import load_keras  # noqa: E402

L = keras.layers
T, B, K = 6, 3, 4


def randomized(model, seed=0, scale=0.6):
    """``model`` with every weight drawn from N(0, scale^2): no zero bias hides a mapping."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([(rng.standard_normal(w.shape) * scale).astype(w.dtype)
                           for w in layer.get_weights()])
    return model


def sequential(*layers, dtype="float32"):
    return randomized(keras.Sequential([keras.Input((T, K), dtype=dtype), *layers]))


MODELS = {
    "simple_rnn_relu_time_distributed": lambda: sequential(
        L.SimpleRNN(5, activation="relu", return_sequences=True),
        L.TimeDistributed(L.Dense(2, activation="sigmoid"))),
    "lstm_hard_sigmoid_stacked_last_step": lambda: sequential(
        L.LSTM(5, recurrent_activation="hard_sigmoid", return_sequences=True),
        L.LSTM(3, activation="softsign"), L.Dense(2, activation="softmax")),
    "gru_reset_after": lambda: sequential(L.GRU(5, return_sequences=True), L.Dense(3)),
    "gru_reset_before": lambda: sequential(
        L.GRU(5, reset_after=False, return_sequences=True),
        L.GRU(4, reset_after=False, recurrent_activation="hard_sigmoid", return_sequences=True)),
    "bidirectional_lstm_and_gru": lambda: sequential(
        L.Bidirectional(L.LSTM(4, return_sequences=True)),
        L.Bidirectional(L.GRU(3, reset_after=False, return_sequences=True)),
        L.TimeDistributed(L.Dense(2))),
    "no_bias": lambda: sequential(
        L.SimpleRNN(4, use_bias=False, return_sequences=True),
        L.LSTM(3, use_bias=False, return_sequences=True),
        L.GRU(3, use_bias=False, return_sequences=True), L.Dense(2, use_bias=False)),
    "last_step_only": lambda: sequential(L.GRU(4, activation="elu")),
    "functional_with_dropout": lambda: functional(),
    "rnn_around_cells": lambda: sequential(
        L.RNN(L.LSTMCell(4, recurrent_activation="hard_sigmoid"), return_sequences=True),
        L.Bidirectional(L.RNN(L.GRUCell(3, reset_after=False), return_sequences=True)),
        L.RNN(L.SimpleRNNCell(2, activation="relu"), return_sequences=True)),
}


def functional():
    inputs = keras.Input((T, K))
    h = L.LSTM(5, return_sequences=True, name="Encoder")(inputs)
    h = L.Dropout(0.3)(h)
    h = L.Bidirectional(L.SimpleRNN(3, return_sequences=True), name="Both")(h)
    return randomized(keras.Model(inputs, L.Dense(2, activation="tanh")(h)))


def drawn(dtype="float32", seed=1):
    return np.random.default_rng(seed).standard_normal((B, T, K)).astype(dtype)


def predicted(net, x):
    result = net.run(x)
    return result.output if result.y is None else result.y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (model, .keras path, .weights.h5 path, JSON config path)."""
    folder = tmp_path_factory.mktemp("keras")
    found = {}
    for name, build in MODELS.items():
        model = build()
        model.save(folder / f"{name}.keras")
        model.save_weights(folder / f"{name}.weights.h5")
        (folder / f"{name}.json").write_text(model.to_json())
        found[name] = (model, *(folder / f"{name}{s}" for s in (".keras", ".weights.h5",
                                                                  ".json")))
    return found


@pytest.mark.parametrize("name", MODELS)
def test_live_and_saved_models_agree_with_keras_predict(saved, name):
    model, keras_file, weights_file, config_file = saved[name]
    x = drawn()
    expected = model.predict(x, verbose=0)
    for net in (rnnsim.from_keras(model), load_keras(keras_file),
                load_keras(weights_file, config_file), rnnsim.import_file(keras_file)):
        got = predicted(net, x)
        if got.shape != expected.shape:  # return_sequences=False without a head: last step
            got = got[:, -1]
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)
        assert net.config.network.batch_first


def test_float64_models_agree_to_rounding():
    keras.config.set_floatx("float64")  # predict casts NumPy inputs to floatx
    keras.config.set_dtype_policy("float64")
    try:
        model = sequential(L.Bidirectional(L.GRU(4, return_sequences=True)),
                           L.LSTM(3, return_sequences=True, recurrent_activation="hard_sigmoid"),
                           dtype="float64")
        x = drawn("float64")
        expected = model.predict(x, verbose=0)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")
    net = rnnsim.from_keras(model)
    assert net.dtype == np.float64 and expected.dtype == np.float64
    np.testing.assert_allclose(net.run(x).output, expected, rtol=1e-12, atol=1e-13)


def test_a_single_live_layer():
    layer = L.GRU(5, reset_after=False, return_sequences=True)
    model = sequential(layer)
    x = drawn()
    np.testing.assert_allclose(rnnsim.from_keras(layer).run(x).output,
                               model.predict(x, verbose=0), rtol=2e-5, atol=2e-6)
    with pytest.raises(ConfigError, match="not built"):
        rnnsim.from_keras(L.LSTM(3))


def test_gate_blocks_are_mapped_not_just_shaped():
    """Swapping Keras' z and r blocks (a plausible mapping bug) changes the output."""
    model = sequential(L.GRU(4, return_sequences=True))
    net = rnnsim.from_keras(model)
    W = net.params["layers.0.W"]
    assert W.shape == (12, K)
    kernel = model.layers[0].get_weights()[0]
    np.testing.assert_array_equal(W[:4], kernel[:, 4:8].T)  # rnnsim r = Keras r (2nd block)
    np.testing.assert_array_equal(W[4:8], kernel[:, :4].T)  # rnnsim z = Keras z (1st block)


def test_weights_file_alone_is_inferred_from_shapes(tmp_path):
    model = sequential(L.LSTM(6, return_sequences=True),
                       L.Bidirectional(L.GRU(2, return_sequences=True)),
                       L.SimpleRNN(3, return_sequences=True), L.TimeDistributed(L.Dense(2)))
    model.save_weights(tmp_path / "m.weights.h5")
    x = drawn()
    with pytest.warns(UserWarning, match="default activations"):
        net = load_keras(tmp_path / "m.weights.h5")
    assert [layer.name for layer in net.layers] == ["lstm", "gru", "elman"]
    np.testing.assert_allclose(net.run(x).y, model.predict(x, verbose=0), rtol=2e-5, atol=2e-6)


def test_weights_file_whose_order_the_shapes_do_not_decide(tmp_path):
    model = sequential(L.LSTM(4, return_sequences=True), L.GRU(4, return_sequences=True))
    model.save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ConfigError, match="fit several orders.*--config"):
        load_keras(tmp_path / "m.weights.h5")


@pytest.mark.parametrize("layers,match", [
    ([L.Conv1D(3, 2)], "Conv1D.*does not import this layer type"),
    ([L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum")],
     "merge_mode 'sum'"),
    ([L.LSTM(3, go_backwards=True, return_sequences=True)], "go_backwards=True"),
    ([L.SimpleRNN(3, activation="exponential", return_sequences=True)],
     "activation 'exponential' has no rnnsim equivalent"),
    ([L.Bidirectional(L.GRU(3))], "Bidirectional with return_sequences=False"),
    ([L.LSTM(3), L.Dense(2), L.Dense(2)], "follows the head"),
    ([L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.LSTMCell(2)]), return_sequences=True)],
     "wraps StackedRNNCells"),
])
def test_unsupported_models_are_refused_by_name(layers, match):
    with pytest.raises(ConfigError, match=match):
        rnnsim.from_keras(sequential(*layers))


def test_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_keras(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a keras file")
    with pytest.raises(InputError, match="cannot be read"):
        load_keras(tmp_path / "bad.keras")


def test_reading_files_needs_no_keras(saved):
    """A .keras file is read with h5py alone: keras cannot even be imported here."""
    _, keras_file, _, _ = saved["bidirectional_lstm_and_gru"]
    code = ("import sys; sys.modules['keras'] = None; sys.modules['torch'] = None; "
            "import rnnsim; net = rnnsim.import_file(sys.argv[1]); "
            "print([l.name for l in net.layers])")
    out = subprocess.run([sys.executable, "-c", code, str(keras_file)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "['lstm', 'gru']"


def test_cli_import_then_run_and_run_by_suffix(saved, tmp_path):
    model, keras_file, weights_file, config_file = saved["bidirectional_lstm_and_gru"]
    x = drawn()
    np.save(tmp_path / "x.npy", x)
    expected = model.predict(x, verbose=0)
    runner = CliRunner()
    out = runner.invoke(cli, ["import", "keras", str(keras_file), "-o", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    assert "2 layer(s) (lstm, gru) and a linear head" in out.output
    out = runner.invoke(cli, ["import", "keras", str(weights_file), "--config", str(config_file),
                              "--dtype", "float64", "-o", str(tmp_path / "m64")])
    assert out.exit_code == 0, out.output
    assert rnnsim.load(tmp_path / "m64").dtype == np.float64
    for source, name in ((tmp_path / "m", "a"), (keras_file, "b"), (tmp_path / "m64", "c")):
        ran = runner.invoke(cli, ["run", str(source), "--input", str(tmp_path / "x.npy"),
                                  "--output", str(tmp_path / f"{name}.npz")])
        assert ran.exit_code == 0, ran.output
        with np.load(tmp_path / f"{name}.npz") as written:
            np.testing.assert_allclose(written["y"], expected, rtol=2e-5, atol=2e-6)
    for command in (["validate"], ["explain", "-T", "3"]):
        done = runner.invoke(cli, [*command, str(keras_file)])
        assert done.exit_code == 0 and "lstm" in done.output, done.output
    info = runner.invoke(cli, ["info", str(keras_file), "--json"])
    assert info.exit_code == 0, info.output
    assert [row["cell"] for row in json.loads(info.output)["layers"]] == ["lstm", "gru"]


def test_cli_import_errors_name_the_problem(saved, tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["import", "kerass", "m.keras", "-o", str(tmp_path / "m")])
    assert out.exit_code == 2 and "did you mean 'keras'" in out.output
    model = sequential(L.LSTM(3, return_sequences=True), L.Conv1D(2, 2))
    model.save(tmp_path / "conv.keras")
    out = runner.invoke(cli, ["import", "keras", str(tmp_path / "conv.keras"), "-o",
                              str(tmp_path / "m")])
    assert out.exit_code == 1 and "Conv1D" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "m").exists()


def test_bad_configs_are_named(saved, tmp_path):
    _, _, weights_file, config_file = saved["gru_reset_after"]
    with pytest.raises(InputError, match="cannot be read as a Keras model's JSON"):
        load_keras(weights_file, "{not json")
    with pytest.raises(InputError, match="none.json"):
        load_keras(weights_file, tmp_path / "none.json")
    config = json.loads(config_file.read_text())
    del config["config"]["layers"][1]["config"]["units"]
    with pytest.raises(ConfigError, match="not what Keras 3 writes.*units"):
        load_keras(weights_file, config)


def test_a_missing_h5py_says_how_to_install_it(saved, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(InputError, match=r"needs the h5py package: pip install 'rnnsim\[keras\]'"):
        load_keras(saved["gru_reset_after"][1])
