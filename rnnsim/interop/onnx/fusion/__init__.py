"""Recurrences written out step by step (an unrolled ``MatMul/Add/Tanh`` chain, a loop over an
``LSTMCell`` or ``GRUCell``) recognised as an Elman, LSTM or GRU cell repeated T times and run
as one kernel call.

A step is found by its shape: an Elman step ends in ``Tanh``/``Relu`` of a pre-activation that
reads the previous step's output; an LSTM step ends in ``h = sigmoid(o) * tanh(c)`` with
``c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)``; a GRU step has ``n = tanh(n_x + sigmoid(r)
* n_h)`` and ends where the arithmetic on ``n``, ``z`` and the previous state does.
Everything between the step's inputs (the step input ``x_t``, the previous states) and its
pre-activations must be affine: its weights are read by running those nodes on unit inputs,
and the step is fused only if its nodes, run on random inputs, then agree with the cell's
formula. Steps must repeat the same nodes and weights, their inner tensors must not be read
elsewhere, and no step input may depend on a fused step (a decoder feeding its output back is
left alone). Whatever is not fused runs node by node, as before; a fused run whose inputs do
not have the shapes seen at load runs the original nodes too.

``steps`` finds the steps and their chains, ``weights`` reads and checks a chain's weights and
builds its ``FusedRecurrence`` (``recurrence``), ``rewrite`` puts it in the node list.
"""
from __future__ import annotations

from ..load import Node
from .recurrence import FusedRecurrence
from .rewrite import replace_chain
from .steps import Graph, chains, elman_steps, gru_steps, lstm_steps
from .weights import fuse_chain

__all__ = ["FusedRecurrence", "fuse"]


def fuse(nodes: list[Node], constants: dict, shapes: dict, outputs: list[str],
         origin: str) -> list:
    """Replace, in ``nodes`` (in place), each recognised chain of steps by one fused node;
    return the ``FusedRecurrence`` of each. ``shapes``: tensor name -> (dtype, dims) known
    before a run; ``outputs``: the graph's outputs (a step's inner tensor must not be one)."""
    fused = []
    for find in (lstm_steps, gru_steps, elman_steps):
        while True:  # after each fusion, look again in the rewritten node list
            graph = Graph(nodes, constants)
            for chain in chains(graph, find(graph)):
                found = fuse_chain(graph, chain, shapes, origin)
                if found is not None and replace_chain(nodes, graph, set(outputs), *found):
                    fused.append(found[1])
                    break
            else:
                break
    return fused
