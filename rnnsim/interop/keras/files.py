"""Reading Keras 3 files without Keras: a ``.keras`` file is a zip of ``config.json`` (the
architecture) and ``model.weights.h5``; a ``.weights.h5`` file holds the weights alone, under
``layers/<path>/[cell/]vars/<i>``, each layer's group naming its layer in ``vars``' attribute
``name``. Needs h5py (``pip install 'rnnsim[keras]'``)."""
from __future__ import annotations

import io
import itertools
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ...errors import ConfigError, InputError
from .layers import KerasLayer
from .model import collect

INSTALL_HINT = "pip install 'rnnsim[keras]' (or pip install h5py)"
# Orderings tried when a weights file comes without its architecture.
MAX_LAYERS = 7


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise InputError(f"reading '{path}' needs the h5py package: {INSTALL_HINT}.") from None
    return h5py


def read_keras(path: str | os.PathLike, config: str | os.PathLike | dict | None = None
               ) -> list[KerasLayer]:
    """The layers of a ``.keras`` file, or of a ``.weights.h5`` file with ``config`` (the
    model's JSON, as ``model.to_json()`` or a ``.keras`` file's ``config.json`` holds it, a
    path to it or the parsed dict). Without ``config`` a weights file's layers are inferred
    from its shapes: Keras' default activations and ``return_sequences=True``, with a warning."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Keras file '{path}' does not exist. Check the path.")
    h5py = _h5py(path)
    if config is not None:
        config = _model_config(config)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
                if not {"config.json", "model.weights.h5"} <= names:
                    raise InputError(f"'{path}' is a zip file but not a Keras 3 .keras file "
                                     "(it lacks config.json or model.weights.h5).")
                config = config if config is not None else _model_config(
                    archive.read("config.json").decode())
                weights = io.BytesIO(archive.read("model.weights.h5"))
        else:
            weights = path
        with h5py.File(weights, "r") as store:
            groups = _layer_groups(store, path)
            if config is None:
                return _inferred(groups, path)
            return collect(config, lambda name, entry: _weights_of(groups, name))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(f"Keras file '{path}' cannot be read: {type(exc).__name__}: "
                         f"{exc}.") from None


def _model_config(config) -> dict:
    """The model's config from a dict, a JSON text or a JSON file's path."""
    if isinstance(config, dict):
        return config
    where = "the model config" if str(config).lstrip().startswith("{") else f"'{config}'"
    try:
        text = config if where == "the model config" else Path(config).read_text()
        found = json.loads(text)
    except (OSError, ValueError) as exc:
        raise InputError(f"{where} cannot be read as a Keras model's JSON: {exc}. Give the "
                         "text of model.to_json() or a .keras file's config.json.") from None
    if not isinstance(found, dict) or "class_name" not in found:
        raise InputError(f"{where} is not a Keras model's JSON (no 'class_name'); give the "
                         "text of model.to_json() or a .keras file's config.json.")
    return found


def _layer_groups(store, path: Path) -> dict:
    """Layer name -> its h5 group."""
    if "layers" not in store:
        raise InputError(f"'{path}' holds no 'layers' group: it is not a Keras 3 weights file "
                         "(Keras 2's legacy .h5 files are not supported; save with Keras 3).")
    groups = {}
    for group in store["layers"].values():
        name = group["vars"].attrs.get("name", "") if "vars" in group else ""
        groups[name.decode() if isinstance(name, bytes) else str(name)] = group
    return groups


def _vars(group) -> list[np.ndarray]:
    """A layer group's weights in Keras' get_weights() order."""
    if "forward_layer" in group:
        return _vars(group["forward_layer"]) + _vars(group["backward_layer"])
    for inner in ("cell", "layer"):
        if inner in group:
            return _vars(group[inner])
    found = group.get("vars", {})
    return [np.asarray(found[str(i)]) for i in range(len(found))]


def _weights_of(groups: dict, name: str) -> list[np.ndarray]:
    if name not in groups:
        return []  # a layer without weights (InputLayer, Dropout) may have no group
    return _vars(groups[name])


def _guess(name: str, group) -> dict | None:
    """A layer's ``{"class_name", "config"}`` from its weights' shapes alone; None for a layer
    without weights."""
    weights = _vars(group)
    if not weights:
        return None
    if "forward_layer" in group:
        inner = _guess(name, group["forward_layer"])
        back = dict(inner, config=dict(inner["config"], go_backwards=True))
        return {"class_name": "Bidirectional", "config": {"name": name, "layer": inner,
                                                          "backward_layer": back}}
    kernel = weights[0]
    if "cell" in group:
        units = weights[1].shape[0]
        gates = {4: "LSTM", 3: "GRU", 1: "SimpleRNN"}.get(kernel.shape[1] // units)
        if gates is None or kernel.shape[1] % units:
            raise InputError(f"layer '{name}': a recurrent kernel of shape {kernel.shape} "
                             f"with {units} units is not a SimpleRNN, LSTM or GRU.")
        cfg = {"name": name, "units": units, "use_bias": len(weights) == 3,
               "return_sequences": True}
        if gates == "GRU":
            cfg["reset_after"] = len(weights) < 3 or weights[2].ndim == 2
        return {"class_name": gates, "config": cfg}
    dense = {"class_name": "Dense", "config": {"name": name, "units": kernel.shape[1],
                                               "use_bias": len(weights) == 2}}
    if "layer" in group:
        return {"class_name": "TimeDistributed", "config": {"name": name, "layer": dense}}
    return dense


def _width(entry: dict) -> int:
    """The features a guessed recurrent layer gives."""
    if entry["class_name"] == "Bidirectional":
        return 2 * _width(entry["config"]["layer"])
    return int(entry["config"]["units"])


def _inferred(groups: dict, path: Path) -> list[KerasLayer]:
    entries = [e for e in (_guess(name, g) for name, g in groups.items()) if e is not None]
    weights = {e["config"]["name"]: _vars(groups[e["config"]["name"]]) for e in entries}
    heads = [e for e in entries if e["class_name"] in ("Dense", "TimeDistributed")]
    body = [e for e in entries if e not in heads]
    if len(heads) > 1 or len(body) > MAX_LAYERS:
        raise ConfigError(f"'{path}' holds {len(body)} recurrent and {len(heads)} dense layers: "
                          "too many to order from the shapes alone; pass the model's config "
                          "(config=, or --config model.json from model.to_json()).")

    def fan_in(entry):
        return weights[entry["config"]["name"]][0].shape[0]

    orders = [order for order in itertools.permutations(body)
              if all(fan_in(b) == _width(a) for a, b in zip(order, order[1:]))
              and (not heads or (order and fan_in(heads[0]) == _width(order[-1])))]
    if len(orders) != 1:
        raise ConfigError(f"'{path}' holds weights only, and its layers' shapes "
                          f"{'fit no single chain' if not orders else 'fit several orders'}; "
                          "pass the model's config (config=, or --config model.json from "
                          "model.to_json()).")
    warnings.warn(f"'{path}' holds weights only: rnnsim assumed Keras' default activations "
                  "and return_sequences=True for every layer (the order came from the "
                  "shapes). Pass the model's config to import it exactly.", UserWarning,
                  stacklevel=3)
    return [KerasLayer(e["class_name"], e["config"], tuple(weights[e["config"]["name"]]))
            for e in [*orders[0], *heads]]
