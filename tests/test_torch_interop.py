"""from_torch on PyTorch state dicts, and `rnnsim import torch`; torch itself is not needed."""
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import ConfigError, ShapeError
from rnnsim.cli import cli
from conformance import arrays, cases

LSTM_PROJ = "torch-lstm-T10-B3-k4-p8-L2-proj3-h0-float64"
GRU = "torch-gru-T8-B2-k3-p4-L2-bi-nobias-float32"


def case(case_id):
    found = {c["id"]: c for c in cases()}[case_id]
    data = arrays(found)
    state = {k[len("state."):]: v for k, v in data.items() if k.startswith("state.")}
    return found, state, data


def test_lstm_projection_and_gru_biases_map_to_rnnsim_names():
    _, state, _ = case(LSTM_PROJ)
    net = rnnsim.from_torch(state, mode="lstm", input_size=4, hidden_size=8, num_layers=2,
                            proj_size=3)
    np.testing.assert_array_equal(net.params["layers.1.R"], state["weight_hr_l1"])
    np.testing.assert_array_equal(net.params["layers.0.b"],
                                  state["bias_ih_l0"] + state["bias_hh_l0"])
    assert net.params["layers.1.W"].shape == (32, 3) and net.dtype == np.float64
    p, rng = 5, np.random.default_rng(0)
    gru_state = {"weight_ih_l0": rng.standard_normal((15, 2)),
                 "weight_hh_l0": rng.standard_normal((15, 5)),
                 "bias_ih_l0": rng.standard_normal(15), "bias_hh_l0": rng.standard_normal(15)}
    net = rnnsim.from_torch(gru_state, mode="Gru", input_size=2, hidden_size=p)
    b_hh = gru_state["bias_hh_l0"]
    np.testing.assert_array_equal(net.params["layers.0.bn"], b_hh[2 * p:])
    np.testing.assert_array_equal(net.params["layers.0.b"][:2 * p],
                                  gru_state["bias_ih_l0"][:2 * p] + b_hh[:2 * p])
    np.testing.assert_array_equal(net.params["layers.0.b"][2 * p:], gru_state["bias_ih_l0"][2 * p:])


class FakeTensor:
    def __init__(self, value):
        self.value = value

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self.value


class FakeGRU:
    """Quacks like a torch.nn.GRU: mode, constructor attributes and state_dict()."""

    def __init__(self, state, **args):
        self._state = state
        self.__dict__.update(args)

    def state_dict(self):
        return {k: FakeTensor(v) for k, v in self._state.items()}


def test_a_live_module_is_read_through_its_attributes():
    found, state, data = case(GRU)
    module = FakeGRU(state, mode="GRU", proj_size=0, **found["config"])
    result = rnnsim.from_torch(module).run(data["x"])
    np.testing.assert_allclose(result.output, data["output"], rtol=1e-5, atol=1e-4)


def test_mismatched_names_and_shapes_are_reported_all_at_once():
    _, state, _ = case(LSTM_PROJ)
    state = dict(state, extra_l0=np.zeros(2))
    del state["bias_hh_l1"]
    with pytest.raises(ShapeError) as info:
        rnnsim.from_torch(state, mode="LSTM", input_size=4, hidden_size=8, num_layers=2,
                          proj_size=4)
    message = str(info.value)
    assert "'weight_hh_l0' has shape (32, 3), expected (32, 4)" in message
    assert "'weight_hr_l1' has shape (3, 8), expected (4, 8)" in message
    assert "missing 'bias_hh_l1' of shape (32,)" in message
    assert "unexpected 'extra_l0'" in message and "proj_size=4" in message


@pytest.mark.parametrize("args,match", [
    (dict(mode="transformer"), "mode 'transformer' is not supported"),
    (dict(mode="gru", proj_size=2), "proj_size=2 applies to LSTM only"),
    (dict(mode="lstm", proj_size=8), "must be smaller than hidden_size"),
    (dict(mode="lstm", nonlinearity="relu"), "nonlinearity 'relu' does not apply"),
    (dict(mode="lstm", dropout=0.1), r"unknown argument\(s\) \['dropout'\]"),
])
def test_bad_constructor_arguments(args, match):
    with pytest.raises(ConfigError, match=match):
        rnnsim.from_torch({}, input_size=4, hidden_size=8, **args)


def test_required_arguments_and_input_type():
    with pytest.raises(ConfigError, match="'hidden_size' is required"):
        rnnsim.from_torch({}, mode="lstm", input_size=4)
    with pytest.raises(ConfigError, match="not list"):
        rnnsim.from_torch([], mode="lstm")


IMPORT_ARGS = ["--mode", "LSTM", "--input-size", "4", "--hidden-size", "8", "--num-layers", "2",
               "--proj-size", "3"]


def save_npz(path, state):
    np.savez(path, **state)
    return str(path)


def test_cli_import_round_trip_from_npz(tmp_path):
    found, state, data = case(LSTM_PROJ)
    weights = save_npz(tmp_path / "lstm.npz", state)
    runner = CliRunner()
    out = runner.invoke(cli, ["import", "torch", weights, *IMPORT_ARGS, "-o",
                              str(tmp_path / "model")])
    assert out.exit_code == 0, out.output
    assert "wrote" in out.output
    net = rnnsim.load(tmp_path / "model")
    result = net.run(data["x"], h0=data["h0"], c0=data["c0"])
    for name in ("output", "h_n", "c_n"):
        np.testing.assert_allclose(getattr(result, name), data[name], rtol=found["rtol"],
                                   atol=found["atol"])
    ran = runner.invoke(cli, ["run", str(tmp_path / "model"), "--json"])
    assert ran.exit_code == 0, ran.output


def test_cli_import_from_safetensors(tmp_path):
    from safetensors.numpy import save_file

    found, state, data = case(GRU)
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, tmp_path / "gru.safetensors")
    args = ["--mode", "gru", "--input-size", "3", "--hidden-size", "4", "--num-layers", "2",
            "--no-bias", "--bidirectional"]
    out = CliRunner().invoke(cli, ["import", "torch", str(tmp_path / "gru.safetensors"), *args,
                                   "-o", str(tmp_path / "model")])
    assert out.exit_code == 0, out.output
    result = rnnsim.load(tmp_path / "model").run(data["x"])
    np.testing.assert_allclose(result.output, data["output"], rtol=1e-5, atol=1e-4)


def test_cli_import_reports_every_mismatch_without_traceback(tmp_path):
    _, state, _ = case(LSTM_PROJ)
    weights = save_npz(tmp_path / "lstm.npz", state)
    args = ["--mode", "lstm", "--input-size", "5", "--hidden-size", "8", "--num-layers", "2"]
    out = CliRunner().invoke(cli, ["import", "torch", weights, *args, "-o",
                                   str(tmp_path / "model")])
    assert out.exit_code == 1
    assert "Traceback" not in out.output
    assert "'weight_ih_l0' has shape (32, 4), expected (32, 5)" in out.output
    assert "unexpected 'weight_hr_l0'" in out.output and "unexpected 'weight_hr_l1'" in out.output
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("name,module,match", [
    ("w.pt", "torch", "needs PyTorch"),
])
def test_cli_import_names_the_missing_package(tmp_path, monkeypatch, name, module, match):
    (tmp_path / name).write_bytes(b"\0")
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    out = CliRunner().invoke(cli, ["import", "torch", str(tmp_path / name), *IMPORT_ARGS,
                                   "-o", str(tmp_path / "model")])
    assert out.exit_code == 1 and match in out.output and "Traceback" not in out.output


def test_safetensors_are_read_without_the_safetensors_package(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    from rnnsim.interop.torch import load_state_dict

    arrays = {"weight_ih_l0": np.arange(12, dtype=np.float32).reshape(4, 3),
              "bias_ih_l0": np.arange(4, dtype=np.float64), "steps": np.array(7, np.int64),
              "empty": np.zeros((0, 5), np.float16), "mask": np.array([True, False])}
    save_file(arrays, str(tmp_path / "w.safetensors"), metadata={"format": "pt"})
    for loaded in [m for m in sys.modules if m == "safetensors" or m.startswith("safetensors.")]:
        monkeypatch.delitem(sys.modules, loaded)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    read = load_state_dict(tmp_path / "w.safetensors")
    assert sorted(read) == sorted(arrays)
    for name, value in arrays.items():
        assert read[name].dtype == value.dtype and read[name].shape == value.shape
        np.testing.assert_array_equal(read[name], value)


def test_cli_import_file_errors(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["import", "torch", str(tmp_path / "none.npz"), *IMPORT_ARGS,
                                  "-o", str(tmp_path / "m")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    (tmp_path / "w.h5").write_bytes(b"")
    odd = runner.invoke(cli, ["import", "torch", str(tmp_path / "w.h5"), *IMPORT_ARGS,
                              "-o", str(tmp_path / "m")])
    assert odd.exit_code == 1 and "unknown type '.h5'" in odd.output
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    bad = runner.invoke(cli, ["import", "torch", str(tmp_path / "bad.npz"), *IMPORT_ARGS,
                              "-o", str(tmp_path / "m")])
    assert bad.exit_code == 1 and "is not an .npz file" in bad.output
    usage = runner.invoke(cli, ["import", "torch", str(tmp_path / "bad.npz"), "--mode", "lstm"])
    assert usage.exit_code == 2



@pytest.mark.parametrize("head_name", ["linear", "last_step"])
def test_a_linear_readout_comes_in_as_the_head(head_name):
    """GRU -> Linear: the Linear's state dict becomes the head, so y is fc(output) per step
    (or fc(output[-1])), computed here with NumPy on the module's own output."""
    rng = np.random.default_rng(4)
    p, k, m = 5, 3, 2
    state = {"weight_ih_l0": rng.standard_normal((3 * p, k)),
             "weight_hh_l0": rng.standard_normal((3 * p, p)),
             "bias_ih_l0": rng.standard_normal(3 * p), "bias_hh_l0": rng.standard_normal(3 * p)}
    fc = {"weight": rng.standard_normal((m, p)), "bias": rng.standard_normal(m)}
    net = rnnsim.from_torch(state, head=fc, head_name=head_name, mode="GRU", input_size=k,
                            hidden_size=p, dtype="float64")
    x = rng.standard_normal((7, 1, k))
    result = net.run(x)
    states = result.output if head_name == "linear" else result.output[-1]
    np.testing.assert_allclose(result.y, states @ fc["weight"].T + fc["bias"], rtol=1e-12)
    with pytest.raises(ShapeError, match=r"head's weight has shape \(2, 4\)"):
        rnnsim.from_torch(state, head={"weight": np.zeros((2, 4))}, mode="GRU", input_size=k,
                          hidden_size=p)
    with pytest.raises(ConfigError, match="head must be a torch.nn.Linear"):
        rnnsim.from_torch(state, head=[1, 2], mode="GRU", input_size=k, hidden_size=p)


def test_a_torch_model_with_a_linear_head_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn, fc = torch.nn.LSTM(3, 6, batch_first=True), torch.nn.Linear(6, 4)
    x = torch.randn(2, 9, 3)
    with torch.no_grad():
        expected = fc(rnn(x)[0]).numpy()
    net = rnnsim.from_torch(rnn, head=fc)
    np.testing.assert_allclose(net.run(x.numpy()).y, expected, rtol=1e-5, atol=1e-6)
