"""A layer's update as a map of its state, in float64 NumPy, with its Jacobian: the base class
every cell's dynamics map derives from (``Cell.map_class``), and the helpers they share.

Activations are plugins, plain scalar functions, so their derivatives are taken by central
differences, ``f'(z) ~ (f(z + e) - f(z - e)) / 2e`` with ``e = eps**(1/3) * max(1, |z|)``.
"""
from __future__ import annotations

import numpy as np

from ..activations import BoundActivation
from ..sparse import CSR
from .base import input_projection

FD_STEP = float(np.cbrt(np.finfo(np.float64).eps))
# Sparse reservoirs up to this size are made dense here: faster for whole Jacobians.
DENSE_MAX = 2048


def value_and_slope(act: BoundActivation, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(z)`` and ``f'(z)`` for every element of ``z`` (float64), f' by central differences."""
    z = np.asarray(z, np.float64)
    e = FD_STEP * np.maximum(1.0, np.abs(z))
    up, down = z + e, z - e
    values = act(np.stack([z, up, down]))
    return values[0], (values[1] - values[2]) / (up - down)


def matmul(w, v: np.ndarray) -> np.ndarray:
    """``w @ v`` for a dense (n, n) array or a ``CSR`` ``w`` and ``v`` (..., n, m)."""
    return w.dot(v) if isinstance(w, CSR) else w @ v


def rows(scale: np.ndarray, m: np.ndarray) -> np.ndarray:
    """diag(scale) @ m for stacks: ``scale`` (..., n), ``m`` (..., n, k)."""
    return scale[..., None] * m


def activation_range(act: BoundActivation) -> tuple[float, float]:
    """The closed range (low, high) of a scalar activation, found on a wide grid; an end that
    still moves between |z| = 1e3 and 1e6 is unbounded (-inf or inf)."""
    z = np.concatenate([[-1e6, -1e3], np.linspace(-60.0, 60.0, 4001), [1e3, 1e6]])
    value = value_and_slope(act, z)[0]
    low, high = float(np.min(value)), float(np.max(value))
    far = value[[0, -1]]
    near = value[[1, -2]]
    grows = np.abs(far - near) > 1e-9 * (1.0 + np.abs(near))
    if (grows & np.isclose(far, low)).any():
        low = -np.inf
    if (grows & np.isclose(far, high)).any():
        high = np.inf
    return low, high


class LayerMap:
    """One layer's update ``F(s, d)`` in float64 and its Jacobian ``dF/ds``.

    States ``s`` are (..., n) and drives ``d`` (..., m); leading axes broadcast, so one call
    evaluates many states at once. ``size`` is n. ``dense_jacobian``: whether ``jacobian``
    forms dF/ds directly, at the cost of one Jacobian-vector product (else it pushes the
    identity through ``jvp``).
    """

    dense_jacobian = False

    def __init__(self, layer, params: dict, suffix: str):
        self.layer = layer
        self.params = {name: np.asarray(value, np.float64) if value.dtype.kind == "f" else value
                       for name, value in params.items()}
        self.suffix = suffix
        self.clip = getattr(layer.options, "clip", None)

    def weight(self, name: str) -> np.ndarray | None:
        """This direction's parameter ``name`` in float64 (None if the layer has none)."""
        return self.params.get(name + self.suffix)

    @property
    def size(self) -> int:
        return self.layer.hidden_size

    def drive(self, x: np.ndarray, noise: bool = True) -> np.ndarray:
        """The drives ``d_t`` (T, m) for the layer's inputs ``x`` (T, input_size)."""
        return input_projection(np.asarray(x, np.float64)[:, None], self.weight("W"),
                                self.weight("b"))[:, 0]

    def activate(self, slot: int, z: np.ndarray, clip: bool = True, slope: bool = True):
        """Activation ``slot`` (in the cell's order) and its slope at ``z``, after clipping;
        with ``slope=False`` the value alone (one evaluation) and None."""
        act = self.layer.activations[slot]
        clipped = self.clip is not None and clip
        zc = np.clip(z, -self.clip, self.clip) if clipped else z
        if not slope:
            return act(np.asarray(zc, np.float64)), None
        value, slopes = value_and_slope(act, zc)
        return value, slopes * (np.abs(z) <= self.clip) if clipped else slopes

    def __call__(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``F(s, d)``: the next state, (..., n)."""
        raise NotImplementedError

    def jvp(self, s: np.ndarray, d: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``dF/ds @ v`` at (s, d) for tangent vectors ``v`` (..., n, k): (..., n, k)."""
        raise NotImplementedError

    def jacobian(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``dF/ds`` at (s, d): (..., n, n)."""
        return self.jvp(s, d, np.eye(self.size))

    def leaky_form(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(W (n, n) dense, lr (n,)) when F(s, d) = (1 - lr) s + lr f(clip(d + W s)) with
        activation 0 as f (the form ``kernels/cpu/tangent.py`` runs compiled), else None."""
        return None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The box (low, high), each (n,), holding every state the layer reaches from a state
        in it: a fixed point outside it cannot exist. By default the range of activation 0
        for every coordinate (an elman h = f(...); gru and esn states mix f(...) and the old
        state); +-inf where that activation is unbounded. Cells with other states override it.
        """
        low, high = activation_range(self.layer.activations[0])
        return np.full(self.size, low), np.full(self.size, high)

    def run(self, s0: np.ndarray, drives: np.ndarray) -> np.ndarray:
        """The states s_1..s_T (T, n) from ``s0`` (n,) under ``drives`` (T, m)."""
        states = np.empty((len(drives), self.size))
        s = np.asarray(s0, np.float64)
        for t, d in enumerate(drives):
            s = states[t] = self(s, d)
        return states


