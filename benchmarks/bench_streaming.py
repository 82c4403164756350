"""Streaming: the cost of one ``net.step(x_t, state)`` call against one PyTorch cell call.

    python benchmarks/bench_streaming.py [--quick] [--json out.json]

B = 1, float32, one layer; torch runs the same weights as ``torch.nn.RNNCell``/``LSTMCell``/
``GRUCell`` under ``no_grad`` with the state carried by hand, the way a streaming engineer would
call it. Prints µs per step (median) and torch's time divided by rnnsim's (> 1: rnnsim faster).
Each row first checks that 50 streamed steps give the same outputs as torch.
"""
from __future__ import annotations

import json
import time

import numba
import numpy as np
import torch

import rnnsim
from timing import parse_args

SHAPES = [(8, 16), (8, 64), (32, 256)]
CELLS = {"RNN": (torch.nn.RNN, torch.nn.RNNCell), "LSTM": (torch.nn.LSTM, torch.nn.LSTMCell),
         "GRU": (torch.nn.GRU, torch.nn.GRUCell)}


def per_call_us(fn, calls: int) -> float:
    """Median over 5 rounds of the mean time of ``calls`` calls, after a warm-up round."""
    rounds = []
    for _ in range(6):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls * 1e6)
    return float(np.median(rounds[1:]))


def torch_cell(layer_class, cell_class, k, p):
    torch.manual_seed(0)
    layer = layer_class(k, p).eval()
    cell = cell_class(k, p).eval()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(layer, name + "_l0"))
    return layer, cell


def row(mode: str, k: int, p: int, calls: int) -> dict:
    layer, cell = torch_cell(*CELLS[mode], k, p)
    net = rnnsim.from_torch(layer)
    xs = np.random.default_rng(0).standard_normal((50, 1, k)).astype(np.float32)
    lstm = mode == "LSTM"
    state = net.initial_state(1)
    hc = (torch.zeros(1, p), torch.zeros(1, p)) if lstm else torch.zeros(1, p)
    with torch.no_grad():
        for x in xs:
            out, state = net.step(x, state)
            hc = cell(torch.from_numpy(x), hc)
            np.testing.assert_allclose(out, (hc[0] if lstm else hc).numpy(), rtol=1e-4, atol=1e-5)
    x, xt = xs[0], torch.from_numpy(xs[0])
    box = {"state": state, "hc": hc}

    def rnnsim_step():
        _, box["state"] = net.step(x, box["state"])

    def torch_step():
        with torch.no_grad():
            box["hc"] = cell(xt, box["hc"])

    result = {"cell": mode, "k": k, "p": p, "rnnsim_us": per_call_us(rnnsim_step, calls),
              "torch_us": per_call_us(torch_step, calls)}
    result["ratio"] = result["torch_us"] / result["rnnsim_us"]
    return result


def main() -> None:
    args = parse_args(__doc__)
    torch.set_num_threads(numba.get_num_threads())
    calls = 200 if args.quick else 2000
    print(f"threads: {numba.get_num_threads()}, torch {torch.__version__}, float32, B = 1")
    print(f"{'cell':>4} {'k':>4} {'p':>5} {'rnnsim':>9} {'torch':>9} {'ratio':>6}"
          "   (µs per step call; ratio = torch / rnnsim)")
    rows = []
    for mode in CELLS:
        for k, p in SHAPES:
            r = row(mode, k, p, calls)
            rows.append(r)
            print(f"{mode:>4} {k:>4} {p:>5} {r['rnnsim_us']:9.2f} {r['torch_us']:9.2f} "
                  f"{r['ratio']:6.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"threads": numba.get_num_threads(), "rows": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
