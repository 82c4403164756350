"""The base class of output heads, which plugins subclass and register."""
from __future__ import annotations

import numpy as np

from .errors import ConfigError


class Head:
    """A map from the top layer's states ``(T, B, in_features)`` to outputs ``y``.

    Subclasses set ``default_activation`` and ``per_step`` (False when ``y`` has no time axis),
    and override ``forward``. The default parameters are a linear map ``W`` (units x
    in_features) and ``b`` (units), initialized by the config's ``head.init.weight``/``bias``.
    """

    default_activation = "identity"
    per_step = True
    # y_t = W a_t + b exactly (no activation): what output feedback and closed loops need.
    linear_readout = False
    equation = ""
    symbols = {"W": "W_y", "b": "b_y"}

    def __init__(self, in_features: int, units: int | None, activation):
        self.in_features = in_features
        self.units = units if units is not None else in_features
        self.activation = activation

    def parameter_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Each parameter's name mapped to (initializer role, shape)."""
        return {"W": ("weight", (self.units, self.in_features)), "b": ("bias", (self.units,))}

    def linear(self, params: dict, states: np.ndarray) -> np.ndarray:
        """``states @ W.T + b`` over the last axis."""
        return states @ params["W"].T + params["b"]

    def forward(self, params: dict, states: np.ndarray) -> np.ndarray:
        """``y`` with leading axes (T, B) when ``per_step``, else (B,).

        A head that is not ``per_step`` may also take ``lengths`` ((B,) int64, the steps of each
        sequence, for ``Network.run(..., lengths=)``); ``states`` are zero past each end.
        """
        raise NotImplementedError

    def fit(self, states: np.ndarray, targets: np.ndarray, ridge: float) -> dict[str, np.ndarray]:
        """New parameters fitted to ``states`` (n, in_features) and ``targets`` (n, units),
        float64, for ``Network.fit``; a head that cannot be fitted raises ConfigError."""
        raise ConfigError("network.head: fit trains a ridge readout; add `head: {name: ridge, "
                          "units: <outputs>}` to the config.")

    def extra_outputs(self, y: np.ndarray) -> dict[str, np.ndarray]:
        """Arrays derived from ``y`` that `rnnsim run --output` also writes (e.g. classes)."""
        return {}
