"""The JSON Schema of a config file, built from the installed plugins, for editors
(``# yaml-language-server: $schema=...``) and any JSON Schema validator.

pydantic writes the schema of the keys every config has (``config.Config``); this module adds
what the plugins decide: the cell, activation, initializer and head names as enums, each
activation's and initializer's parameters, and each cell's own layer keys (its ``Options``),
so that an editor completes ``cell: lstm`` and then offers ``proj_size`` but not ``leak_rate``.
"""
from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any

from .config import DEFAULT_CELL, Config, LayerConfig, built_by
from .io import write_atomic
from .plugins import Plugins, get_plugins, keyword_params

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SPEC = "#/$defs/Spec"
ACTIVATION, INITIALIZER = "#/$defs/Activation", "#/$defs/Initializer"
SPECTRAL_RADIUS = {"type": "number", "minimum": 0,
                   "description": "scale a square matrix to this spectral radius"}


def json_schema(plugins: Plugins | None = None) -> dict:
    """The JSON Schema (draft 2020-12) of a config file with the plugins in ``plugins``
    (default: every installed one)."""
    plugins = plugins or get_plugins()
    schema = Config.model_json_schema(ref_template="#/$defs/{model}")
    defs = schema["$defs"]
    defs.pop("Spec")
    defs["Activation"] = _named(plugins.activations, "activation", _activation_params)
    defs["Initializer"] = _named(plugins.initializers, "initializer", _initializer_params)
    for model in ("LayerInit", "HeadInit"):
        for field in defs[model]["properties"].values():
            _replace_refs(field, SPEC, INITIALIZER)
    head = defs["HeadConfig"]["properties"]["name"]
    head.update(enum=sorted(plugins.heads.entries), description=_listing(plugins.heads))
    defs["LayerConfig"] = _layer(defs["LayerConfig"], plugins, defs)
    _replace_refs(schema, SPEC, ACTIVATION)
    schema.update(title="rnnsim config", description="A config file of rnnsim (`rnnsim run "
                  "CONFIG`), with the plugins installed when `rnnsim schema` wrote this.")
    return {"$schema": DIALECT, **schema}


def _layer(base: dict, plugins: Plugins, defs: dict) -> dict:
    """A layer: every layer's keys, ``cell`` an enum, and one ``if cell is X then`` branch per
    cell allowing exactly every layer's keys plus that cell's ``Options``."""
    layer = copy.deepcopy(base)
    layer["properties"]["cell"].update(enum=sorted(plugins.cells.entries),
                                       description=_listing(plugins.cells))
    branches = []
    for name, entry in sorted(plugins.cells.entries.items()):
        with built_by(entry.cls.Options, f"cell '{name}' (plugin '{entry.source.plugin}')"):
            options = entry.cls.Options.model_json_schema(ref_template="#/$defs/{model}")
        for key, value in options.pop("$defs", {}).items():
            if key != "Spec":  # a cell's activations: the Activation definition
                defs.setdefault(key, value)
        allowed = {key: True for key in LayerConfig.model_fields}
        allowed.update(options.get("properties", {}))
        chosen = {"properties": {"cell": {"const": name}}, "required": ["cell"]}
        if name == DEFAULT_CELL:
            chosen = {"anyOf": [chosen, {"not": {"required": ["cell"]}}]}
        branches.append({"if": chosen, "then": {"properties": allowed,
                                                "additionalProperties": False}})
    layer["allOf"] = branches
    layer.pop("additionalProperties", None)
    return layer


def _named(registry, kind: str, params) -> dict:
    """A plugin of ``registry`` chosen by name: a bare name from the enum, or a mapping with
    ``name`` and that plugin's parameters (``params(entry)``: name -> schema)."""
    names = sorted(registry.entries)
    branches = [{"if": {"properties": {"name": {"const": name}}, "required": ["name"]},
                 "then": {"properties": {"name": True, **params(registry.entries[name])},
                          "additionalProperties": False}} for name in names]
    return {"description": f"{kind}: a name, or a mapping {{name: ..., parameter: value}}. "
                           + _listing(registry),
            "type": ["string", "object"],
            "if": {"type": "string"}, "then": {"enum": names},
            "else": {"properties": {"name": {"enum": names}}, "required": ["name"],
                     "allOf": branches}}


def _activation_params(entry) -> dict:
    return {key: {"type": "number", "default": value} for key, value in entry.params.items()}


def _initializer_params(entry) -> dict:
    """An initializer's keyword parameters, typed after their defaults; ``spectral_radius``."""
    names = keyword_params(entry.fn)
    if names is None:  # it takes **params: anything goes
        return {}
    found = {}
    signature = inspect.signature(entry.fn).parameters
    for key in names:
        default = signature[key].default
        kind = ("boolean" if isinstance(default, bool) else
                "number" if isinstance(default, (int, float)) else
                "string" if isinstance(default, str) else None)
        found[key] = {} if kind is None else {"type": kind, "default": default}
    return {**found, "spectral_radius": SPECTRAL_RADIUS}


def _listing(registry) -> str:
    return "Installed: " + "; ".join(f"{name}: {entry.description}".rstrip(": ")
                                    for name, entry in sorted(registry.entries.items()))


def _replace_refs(node: Any, old: str, new: str) -> None:
    """Point every ``$ref`` to ``old`` inside ``node`` at ``new``, in place."""
    if isinstance(node, dict):
        if node.get("$ref") == old:
            node["$ref"] = new
        for value in node.values():
            _replace_refs(value, old, new)
    elif isinstance(node, list):
        for value in node:
            _replace_refs(value, old, new)


def dumps(schema: dict) -> str:
    """The schema as the text ``rnnsim schema`` writes (stable key order, newline at the end)."""
    return json.dumps(schema, indent=2) + "\n"


def write(path: str | Path, plugins: Plugins | None = None) -> Path:
    """Write the schema to ``path`` atomically; returns the path."""
    text = dumps(json_schema(plugins))
    write_atomic(Path(path), lambda tmp: tmp.write_text(text))
    return Path(path)
