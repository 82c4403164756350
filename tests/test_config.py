"""Config validation: every mistake is reported with its key path and a hint."""
import numpy as np
import pytest

import rnnsim
from rnnsim import ConfigError
from rnnsim.config import parse


def base(**network):
    net = {"input_size": 8, "layers": [{"units": 10}]}
    net.update(network)
    return {"network": net}


def error_of(cfg) -> str:
    with pytest.raises(ConfigError) as info:
        rnnsim.Network.from_config(cfg)
    return str(info.value)


def test_unknown_key_suggests_the_right_one():
    cfg = base(layers=[{"unitz": 10}])
    message = error_of(cfg)
    assert "network.layers[0].unitz: unknown key (did you mean 'units'?)" in message
    assert "network.layers[0].units: required key is missing" in message


def test_every_error_reported_at_once():
    cfg = {"network": {"input_size": -1, "dtype": "float16", "layers": [{"units": 0}]},
           "runn": {}}
    message = error_of(cfg)
    assert "4 errors" in message
    for path in ("network.input_size", "network.dtype", "network.layers[0].units", "runn"):
        assert path in message


@pytest.mark.parametrize("field,value", [("input_size", "8"), ("input_size", 8.5),
                                         ("seed", "zero"), ("batch_first", "yes")])
def test_wrong_types(field, value):
    assert f"network.{field}" in error_of(base(**{field: value}))


def test_zero_and_negative_sizes():
    assert "network.layers[0].units" in error_of(base(layers=[{"units": -3}]))
    assert "network.layers" in error_of(base(layers=[]))
    message = error_of({**base(), "run": {"timesteps": 0}})
    assert "run.timesteps" in message and "greater than 0" in message


def test_unknown_plugin_names_list_what_is_installed():
    message = error_of(base(layers=[{"units": 4, "activation": "tanhh",
                                     "init": {"input": "xavier"}}],
                            head={"name": "lineer"}))
    assert "network.layers[0].activation: unknown activation 'tanhh' (did you mean 'tanh'?)" \
        in message
    assert "Installed:" in message and "leaky_relu" in message
    assert "network.layers[0].init.input: unknown initializer 'xavier'" in message
    assert "network.head.name: unknown head 'lineer' (did you mean 'linear'?)" in message


def test_unknown_cell_and_bad_activation_parameter():
    message = error_of(base(layers=[{"units": 4, "cell": "elmann"},
                                    {"units": 4, "activation": {"name": "elu", "alfa": 2}}]))
    assert "network.layers[0].cell: unknown cell 'elmann' (did you mean 'elman'?)" in message
    assert "network.layers[1].activation.alfa" in message and "'alpha'" in message


def test_activation_parameter_must_be_a_number():
    message = error_of(base(layers=[{"units": 4, "activation": {"name": "elu", "alpha": "x"}}]))
    assert "network.layers[0].activation.alpha: expected a number" in message


def test_head_only_activation_rejected_in_a_layer():
    assert "can only be used in a head" in error_of(base(layers=[{"units": 4,
                                                                  "activation": "softmax"}]))


def test_initializer_parameters_checked():
    message = error_of(base(layers=[{"units": 4, "init": {"input": {"name": "uniform",
                                                                     "hi": 1}}}]))
    assert "network.layers[0].init.input.hi" in message and "low, high" in message


def test_spectral_radius_on_a_non_square_matrix():
    message = error_of(base(layers=[{"units": 4, "init": {
        "input": {"name": "normal", "spectral_radius": 0.9}}}]))
    assert "network.layers[0].init.input.spectral_radius" in message


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("network:\n  input_size: 8\n   layers: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        parse(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        parse(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        parse(scalar)


def test_yaml_tags_are_not_executed(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("network: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse(evil)


def test_config_round_trips_through_dump():
    cfg = parse(base(layers=[{"units": 4, "activation": {"name": "elu", "alpha": 0.5}}],
                     head={"name": "softmax", "units": 3}))
    assert parse(cfg.dump()) == cfg


def test_spectral_radius_scaling():
    net = rnnsim.Network.from_config(base(dtype="float64", layers=[{"units": 30, "init": {
        "recurrent": {"name": "normal", "spectral_radius": 0.9}}}]))
    radius = np.max(np.abs(np.linalg.eigvals(net.params["layers.0.U"])))
    assert radius == pytest.approx(0.9, rel=1e-9)


LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else '1'] * 9)}]\n"
    for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh"))


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("network:\n  input_size: 2\n  layers: [{units: 3}]\n  input_size: 3\n")
    with pytest.raises(ConfigError, match=r"line 4.*'input_size' is given twice.*line 2"):
        parse(path)
    # a '<<' merge may be overridden: that is not a duplicate
    path.write_text("base: &b {input_size: 2, layers: [{units: 3}]}\n"
                    "network: {<<: *b, input_size: 4}\n")
    assert rnnsim.config.read_yaml(path)["network"]["input_size"] == 4


def test_yaml_nested_thousands_deep_is_a_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("network: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested more than 100 levels"):
        parse(path)


def test_billion_laughs_never_expand(tmp_path):
    """Aliases beyond the bound are refused while parsing; below it, a value that fails
    validation is shown cut short, not expanded into the message."""
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS + "network: {input_size: *h, layers: [{units: 1}]}\n")
    with pytest.raises(ConfigError, match="aliases .* expand to more than 1,000,000"):
        parse(path)
    path.write_text(LAUGHS.rsplit("f:", 1)[0] + "network: {input_size: *e, layers: *d}\n")
    with pytest.raises(ConfigError) as info:
        parse(path)
    assert "network.input_size" in str(info.value) and len(str(info.value)) < 3000


def test_a_yaml_file_beyond_the_size_cap_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "w") as fh:
        fh.write("network: {input_size: 2, layers: [{units: 3}]}\n")
        fh.write(("# " + "x" * 1022 + "\n") * (17 << 10))
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        parse(path)


@pytest.mark.parametrize("text,message", [
    ("network: &a [*a]\n", "an alias refers to a value that contains it"),
    ("a: &a {b: *a}\nnetwork: {}\n", "an alias refers to a value that contains it"),
    ("".join(f"l{i}: &l{i} " + "[" * 90 + (f"*l{i - 1}" if i else "1") + "]" * 90 + "\n"
             for i in range(60)), "nest values more than 100 levels deep"),
])
def test_aliases_that_recurse_or_nest_too_deep_are_config_errors(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        parse(path)


FIRST_USE_IN_THREADS = """
import threading
from concurrent.futures import ThreadPoolExecutor
import rnnsim
from rnnsim.plugins import get_plugins

get_plugins()
cells = ["lstm", "gru", "esn", "elman", "ugrnn"]
start = threading.Barrier(10)

def build(i):
    start.wait()
    config = {"network": {"input_size": 2, "head": {"name": "linear"}, "layers": [
        {"cell": cells[i % 5], "units": 3, "activation": {"name": "tanh"}}]}}
    return rnnsim.Network.from_config(config).parameter_count()

with ThreadPoolExecutor(10) as pool:
    print(list(pool.map(build, range(10))))
"""


def test_threads_may_use_the_config_models_first_together():
    """The models are built on first use (``rnnsim.config.LAZY``); pydantic >= 2.14 builds
    them under a lock, so networks built in threads from a fresh process agree with the
    same networks built one by one."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", FIRST_USE_IN_THREADS], capture_output=True,
                            text=True, check=True)
    alone = [rnnsim.Network.from_config({"network": {"input_size": 2, "head": {"name": "linear"},
                                                     "layers": [{"cell": cell, "units": 3}]}})
             .parameter_count() for cell in ["lstm", "gru", "esn", "elman", "ugrnn"] * 2]
    assert result.stdout.strip() == str(alone), result.stderr
