"""`rnnsim bench --streaming`: the cost of one streaming step at B = 1, float32.

rnnsim's compiled stepper (``Network.stepper``) against a PyTorch cell
(``torch.nn.RNNCell``/``LSTMCell``/``GRUCell`` under ``inference_mode``, the state carried
by hand) and a one-step ONNX Runtime session (the model takes ``initial_h``/``initial_c``
and returns ``Y_h``/``Y_c``), all on the same weights, each checked first to give the same
outputs over ``CHECK_STEPS`` steps; ``rnnsim_onnx`` is the same one-step model through
``rnnsim.from_onnx``. A call's cost is the minimum over many short rounds (the candidates
taking turns) of the mean call time: on a shared machine the minimum is the call's own cost,
the median mostly the other processes'.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .bench import TOLERANCE, Row, first_layer, network, onnx_model, onnx_session

# (k, p) at B = 1: the streaming rows of each recurrent cell
STREAM_SHAPES = [(8, 16), (8, 64), (32, 256)]
STREAM_CELLS = ("elman", "lstm", "gru")
CHECK_STEPS = 20
CALLS = 200  # calls per round


def per_call_us(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """µs per call of each of ``fns``: the fastest of ``rounds`` rounds of ``CALLS`` calls,
    the candidates taking turns within each round, so that a busy spell of the machine
    falls on all of them."""
    best = {}
    for name, fn in fns.items():
        fn()
        best[name] = float("inf")
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(CALLS):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / CALLS)
    return {name: seconds * 1e6 for name, seconds in best.items()}


def torch_stepper(net, row: Row, threads: int):
    """A function of x_t (1, k) stepping a PyTorch cell with the network's weights, or
    None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    cls = {"elman": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
    cell = cls[row.cell](row.k, row.p).eval()
    params = first_layer(net)
    recurrent_bias = np.zeros_like(params["b"])
    if row.cell == "gru":
        recurrent_bias[2 * row.p:] = params["bn"]
    cell.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in
                          {"weight_ih": params["W"], "weight_hh": params["U"],
                           "bias_ih": params["b"], "bias_hh": recurrent_bias}.items()})
    zeros = torch.zeros(1, row.p)
    box = {"state": (zeros, zeros) if row.cell == "lstm" else zeros}

    def step(x):
        with torch.inference_mode():
            box["state"] = cell(torch.from_numpy(x), box["state"])
        h = box["state"][0] if row.cell == "lstm" else box["state"]
        return h.numpy()

    return step


def onnx_stepper(net, row: Row, threads: int):
    """A function of x_t (1, k) stepping a one-step ONNX Runtime session, or None."""
    session = onnx_session(net, row, threads, states=True)
    if session is None:
        return None
    names = ["initial_h", "initial_c"][:2 if row.cell == "lstm" else 1]
    outputs = [name.replace("initial_", "Y_") for name in names]
    box = {name: np.zeros((1, 1, row.p), np.float32) for name in names}

    def step(x):
        results = session.run(outputs, {"X": x[None], **box})
        box.update(zip(names, results))
        return results[0][0]

    return step


def from_onnx_stepper(net, row: Row, threads: int):
    """A function of x_t (1, k) stepping ``rnnsim.from_onnx`` of the same one-step model as
    ONNX Runtime's (a one-step call runs rnnsim's compiled step), or None without onnx."""
    from .interop.onnx import from_onnx

    model = onnx_model(net, row, states=True)
    if model is None:
        return None
    session = from_onnx(model)
    names = ["initial_h", "initial_c"][:2 if row.cell == "lstm" else 1]
    outputs = [name.replace("initial_", "Y_") for name in names]
    box = {name: np.zeros((1, 1, row.p), np.float32) for name in names}

    def step(x):
        results = session.run({"X": x[None], **box}, outputs)
        box.update(zip(names, results.values()))
        return results["Y_h"][0]

    return step


def streaming(cells=None, shapes=None, rounds: int = 200, threads: int = 1) -> list[dict]:
    """One row per (cell, k, p) (default ``STREAM_CELLS`` x ``STREAM_SHAPES``): µs per step
    call of each candidate and peer / rnnsim."""
    rows = []
    for cell in cells or STREAM_CELLS:
        for k, p in shapes or STREAM_SHAPES:
            row = Row(cell, "float32", 1, k, p, CHECK_STEPS)
            net = network(row)
            stepper = net.stepper(1)
            candidates = {"rnnsim": stepper, "torch": torch_stepper(net, row, threads),
                          "onnxruntime": onnx_stepper(net, row, threads),
                          "rnnsim_onnx": from_onnx_stepper(net, row, threads)}
            candidates = {name: fn for name, fn in candidates.items() if fn is not None}
            xs = np.random.default_rng(p).standard_normal((CHECK_STEPS, 1, k)).astype(np.float32)
            expected = net.run(xs).output
            for name, fn in candidates.items():
                got = np.stack([fn(x) for x in xs])
                np.testing.assert_allclose(got, expected, **TOLERANCE["float32"],
                                           err_msg=f"{name} disagrees on {cell} p = {p}")
            x = xs[0]
            us = per_call_us({name: lambda fn=fn: fn(x) for name, fn in candidates.items()},
                             rounds)
            ratio = {name: us[name] / us["rnnsim"] for name in us if name != "rnnsim"}
            if "onnxruntime" in us and "rnnsim_onnx" in us:  # the same file, both ways
                ratio["onnxruntime_vs_rnnsim_onnx"] = us["onnxruntime"] / us["rnnsim_onnx"]
            rows.append({"cell": cell, "k": k, "p": p, "us": us, "ratio": ratio})
    return rows


# (key in a row's "us", column title)
COLUMNS = (("rnnsim", "rnnsim stepper"), ("torch", "torch cell"),
           ("onnxruntime", "ONNX Runtime one-step"), ("rnnsim_onnx", "rnnsim from_onnx one-step"))
# (key in a row's "ratio", column title): > 1 where rnnsim is faster
RATIOS = (("torch", "torch / stepper"), ("onnxruntime", "ONNX Runtime / stepper"),
          ("onnxruntime_vs_rnnsim_onnx", "ONNX Runtime / from_onnx"))


def streaming_table(rows: list[dict]) -> str:
    """The rows as Markdown: µs per call of each candidate, then the ratios (> 1: rnnsim
    faster), the last one ONNX Runtime against rnnsim's ``from_onnx`` on the same file."""
    columns = [(key, title) for key, title in COLUMNS if any(key in r["us"] for r in rows)]
    ratios = [(key, title) for key, title in RATIOS if any(key in r["ratio"] for r in rows)]
    head = ["cell", "k", "p", *(f"{title} (µs)" for _, title in columns),
            *(title for _, title in ratios)]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["cell"], r["k"], r["p"],
                 *(f"{r['us'][key]:.2f}" if key in r["us"] else "-" for key, _ in columns),
                 *(f"{r['ratio'][key]:.1f}" if key in r["ratio"] else "-" for key, _ in ratios)]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)
