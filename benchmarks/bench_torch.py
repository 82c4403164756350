"""RNN, LSTM and GRU: ``rnnsim.from_torch(m)`` against the same ``torch.nn`` module on the CPU.

    python benchmarks/bench_torch.py [--quick] [--json out.json]

Same process, same float32 inputs, ``torch.set_num_threads`` equal to numba's threads. Prints
µs per timestep (median of several runs after a warm-up) and torch's time divided by rnnsim's
(> 1 means rnnsim is faster). Each row first checks that both give the same output.
"""
from __future__ import annotations

import json

import numba
import numpy as np
import torch

import rnnsim
from timing import median_seconds, parse_args

SHAPES = [(1, 8, 16, 10000), (1, 8, 64, 10000), (1, 32, 256, 2000), (32, 32, 128, 1000),
          (64, 128, 512, 200), (16, 256, 1024, 100)]
MODULES = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}


def speed_rows(quick: bool) -> list[dict]:
    torch.set_num_threads(numba.get_num_threads())
    rows = []
    for mode, module_class in MODULES.items():
        for B, k, p, T in SHAPES:
            T = max(T // 10, 20) if quick else T
            torch.manual_seed(0)
            module = module_class(k, p).eval()
            net = rnnsim.from_torch(module)
            x = np.random.default_rng(0).standard_normal((T, B, k)).astype(np.float32)
            xt = torch.from_numpy(x)

            def run_torch():
                with torch.no_grad():
                    return module(xt)[0].numpy()

            np.testing.assert_allclose(net.run(x).output, run_torch(), rtol=1e-3, atol=1e-4)
            repeats = 3 if quick else 5
            row = {"cell": mode, "B": B, "k": k, "p": p, "T": T,
                   "rnnsim_us": median_seconds(lambda: net.run(x), repeats) / T * 1e6,
                   "torch_us": median_seconds(run_torch, repeats) / T * 1e6}
            row["ratio"] = row["torch_us"] / row["rnnsim_us"]
            rows.append(row)
            print(f"{mode:>4} {B:>3} {k:>4} {p:>5} {T:>6} {row['rnnsim_us']:10.2f} "
                  f"{row['torch_us']:10.2f} {row['ratio']:6.2f}", flush=True)
    return rows


def main() -> None:
    args = parse_args(__doc__)
    print(f"threads: {numba.get_num_threads()}, torch {torch.__version__}, float32")
    print(f"{'cell':>4} {'B':>3} {'k':>4} {'p':>5} {'T':>6} {'rnnsim':>10} {'torch':>10} "
          f"{'ratio':>6}   (µs per step; ratio = torch / rnnsim)")
    rows = speed_rows(args.quick)
    if args.json:
        args.json.write_text(json.dumps({"threads": numba.get_num_threads(),
                                         "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
