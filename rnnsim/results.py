"""What a run returns and where it stopped: ``RunResult`` and ``State``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from . import display
from .errors import ShapeError


@dataclass(repr=False)
class RunResult:
    """What ``Network.run`` returns.

    output : (T, B, D*p), (B, T, D*p) with ``batch_first``, (T, D*p) for unbatched input
        The top layer's hidden state at every step (D = 2 for a bidirectional layer).
    states : tuple with one mapping per layer, state name -> final (D, B, size) array, or
        (D, size) for unbatched input: every state the layer's cell has (``h``; an LSTM's
        ``c``; the fed-back ``y`` of an esn layer with output feedback...)
    y : ndarray or None
        The head's outputs, or None without a head.
    """

    output: np.ndarray
    states: tuple[dict[str, np.ndarray], ...]
    y: np.ndarray | None

    def __repr__(self) -> str:
        return display.result_text(self)

    def _repr_html_(self) -> str:
        """The arrays of the run, with their shapes, for Jupyter."""
        return display.result_html(self)

    @property
    def final(self) -> tuple[np.ndarray, ...]:
        """The final hidden state h of every layer (its first state)."""
        return self.state.h

    @property
    def final_c(self) -> tuple[np.ndarray | None, ...]:
        """Every layer's second state (an LSTM's cell state c), None for a one-state cell."""
        return self.state.c

    @property
    def state(self) -> "State":
        """Where the run stopped: pass it to ``run`` or ``step`` to continue."""
        return State(self.states)

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

    layers : one mapping per layer from the name of each of its cell's states
        (``Cell.state_sizes``) to its (D, B, size) array, or (D, size) for unbatched runs
    ``h`` and ``c`` give every layer's first and second state (None where there is none).
    """

    layers: tuple[dict[str, np.ndarray], ...]

    def __post_init__(self):
        if not isinstance(self.layers, (tuple, list)) or \
                not all(isinstance(layer, Mapping) for layer in self.layers):
            raise ShapeError(f"State.layers is {type(self.layers).__name__}; it holds one "
                             "mapping per layer (state name -> array). Use "
                             "net.initial_state(batch).")
        object.__setattr__(self, "layers", tuple(dict(layer) for layer in self.layers))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Every state of every layer as ``<prefix>_<layer>_<name>`` (``final_0_h``), the
        names under which files keep them."""
        return {f"{prefix}_{i}_{name}": value for i, states in enumerate(self.layers)
                for name, value in states.items()}

    @classmethod
    def from_arrays(cls, arrays: Mapping, prefix: str, names: list[list[str]]) -> "State":
        """The ``State`` whose ``arrays(prefix)`` are ``arrays``, for layers with the states
        ``names``; KeyError when one is missing."""
        return cls(tuple({name: arrays[f"{prefix}_{i}_{name}"] for name in layer}
                         for i, layer in enumerate(names)))

    @property
    def h(self) -> tuple[np.ndarray, ...]:
        return tuple(next(iter(states.values())) for states in self.layers)

    @property
    def c(self) -> tuple[np.ndarray | None, ...]:
        return tuple(list(states.values())[1] if len(states) > 1 else None
                     for states in self.layers)


def stacked(finals, name: str, attribute: str) -> np.ndarray:
    if len({f.shape[1:] for f in finals}) > 1:
        raise ShapeError(f"{name} needs every layer to have the same number of units; "
                         f"use result.{attribute}, one array per layer.")
    return np.concatenate(finals, axis=0)
