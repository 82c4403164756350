"""Importers as a plugin kind: registered through register_importers, picked by name or file
type (`rnnsim import FORMAT`, `rnnsim run FILE`, rnnsim.import_file), options checked,
clashes naming both plugins."""
import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import ConfigError, InputError, PluginError, plugins
from rnnsim.cli import cli
from rnnsim.config import parse
from rnnsim.importers import find_importer, import_file

P, K = 4, 2


def load_toy(path, scale=1.0, dtype="float64"):
    """An Elman network from a .toy file (an .npz of W, U, b), its weights times ``scale``."""
    with np.load(path) as arrays:
        params = {f"layers.0.{name}": arrays[name] * scale for name in ("W", "U", "b")}
    config = {"network": {"input_size": K, "dtype": dtype, "layers": [{"units": P}]}}
    return rnnsim.Network(parse(config), params)


TOY_OPTIONS = {"scale": {"help": "Multiplies every weight.", "type": "float", "default": 1.0},
               "dtype": {"help": "Precision.", "choices": ["float32", "float64"],
                         "default": "float64"}}


class Toy:
    @rnnsim.hookimpl
    def register_importers(self, register):
        register("toy", load_toy, suffixes=[".toy"], description="toy Elman weights",
                 options=TOY_OPTIONS)


@pytest.fixture
def toy_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "net.toy"
    with open(path, "wb") as fh:
        np.savez(fh, W=rng.standard_normal((P, K)), U=rng.standard_normal((P, P)) / P,
                 b=rng.standard_normal(P))
    np.save(tmp_path / "x.npy", rng.standard_normal((5, 1, K)))
    return path


def test_builtins_are_registered_through_the_hook():
    importers = plugins.get_plugins().importers
    assert {"torch", "onnx", "keras", "reservoirpy"} <= {e.name for e in importers}
    assert {e.source.plugin for e in importers} == {"rnnsim.builtins.importers"}
    rows = [r for r in plugins.describe() if r["kind"] == "importer"]
    assert next(r for r in rows if r["name"] == "keras")["suffixes"] == [".keras", ".weights.h5"]


@pytest.mark.parametrize("name,format", [
    ("m.keras", "keras"), ("M.WEIGHTS.H5", "keras"), ("m.onnx", "onnx"), ("w.pt", "torch"),
    ("w.safetensors", "torch"), ("esn.rpy", "reservoirpy"), ("config.yaml", None),
    ("w.h5", None)])
def test_file_types_pick_the_importer(name, format):
    found = find_importer(name)
    assert (found and found.name) == format


def test_a_keras_zip_is_recognised_by_its_content(tmp_path):
    import zipfile

    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"")
    assert find_importer(path).name == "keras"


def test_a_plugin_importer_from_api_and_cli(temporary, toy_file, tmp_path):
    temporary(Toy(), "toy-plugin")
    net = import_file(toy_file)
    doubled = rnnsim.import_file(toy_file, format="toy", scale=2.0, dtype="float32")
    assert doubled.dtype == np.float32
    np.testing.assert_allclose(doubled.params["layers.0.W"], 2 * net.params["layers.0.W"],
                               rtol=1e-6)
    runner = CliRunner()
    listed = runner.invoke(cli, ["plugins"])
    assert "importers:" in listed.output and "toy" in listed.output and ".toy" in listed.output
    out = runner.invoke(cli, ["import", "toy", str(toy_file), "--scale", "2", "-o",
                              str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    np.testing.assert_allclose(rnnsim.load(tmp_path / "m").params["layers.0.W"],
                               2 * net.params["layers.0.W"])
    ran = runner.invoke(cli, ["run", str(toy_file), "--input", str(tmp_path / "x.npy"),
                              "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["output_shape"] == [5, 1, P]
    helped = runner.invoke(cli, ["import", "toy", "--help"])
    assert "--scale FLOAT" in helped.output and "Multiplies every weight." in helped.output


def test_options_are_checked_together(temporary, toy_file):
    temporary(Toy(), "toy-plugin")
    with pytest.raises(ConfigError, match=r"unknown option 'gain'; 'dtype' is 'float16', "
                                          r"not one of \['float32', 'float64'\]"):
        import_file(toy_file, "toy", gain=2, dtype="float16")
    with pytest.raises(ConfigError, match="'mode' is required"):
        import_file(toy_file, "torch", input_size=2, hidden_size=3)


def test_a_duplicate_name_is_an_error_naming_both_plugins(temporary, toy_file, tmp_path):
    class Another:
        @rnnsim.hookimpl
        def register_importers(self, register):
            register("toy", load_toy, suffixes=[".toy2"])

    temporary(Toy(), "toy-plugin")
    temporary(Another(), "another", package="another-package")
    message = r"importer 'toy' is registered twice: by plugin 'toy-plugin'.*and by plugin " \
              r"'another' \(package another-package"
    with pytest.raises(ConfigError, match=message):
        import_file(toy_file, "toy")
    out = CliRunner().invoke(cli, ["import", "toy", str(toy_file), "-o", str(tmp_path / "m")])
    assert out.exit_code == 2 and "registered twice" in out.output and "another" in out.output
    listed = CliRunner().invoke(cli, ["plugins"])
    assert "CLASH" in listed.output


def test_a_file_two_importers_claim_names_both(temporary, toy_file):
    class Claims:
        @rnnsim.hookimpl
        def register_importers(self, register):
            register("other_toy", load_toy, suffixes=[".toy"])

    temporary(Toy(), "toy-plugin")
    temporary(Claims(), "claims")
    with pytest.raises(InputError, match="importer 'toy' of plugin 'toy-plugin'.*importer "
                                         "'other_toy' of plugin 'claims'.*name the format"):
        import_file(toy_file)
    assert import_file(toy_file, "other_toy").layers[0].units == P


@pytest.mark.parametrize("call,message", [
    (lambda register: register("bad", 42), "load or sniff is not callable"),
    (lambda register: register("bad", load_toy, suffixes=".toy"), "file name endings"),
    (lambda register: register("bad", load_toy, options={"scale": {"type": "float"}}),
     "option 'scale'"),
    (lambda register: register("bad", load_toy, options={"scale": {"help": "x",
                                                                   "type": "complex"}}),
     "option 'scale'"),
])
def test_bad_registrations_are_named(temporary, call, message):
    class Bad:
        @rnnsim.hookimpl
        def register_importers(self, register):
            call(register)

    temporary(Bad(), "bad-importer")
    with pytest.raises(PluginError, match=message) as info:
        plugins.get_plugins()
    assert "bad-importer" in str(info.value)


def test_an_importer_that_raises_is_named(temporary, toy_file):
    def broken(path):
        raise KeyError("W")

    class Broken:
        @rnnsim.hookimpl
        def register_importers(self, register):
            register("broken", broken, suffixes=[".toy"])

    temporary(Broken(), "broken-plugin")
    with pytest.raises(PluginError, match="importer 'broken' \\(plugin 'broken-plugin'.*KeyError"):
        import_file(toy_file, "broken")


def test_unknown_format_and_file_type(tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["import", "onxx", "m.onnx", "-o", str(tmp_path / "m")])
    assert out.exit_code == 2 and "did you mean 'onnx'" in out.output
    (tmp_path / "w.h5").write_bytes(b"")
    with pytest.raises(InputError, match=r"no importer reads .*\.keras \(keras\)"):
        import_file(tmp_path / "w.h5")


def test_a_graph_import_runs_as_it_is(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weights = {"W": rng.standard_normal((1, P, K)).astype(np.float32),
               "R": rng.standard_normal((1, P, P)).astype(np.float32)}
    graph = helper.make_graph(
        [helper.make_node("RNN", ["x", "W", "R"], ["y"], hidden_size=P)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, name) for name, v in weights.items()])
    path = tmp_path / "rnn.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)
    out = CliRunner().invoke(cli, ["import", "onnx", str(path), "-o", str(tmp_path / "m")])
    assert out.exit_code == 2 and "runs as it is" in out.output
    assert not (tmp_path / "m").exists()
    np.save(tmp_path / "x.npy", rng.standard_normal((3, 1, K)).astype(np.float32))
    ran = CliRunner().invoke(cli, ["run", str(path), "--input", str(tmp_path / "x.npy"),
                                   "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["outputs"]["y"]["shape"] == [3, 1, 1, P]
    explained = CliRunner().invoke(cli, ["explain", str(path)])
    assert explained.exit_code == 1 and "runs as it is" in explained.output


def load_sparse_esn(path):
    """A sparse echo-state network (its reservoir in CSR), whatever the file holds."""
    from test_esn import esn_config

    return rnnsim.Network.from_config(esn_config(units=40, sparse=True))


class SparseEsn:
    @rnnsim.hookimpl
    def register_importers(self, register):
        register("sparse_esn", load_sparse_esn, suffixes=[".sesn"], description="sparse ESN")


def test_every_command_counts_a_sparse_reservoir_by_its_nonzeros(temporary, tmp_path):
    """`rnnsim import`, validate, info and explain give one count: a CSR matrix's stored
    nonzeros, never its index arrays."""
    temporary(SparseEsn(), "sparse-esn")
    net = load_sparse_esn(None)
    (row,) = [r for r in net.parameter_table() if r["sparse"]]
    dense = sum(r["count"] for r in net.parameter_table() if not r["sparse"])
    nonzeros = int(net.params[f"{row['name']}.data"].size)
    assert net.parameter_count() == dense + nonzeros
    assert net.parameter_count() < sum(v.size for v in net.params.values())  # + the indices
    assert net.parameter_count("layers.0.") == net.parameter_count() - sum(
        r["count"] for r in net.parameter_table() if r["name"].startswith("head."))
    source, folder = tmp_path / "model.sesn", tmp_path / "model"
    source.write_bytes(b"")
    n = f"{net.parameter_count():,}"
    runner = CliRunner()
    for args, expected in ((["import", "sparse_esn", source, "-o", folder], f"{n} parameters"),
                           (["validate", folder], f"{n} parameters"),
                           (["info", folder], rf"total\s+{n}\n"),
                           (["explain", folder], f"the same {n} weights")):
        result = runner.invoke(cli, [str(arg) for arg in args])
        assert result.exit_code == 0, result.output
        assert re.search(expected, result.output), (args, result.output)
