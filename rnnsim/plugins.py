"""Plugin manager, entry-point loading and the registries of every plugin kind: cells,
activations, initializers, heads, sweep metrics and importers (``KINDS``).

Built-ins go through exactly the same path as third-party plugins: they are modules listed in
``DEFAULT_PLUGINS`` whose hookimpls call ``register``. A new kind is one entry in ``KINDS`` (its
hook, in ``hookspecs``, and the function that turns a registration into an entry).
"""
from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import numbers
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pluggy

from . import distributions, hookspecs
from .errors import ConfigError, PluginError, shown

ENTRY_POINT_GROUP = "rnnsim"
DEFAULT_PLUGINS = (
    "rnnsim.builtins.cells",
    "rnnsim.builtins.activations",
    "rnnsim.builtins.initializers",
    "rnnsim.builtins.heads",
    "rnnsim.builtins.reservoir",
    "rnnsim.builtins.metrics",
    "rnnsim.builtins.importers",
)


@dataclass(frozen=True)
class Source:
    """Where a registered name came from."""

    plugin: str
    package: str
    version: str


@dataclass(frozen=True)
class Activation:
    """A registered activation: ``fn(x, *params)``, scalar unless ``elementwise`` is False.

    ``fast``, when given, computes the same function approximately and faster; the kernels use
    it instead of ``fn`` with the ``fast_math`` option. ``vectorised``, when given, computes it
    as accurately as ``fn`` in a form that vectorises; the CPU kernels use it otherwise.

    Each of the three may be registered as a reference ``'module:attribute'`` (``functions``
    holds them as registered): it is imported on first use of the attribute, so that listing
    and validating names imports nothing a kernel needs (numba). A reference that does not
    import, or a function whose arguments do not fit, is a PluginError naming the plugin.
    """

    name: str
    functions: dict[str, Callable | str | None]  # 'fn', 'fast', 'vectorised' as registered
    params: dict[str, float]
    description: str
    source: Source
    elementwise: bool = True

    @functools.cached_property
    def fn(self) -> Callable:
        return self._resolved("fn")

    @functools.cached_property
    def fast(self) -> Callable | None:
        return self._resolved("fast")

    @functools.cached_property
    def vectorised(self) -> Callable | None:
        return self._resolved("vectorised")

    def _resolved(self, role: str) -> Callable | None:
        target = self.functions.get(role)
        if isinstance(target, str):
            target = load_reference(target, lambda why: _bad(
                self.source, f"activation '{self.name}' with {role}={self.functions[role]!r}, "
                f"which {why}"))
        if target is not None:
            _check_arity(self, role, target)
        return target


@dataclass(frozen=True)
class Initializer:
    """A registered initializer: ``fn(shape, rng, dtype, **params) -> ndarray``."""

    name: str
    fn: Callable
    description: str
    source: Source


@dataclass(frozen=True)
class HeadEntry:
    """A registered output head class."""

    name: str
    cls: type
    description: str
    source: Source


@dataclass(frozen=True)
class CellEntry:
    """A registered recurrent cell class (a subclass of ``rnnsim.Cell``)."""

    name: str
    cls: type
    description: str
    source: Source


@dataclass(frozen=True)
class Metric:
    """A sweep metric: ``fn(net, seed) -> float``, one number for one point.

    ``net`` is the point's network (a metric may change its head's weights, not the others'
    view of them); ``seed`` is the point's seed, for any random input the metric draws.
    """

    name: str
    fn: Callable
    description: str
    source: Source = field(default=Source("local", "local", ""), compare=False)


# The keys of an importer option and the types it may take.
OPTION_KEYS = ("help", "type", "choices", "default", "required")
OPTION_TYPES = ("str", "int", "float", "bool", "path")


@dataclass(frozen=True)
class Importer:
    """A file importer: ``load(path, **options)`` returns a ``Network``, or a graph model
    (``run(feeds) -> dict``, ``describe() -> dict``) that runs as it is.

    ``suffixes`` are the file name endings it reads (lower case, '.keras'); ``sniff(path)``,
    when given, says whether a file it has no suffix for is one it reads. ``options`` maps each
    keyword of ``load`` to ``{"help", "type", "choices", "default", "required"}``.
    """

    name: str
    load: Callable
    description: str
    source: Source
    suffixes: tuple[str, ...] = ()
    sniff: Callable | None = None
    options: dict[str, dict] = field(default_factory=dict)


@dataclass
class Registry:
    """Names of one kind (cell, activation, initializer, head, metric) mapped to their entries.

    A name that two plugins register is a clash: it is kept out of ``entries`` and listed in
    ``clashes`` with every entry that claims it, so that only using it is an error (naming the
    plugins), while everything else, ``rnnsim plugins`` included, keeps working.

    ``saved`` is set on the registries a saved model is loaded with (``Plugins.for_model``):
    the plugin each name came from when the model was saved, so that a missing name is reported
    with the package to install rather than a similar installed name.
    """

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)
    clashes: dict[str, list] = field(default_factory=dict)
    saved: "SavedNames | None" = None

    def check(self, entry) -> None:
        """Raise PluginError when ``entry``'s name cannot be registered at all."""
        if not isinstance(entry.name, str) or not entry.name.isidentifier():
            raise PluginError(
                f"plugin '{entry.source.plugin}' registered a {self.kind} named {entry.name!r}: "
                "names must be identifiers such as 'leaky_relu'."
            )

    def add(self, entry) -> None:
        """Register ``entry``; a name registered before becomes a clash."""
        self.check(entry)
        if entry.name in self.clashes:
            self.clashes[entry.name].append(entry)
        elif entry.name in self.entries:
            self.clashes[entry.name] = [self.entries.pop(entry.name), entry]
        else:
            self.entries[entry.name] = entry

    def get(self, name: str, where: str):
        """The entry called ``name``; a ConfigError at key path ``where`` if there is none, or
        if more than one plugin registered it."""
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown(name, where)) from None

    def clash(self, name: str) -> str:
        """Why ``name``, registered by several plugins, cannot be used; with the way out."""
        claims = self.clashes[name]
        owners = " and by ".join(f"plugin '{e.source.plugin}' ({_package(e.source)})"
                              for e in claims)
        times = "twice" if len(claims) == 2 else f"{len(claims)} times"
        return (f"{self.kind} '{name}' is registered {times}: by {owners}, so rnnsim cannot "
                "tell which one you mean. Uninstall one of the packages, or block one with "
                f"RNNSIM_DISABLE_PLUGINS={claims[-1].source.plugin}.")

    def unknown(self, name, where: str) -> str:
        """The message for a name that cannot be used: a clash, a saved model's missing plugin,
        or else an unknown name with a did-you-mean and the installed names."""
        if isinstance(name, str) and name in self.clashes:
            return f"{where}: {self.clash(name)}"
        if self.saved is not None:
            return f"{where}: {self.saved.missing(self.kind, name)}"
        # A case slip ('LSTM', 'Tanh') first: names are case-sensitive and lowercase.
        folded = {entry.lower(): entry for entry in self.entries}
        close = ([folded[str(name).lower()]] if str(name).lower() in folded else
                 difflib.get_close_matches(str(name).lower(), self.entries, n=1))
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (
            f"{where}: unknown {self.kind} {name!r}{hint}. Installed: "
            f"{', '.join(sorted(self.entries))}. Run `rnnsim plugins` to list them with their "
            "packages."
        )

    def registered(self) -> list:
        """Every entry, the clashing ones included."""
        return [*self.entries.values(), *(e for claims in self.clashes.values() for e in claims)]

    def __contains__(self, name) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())


def _package(source: Source) -> str:
    return f"package {source.package} {source.version}".rstrip()


@dataclass(frozen=True)
class SavedNames:
    """What a model folder records about the plugins its names came from.

    names : kind ('activation', 'initializer', 'head') -> name -> the Source it had at save;
    None for a folder saved before rnnsim recorded them
    where : the model, for messages ("model 'path'")
    """

    names: dict[str, dict[str, Source]] | None
    where: str

    def missing(self, kind: str, name) -> str:
        """Why ``name`` cannot be loaded, and which package to install: never a similar name,
        which would quietly change the model."""
        source = (self.names or {}).get(kind, {}).get(name)
        if source is not None:
            pin = f"'{source.package}=={source.version}'" if source.version else source.package
            return (f"{kind} {name!r} is not installed. The {self.where} was saved with it from "
                    f"plugin '{source.plugin}' ({_package(source)}): install that package "
                    f"(`pip install {pin}`), or register plugin '{source.plugin}' again, and "
                    "load the model again.")
        known = ("this model folder predates rnnsim's record of plugin packages"
                 if self.names is None else "the model folder does not record which plugin "
                 "provided it")
        return (f"{kind} {name!r} is not installed, and {known}. Install the plugin package "
                f"that registers {kind} {name!r} (`rnnsim plugins` lists what is installed); "
                "a different one would change the model.")


class Plugins:
    """Everything the loaded plugins registered: one ``Registry`` per kind, as attributes
    named by ``Kind.attribute`` (``plugins.cells``, ``plugins.activations``, ...)."""

    def __init__(self, registries: dict[str, Registry]):
        self._registries = registries
        for kind in KINDS:
            setattr(self, kind.attribute, registries[kind.name])

    def registries(self) -> tuple[Registry, ...]:
        return tuple(self._registries[kind.name] for kind in KINDS)

    def for_model(self, saved: SavedNames) -> "Plugins":
        """The same registries, reporting a missing name with what ``saved`` recorded."""
        return Plugins({r.kind: replace(r, saved=saved) for r in self.registries()})

    def sources_of(self, used: dict[str, set[str]]) -> dict[str, dict[str, Source]]:
        """kind -> name -> Source for the names ``used`` (kind -> names) that are installed."""
        found = {}
        for registry in self.registries():
            for name in sorted(used.get(registry.kind, ())):
                if name in registry:
                    found.setdefault(registry.kind, {})[name] = registry.entries[name].source
        return found


_manager: pluggy.PluginManager | None = None
_sources: dict[str, Source] = {}
_plugins: Plugins | None = None


def skip_broken() -> bool:
    """Whether broken plugins are skipped with a warning (``--skip-broken-plugins``)."""
    return os.environ.get("RNNSIM_SKIP_BROKEN_PLUGINS", "") not in ("", "0")


def raised(exc: BaseException) -> str:
    """What a plugin's exception says, for messages: 'called sys.exit(3)', 'ValueError: ...'."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({shown(exc.code)})"
    text = str(exc)
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: " + (text if len(text) <= 300 else text[:297] + "...")


def _broken(error: PluginError) -> None:
    """Raise ``error``, or only warn when broken plugins are to be skipped."""
    if not skip_broken():
        raise error
    warnings.warn(f"{error} The plugin was skipped (--skip-broken-plugins).", RuntimeWarning,
                  stacklevel=3)


def disabled_plugins() -> set[str]:
    """Plugin names blocked by the ``RNNSIM_DISABLE_PLUGINS`` environment variable."""
    return {n.strip() for n in os.environ.get("RNNSIM_DISABLE_PLUGINS", "").split(",") if n.strip()}


def get_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with built-ins and entry points loaded."""
    global _manager
    if _manager is None:
        manager = pluggy.PluginManager("rnnsim")
        manager.add_hookspecs(hookspecs)
        blocked = disabled_plugins()
        version = distributions.version("rnnsim") or "unknown"
        for modname in DEFAULT_PLUGINS:
            if modname not in blocked:
                manager.register(importlib.import_module(modname), name=modname)
                _sources[modname] = Source(modname, "rnnsim", version)
        _load_entry_points(manager, blocked)
        _manager = manager
    return _manager


def _load_entry_points(manager: pluggy.PluginManager, blocked: set[str]) -> None:
    for ep in distributions.entry_points(ENTRY_POINT_GROUP):
        if ep.name in blocked or manager.has_plugin(ep.name):
            continue
        dist, version = ep.package or "unknown", ep.version or "unknown"
        try:
            plugin = ep.load()
        except BaseException as exc:  # sys.exit() and KeyboardInterrupt in a plugin too
            _broken(PluginError(
                f"plugin '{ep.name}' (package {dist} {version}, entry point {ep.value}) failed "
                f"to import: {raised(exc)}. Fix or uninstall the package "
                f"(`pip uninstall {dist}`), or block it with RNNSIM_DISABLE_PLUGINS={ep.name}."
            ))
            continue
        manager.register(plugin, name=ep.name)
        _sources[ep.name] = Source(ep.name, dist, version)


def register_plugin(plugin: object, name: str, package: str = "local", version: str = "") -> None:
    """Register a plugin object (a module or any object with hookimpls) at run time, as if it
    came from ``package`` at ``version``."""
    get_manager().register(plugin, name=name)
    _sources[name] = Source(name, package, version)
    _invalidate()


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with ``register_plugin``."""
    get_manager().unregister(name=name)
    _sources.pop(name, None)
    _invalidate()


def reset() -> None:
    """Forget the manager and registries; the next use loads every plugin again."""
    global _manager
    _manager = None
    _sources.clear()
    _invalidate()


def _invalidate() -> None:
    global _plugins
    _plugins = None


def get_plugins() -> Plugins:
    """Call every plugin's registration hooks once and return the registries."""
    global _plugins
    if _plugins is None:
        _plugins = _collect(get_manager())
    return _plugins


def _collect(manager: pluggy.PluginManager) -> Plugins:
    found = {kind.name: Registry(kind.name) for kind in KINDS}
    for kind in KINDS:
        hook, registrar, registry = getattr(manager.hook, kind.hook), kind.registrar, \
            found[kind.name]
        # One plugin at a time, in registration order, so each entry knows its source; a
        # plugin's entries are kept only if all of them are valid.
        for impl in hook.get_hookimpls():
            source = _sources.get(impl.plugin_name) or Source(impl.plugin_name, "unknown", "")
            staged: list = []
            try:
                impl.function(register=registrar(staged.append, source))
                for entry in staged:
                    registry.check(entry)
                # A name another plugin registered too becomes a clash, an error only where
                # it is used (Registry.clash).
                for entry in staged:
                    registry.add(entry)
            except PluginError as exc:
                _broken(exc)
            except BaseException as exc:  # sys.exit() and KeyboardInterrupt in a plugin too
                _broken(PluginError(
                    f"plugin '{source.plugin}' ({source.package}) raised in "
                    f"{hook.name}: {raised(exc)}. Fix the plugin, or block it "
                    f"with RNNSIM_DISABLE_PLUGINS={source.plugin}."
                ))
    return Plugins(found)


def keyword_params(fn) -> list[str] | None:
    """The keyword parameters of an initializer ``fn(shape, rng, dtype, **params)``; None when
    it takes any (``**kwargs``) or its signature cannot be read."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return list(sig.parameters)[3:]


def _bad(source: Source, what: str) -> PluginError:
    return PluginError(f"plugin '{source.plugin}' ({source.package}) registered {what}")


def _activation_registrar(add: Callable, source: Source) -> Callable:
    def register(name, fn, params=None, description="", elementwise=True, fast=None,
                 vectorised=None):
        functions = {"fn": fn, "fast": fast, "vectorised": vectorised}
        for role, target in functions.items():
            if (target is not None or role == "fn") and not (
                    callable(target) or is_reference(target)):
                raise _bad(source, f"activation '{name}' with {role}={target!r}, which is "
                           "not callable nor a reference 'module:attribute'.")
        params = dict(params or {})
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, numbers.Real):
                raise _bad(source, f"activation '{name}' with parameter {key!r}={value!r}: "
                           "parameters map names to numbers.")
        entry = Activation(name, functions, params, description, source, bool(elementwise))
        for role, target in functions.items():
            if callable(target):  # a reference is checked once it is imported
                _check_arity(entry, role, target)
        add(entry)

    return register


def _check_arity(entry: Activation, role: str, target: Callable) -> None:
    """Raise PluginError unless ``target`` (``role`` as registered) takes x plus the
    activation's params."""
    arity = _positional_arity(target)
    expected = 1 + len(entry.params)
    if arity is not None and arity != expected:
        raise _bad(entry.source, f"activation '{entry.name}' with {role}="
                   f"{entry.functions[role]!r}, which "
                   f"takes {arity} arguments, but x plus its params {list(entry.params)} make "
                   f"{expected}.")


def is_reference(target) -> bool:
    """Whether ``target`` is a string 'package.module:attribute' (attribute may be dotted)."""
    if not isinstance(target, str) or target.count(":") != 1:
        return False
    module, attribute = target.split(":")
    return all(part.isidentifier() for part in (*module.split("."), *attribute.split(".")))


def load_reference(reference: str, error: Callable[[str], Exception]) -> Any:
    """The object a reference 'module:attribute' names, importing its module; a failure is
    raised as ``error(why)``."""
    module, attribute = reference.split(":")
    try:
        found = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
    except BaseException as exc:  # whatever the module raises on import, sys.exit() too
        raise error(f"could not be loaded: {raised(exc)}.") from exc
    if not callable(found):
        raise error(f"names {found!r}, which is not callable.")
    return found


def _positional_arity(fn) -> int | None:
    try:
        sig = inspect.signature(getattr(fn, "py_func", fn))
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return None
    return sum(p.kind in kinds for p in sig.parameters.values())


def _function_registrar(kind: str, entry: type) -> Callable:
    """The registrar of a kind registered as ``register(name, fn, description="")``."""
    def registrar(add: Callable, source: Source) -> Callable:
        def register(name, fn, description=""):
            if not callable(fn):
                raise _bad(source, f"{kind} '{name}' with fn={fn!r}, which is not callable.")
            add(entry(name, fn, description, source))

        return register

    return registrar


def _head_registrar(add: Callable, source: Source) -> Callable:
    from .heads import Head

    def register(name, cls, description=""):
        if not (isinstance(cls, type) and issubclass(cls, Head)):
            raise _bad(source, f"head '{name}' as {cls!r}, which is not a subclass of rnnsim.Head.")
        add(HeadEntry(name, cls, description, source))

    return register


def _cell_registrar(add: Callable, source: Source) -> Callable:
    from .cells import Cell

    def register(cls, description=""):
        if not (isinstance(cls, type) and issubclass(cls, Cell)):
            raise _bad(source, f"cell {cls!r}, which is not a subclass of rnnsim.Cell.")
        add(CellEntry(cls.name, cls, description or (inspect.getdoc(cls) or "").split("\n")[0],
                      source))

    return register


def _importer_registrar(add: Callable, source: Source) -> Callable:
    def register(name, load, suffixes=(), description="", options=None, sniff=None):
        if not callable(load) or (sniff is not None and not callable(sniff)):
            raise _bad(source, f"importer '{name}' whose load or sniff is not callable.")
        if isinstance(suffixes, str) or not all(
                isinstance(s, str) and s.startswith(".") for s in suffixes):
            raise _bad(source, f"importer '{name}' with suffixes={suffixes!r}: give a list of "
                       "file name endings such as ['.keras'].")
        options = {key: dict(value) for key, value in (options or {}).items()}
        for key, spec in options.items():
            unknown = sorted(set(spec) - set(OPTION_KEYS))
            if not str(key).isidentifier() or unknown or "help" not in spec \
                    or spec.get("type", "str") not in OPTION_TYPES:
                raise _bad(source, f"importer '{name}' with option {key!r}={spec!r}: an option "
                           f"is an identifier mapped to {{'help': ..., 'type': one of "
                           f"{OPTION_TYPES}, 'choices', 'default', 'required'}}.")
        add(Importer(name, load, description, source, tuple(s.lower() for s in suffixes),
                     sniff, options))

    return register


@dataclass(frozen=True)
class Kind:
    """A plugin kind: its name, its registry's attribute on ``Plugins``, the hook that
    registers it and the function that turns the hook's ``register`` calls into entries."""

    name: str
    attribute: str
    hook: str
    registrar: Callable[[Callable, Source], Callable]
    details: Callable[[Any], dict] = lambda entry: {}


KINDS = (
    Kind("cell", "cells", "register_cells", _cell_registrar),
    Kind("activation", "activations", "register_activations", _activation_registrar,
         lambda entry: {"params": entry.params, "elementwise": entry.elementwise}),
    Kind("initializer", "initializers", "register_initializers",
         _function_registrar("initializer", Initializer)),
    Kind("head", "heads", "register_heads", _head_registrar),
    Kind("metric", "metrics", "register_metrics", _function_registrar("metric", Metric)),
    Kind("importer", "importers", "register_importers", _importer_registrar,
         lambda entry: {"suffixes": list(entry.suffixes), "options": sorted(entry.options)}),
)


def describe() -> list[dict]:
    """Every registered name with its kind, package and version, for `rnnsim plugins`; a name
    several plugins registered has a row for each, with ``clashes_with`` naming the others."""
    rows = []
    for kind, registry in zip(KINDS, get_plugins().registries()):
        for entry in registry.registered():
            others = [e for e in registry.clashes.get(entry.name, ()) if e is not entry]
            row = {
                "kind": registry.kind,
                "name": entry.name,
                "plugin": entry.source.plugin,
                "package": entry.source.package,
                "version": entry.source.version,
                "description": entry.description,
                # the other plugins that registered the same name: using it is an error
                "clashes_with": [f"{e.source.plugin} ({_package(e.source)})" for e in others],
                **kind.details(entry),
            }
            rows.append(row)
    return rows
