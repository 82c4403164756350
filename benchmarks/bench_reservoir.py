"""reservoirpy 0.4 vs rnnsim: echo-state networks on the same sparse matrices and inputs.

Needs ``pip install reservoirpy==0.4.2`` (not a test dependency). Prints µs per step for
N in {100, 1000, 10000} (CSR, connectivity 0.1 / 0.1 / 0.01, k = 1, T = 10,000) and for a
64-member ensemble of N = 500, the ratio reservoirpy / rnnsim (> 1: rnnsim faster), and for the
sparse kernel the bytes it streams per step as GB/s and as a fraction of the read bandwidth
numpy's sum reaches on a buffer of the same size in this process.
"""
import json
import os
import sys

import numpy as np

from timing import median_seconds, parse_args

import rnnsim
from rnnsim.builtins.reservoir import input_bernoulli, sparse_random
from rnnsim.reservoir import CSR, run_ensemble, scale_spectral_radius

LR, SR = 0.3, 0.9


def matrices(n, connectivity, seed):
    rng = np.random.default_rng(seed)
    w = scale_spectral_radius(sparse_random((n, n), rng, np.float64, connectivity), SR, "W")
    return w, input_bernoulli((n, 1), rng, np.float64), np.zeros(n)


def rnnsim_net(w: CSR, win, bias, dtype):
    config = rnnsim.config.parse({"network": {"input_size": 1, "dtype": dtype, "layers": [
        {"cell": "esn", "units": w.shape[0], "leak_rate": LR, "sparse": True}]}})
    return rnnsim.Network(config, {**w.params("layers.0.W"), "layers.0.Win": win,
                                   "layers.0.b": bias})


def reservoirpy_node(w: CSR, win, bias):
    from reservoirpy.nodes import Reservoir

    return Reservoir(W=w.to_scipy().tocsr(), Win=win, bias=bias, lr=LR,
                     activation="tanh", input_dim=1)


def read_bandwidth(nbytes, repeats=20):
    """GB/s of numpy's sum over a float64 buffer of ``nbytes``."""
    buf = np.ones(max(nbytes // 8, 1))
    return nbytes / median_seconds(lambda: buf.sum(), repeats) / 1e9


def single(n, connectivity, T, repeats):
    w, win, bias = matrices(n, connectivity, n)
    u = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    node = reservoirpy_node(w, win, bias)
    reference = node.run(u)
    row = {"case": f"N={n}, {connectivity:.0%}", "N": n, "nnz": w.nnz, "T": T}
    for dtype in ("float64", "float32"):
        net = rnnsim_net(w, win, bias, dtype)
        states = net.run(u.astype(dtype)).output
        row[f"maxdiff_{dtype}"] = float(np.max(np.abs(states - reference)))
        row[f"rnnsim_{dtype}"] = median_seconds(lambda: net.run(u.astype(dtype)), repeats) / T * 1e6
        itemsize = np.dtype(dtype).itemsize
        nbytes = w.nnz * (itemsize + 4) + (n + 1) * 8 + 3 * n * itemsize
        row[f"gbs_{dtype}"] = nbytes / (row[f"rnnsim_{dtype}"] * 1e-6) / 1e9
        row[f"peak_{dtype}"] = read_bandwidth(nbytes)
    node.reset()
    row["reservoirpy"] = median_seconds(lambda: node.run(u), max(1, repeats // 3)) / T * 1e6
    return row


def ensemble_case(members, n, T, repeats):
    mats = [matrices(n, 0.1, 1000 + m) for m in range(members)]
    u = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    row = {"case": f"ensemble {members} x N={n}, 10%", "N": n, "T": T}
    nodes = [reservoirpy_node(*m) for m in mats]
    reference = np.stack([node.run(u) for node in nodes], axis=1)
    for dtype in ("float64", "float32"):
        nets = [rnnsim_net(*m, dtype) for m in mats]
        states = run_ensemble(nets, u).states
        row[f"maxdiff_{dtype}"] = float(np.max(np.abs(states - reference)))
        row[f"rnnsim_{dtype}"] = median_seconds(lambda: run_ensemble(nets, u), repeats) / T * 1e6
    row["reservoirpy"] = median_seconds(lambda: [node.run(u) for node in nodes], 1) / T * 1e6
    return row


def main():
    args = parse_args(__doc__)
    T = 1000 if args.quick else 10_000
    repeats = 3 if args.quick else 5
    import numba
    import reservoirpy

    print(f"reservoirpy {reservoirpy.__version__}, rnnsim {rnnsim.__version__}, numba "
          f"{numba.__version__}, {numba.get_num_threads()} threads, {os.cpu_count()} CPUs",
          file=sys.stderr)
    rows = [single(100, 0.1, T, repeats), single(1000, 0.1, T, repeats),
            single(10_000, 0.01, T, repeats), ensemble_case(64, 500, T, repeats)]
    print("| case | T | reservoirpy | rnnsim f64 | ratio f64 | rnnsim f32 | ratio f32 | "
          "GB/s f64 (of numpy sum) | GB/s f32 (of numpy sum) | max |diff| f64 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        bw = [f"{r[f'gbs_{d}']:.1f} ({r[f'gbs_{d}'] / r[f'peak_{d}']:.0%})" if f"gbs_{d}" in r
              else "" for d in ("float64", "float32")]
        print(f"| {r['case']} | {r['T']} | {r['reservoirpy']:.1f} | {r['rnnsim_float64']:.2f} | "
              f"{r['reservoirpy'] / r['rnnsim_float64']:.1f} | {r['rnnsim_float32']:.2f} | "
              f"{r['reservoirpy'] / r['rnnsim_float32']:.1f} | {bw[0]} | {bw[1]} | "
              f"{r['maxdiff_float64']:.1e} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
