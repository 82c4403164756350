"""Run ``.onnx`` models around a recurrence: RNN/LSTM/GRU nodes (and recurrences written out
step by step) on rnnsim's kernels, every other standard operator in NumPy.

``from_onnx(path)`` reads the file with the ``onnx`` package (an optional extra), checks it
completely and returns an ``OnnxModel`` whose ``run(feeds)`` is used like an ONNX Runtime
session: a dict of arrays by graph-input name in, a dict by graph-output name out. Nothing in
the file is executed: the graph is interpreted node by node, recurrent nodes through the cells
of ``rnnsim.cells`` (one cell per direction, so the two directions of a bidirectional node may
use different activations), the exporters' glue by ``ops``, every other standard operator by
``onnx.reference``. Gate orders are
mapped explicitly (see ``RecurrentOp`` and docs/onnx.md): ONNX stores LSTM gates as i, o, f, c
and GRU gates as z, r, h; the kernels use PyTorch's i, f, g, o and r, z, n.

One job per module: ``load`` (reading the file), ``graph`` (the model and its interpreter),
``recurrent`` (binding RNN/LSTM/GRU nodes to cells), ``ops`` (the fast-path NumPy operators),
``reference`` (every other operator, bound to ``onnx.reference``), ``fusion`` (recurrences
written out step by step, found and run as one kernel call), ``glue`` and ``onestep``
(one-timestep calls: the glue around recurrent nodes resolved once per input-shape
signature, the nodes run as compiled steps).
"""
from .graph import OnnxModel, from_onnx

__all__ = ["OnnxModel", "from_onnx"]
