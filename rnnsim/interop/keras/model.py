"""A Keras model's layers in order: from a serialized model config (a ``.keras`` file's
``config.json``, ``model.to_json()``) or from a live model or layer."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ...errors import ConfigError
from .layers import KerasLayer

MODELS = ("Sequential", "Functional", "Model")


def layer_configs(model_config: dict) -> list[dict]:
    """The ``{"class_name", "config"}`` entries of a Sequential model, or of a Functional
    model whose layers form one chain, in the order data flows through them."""
    kind, cfg = model_config.get("class_name"), model_config.get("config", {})
    if kind not in MODELS:
        return [model_config]
    entries = list(cfg.get("layers", ()))
    if kind == "Sequential":
        return entries
    previous = None
    for entry in entries:
        sources = [history["config"]["keras_history"][0]
                   for node in entry.get("inbound_nodes", ())
                   for history in node.get("args", ())
                   if isinstance(history, dict) and "keras_history" in history.get("config", {})]
        if sources != ([] if previous is None else [previous]):
            raise ConfigError(f"Keras layer '{entry['config']['name']}' takes its input from "
                              f"{sources or 'nothing'}: rnnsim imports models whose layers form "
                              "one chain (each layer feeding the next).")
        previous = entry["config"]["name"]
    return entries


def collect(model_config: dict, weights_of: Callable[[str, dict], list]) -> list[KerasLayer]:
    """Every layer of ``model_config`` with its weights, ``weights_of(name, entry)``."""
    return [KerasLayer(entry["class_name"], entry["config"],
                       tuple(weights_of(entry["config"]["name"], entry)))
            for entry in layer_configs(model_config)]


def live_layers(obj: Any) -> list[KerasLayer]:
    """The layers of a live Keras model (Sequential or a one-chain Functional) or one layer."""
    if hasattr(obj, "get_layer") and hasattr(obj, "layers"):
        config = {"class_name": "Sequential" if type(obj).__name__ == "Sequential"
                  else "Functional", "config": obj.get_config()}
        by_name = {layer.name: layer for layer in obj.layers}
        return collect(config, lambda name, entry: [
            np.asarray(w) for w in (by_name[name].get_weights() if name in by_name else ())])
    if hasattr(obj, "get_config") and hasattr(obj, "get_weights"):
        if not obj.get_weights():
            raise ConfigError(f"Keras layer '{obj.name}' is not built (it has no weights yet): "
                              "call it on an input, or build it, first.")
        return [KerasLayer(type(obj).__name__, obj.get_config(),
                           tuple(np.asarray(w) for w in obj.get_weights()))]
    raise ConfigError(f"from_keras takes a Keras model or layer, not {type(obj).__name__}; "
                      "for a saved file use rnnsim.interop.keras.load_keras(path).")
