"""A fused recurrence: the kernel call that replaces a chain of steps, and the original
nodes it falls back on."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..load import Node, run_nodes
from .steps import LSTM


@dataclass
class FusedRecurrence:
    """A chain of steps run as one kernel call; ``nodes`` the originals, run when the inputs
    do not have the shapes the fusion assumed."""

    cell: str  # the rnnsim cell (that of ONNX's RNN, LSTM or GRU node)
    activation: str
    steps: int
    input_size: int
    hidden_size: int
    dtype: np.dtype
    params: dict
    nodes: list[Node]
    node_names: tuple[str, str]
    where: str
    kernel: object
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    sliced: bool = False   # reads X (T', B, k) from ``offset`` on, not one input per step
    offset: int = 0
    whole: bool = False    # X was split into the steps: T' must be T
    stacked: bool = False  # also writes the steps' outputs stacked, (T, B, p)

    def __call__(self, inputs: list, values: dict) -> tuple:
        T, k, p = self.steps, self.input_size, self.hidden_size
        xs, states = (inputs[:1], inputs[1:]) if self.sliced else (inputs[:T], inputs[T:])
        B = states[0].shape[0] if getattr(states[0], "ndim", 0) == 2 else -1
        if not all(isinstance(v, np.ndarray) and v.dtype == self.dtype for v in inputs) \
                or any(s.shape != (B, p) for s in states) or not (
                    xs[0].ndim == 3 and xs[0].shape[0] >= self.offset + T
                    and (xs[0].shape[0] == T or not self.whole)
                    and xs[0].shape[1:] == (B, k) if self.sliced
                    else all(x.shape == (B, k) for x in xs)):
            return self._unfused(inputs, values)
        x = (np.ascontiguousarray(xs[0][self.offset:self.offset + T]) if self.sliced
             else np.stack(xs))
        h = np.array(states[0], order="C")
        extra = {"c": np.array(states[1], order="C")} if self.cell == LSTM.cell else {}
        out = self.kernel.run_direction(self.params, "", x, h, np.full(B, T, np.int64), False,
                                        **extra)
        return (tuple(out) + ((extra["c"],) if extra else ())
                + ((out.copy(),) if self.stacked else ()))

    def _unfused(self, inputs: list, values: dict) -> tuple:
        local = run_nodes(self.nodes, {**values, **dict(zip(self.inputs, inputs))})
        return tuple(local[name] for name in self.outputs)

    def describe(self) -> dict:
        return {"cell": self.cell, "activation": self.activation, "steps": self.steps,
                "input_size": self.input_size, "hidden_size": self.hidden_size,
                "dtype": str(self.dtype), "nodes": len(self.nodes),
                "reads_sequence": self.sliced, "writes_sequence": self.stacked,
                "first_node": self.node_names[0], "last_node": self.node_names[1]}
