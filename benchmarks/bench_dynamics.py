"""Lyapunov spectra: rnnsim.dynamics against a naive NumPy Benettin loop on the same weights.

    python benchmarks/bench_dynamics.py [--quick] [--json out.json]

Cases: an Elman tanh network of N = 300 at gain g = 1.5 (the transition-to-chaos study),
its 10 largest exponents and its full spectrum, and the largest exponent of the echo-state
network of configs/sweep_reservoir.yaml (what a sweep's ``largest_lyapunov`` computes), each
over 1000 steps after a warm-up of 100 under zero input. The naive loop forms the Jacobian and
QR-decomposes J Q every step; it runs with NumPy's default BLAS threads and with one, and the
faster counts. Prints CPU and wall seconds (median of the repeats), the exponents' largest
difference and the ratio naive / rnnsim of the CPU seconds (> 1: rnnsim faster).
"""
import json
import statistics
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from timing import parse_args

import rnnsim
from rnnsim import dynamics

STEPS, WARMUP = 1000, 100
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sweep_reservoir.yaml"


def elman(n: int, gain: float) -> rnnsim.Network:
    return rnnsim.Network.from_config({"network": {
        "input_size": 1, "dtype": "float64", "seed": 3, "layers": [
            {"cell": "elman", "units": n, "activation": "tanh",
             "init": {"recurrent": {"name": "kaiming_normal", "gain": gain}}}]}})


def reservoir(n: int) -> rnnsim.Network:
    config = rnnsim.config.read_yaml(CONFIG)
    config["network"]["layers"][0]["units"] = n
    return rnnsim.Network.from_config({"network": config["network"]})


def naive(net: rnnsim.Network, k: int, seed: int = 0) -> np.ndarray:
    """The textbook loop: h' = (1 - lr) h + lr tanh(W h + b), J = diag(1 - lr) + diag(lr
    (1 - a^2)) W, Q R = J Q every step (the initial state and vectors drawn as rnnsim does)."""
    layer, params = net.layers[0], net.layer_params(0)
    if layer.name == "esn":
        w = layer.recurrent_matrix(params)
        W = np.asarray(w.to_dense() if layer.sparse else w, np.float64)
        lr = layer.leak_rate()
    else:
        W, lr = np.asarray(params["U"], np.float64), np.ones(layer.units)
    b = np.asarray(params["b"], np.float64)
    rng = np.random.default_rng(seed)
    h = rng.uniform(-1.0, 1.0, len(W))
    Q = np.linalg.qr(rng.standard_normal((len(W), k)))[0]
    total = np.zeros(k)
    for t in range(WARMUP + STEPS):
        a = np.tanh(W @ h + b)
        J = np.diag(1.0 - lr) + (lr * (1.0 - a * a))[:, None] * W
        h = (1.0 - lr) * h + lr * a
        Q, R = np.linalg.qr(J @ Q)
        if t >= WARMUP:
            total += np.log(np.abs(np.diag(R)))
    return np.sort(total / STEPS)[::-1]


def timed(fn, repeats: int):
    """(median CPU s, median wall s, result) over ``repeats`` calls after one warm-up call."""
    result = fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall), result


def main():
    args = parse_args(__doc__)
    n, repeats = (100, 1) if args.quick else (300, 2)
    cases = [(f"elman N={n} g=1.5, 10 largest", elman(n, 1.5), 10),
             (f"elman N={n} g=1.5, all {n}", elman(n, 1.5), n),
             ("esn of sweep_reservoir.yaml (N=100), largest", reservoir(100), 1)]
    rows = []
    print(f"{'case':48s} {'rnnsim cpu/wall s':>18s} {'naive cpu/wall s':>18s} "
          f"{'1 thread cpu/wall':>18s} {'max |diff|':>10s} {'naive/rnnsim':>12s}")
    for label, net, k in cases:
        ours = timed(lambda: dynamics.lyapunov_spectrum(net, steps=STEPS, warmup=WARMUP, k=k),
                     repeats)
        theirs = timed(lambda: naive(net, k), repeats)
        with threadpool_limits(limits=1, user_api="blas"):
            single = timed(lambda: naive(net, k), repeats)
        best = min(theirs[0], single[0])
        diff = float(np.max(np.abs(ours[2] - theirs[2])))
        rows.append({"case": label, "k": k, "rnnsim_cpu_s": ours[0], "rnnsim_wall_s": ours[1],
                     "naive_cpu_s": theirs[0], "naive_wall_s": theirs[1],
                     "naive_one_thread_cpu_s": single[0], "naive_one_thread_wall_s": single[1],
                     "max_abs_difference": diff, "ratio": best / ours[0]})
        print(f"{label:48s} {ours[0]:8.3f} / {ours[1]:7.3f} {theirs[0]:8.3f} / {theirs[1]:7.3f} "
              f"{single[0]:8.3f} / {single[1]:7.3f} {diff:10.1e} {best / ours[0]:12.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
