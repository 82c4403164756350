"""`rnnsim schema`: a JSON Schema built from the installed plugins, that every example config
meets, that rejects a bad config at the key path rnnsim's own checks name, and that the
committed rnnsim.schema.json equals."""
import copy
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import plugins, schema
from rnnsim.cli import cli
from rnnsim.config import read_yaml
from rnnsim.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
HEADER = "# yaml-language-server: $schema=../rnnsim.schema.json"


def validator(plugins_=None):
    built = schema.json_schema(plugins_)
    jsonschema.Draft202012Validator.check_schema(built)
    return jsonschema.Draft202012Validator(built)


def error_paths(data, check=None) -> set[str]:
    """Where each error is, as a validator reports it (``best_match`` goes into the branch of
    an ``anyOf`` that fits best, as ``check-jsonschema`` and editors do)."""
    return {jsonschema.exceptions.best_match([error]).json_path
            for error in (check or validator()).iter_errors(data)}


def test_the_committed_schema_is_the_generated_one():
    committed = (ROOT / "rnnsim.schema.json").read_text()
    assert committed == schema.dumps(schema.json_schema()), (
        "rnnsim.schema.json is stale: run `rnnsim schema -o rnnsim.schema.json`")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_example_config_points_at_the_schema_and_meets_it(path):
    assert path.read_text().splitlines()[0] == HEADER
    assert (path.parent / HEADER.split("=", 1)[1]).resolve() == ROOT / "rnnsim.schema.json"
    assert error_paths(read_yaml(path)) == set()


QUICKSTART = read_yaml(ROOT / "configs" / "quickstart.yaml")


def changed(edit):
    data = copy.deepcopy(QUICKSTART)
    edit(data["network"])
    return data


BAD = [  # (what is wrong, the edit, the path jsonschema names, the key path rnnsim names)
    ("no units", lambda n: n["layers"][0].update(units=0),
     "$.network.layers[0].units", "network.layers[0].units"),
    ("unknown cell", lambda n: n["layers"][0].update(cell="elmann"),
     "$.network.layers[0].cell", "network.layers[0].cell"),
    ("another cell's option", lambda n: n["layers"][0].update(cell="lstm", leak_rate=0.5),
     "$.network.layers[0]", "network.layers[0].leak_rate"),
    ("unknown activation", lambda n: n["layers"][0].update(activation="relu6"),
     "$.network.layers[0].activation", "network.layers[0].activation"),
    ("unknown activation parameter",
     lambda n: n["layers"][0].update(activation={"name": "elu", "alpah": 0.5}),
     "$.network.layers[0].activation", "network.layers[0].activation"),
    ("unknown initializer parameter",
     lambda n: n["layers"][0].update(init={"recurrent": {"name": "orthogonal", "gian": 2.0}}),
     "$.network.layers[0].init.recurrent", "network.layers[0].init.recurrent.gian"),
    ("string where a number goes",
     lambda n: n["layers"][0].update(init={"input": {"name": "uniform", "low": "a"}}),
     "$.network.layers[0].init.input.low", "network.layers[0].init.input"),
    ("unknown head", lambda n: n["head"].update(name="linaer"),
     "$.network.head.name", "network.head.name"),
    ("gru option on a default (elman) layer", lambda n: n["layers"][0].update(reset_after=True),
     "$.network.layers[0]", "network.layers[0].reset_after"),
    ("bad dtype", lambda n: n.update(dtype="float16"), "$.network.dtype", "network.dtype"),
]


@pytest.mark.parametrize("what, edit, path, key", BAD, ids=[b[0] for b in BAD])
def test_a_bad_config_is_rejected_at_the_path_rnnsim_names(what, edit, path, key):
    data = changed(edit)
    assert error_paths(data) == {path}
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        rnnsim.Network.from_config(data)


def test_cell_options_and_parameters_are_offered_per_plugin():
    check = validator()
    lstm = changed(lambda n: n["layers"][0].update(
        cell="lstm", peepholes=True, gate_activation="hard_sigmoid",
        activation={"name": "elu", "alpha": 0.3},
        init={"recurrent": {"name": "orthogonal", "gain": 0.9}}))
    assert error_paths(lstm, check) == set()
    rnnsim.Network.from_config(lstm)
    esn = changed(lambda n: n["layers"][0].update(
        cell="esn", leak_rate=[0.5] * 10, sparse=True,
        init={"recurrent": {"name": "sparse_random", "connectivity": 0.2,
                            "spectral_radius": 0.9}}))
    assert error_paths(esn, check) == set()
    rnnsim.Network.from_config(esn)
    esn["network"]["layers"][0]["feedback"] = True  # true: feedback at the default scaling
    assert error_paths(esn, check) == set()


class Halves:
    @rnnsim.hookimpl
    def register_activations(self, register):
        register("halved", lambda x, scale: 0.5 * scale * x, params={"scale": 1.0})

    @rnnsim.hookimpl
    def register_initializers(self, register):
        register("halves", lambda shape, rng, dtype, spread=0.5: np.full(shape, spread, dtype))


def test_a_newly_installed_plugin_enters_the_schema():
    data = changed(lambda n: n["layers"][0].update(
        activation={"name": "halved", "scale": 2.0},
        init={"bias": {"name": "halves", "spread": 0.25}}))
    assert error_paths(data) == {"$.network.layers[0].activation.name",
                                 "$.network.layers[0].init.bias.name"}
    plugins.register_plugin(Halves(), name="halves-test", package="test-package")
    try:
        assert error_paths(data) == set()
        data["network"]["layers"][0]["init"]["bias"]["spread"] = "wide"
        assert error_paths(data) == {"$.network.layers[0].init.bias.spread"}
    finally:
        plugins.unregister_plugin("halves-test")


def test_the_command_prints_or_writes_the_schema(tmp_path):
    printed = CliRunner().invoke(cli, ["schema"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == schema.json_schema()
    out = tmp_path / "rnnsim.schema.json"
    written = CliRunner().invoke(cli, ["schema", "-o", str(out)])
    assert written.exit_code == 0, written.output
    assert out.read_text() == printed.output
    assert "enum" in json.dumps(json.loads(out.read_text())["$defs"]["LayerConfig"]["properties"]["cell"])
