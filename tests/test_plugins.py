"""The plugin layer: throwaway plugins, duplicates, broken plugins, blocking."""
import math
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnnsim
from rnnsim import PluginError, plugins
from rnnsim.cli import cli


def one_unit(activation):
    cfg = {"network": {"input_size": 1, "dtype": "float64", "layers": [{
        "units": 1, "activation": activation,
        "init": {"input": "ones", "recurrent": "zeros", "bias": "zeros"}}]}}
    return rnnsim.Network.from_config(cfg)


def cube_plus(x, shift):
    return x * x * x + shift


class CubePlugin:
    @rnnsim.hookimpl
    def register_activations(self, register):
        register("cube_plus", cube_plus, params={"shift": 0.0}, description="x^3 + shift")

    @rnnsim.hookimpl
    def register_initializers(self, register):
        register("halves", lambda shape, rng, dtype: np.full(shape, 0.5, dtype=dtype))


def test_a_throwaway_plugin_runs_in_the_kernel(temporary):
    temporary(CubePlugin(), "cube")
    x = np.linspace(-2, 2, 9)
    out = one_unit({"name": "cube_plus", "shift": 0.5}).run(x.reshape(-1, 1, 1)).output.ravel()
    np.testing.assert_allclose(out, x**3 + 0.5)
    row = next(r for r in plugins.describe() if r["name"] == "cube_plus")
    assert row["package"] == "test-package" and row["params"] == {"shift": 0.0}
    net = rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
        {"units": 3, "init": {"recurrent": "halves"}}]}})
    assert (net.params["layers.0.U"] == 0.5).all()


def doubled(x):
    return 2.0 * x


def doubled_marked(x):  # a deliberately different "vectorised" form, to see which one runs
    return 3.0 * x


def doubled_fast(x):
    return 4.0 * x


def test_kernels_run_the_vectorised_form_and_the_fast_one_with_fast_math(temporary):
    class Doubling:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("doubled", doubled, vectorised=doubled_marked, fast=doubled_fast)

    temporary(Doubling(), "doubling")
    net = one_unit("doubled")
    x = np.array([0.5, -1.0]).reshape(-1, 1, 1)
    np.testing.assert_allclose(net.run(x).output.ravel(), [1.5, -3.0])
    net.fast_math = True
    np.testing.assert_allclose(net.run(x).output.ravel(), [2.0, -4.0])


def test_a_vectorised_form_must_take_the_same_arguments(temporary):
    class Bad:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("doubled", doubled, vectorised=cube_plus)

    with pytest.raises(PluginError, match="vectorised=.*takes 2 arguments"):
        temporary(Bad(), "bad-vectorised")
        plugins.get_plugins()


LAZY_MODULE = """
def scaled(x, gain):
    return gain * x

def scaled_fast(x, gain):
    return gain * x + 1.0

def two_args(x, gain, extra):
    return x
"""


class LazyPlugin:
    """Its functions by reference: imported only once a kernel needs them."""

    def __init__(self, module, fast="scaled_fast"):
        self.module, self.fast = module, fast

    @rnnsim.hookimpl
    def register_activations(self, register):
        register("lazy_scaled", f"{self.module}:scaled", params={"gain": 2.0},
                 fast=f"{self.module}:{self.fast}")


@pytest.fixture
def lazy_module(tmp_path, monkeypatch):
    """A module written for the test, importable by name and not imported yet."""
    name = f"lazy_acts_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LAZY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_activations_given_by_reference_are_imported_when_a_kernel_needs_them(
        temporary, lazy_module):
    temporary(LazyPlugin(lazy_module), "lazy")
    net = one_unit({"name": "lazy_scaled", "gain": 3.0})  # names and params checked
    assert lazy_module not in sys.modules
    x = np.array([0.5, -1.0]).reshape(-1, 1, 1)
    np.testing.assert_allclose(net.run(x).output.ravel(), [1.5, -3.0])
    assert lazy_module in sys.modules
    net.fast_math = True  # the fast form, imported from the same reference
    np.testing.assert_allclose(net.run(x).output.ravel(), [2.5, -2.0])


@pytest.mark.parametrize("fast, message", [
    ("two_args", r"fast='lazy_acts_.*:two_args', which takes 3 arguments, but x plus its "
                 r"params \['gain'\] make 2"),
    ("missing", r"fast='lazy_acts_.*:missing', which could not be loaded: AttributeError"),
])
def test_a_bad_reference_is_named_when_first_used(temporary, lazy_module, fast, message):
    temporary(LazyPlugin(lazy_module, fast), "lazy-bad")
    net = one_unit("lazy_scaled")
    net.fast_math = True
    with pytest.raises(PluginError, match="plugin 'lazy-bad'.*activation 'lazy_scaled' with "
                       + message):
        net.run(np.ones((2, 1, 1)))


def test_an_unregistered_plugin_leaves_nothing_behind():
    """What the ``temporary`` fixture relies on, checked within one test: registered, each
    registration is there; unregistered, none is, and networks refuse its names again."""
    before = plugins.describe()
    config = {"network": {"input_size": 1, "layers": [{"units": 2, "activation": "cube_plus",
                                                        "init": {"recurrent": "halves"}}]}}
    plugins.register_plugin(CubePlugin(), name="cube-alone", package="test-package")
    try:
        assert "cube_plus" in plugins.get_plugins().activations
        assert "halves" in plugins.get_plugins().initializers
        np.testing.assert_allclose(rnnsim.Network.from_config(config).params["layers.0.U"], 0.5)
    finally:
        plugins.unregister_plugin("cube-alone")
    assert "cube_plus" not in plugins.get_plugins().activations
    assert "halves" not in plugins.get_plugins().initializers
    assert plugins.describe() == before
    with pytest.raises(rnnsim.ConfigError, match="cube_plus"):
        rnnsim.Network.from_config(config)


def test_duplicate_name_names_both_plugins_where_it_is_used(temporary):
    class Duplicate:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("tanh", math.tanh)

    temporary(Duplicate(), "dupe")
    assert "tanh" not in plugins.get_plugins().activations  # loading still works
    with pytest.raises(rnnsim.ConfigError, match=r"activation: activation 'tanh' is registered "
                       r"twice: by plugin 'rnnsim.builtins.activations' \(package rnnsim.*\) "
                       r"and by plugin 'dupe' \(package test-package\).*"
                       "RNNSIM_DISABLE_PLUGINS=dupe"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [{"units": 2}]}})


@pytest.mark.parametrize("body,message", [
    (lambda register: register("bad", 42), "not callable"),
    (lambda register: register("bad", "math.tanh"), "not callable nor a reference"),
    (lambda register: register("bad", math.tanh, fast="math:tanh:x"), "fast='math:tanh:x'"),
    (lambda register: register("bad-name", math.tanh), "must be identifiers"),
    (lambda register: register("bad", lambda x, a: x, params={}), "takes 2 arguments"),
    (lambda register: register("bad", lambda x, a: x, params={"a": "one"}), "map names to num"),
    (lambda register: 1 / 0, "raised in register_activations: ZeroDivisionError"),
])
def test_bad_registrations_are_named(temporary, body, message):
    class Bad:
        @rnnsim.hookimpl
        def register_activations(self, register):
            body(register)

    temporary(Bad(), "bad-plugin")
    with pytest.raises(PluginError, match=message) as info:
        plugins.get_plugins()
    assert "bad-plugin" in str(info.value)


def test_bad_head_class(temporary):
    class BadHead:
        @rnnsim.hookimpl
        def register_heads(self, register):
            register("oops", dict)

    temporary(BadHead(), "bad-head")
    with pytest.raises(PluginError, match="not a subclass of rnnsim.Head"):
        plugins.get_plugins()


def test_activation_numba_cannot_compile_is_a_plugin_error(temporary):
    def uses_a_list(x):
        return sum([x, x], start={})

    class Uncompilable:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("uncompilable", uses_a_list)

    temporary(Uncompilable(), "uncompilable-plugin")
    with pytest.raises(PluginError, match="'uncompilable' \\(plugin 'uncompilable-plugin'"):
        one_unit("uncompilable").run(np.zeros((2, 1, 1)))


def test_initializer_returning_a_bad_object(temporary):
    class Wrong:
        @rnnsim.hookimpl
        def register_initializers(self, register):
            register("wrong", lambda shape, rng, dtype: [1, 2])

    temporary(Wrong(), "wrong-init")
    with pytest.raises(PluginError, match="'wrong' \\(plugin 'wrong-init', package test-package"
                                          "\\) returned list for parameter layers.0.W"):
        rnnsim.Network.from_config({"network": {"input_size": 2, "layers": [
            {"units": 3, "init": {"input": "wrong"}}]}})


@pytest.fixture
def broken_entry_point(installed, monkeypatch):
    """An installed package whose entry point names a module that does not exist."""
    installed("rnnsim-broken", "9.9", "[rnnsim]\nbroken = broken_module:plugin\n")
    plugins.reset()
    yield
    monkeypatch.undo()
    plugins.reset()


def test_a_plugin_that_fails_to_import(broken_entry_point, monkeypatch):
    with pytest.raises(PluginError) as info:
        plugins.get_plugins()
    message = str(info.value)
    assert "plugin 'broken' (package rnnsim-broken 9.9" in message
    assert "RNNSIM_DISABLE_PLUGINS=broken" in message
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "failed to import" in result.output
    monkeypatch.setenv("RNNSIM_DISABLE_PLUGINS", "broken")
    plugins.reset()
    assert "tanh" in plugins.get_plugins().activations


def test_disable_plugins_blocks_by_name(monkeypatch):
    monkeypatch.setenv("RNNSIM_DISABLE_PLUGINS", "rnnsim.builtins.heads")
    plugins.reset()
    try:
        heads = plugins.get_plugins().heads
        assert not any(e.source.plugin == "rnnsim.builtins.heads" for e in heads)
        assert "linear" not in heads
        assert "tanh" in plugins.get_plugins().activations
    finally:
        monkeypatch.delenv("RNNSIM_DISABLE_PLUGINS")
        plugins.reset()


def bent_identity(x):
    return (math.sqrt(x * x + 1.0) - 1.0) / 2.0 + x


def make_bent(initializer):
    class Bent:
        @rnnsim.hookimpl
        def register_activations(self, register):
            register("bent_identity", bent_identity, description="bent identity")

        @rnnsim.hookimpl
        def register_initializers(self, register):
            register("bent_init", initializer)

    return Bent()


def test_a_clash_breaks_only_the_clashing_name(temporary):
    """Two packages registering one name: `rnnsim plugins` lists both and marks the clash,
    other names keep working, and using the name is an error naming both."""
    temporary(make_bent(lambda shape, rng, dtype: np.ones(shape, dtype)), "bent-a",
              "rnnsim-bent-a")
    temporary(make_bent(lambda shape, rng, dtype: np.ones(shape, dtype)), "bent-b",
              "rnnsim-bent-b")
    listing = CliRunner().invoke(cli, ["plugins"])
    assert listing.exit_code == 0, listing.output
    rows = [line for line in listing.output.splitlines() if "bent_identity" in line]
    assert [row.split()[1] for row in rows[::2]] == ["rnnsim-bent-a", "rnnsim-bent-b"]
    assert "CLASH: also registered by bent-b (package rnnsim-bent-b)" in rows[1]
    described = [r for r in plugins.describe() if r["name"] == "bent_init"]
    assert [r["clashes_with"] for r in described] == [["bent-b (package rnnsim-bent-b)"],
                                                      ["bent-a (package rnnsim-bent-a)"]]
    np.testing.assert_allclose(one_unit("identity").run(np.ones((2, 1, 1))).output, 1.0)
    with pytest.raises(rnnsim.ConfigError) as used:
        one_unit("bent_identity")
    assert ("network.layers[0].activation: activation 'bent_identity' is registered twice: by "
            "plugin 'bent-a' (package rnnsim-bent-a) and by plugin 'bent-b' (package "
            "rnnsim-bent-b)") in str(used.value)
    assert "did you mean" not in str(used.value)
    with pytest.raises(rnnsim.ConfigError, match="init.recurrent: initializer 'bent_init' is "
                                                 "registered twice.*'bent-a'.*'bent-b'"):
        rnnsim.Network.from_config({"network": {"input_size": 1, "layers": [
            {"units": 2, "init": {"recurrent": "bent_init"}}]}})


@pytest.mark.parametrize("returned,message", [
    (lambda shape, dtype: np.ones(shape, np.int64),
     r"returned an array of shape \(3, 3\) and dtype int64 for parameter layers.0.U; expected "
     r"shape \(3, 3\) and dtype float64"),
    (lambda shape, dtype: np.ones(shape, np.float32),
     r"returned an array of shape \(3, 3\) and dtype float32 for parameter layers.0.U; "
     "expected shape .* dtype float64"),
    (lambda shape, dtype: np.ones((3, 1), dtype),
     r"returned an array of shape \(3, 1\) and dtype float64 for parameter layers.0.U; "
     r"expected shape \(3, 3\)"),
    (lambda shape, dtype: np.full(shape, np.inf, dtype),
     r"returned 9 NaN/inf value\(s\) for parameter layers.0.U of shape \(3, 3\) and dtype "
     r"float64, the first inf at index \(0, 0\)"),
])
def test_initializer_results_are_checked(temporary, returned, message):
    temporary(make_bent(lambda shape, rng, dtype: returned(shape, dtype)), "bent", "rnnsim-bent")
    with pytest.raises(PluginError, match=message) as info:
        rnnsim.Network.from_config({"network": {"input_size": 2, "dtype": "float64", "layers": [
            {"units": 3, "init": {"recurrent": "bent_init"}}]}})
    text = str(info.value)
    assert text.startswith("initializer 'bent_init' (plugin 'bent', package rnnsim-bent) ")
    assert "rng.normal(size=shape).astype(dtype)" in text
    assert "network.layers[0].init.recurrent" in text


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def test_the_guides_snippets_run():
    """Every ```python block of docs/plugins.md that is not a quoted file runs as it is, each
    in a fresh namespace, and leaves no plugin registered."""
    blocks = re.findall(r"(<!-- file: \S+ -->\n)?```python\n(.*?)```\n", GUIDE.read_text(),
                        flags=re.S)
    snippets = [code for quoted, code in blocks if not quoted]
    assert len(snippets) >= 3
    before = {name for name, _ in plugins.get_manager().list_name_plugin()}
    for code in snippets:
        exec(compile(code, str(GUIDE), "exec"), {"__name__": "plugins_guide"})
    assert {name for name, _ in plugins.get_manager().list_name_plugin()} == before


def test_the_guides_new_plugin_command(tmp_path, monkeypatch):
    """The guide's `rnnsim new-plugin` example prints what it shows and makes the files named."""
    text = GUIDE.read_text()
    command, output = re.search(r"```console\n\$ (rnnsim new-plugin .*?)\n(.*?)```",
                                text, flags=re.S).groups()
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert result.exit_code == 0 and result.output == output
    named = set(re.findall(r"`(rnnsim-my-acts/\S+\.\w+)`", text))
    made = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert named and named == made
