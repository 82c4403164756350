"""Importing other frameworks' model files through the registered importers: picking one by
name or by file type, checking its options and calling it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError, PluginError, RnnsimError
from .plugins import Importer, get_plugins


def importer(name: str) -> Importer:
    """The importer registered as ``name``; a ConfigError naming the installed ones (or the
    plugins that both registered it) otherwise."""
    return get_plugins().importers.get(name, "import format")


def find_importer(path: str | os.PathLike) -> Importer | None:
    """The importer for ``path``: the one whose suffix is the longest ending of its name, else
    the one whose ``sniff`` recognises the file; None when none does. An InputError when
    several claim it."""
    registry = get_plugins().importers
    name = Path(path).name.lower()
    claims = [(len(s), e) for e in registry.registered() for s in e.suffixes if name.endswith(s)]
    longest = max((length for length, _ in claims), default=0)
    found = [e for length, e in claims if length == longest]
    if not found and Path(path).is_file():
        found = [e for e in registry.registered() if e.sniff is not None and _sniffs(e, path)]
    if len(found) > 1:
        owners = " and ".join(f"importer '{e.name}' of plugin '{e.source.plugin}' (package "
                              f"{e.source.package})" for e in found)
        raise InputError(f"'{path}' is claimed by {owners}; name the format: `rnnsim import "
                         "FORMAT` or rnnsim.import_file(path, format=...).")
    return registry.get(found[0].name, f"'{path}'") if found else None


def importer_for(path: str | os.PathLike) -> Importer:
    """``find_importer(path)``, or an InputError listing the file types known."""
    entry = find_importer(path)
    if entry is None:
        known = ", ".join(f"{s} ({e.name})" for e in get_plugins().importers
                          for s in e.suffixes)
        raise InputError(f"no importer reads '{path}'. Known file types: {known}. `rnnsim "
                         "plugins` lists the importers.")
    return entry


def _sniffs(entry: Importer, path) -> bool:
    try:
        return bool(entry.sniff(Path(path)))
    except Exception as exc:
        raise PluginError(f"importer '{entry.name}' (plugin '{entry.source.plugin}') failed to "
                          f"recognise '{path}': {type(exc).__name__}: {exc}.") from None


def check_options(entry: Importer, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the importer's defaults filled in; a ConfigError listing unknown,
    missing or out-of-choice options."""
    problems = [f"unknown option '{key}'" for key in options if key not in entry.options]
    found = {}
    for key, spec in entry.options.items():
        value = options.get(key, spec.get("default"))
        if value is None and spec.get("required"):
            problems.append(f"'{key}' is required ({spec['help']})")
        elif value is not None and spec.get("choices") and str(value).lower() not in [
                str(choice).lower() for choice in spec["choices"]]:
            problems.append(f"'{key}' is {value!r}, not one of {spec['choices']}")
        if value is not None:
            found[key] = value
    if problems:
        accepted = ", ".join(entry.options) or "none"
        raise ConfigError(f"importer '{entry.name}': {'; '.join(problems)}. Its options: "
                          f"{accepted}; give them to `rnnsim import {entry.name} FILE -o "
                          f"FOLDER` (--help lists them) or to rnnsim.import_file.")
    return found


def import_file(path: str | os.PathLike, format: str | None = None, **options):
    """A ``Network`` (or, for a graph format such as ONNX, a model with ``run(feeds)``) from
    another framework's file, by the importer named ``format`` or else the one for the file's
    type; ``options`` are that importer's (`rnnsim plugins --json` lists them)."""
    entry = importer(format) if format is not None else importer_for(path)
    options = check_options(entry, options)
    try:
        return entry.load(Path(path), **options)
    except RnnsimError:
        raise
    except Exception as exc:
        raise PluginError(f"importer '{entry.name}' (plugin '{entry.source.plugin}', package "
                          f"{entry.source.package}) failed on '{path}': {type(exc).__name__}: "
                          f"{exc}.") from exc
