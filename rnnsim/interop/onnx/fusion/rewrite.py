"""Putting one node in place of a fused chain: the time slices it reads, the stacked
outputs it writes, and the node list kept in topological order."""
from __future__ import annotations

import heapq

import numpy as np

from ..load import Node
from .recurrence import FusedRecurrence
from .steps import LSTM, Graph, Step


def replace_chain(nodes: list[Node], graph: Graph, graph_outputs: set, chain: list[Step],
             fused: FusedRecurrence) -> bool:
    """Put one node running ``fused`` in place of the chain's nodes, if nothing else reads
    their inner tensors and the node list stays in topological order; False if not. Where
    the steps' inputs are the time slices of one tensor X (Split, Slice or Gather on axis 0,
    then Squeeze) the node reads X itself; where their outputs are stacked into one tensor
    (Unsqueeze on axis 0, then Concat) it writes that tensor too."""
    inner = {i for step in chain for i in step.nodes}
    outputs = [step.states_out[0] for step in chain]
    if fused.cell == LSTM.cell:
        outputs.append(chain[-1].states_out[1])
    xs = [step.x for step in chain]
    if not _only_read_by(graph, inner, inner, set(outputs), graph_outputs):
        return False
    source = _time_slices(graph, xs, graph_outputs, inner)
    if source is not None:
        x_name, fused.offset, slicing = source
        inputs, inner = [x_name], inner | slicing
        fused.whole = any(graph.nodes[i].op == "Split" for i in slicing)
    else:
        inputs = xs
    stack = _stacked(graph, outputs[:len(chain)], graph_outputs)
    if stack is not None:
        outputs.append(stack[0])
        inner |= stack[1]
    inputs += list(chain[0].states_in)
    fused.inputs, fused.outputs, fused.stacked = inputs, outputs, stack is not None
    fused.sliced = source is not None
    fused.nodes = [nodes[i] for i in sorted(inner)]
    node = Node(f"{fused.node_names[0]}..{fused.node_names[1]}", f"Fused{fused.cell.title()}",
                tuple(inputs), tuple(outputs), {}, fused)
    kept = [n for i, n in enumerate(nodes) if i not in inner] + [node]
    ordered = _topological(kept)
    if ordered is None:
        return False
    nodes[:] = ordered
    return True


def _only_read_by(graph: Graph, made_by: set, readers: set, allowed: set,
                  graph_outputs: set) -> bool:
    """No tensor the ``made_by`` nodes make, but those ``allowed``, is read by other nodes
    than ``readers`` or is a graph output."""
    return not any(name and name not in allowed and (name in graph_outputs or any(
        r not in readers for r in graph.readers.get(name, [])))
        for index in made_by for name in graph.nodes[index].outputs)


def _axis0(graph: Graph, node: Node, slot: int = 1) -> bool:
    """``node``'s axes (attribute, or constant input ``slot``) are exactly [0]."""
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > slot and node.inputs[slot] in graph.constants:
        axes = graph.constants[node.inputs[slot]]
    return axes is not None and [int(a) for a in np.asarray(axes).reshape(-1)] == [0]


def _time_index(graph: Graph, name: str):
    """(X, t, nodes) if tensor ``name`` is X[t] for a constant t >= 0 on axis 0, else None."""
    squeeze = graph.made_by(name, "Squeeze", "Gather")
    if squeeze is None:
        return None
    if squeeze.op == "Gather":
        t = graph.constants.get(squeeze.inputs[1])
        if squeeze.attrs.get("axis", 0) != 0 or t is None or np.ndim(t) != 0 or t < 0:
            return None
        return squeeze.inputs[0], int(t), {graph.producer[name]}
    if not _axis0(graph, squeeze):
        return None
    one = squeeze.inputs[0]
    part = graph.made_by(one, "Split", "Slice")
    if part is None:
        return None
    nodes = {graph.producer[name], graph.producer[one]}
    if part.op == "Split":
        sizes = part.attrs.get("split")
        if sizes is None and len(part.inputs) > 1 and part.inputs[1] in graph.constants:
            sizes = graph.constants[part.inputs[1]]
        if part.attrs.get("axis", 0) != 0 or (sizes is not None and any(
                int(v) != 1 for v in np.asarray(sizes).reshape(-1))):
            return None
        if sizes is None and part.attrs.get("num_outputs", len(part.outputs)) != len(part.outputs):
            return None
        return part.inputs[0], part.outputs.index(one), nodes
    bounds = [graph.constants.get(n) for n in part.inputs[1:]]
    if len(bounds) < 3 or any(b is None for b in bounds[:3]) or not _axis0(graph, part, 3):
        return None
    start, end = (int(np.asarray(b).reshape(-1)[0]) for b in bounds[:2])
    step = 1 if len(bounds) < 4 or bounds[3] is None else int(np.asarray(bounds[3]).reshape(-1)[0])
    return (part.inputs[0], start, nodes) if start >= 0 and end == start + 1 and step == 1 \
        else None


def _time_slices(graph: Graph, xs: list[str], graph_outputs: set, inner: set):
    """(X, first t, slicing nodes) if the step inputs are X[t0], X[t0+1]... and the slicing
    nodes feed nothing else; else None."""
    found = [_time_index(graph, name) for name in xs]
    if None in found or len({x for x, _, _ in found}) != 1:
        return None
    start = found[0][1]
    if [t for _, t, _ in found] != list(range(start, start + len(xs))):
        return None
    slicing = set().union(*(nodes for _, _, nodes in found))
    if not _only_read_by(graph, slicing, slicing | inner, set(), graph_outputs):
        return None
    split = [graph.nodes[i] for i in slicing if graph.nodes[i].op == "Split"]
    if split and (len(split) != 1 or start != 0 or len(split[0].outputs) != len(xs)):
        return None  # a Split's outputs must be the steps' inputs, all of them
    return found[0][0], start, slicing


def _stacked(graph: Graph, hs: list[str], graph_outputs: set):
    """(Y, nodes) if Y = Concat(Unsqueeze(h_t, axis 0) for every step, in order), else None."""
    unsqueezes = []
    for h in hs:
        readers = [graph.nodes[i] for i in graph.readers.get(h, [])
                   if graph.nodes[i].op == "Unsqueeze" and _axis0(graph, graph.nodes[i])]
        if len(readers) != 1:
            return None
        unsqueezes.append(readers[0])
    names = [u.outputs[0] for u in unsqueezes]
    concat = {i for name in names for i in graph.readers.get(name, [])}
    if len(concat) != 1:
        return None
    node = graph.nodes[concat.pop()]
    if node.op != "Concat" or node.attrs.get("axis") != 0 or list(node.inputs) != names \
            or any(name in graph_outputs for name in names):
        return None
    return node.outputs[0], {graph.producer[name] for name in names} | {graph.producer[
        node.outputs[0]]}


def _topological(nodes: list[Node]) -> list[Node] | None:
    """``nodes`` in an order where each reads only what came before, the earliest ready node
    first (so an ordered list stays as it is); None if a node waits on itself."""
    producer = {name: i for i, node in enumerate(nodes) for name in node.outputs if name}
    waits = [0] * len(nodes)
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        for before in {producer[n] for n in node.inputs + node.implicit if n in producer}:
            waits[i] += 1
            readers.setdefault(before, []).append(i)
    ready = [i for i, count in enumerate(waits) if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        i = heapq.heappop(ready)
        ordered.append(nodes[i])
        for reader in readers.get(i, []):
            waits[reader] -= 1
            if waits[reader] == 0:
                heapq.heappush(ready, reader)
    return ordered if len(ordered) == len(nodes) else None
