"""Regenerate the torch.onnx.export graphs the ONNX tests run (needs torch; run from anywhere).

    python tests/data/onnx_exports/make.py

Small recurrent models exported at several opsets, so the tests see the glue each opset's
exporter writes. Each ``<model>-opset<N>.onnx`` comes with ``<model>.npz``: the inputs (one
shape at export, another for the test, to check the graphs are shape-generic) and PyTorch's
outputs on them.
"""
import io
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
OPSETS = (9, 11, 13, 17)


class Classifier(torch.nn.Module):
    """token ids -> Embedding -> LSTM -> last step -> Linear -> Softmax."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.rnn = torch.nn.LSTM(8, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 3)

    def forward(self, ids):
        out, _ = self.rnn(self.emb(ids))
        return torch.softmax(self.head(out[:, -1]), dim=-1)


class Tagger(torch.nn.Module):
    """token ids -> Embedding -> bidirectional GRU -> per-step Linear, relu, Linear, sigmoid."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(15, 6)
        self.rnn = torch.nn.GRU(6, 5, bidirectional=True)
        self.hidden = torch.nn.Linear(10, 7)
        self.out = torch.nn.Linear(7, 2)

    def forward(self, ids):
        out, h_n = self.rnn(self.emb(ids))
        return torch.sigmoid(self.out(torch.relu(self.hidden(out)))), torch.tanh(h_n)


class WithState(torch.nn.Module):
    """A bidirectional batch-first ReLU RNN given its initial state."""

    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 4, nonlinearity="relu", bidirectional=True, batch_first=True)

    def forward(self, x, h0):
        return self.rnn(x, h0)


def models():
    """name -> (module, input names, output names, dynamic axes, export inputs, test inputs)."""
    rng = np.random.default_rng(0)
    ids = lambda b, t, n: rng.integers(0, n, (b, t))  # noqa: E731
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    return {
        "lstm-L2-bi": (torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True), ["x"],
                       ["output", "h_n", "c_n"], {"x": {0: "T", 1: "B"}},
                       [normal(7, 2, 3)], [normal(5, 3, 3)]),
        "gru-bf": (torch.nn.GRU(4, 6, batch_first=True), ["x"], ["output", "h_n"],
                   {"x": {0: "B", 1: "T"}}, [normal(3, 9, 4)], [normal(2, 4, 4)]),
        "rnn-relu-bi-h0": (WithState(), ["x", "h0"], ["output", "h_n"],
                           {"x": {0: "B", 1: "T"}, "h0": {1: "B"}},
                           [normal(2, 6, 3), normal(2, 2, 4)], [normal(3, 4, 3), normal(2, 3, 4)]),
        "classifier": (Classifier(), ["ids"], ["probs"], {"ids": {0: "B", 1: "T"}},
                       [ids(4, 20, 20)], [ids(3, 11, 20)]),
        "tagger": (Tagger(), ["ids"], ["tags", "state"], {"ids": {0: "T", 1: "B"}},
                   [ids(8, 2, 15)], [ids(5, 4, 15)]),
    }


def main() -> None:
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    for name, (module, inputs, outputs, axes, export_args, test_args) in models().items():
        module.eval()
        with torch.no_grad():
            expected = module(*[torch.from_numpy(a) for a in test_args])
        flat = []
        for value in expected if isinstance(expected, tuple) else (expected,):
            flat.extend(value if isinstance(value, tuple) else (value,))
        np.savez(HERE / f"{name}.npz", **dict(zip(inputs, test_args)),
                 **{out: value.numpy() for out, value in zip(outputs, flat)})
        for opset in OPSETS:
            buffer = io.BytesIO()
            torch.onnx.export(module, tuple(torch.from_numpy(a) for a in export_args), buffer,
                              opset_version=opset, input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, dynamo=False)
            (HERE / f"{name}-opset{opset}.onnx").write_bytes(buffer.getvalue())


if __name__ == "__main__":
    main()
