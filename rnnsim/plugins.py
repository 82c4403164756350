"""Plugin manager, entry-point loading and the registries of activations, initializers, heads.

Built-ins go through exactly the same path as third-party plugins: they are modules listed in
``DEFAULT_PLUGINS`` whose hookimpls call ``register``.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "rnnsim"
DEFAULT_PLUGINS = (
    "rnnsim.builtins.activations",
    "rnnsim.builtins.initializers",
    "rnnsim.builtins.heads",
    "rnnsim.builtins.reservoir",
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
    """

    name: str
    fn: Callable
    params: dict[str, float]
    description: str
    source: Source
    elementwise: bool = True
    fast: Callable | None = None
    vectorised: Callable | None = None


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


@dataclass
class Registry:
    """Names of one kind (activation, initializer, head) mapped to their entries."""

    kind: str
    entries: dict[str, Any] = field(default_factory=dict)

    def add(self, entry) -> None:
        if not isinstance(entry.name, str) or not entry.name.isidentifier():
            raise PluginError(
                f"plugin '{entry.source.plugin}' registered a {self.kind} named {entry.name!r}: "
                "names must be identifiers such as 'leaky_relu'."
            )
        old = self.entries.get(entry.name)
        if old is not None:
            raise PluginError(
                f"{self.kind} '{entry.name}' is registered twice: by plugin "
                f"'{old.source.plugin}' ({old.source.package}) and by plugin "
                f"'{entry.source.plugin}' ({entry.source.package}). Uninstall one, or block "
                f"one with RNNSIM_DISABLE_PLUGINS={entry.source.plugin}."
            )
        self.entries[entry.name] = entry

    def get(self, name: str, where: str):
        """The entry called ``name``; a ConfigError at key path ``where`` if there is none."""
        try:
            return self.entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown(name, where)) from None

    def unknown(self, name, where: str) -> str:
        """The message for an unknown name, with a did-you-mean and the installed names."""
        close = difflib.get_close_matches(str(name), self.entries, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (
            f"{where}: unknown {self.kind} {name!r}{hint}. Installed: "
            f"{', '.join(sorted(self.entries))}. Run `rnnsim plugins` to list them with their "
            "packages."
        )

    def __contains__(self, name) -> bool:
        return name in self.entries

    def __iter__(self):
        return iter(self.entries.values())


@dataclass
class Plugins:
    """Everything the loaded plugins registered."""

    activations: Registry
    initializers: Registry
    heads: Registry

    def registries(self) -> tuple[Registry, ...]:
        return (self.activations, self.initializers, self.heads)


_manager: pluggy.PluginManager | None = None
_sources: dict[str, Source] = {}
_plugins: Plugins | None = None


def skip_broken() -> bool:
    """Whether broken plugins are skipped with a warning (``--skip-broken-plugins``)."""
    return os.environ.get("RNNSIM_SKIP_BROKEN_PLUGINS", "") not in ("", "0")


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
        for modname in DEFAULT_PLUGINS:
            if modname not in blocked:
                manager.register(importlib.import_module(modname), name=modname)
                _sources[modname] = Source(modname, "rnnsim", _version("rnnsim"))
        _load_entry_points(manager, blocked)
        _manager = manager
    return _manager


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _load_entry_points(manager: pluggy.PluginManager, blocked: set[str]) -> None:
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked or manager.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "unknown"
        try:
            plugin = ep.load()
        except Exception as exc:
            _broken(PluginError(
                f"plugin '{ep.name}' (package {dist} {version}, entry point {ep.value}) failed "
                f"to import: {type(exc).__name__}: {exc}. Fix or uninstall the package "
                f"(`pip uninstall {dist}`), or block it with RNNSIM_DISABLE_PLUGINS={ep.name}."
            ))
            continue
        manager.register(plugin, name=ep.name)
        _sources[ep.name] = Source(ep.name, dist, version)


def register_plugin(plugin: object, name: str, package: str = "local") -> None:
    """Register a plugin object (a module or any object with hookimpls) at run time."""
    get_manager().register(plugin, name=name)
    _sources[name] = Source(name, package, "")
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
    found = Plugins(Registry("activation"), Registry("initializer"), Registry("head"))
    hooks = (
        (manager.hook.register_activations, _activation_registrar, found.activations),
        (manager.hook.register_initializers, _initializer_registrar, found.initializers),
        (manager.hook.register_heads, _head_registrar, found.heads),
    )
    for hook, registrar, registry in hooks:
        # One plugin at a time, in registration order, so each entry knows its source; a
        # plugin's entries are kept only if all of them are valid.
        for impl in hook.get_hookimpls():
            source = _sources.get(impl.plugin_name) or Source(impl.plugin_name, "unknown", "")
            staged: list = []
            try:
                impl.function(register=registrar(staged.append, source))
                added = []
                try:
                    for entry in staged:
                        registry.add(entry)
                        added.append(entry.name)
                except PluginError:
                    for name in added:
                        del registry.entries[name]
                    raise
            except PluginError as exc:
                _broken(exc)
            except Exception as exc:
                _broken(PluginError(
                    f"plugin '{source.plugin}' ({source.package}) raised in "
                    f"{hook.name}: {type(exc).__name__}: {exc}. Fix the plugin, or block it "
                    f"with RNNSIM_DISABLE_PLUGINS={source.plugin}."
                ))
    return found


def _bad(source: Source, what: str) -> PluginError:
    return PluginError(f"plugin '{source.plugin}' ({source.package}) registered {what}")


def _activation_registrar(add: Callable, source: Source) -> Callable:
    def register(name, fn, params=None, description="", elementwise=True, fast=None,
                 vectorised=None):
        if not callable(fn):
            raise _bad(source, f"activation '{name}' with fn={fn!r}, which is not callable.")
        for option, variant in (("fast", fast), ("vectorised", vectorised)):
            if variant is not None and (not callable(variant) or _positional_arity(variant)
                                        not in (None, _positional_arity(fn))):
                raise _bad(source, f"activation '{name}' with {option}={variant!r}, which is "
                           "not a function taking the same arguments as fn.")
        params = dict(params or {})
        for key, value in params.items():
            if not isinstance(key, str) or not isinstance(value, numbers.Real):
                raise _bad(source, f"activation '{name}' with parameter {key!r}={value!r}: "
                           "parameters map names to numbers.")
        arity = _positional_arity(fn)
        if arity is not None and arity != 1 + len(params):
            raise _bad(source, f"activation '{name}' whose function takes {arity} arguments, "
                       f"but x plus its params {list(params)} make {1 + len(params)}.")
        add(Activation(name, fn, params, description, source, bool(elementwise), fast,
                       vectorised))

    return register


def _positional_arity(fn) -> int | None:
    try:
        sig = inspect.signature(getattr(fn, "py_func", fn))
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in sig.parameters.values()):
        return None
    return sum(p.kind in kinds for p in sig.parameters.values())


def _initializer_registrar(add: Callable, source: Source) -> Callable:
    def register(name, fn, description=""):
        if not callable(fn):
            raise _bad(source, f"initializer '{name}' with fn={fn!r}, which is not callable.")
        add(Initializer(name, fn, description, source))

    return register


def _head_registrar(add: Callable, source: Source) -> Callable:
    from .heads import Head

    def register(name, cls, description=""):
        if not (isinstance(cls, type) and issubclass(cls, Head)):
            raise _bad(source, f"head '{name}' as {cls!r}, which is not a subclass of rnnsim.Head.")
        add(HeadEntry(name, cls, description, source))

    return register


def describe() -> list[dict]:
    """Every registered name with its kind, package and version, for `rnnsim plugins`."""
    rows = []
    for registry in get_plugins().registries():
        for entry in registry:
            row = {
                "kind": registry.kind,
                "name": entry.name,
                "plugin": entry.source.plugin,
                "package": entry.source.package,
                "version": entry.source.version,
                "description": entry.description,
            }
            if registry.kind == "activation":
                row["params"] = entry.params
                row["elementwise"] = entry.elementwise
            rows.append(row)
    return rows
