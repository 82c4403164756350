"""What a run returns and where it stopped: ``RunResult`` and ``State``."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ShapeError


@dataclass
class RunResult:
    """What ``Network.run`` returns.

    output : (T, B, D*p), (B, T, D*p) with ``batch_first``, (T, D*p) for unbatched input
        The top layer's hidden state at every step (D = 2 for a bidirectional layer).
    final : tuple of (D, B, p) arrays, or (D, p) for unbatched input
        The final hidden state of every layer.
    y : ndarray or None
        The head's outputs, or None without a head.
    final_c : tuple of (D, B, p) arrays or None, or (D, p) for unbatched input
        The final cell state of every layer that has one (LSTM; an esn layer with output
        feedback: the last fed-back y, (1, B, m)), None for the others.
    """

    output: np.ndarray
    final: tuple[np.ndarray, ...]
    y: np.ndarray | None
    final_c: tuple[np.ndarray | None, ...] = ()

    @property
    def state(self) -> "State":
        """Where the run stopped: pass it to ``run`` or ``step`` to continue."""
        return State(self.final, self.final_c)

    @property
    def h_n(self) -> np.ndarray:
        """Final states stacked PyTorch-style: (layers*D, B, p)."""
        return stacked(self.final, "h_n", "final")

    @property
    def c_n(self) -> np.ndarray:
        """Final cell states stacked PyTorch-style: (layers*D, B, p), for LSTM stacks."""
        if not self.final_c or any(c is None for c in self.final_c):
            raise ShapeError("c_n needs every layer to have a cell state (cell: lstm); use "
                             "result.final_c, one array per layer (None without a cell state).")
        return stacked(self.final_c, "c_n", "final_c")


@dataclass(frozen=True)
class State:
    """The recurrent state of every layer, to continue a run where the last one stopped.

    h : tuple of (D, B, p) arrays, one per layer, or (D, p) for unbatched runs
    c : tuple with the cell state (D, B, p) of each LSTM layer (the fed-back output y of an esn
        layer with feedback) and None for the others
    """

    h: tuple[np.ndarray, ...]
    c: tuple[np.ndarray | None, ...]

    def __post_init__(self):
        for name in ("h", "c"):
            if not isinstance(getattr(self, name), (tuple, list)):
                raise ShapeError(f"State.{name} is {type(getattr(self, name)).__name__}; it holds "
                                 "one entry per layer (a tuple). Use net.initial_state(batch).")


def stacked(finals, name: str, attribute: str) -> np.ndarray:
    if len({f.shape[1:] for f in finals}) > 1:
        raise ShapeError(f"{name} needs every layer to have the same number of units; "
                         f"use result.{attribute}, one array per layer.")
    return np.concatenate(finals, axis=0)
