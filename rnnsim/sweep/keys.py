"""Config key paths of a sweep's grid: ``network.layers[0].units``, checked against the
config schema and the installed plugins' parameters, with did-you-mean hints and aliases."""
from __future__ import annotations

import difflib
import re
from typing import Iterable, Mapping

from .. import config as config_mod
from ..config import DEFAULT_CELL, Config, HeadInit, LayerConfig, LayerInit, Spec, key_path
from ..network import SPECTRAL_RADIUS
from ..plugins import get_plugins, keyword_params

_PART = re.compile(r"([A-Za-z_]\w*)((?:\[\d+\])*)")



def split_key_path(path: str) -> tuple | None:
    """``network.layers[0].units`` -> ``('network', 'layers', 0, 'units')``; None if malformed."""
    parts: list = []
    for chunk in path.strip().split("."):
        match = _PART.fullmatch(chunk)
        if match is None:
            return None
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"\d+", match.group(2))]
    return tuple(parts)


def _canonical(parts: tuple) -> tuple:
    """Expand the alias ``network.layers[i].spectral_radius`` (the recurrent initializer's)."""
    if (len(parts) == 4 and parts[:2] == ("network", "layers") and isinstance(parts[2], int)
            and parts[3] == SPECTRAL_RADIUS):
        return parts[:3] + ("init", "recurrent", SPECTRAL_RADIUS)
    return parts


def canonical_key(path: str) -> str:
    """The table column of a grid key path, aliases expanded: ``network.layers[0].spectral_radius``
    is written as ``network.layers[0].init.recurrent.spectral_radius``. A malformed path is
    returned as it is."""
    parts = split_key_path(path)
    return path if parts is None else key_path(_canonical(parts))


def _spec_mapping(value) -> dict:
    return {"name": value} if isinstance(value, str) else dict(value or {})


def _fields(model, value) -> dict:
    """The fields of ``model`` where ``value`` is its data: a layer's include its cell's own
    options (``Cell.Options``)."""
    fields = dict(model.model_fields)
    if model is LayerConfig and isinstance(value, Mapping):
        cells = get_plugins().cells
        name = value.get("cell", DEFAULT_CELL)
        if isinstance(name, str) and name in cells:
            fields.update(cells.entries[name].cls.Options.model_fields)
    return fields


def _known_paths(model, value, prefix: str = "") -> list[str]:
    """Every key path of ``model`` with the list lengths of ``value`` (for did-you-mean)."""
    paths = []
    for name, field in _fields(model, value).items():
        if model is Config and name == "sweep":
            continue
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        inner = config_mod.model_in(field.annotation)
        item = value.get(name) if isinstance(value, dict) else None
        if inner is Spec:
            keys = set(_spec_mapping(item)) | {"name"}
            if model in (LayerInit, HeadInit):
                keys.add(SPECTRAL_RADIUS)
            paths += [f"{path}.{key}" for key in sorted(keys)]
        elif inner is not None and isinstance(item, list):
            for i, entry in enumerate(item):
                paths += _known_paths(inner, entry, f"{path}[{i}]")
        elif inner is not None and isinstance(item, dict):
            paths += _known_paths(inner, item, path)
    return paths


def check_key_path(path: str, data: Mapping, swept: Iterable[str] = ()) -> tuple[str, str | None]:
    """``(canonical path, problem)`` for a grid key checked against the schema and ``data``.

    ``data`` is the config as a plain mapping (``Config.dump()``); the problem is None when the
    path names a key that a value can be given to. Parameters of plugin specs are checked
    against the plugin unless the spec's name is itself in ``swept``.
    """
    parts = split_key_path(path)
    if parts is None:
        return path, (f"'{path}' is not a key path; write keys joined by dots with list indices "
                      "in brackets, e.g. network.layers[0].units.")
    parts = _canonical(parts)
    canonical = key_path(parts)

    def unknown() -> tuple[str, str]:
        close = difflib.get_close_matches(canonical, _known_paths(Config, data), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return canonical, f"unknown config key path '{canonical}'{hint}."

    if parts[0] == "sweep":
        return canonical, (f"'{canonical}' is in the sweep section, which cannot be swept; "
                           "grid keys are the config's own keys.")
    model, parent, value = Config, None, data
    for depth, part in enumerate(parts):
        here = key_path(parts[:depth])
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(value, list):
                return canonical, f"'{here}' is not a list, so '{canonical}' cannot index it."
            if part >= len(value):
                return canonical, (f"'{here}' has {len(value)} entries in the config, so index "
                                   f"{part} in '{canonical}' is out of range.")
            value = value[part]
            continue
        if model is Spec:
            if not last:
                return unknown()
            return canonical, _spec_param_problem(parent, value, parts[:depth], part, swept)
        fields = _fields(model, value) if isinstance(model, type) else {}
        if part not in fields:
            return unknown()
        parent, model = model, config_mod.model_in(fields[part].annotation)
        value = value.get(part) if isinstance(value, dict) else None
        if model is Spec:
            value = None if value is None else _spec_mapping(value)
        if value is None and model is not None and not last:
            return canonical, (f"'{key_path(parts[:depth + 1])}' is not set in the config; set "
                               f"it there to sweep '{canonical}'.")
    return canonical, None


def _spec_param_problem(owner, spec: dict, spec_parts: tuple, param: str,
                        swept: Iterable[str]) -> str | None:
    """None if ``param`` is a parameter the spec's plugin takes; else what is wrong."""
    spec_path = key_path(spec_parts)
    if param == "name" or param in spec or {spec_path, f"{spec_path}.name"} & set(swept):
        return None
    plugins = get_plugins()
    initializer = owner in (LayerInit, HeadInit)
    registry = plugins.initializers if initializer else plugins.activations
    if spec["name"] not in registry:
        return None  # the config's own check names the unknown plugin
    entry = registry.entries[spec["name"]]
    if initializer:
        accepted = keyword_params(entry.fn)
        if accepted is None:
            return None
        accepted = [*accepted, SPECTRAL_RADIUS]
    else:
        accepted = list(entry.params)
    if param in accepted:
        return None
    close = difflib.get_close_matches(param, accepted, n=1)
    hint = f" (did you mean '{spec_path}.{close[0]}'?)" if close else ""
    kind = "initializer" if initializer else "activation"
    return (f"unknown config key path '{spec_path}.{param}'{hint}: {kind} '{spec['name']}' "
            f"takes {', '.join(accepted) or 'no parameters'}.")
