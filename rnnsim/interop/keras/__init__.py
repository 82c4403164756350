"""Run Keras 3 recurrent models on rnnsim's kernels: SimpleRNN, LSTM, GRU (both reset modes),
Bidirectional, stacked, with a Dense or TimeDistributed(Dense) head.

``load_keras(path)`` reads a ``.keras`` or ``.weights.h5`` file with h5py alone (no Keras);
``from_keras(model_or_layer)`` converts a live Keras object. Both return a ``Network`` with
``batch_first`` true, as Keras' inputs are (batch, timesteps, features).

One job per module: ``layers`` (Keras layers to rnnsim layers and parameters), ``model`` (a
model's layer chain, from its config or a live object), ``files`` (reading the files).
"""
from __future__ import annotations

import os
from typing import Any

from ...network import Network
from .files import read_keras
from .layers import to_network
from .model import live_layers


def load_keras(path: str | os.PathLike, config=None, dtype: str | None = None) -> Network:
    """A ``Network`` from a Keras 3 ``.keras`` file, or a ``.weights.h5`` file plus ``config``
    (the model's JSON or its path; inferred from the shapes when left out, with a warning).
    ``dtype`` ('float32' or 'float64') defaults to the weights' own."""
    return to_network(read_keras(path, config), dtype)


def from_keras(model_or_layer: Any, dtype: str | None = None) -> Network:
    """A ``Network`` from a live Keras model (Sequential, or Functional with one chain of
    layers) or a built recurrent layer; ``net.run(x).output`` (or ``.y`` with a head) equals
    ``model.predict(x)`` for ``x`` of shape (batch, timesteps, features)."""
    return to_network(live_layers(model_or_layer), dtype)


__all__ = ["from_keras", "load_keras"]
