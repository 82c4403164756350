"""reservoirpy 0.4 vs rnnsim: echo-state networks on the same sparse matrices and inputs.

Needs reservoirpy 0.4 (``pip install 'rnnsim[bench]'``). Prints µs per step for
N in {100, 1000, 10000} (CSR, connectivity 0.1 / 0.1 / 0.01, k = 1, T = 10,000) and for a
64-member ensemble of N = 500 (10%) and for 64 input sequences through one reservoir (N = 1000
and 10,000, T = 1000 each; per step and sequence; reservoirpy runs them one by one), rnnsim
with all of numba's threads and with one, and in float32 with ``network.fast_math``
(vectorised tanh approximations), the ratio reservoirpy / rnnsim (> 1: rnnsim faster), the
median and the range of the repeats, and for the sparse kernel the bytes it streams per step
(``rnnsim.bench.reservoir_bytes``) as GB/s (the fastest repeat at its faster thread count) and
as a fraction of the read bandwidth a plain sum reaches on a buffer of the same size in this
process (``rnnsim.bench.read_bandwidth``: the faster of numpy's sum on one core and a numba
prange sum on all threads).
"""
import json
import os
import statistics
import sys
import time

import numba
import numpy as np

from timing import parse_args

import rnnsim
from rnnsim.bench import read_bandwidth, reservoir_bytes
from rnnsim.builtins.reservoir import input_bernoulli, sparse_random
from rnnsim.ensembles import run_ensemble
from rnnsim.sparse import CSR, scale_spectral_radius

LR, SR = 0.3, 0.9
THREADS = numba.get_num_threads()


def matrices(n, connectivity, seed):
    rng = np.random.default_rng(seed)
    w = scale_spectral_radius(sparse_random((n, n), rng, np.float64, connectivity), SR, "W")
    return w, input_bernoulli((n, 1), rng, np.float64), np.zeros(n)


def rnnsim_net(w: CSR, win, bias, dtype, fast_math=False):
    config = rnnsim.config.parse({"network": {"input_size": 1, "dtype": dtype,
                                              "fast_math": fast_math, "layers": [
        {"cell": "esn", "units": w.shape[0], "leak_rate": LR, "sparse": True}]}})
    return rnnsim.Network(config, {**w.params("layers.0.W"), "layers.0.Win": win,
                                   "layers.0.b": bias})


def reservoirpy_node(w: CSR, win, bias):
    from reservoirpy.nodes import Reservoir

    return Reservoir(W=w.to_scipy().tocsr(), Win=win, bias=bias, lr=LR,
                     activation="tanh", input_dim=1)


def samples(fn, repeats: int, warmup=None) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` after one call of ``warmup`` (default fn)."""
    (warmup or fn)()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def per_step(times, T) -> dict:
    """Median, min and max of ``times`` in µs per step."""
    return {"median": statistics.median(times) / T * 1e6, "min": min(times) / T * 1e6,
            "max": max(times) / T * 1e6}


def with_threads(threads, fn):
    numba.set_num_threads(threads)
    try:
        return fn()
    finally:
        numba.set_num_threads(THREADS)


def single(n, connectivity, T, repeats):
    w, win, bias = matrices(n, connectivity, n)
    u = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    node = reservoirpy_node(w, win, bias)
    reference = node.run(u)
    row = {"case": f"N={n}, {connectivity:.0%}", "N": n, "nnz": w.nnz, "T": T}
    for dtype in ("float64", "float32"):
        net = rnnsim_net(w, win, bias, dtype)
        x = u.astype(dtype)
        states = net.run(x).output
        row[f"maxdiff_{dtype}"] = float(np.max(np.abs(states - reference)))
        warmup = lambda: net.run(x[:10])  # noqa: E731 (loads the kernel of this thread count)
        row[f"rnnsim_{dtype}"] = per_step(samples(lambda: net.run(x), repeats, warmup), T)
        row[f"rnnsim_{dtype}_1thread"] = with_threads(1, lambda: per_step(
            samples(lambda: net.run(x), repeats, warmup), T))
        nbytes = reservoir_bytes(n, w.nnz, dtype)
        best = min(row[f"rnnsim_{dtype}"]["min"], row[f"rnnsim_{dtype}_1thread"]["min"])
        row[f"gbs_{dtype}"] = nbytes / (best * 1e-6) / 1e9
        row[f"peak_{dtype}"] = read_bandwidth(nbytes)
    fast = rnnsim_net(w, win, bias, "float32", fast_math=True)
    x = u.astype(np.float32)
    row["fast_error"] = float(np.max(np.abs(fast.run(x).output - reference)))
    row["rnnsim_float32_fast"] = per_step(samples(lambda: fast.run(x), repeats,
                                                  lambda: fast.run(x[:10])), T)
    node.reset()
    row["reservoirpy"] = per_step(samples(lambda: node.run(u), max(1, repeats // 3),
                                          lambda: node.run(u[:10])), T)
    return row


def batch_case(n, connectivity, B, T, repeats):
    """B independent input sequences through one reservoir: one rnnsim call (the rows go in
    blocks that share each loaded nonzero) against reservoirpy running them one by one."""
    w, win, bias = matrices(n, connectivity, n)
    u = np.random.default_rng(1).uniform(-1, 1, (T, B, 1))
    row = {"case": f"batch {B} x N={n}, {connectivity:.0%}", "N": n, "nnz": w.nnz, "T": T,
           "per": "sequence"}
    node = reservoirpy_node(w, win, bias)
    sequences = [u[:, b] for b in range(B)]
    reference = np.stack(node.run(sequences), axis=1)
    for dtype in ("float64", "float32"):
        net = rnnsim_net(w, win, bias, dtype)
        x = u.astype(dtype)
        row[f"maxdiff_{dtype}"] = float(np.max(np.abs(net.run(x).output - reference)))
        warmup = lambda: net.run(x[:10])  # noqa: E731
        row[f"rnnsim_{dtype}"] = per_step(samples(lambda: net.run(x), repeats, warmup), T * B)
        row[f"rnnsim_{dtype}_1thread"] = with_threads(1, lambda: per_step(
            samples(lambda: net.run(x), repeats, warmup), T * B))
    fast = rnnsim_net(w, win, bias, "float32", fast_math=True)
    x = u.astype(np.float32)
    row["fast_error"] = float(np.max(np.abs(fast.run(x).output - reference)))
    row["rnnsim_float32_fast"] = per_step(samples(lambda: fast.run(x), repeats,
                                                  lambda: fast.run(x[:10])), T * B)
    row["reservoirpy"] = per_step(samples(lambda: node.run(sequences), 1, lambda: None), T * B)
    return row


def ensemble_case(members, n, T, repeats):
    mats = [matrices(n, 0.1, 1000 + m) for m in range(members)]
    u = np.random.default_rng(0).uniform(-1, 1, (T, 1))
    row = {"case": f"ensemble {members} x N={n}, 10%", "N": n, "T": T,
           "nnz": sum(m[0].nnz for m in mats)}
    nodes = [reservoirpy_node(*m) for m in mats]
    reference = np.stack([node.run(u) for node in nodes], axis=1)
    for dtype in ("float64", "float32"):
        nets = [rnnsim_net(*m, dtype) for m in mats]
        states = run_ensemble(nets, u).states
        row[f"maxdiff_{dtype}"] = float(np.max(np.abs(states - reference)))
        warmup = lambda: run_ensemble(nets, u[:10])  # noqa: E731
        row[f"rnnsim_{dtype}"] = per_step(samples(lambda: run_ensemble(nets, u), repeats,
                                                  warmup), T)
        row[f"rnnsim_{dtype}_1thread"] = with_threads(1, lambda: per_step(
            samples(lambda: run_ensemble(nets, u), repeats, warmup), T))
    fast = [rnnsim_net(*m, "float32", fast_math=True) for m in mats]
    row["fast_error"] = float(np.max(np.abs(run_ensemble(fast, u).states - reference)))
    row["rnnsim_float32_fast"] = per_step(samples(lambda: run_ensemble(fast, u), repeats,
                                                  lambda: run_ensemble(fast, u[:10])), T)
    row["reservoirpy"] = per_step(samples(lambda: [node.run(u) for node in nodes], 1,
                                          lambda: None), T)
    return row


def main():
    args = parse_args(__doc__)
    T = 1000 if args.quick else 10_000
    repeats = 3
    import reservoirpy

    print(f"reservoirpy {reservoirpy.__version__}, rnnsim {rnnsim.__version__}, numba "
          f"{numba.__version__}, {THREADS} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = [single(100, 0.1, T, repeats), single(1000, 0.1, T, repeats),
            single(10_000, 0.01, T, repeats), ensemble_case(64, 500, T, repeats),
            batch_case(1000, 0.1, 64, T // 10, repeats),
            batch_case(10_000, 0.01, 64, T // 10, repeats)]
    print(f"load average after: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print("| case | nnz | reservoirpy | rnnsim f64 | ratio | rnnsim f32 | ratio | f32, 1 thread "
          "| ratio | f32 fast_math | ratio | GB/s f64 (of a plain sum's) | GB/s f32 (of a plain "
          "sum's) | max abs diff f64, fast_math |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rp = r["reservoirpy"]["median"]
        cells = []
        for key in ("rnnsim_float64", "rnnsim_float32", "rnnsim_float32_1thread",
                    "rnnsim_float32_fast"):
            t = r[key]
            cells.append(f"{t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f}) | "
                         f"{rp / t['median']:.1f}")
        bw = [f"{r[f'gbs_{d}']:.1f} ({r[f'gbs_{d}'] / r[f'peak_{d}']:.0%} of "
              f"{r[f'peak_{d}']:.0f})" if f"gbs_{d}" in r else "" for d in ("float64", "float32")]
        print(f"| {r['case']} | {r['nnz']:,} | {rp:.1f} | {' | '.join(cells)} | {' | '.join(bw)} | "
              f"{r['maxdiff_float64']:.1e}, {r['fast_error']:.1e} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
