"""Models exported by the real exporters (``torch.onnx.export``, legacy and ``dynamo=True`` with
dynamic shapes; Keras 3's ``model.export(format="onnx")`` with the torch backend), run by
``rnnsim.from_onnx`` on inputs of other sizes than at export, against ONNX Runtime and PyTorch
(or Keras), with random weights: batch-first, stacked, embedding and state-input
models, pooling and normalisation heads, variable-length models through
``pack_padded_sequence``, and recurrences written out step by step (cell loops), which rnnsim
fuses back into one kernel run."""
import os
import warnings

import numpy as np
import onnx
import onnxruntime
import onnxscript  # noqa: F401 (what the dynamo exporter writes its graphs with: the test extra)
import pytest
import torch

import rnnsim

nn = torch.nn

TOL = dict(rtol=2e-4, atol=2e-5)
K, P, VOCAB, CELL_STEPS = 3, 5, 13, 6


class Sequence(nn.Module):
    """A recurrent layer's output sequence and final state (batch_first, stacked...)."""

    def __init__(self, kind="LSTM", **options):
        super().__init__()
        self.rnn = getattr(nn, kind)(K, P, **options)

    def forward(self, x):
        out, state = self.rnn(x)
        return out, state[0] if isinstance(state, tuple) else state


class Classifier(nn.Module):
    """Token ids -> embedding -> LSTM -> last step -> Linear -> LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, K)
        self.rnn = nn.LSTM(K, P, batch_first=True)
        self.head = nn.Linear(P, 4)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return torch.log_softmax(self.head(out[:, -1]), dim=-1)


class StateInput(nn.Module):
    """An LSTM whose initial states are inputs: what streaming callers feed back."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(K, P, batch_first=True)

    def forward(self, x, h0, c0):
        out, (h, c) = self.rnn(x, (h0, c0))
        return out, h, c


class Pooled(nn.Module):
    """An Elman layer and a head over time: mean, max, layer norm or flatten."""

    def __init__(self, head):
        super().__init__()
        self.rnn = nn.RNN(K, P, batch_first=True)
        self.head = head
        self.norm = nn.LayerNorm(P)
        self.out = nn.Linear(P, 2)

    def forward(self, x):
        seq, _ = self.rnn(x)
        if self.head == "mean":
            return self.out(seq.mean(dim=1))
        if self.head == "max":
            return seq.max(dim=1).values
        if self.head == "layernorm":
            return self.norm(seq)
        return torch.flatten(seq[:, :2], 1)


class Packed(nn.Module):
    """A GRU over padded sequences of their own lengths (pack_padded_sequence)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(K, P, batch_first=True)

    def forward(self, x, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, h = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                  total_length=x.shape[1])
        return out, h


class CellLoop(nn.Module):
    """A recurrence written as a Python loop over a cell (LSTMCell, GRUCell, RNNCell)."""

    def __init__(self, kind):
        super().__init__()
        self.cell = getattr(nn, kind)(K, P)

    def forward(self, x):
        h = torch.zeros(x.shape[1], P)
        c = torch.zeros(x.shape[1], P)
        outputs = []
        for x_t in x.unbind(0):
            if isinstance(self.cell, nn.LSTMCell):
                h, c = self.cell(x_t, (h, c))
            else:
                h = self.cell(x_t, h)
            outputs.append(h)
        return torch.stack(outputs), h


class Elman(nn.Module):
    """An Elman recurrence by hand: tanh(x_t W + h U + b), unrolled, from a given state."""

    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(K, P) * 0.5)
        self.U = nn.Parameter(torch.randn(P, P) * 0.5)
        self.b = nn.Parameter(torch.randn(P) * 0.5)

    def forward(self, x, h):
        outputs = []
        for x_t in x.unbind(0):
            h = torch.tanh(x_t @ self.W + h @ self.U + self.b)
            outputs.append(h)
        return torch.stack(outputs), h


def floats(*shape):
    return torch.randn(*shape)


# name: (module factory, example inputs, dynamic axes per input {axis: name}, fresh inputs)
MODELS = {
    "lstm-batch-first": (lambda: Sequence(batch_first=True), lambda b, t: (floats(b, t, K),),
                         [{0: "batch", 1: "steps"}]),
    "gru-2-layers": (lambda: Sequence("GRU", num_layers=2), lambda b, t: (floats(t, b, K),),
                     [{0: "steps", 1: "batch"}]),
    "classifier": (Classifier, lambda b, t: (torch.randint(0, VOCAB, (b, t)),),
                   [{0: "batch", 1: "steps"}]),
    "state-input": (StateInput, lambda b, t: (floats(b, t, K), floats(1, b, P), floats(1, b, P)),
                    [{0: "batch", 1: "steps"}, {1: "batch"}, {1: "batch"}]),
    "mean-pool": (lambda: Pooled("mean"), lambda b, t: (floats(b, t, K),),
                  [{0: "batch", 1: "steps"}]),
    "max-pool": (lambda: Pooled("max"), lambda b, t: (floats(b, t, K),),
                 [{0: "batch", 1: "steps"}]),
    "layernorm": (lambda: Pooled("layernorm"), lambda b, t: (floats(b, t, K),),
                  [{0: "batch", 1: "steps"}]),
    "flatten": (lambda: Pooled("flatten"), lambda b, t: (floats(b, t, K),),
                [{0: "batch", 1: "steps"}]),
    "packed-gru": (Packed, lambda b, t: (floats(b, t, K),
                                         torch.randint(1, t + 1, (b,)).sort(descending=True)[0]),
                   [{0: "batch", 1: "steps"}, {0: "batch"}]),
    "lstmcell-loop": (lambda: CellLoop("LSTMCell"), lambda b, t: (floats(CELL_STEPS, b, K),),
                      [{1: "batch"}]),
    "grucell-loop": (lambda: CellLoop("GRUCell"), lambda b, t: (floats(CELL_STEPS, b, K),),
                     [{1: "batch"}]),
    "rnncell-loop": (lambda: CellLoop("RNNCell"), lambda b, t: (floats(CELL_STEPS, b, K),),
                     [{1: "batch"}]),
    "elman-unrolled": (Elman, lambda b, t: (floats(CELL_STEPS, b, K), floats(b, P)),
                       [{1: "batch"}, {0: "batch"}]),
}
EXPORTERS = [("legacy", 14), ("legacy", 17), ("dynamo", 20)]
# The recurrences the fusion must recognise in every export: name -> cell.
FUSED = {"lstmcell-loop": "lstm", "grucell-loop": "gru", "rnncell-loop": "elman",
         "elman-unrolled": "elman"}
# Operators an export must hold, so that the test keeps covering them: (name, exporter,
# opset or None for all) -> operators. The rest of each graph is whatever torch writes.
HOLDS = {("lstm-batch-first", "dynamo", None): {"Mul", "Reshape", "LSTM"},
         ("classifier", "legacy", None): {"LogSoftmax", "Gather", "LSTM"},
         ("mean-pool", "legacy", None): {"ReduceMean"},
         ("max-pool", "legacy", None): {"ReduceMax"},
         ("layernorm", "legacy", 14): {"ReduceMean", "Sub", "Pow", "Sqrt", "Div"},
         ("layernorm", "legacy", 17): {"LayerNormalization"},
         ("flatten", "legacy", None): {"Flatten"},
         ("packed-gru", "legacy", None): {"Cast", "Range", "ReduceProd", "ScatterElements",
                                          "TopK", "GRU"},
         ("grucell-loop", "legacy", None): {"Split", "Sub", "Mul"}}


def export(name: str, exporter: str, opset: int, path) -> None:
    factory, inputs, axes = MODELS[name]
    torch.manual_seed(sum(map(ord, name)))
    module = factory().eval()
    example = inputs(EXPORT_BATCH, EXPORT_STEPS)
    input_names = [f"in{i}" for i in range(len(example))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "legacy":
            torch.onnx.export(module, example, path, dynamo=False, opset_version=opset,
                              input_names=input_names,
                              dynamic_axes={n: a for n, a in zip(input_names, axes)})
        else:
            dims = {}
            shapes = tuple({axis: dims.setdefault(label, torch.export.Dim(label, min=1))
                            for axis, label in a.items()} for a in axes)
            torch.onnx.export(module, example, path, dynamo=True, opset_version=opset,
                              input_names=input_names, dynamic_shapes=shapes,
                              verbose=False).save(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each (model, exporter, opset) exported once per test session, on demand."""
    folder = tmp_path_factory.mktemp("exports")
    cache = {}

    def get(name, exporter, opset):
        key = (name, exporter, opset)
        if key not in cache:
            path = folder / f"{name}-{exporter}-{opset}.onnx"
            export(name, exporter, opset, str(path))
            cache[key] = path
        return cache[key]

    return get


def ort_outputs(path, feeds):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3  # dynamo's declared output shapes are only hints
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


# torch.export cannot trace pack_padded_sequence (torch.zeros of a symbolic size), so the
# variable-length model has legacy exports only.
CASES = [(name, exporter, opset) for name in MODELS for exporter, opset in EXPORTERS
         if not (name == "packed-gru" and exporter == "dynamo")]
EXPORT_BATCH, EXPORT_STEPS = 2, 4


@pytest.mark.parametrize("name,exporter,opset", CASES,
                         ids=[f"{n}-{e}{o}" for n, e, o in CASES])
def test_export_runs_and_matches_onnxruntime_and_torch(exported, name, exporter, opset):
    path = exported(name, exporter, opset)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    for key in ((name, exporter, opset), (name, exporter, None)):
        assert HOLDS.get(key, set()) <= ops, (key, sorted(ops))
    net = rnnsim.from_onnx(path)
    torch.manual_seed(7)
    factory, inputs, _ = MODELS[name]
    # Another batch size than at export, and another length where the export keeps the time
    # axis dynamic: torch.export bakes the example's length into its graphs of nn.RNN, nn.GRU
    # and an LSTM given its states (ONNX Runtime refuses other lengths there too).
    fresh = inputs(3, EXPORT_STEPS if exporter == "dynamo" else 7)
    feeds = dict(zip(net.input_names, (t.numpy() for t in fresh)))
    actual = net.run(feeds)
    expected = ort_outputs(path, feeds)
    torch.manual_seed(sum(map(ord, name)))
    with torch.no_grad():
        reference = factory().eval()(*fresh)
    reference = reference if isinstance(reference, tuple) else (reference,)
    assert list(actual) == net.output_names == list(expected)
    for (output, value), by_torch in zip(expected.items(), reference):
        np.testing.assert_allclose(actual[output], value, **TOL, err_msg=output)
        np.testing.assert_allclose(actual[output], by_torch.numpy(), **TOL, err_msg=output)
    if name in FUSED:
        fused = net.describe()["fused"]
        assert [(f["cell"], f["steps"]) for f in fused] == [(FUSED[name], CELL_STEPS)], fused


# ---- Keras 3's own ONNX export (through torch): no recurrent node at all -------------------

KERAS_LAYERS = ["SimpleRNN", "LSTM", "GRU"]


@pytest.fixture(scope="module")
def keras_exports(tmp_path_factory):
    """Keras models (a recurrent layer returning sequences) exported by ``model.export``
    with the torch backend, and the models, by layer name."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    assert keras.backend.backend() == "torch", "these exports need KERAS_BACKEND=torch"
    folder = tmp_path_factory.mktemp("keras")
    exports = {}
    for kind in KERAS_LAYERS:
        keras.utils.set_random_seed(sum(map(ord, kind)))
        inputs = keras.Input((EXPORT_STEPS, K))
        model = keras.Model(inputs, getattr(keras.layers, kind)(P, return_sequences=True)(inputs))
        model(np.zeros((EXPORT_BATCH, EXPORT_STEPS, K), np.float32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(str(folder / f"{kind}.onnx"), format="onnx", verbose=False)
        exports[kind] = (folder / f"{kind}.onnx", model)
    return exports


@pytest.mark.parametrize("kind", KERAS_LAYERS)
def test_keras_export_runs_and_matches_onnxruntime_and_keras(keras_exports, kind):
    path, model = keras_exports[kind]
    ops = {node.op_type for node in onnx.load(path).graph.node}
    assert not ops & {"RNN", "LSTM", "GRU"} and {"Cast", "MatMul"} <= ops
    net = rnnsim.from_onnx(path)
    x = np.random.default_rng(3).standard_normal((3, EXPORT_STEPS, K)).astype(np.float32)
    actual = net.run({net.input_names[0]: x})
    (name, value), = ort_outputs(path, {net.input_names[0]: x}).items()
    np.testing.assert_allclose(actual[name], value, **TOL)
    np.testing.assert_allclose(actual[name], np.asarray(model.predict(x, verbose=0)), **TOL)
