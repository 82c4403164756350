"""The 11 x 11 x 3 sweep of configs/sweep_reservoir.yaml: rnnsim with -j 2 and on a Dask
LocalCluster (2 workers) against a serial reservoirpy 0.4 loop over the same points.

    python benchmarks/bench_sweep.py [--quick] [--json out.json]

The grid: spectral radius 0.2..1.6 (11 values) x leak rate 0.1..1.0 (11) x 3 seeds, the
config's metrics (spectral_radius, nrmse, largest_lyapunov) on its 100-unit echo-state network
and 1000 steps; --quick: 3 x 2 x 2. Both rnnsim tables must be identical (checked, bytes of
the CSV). The reservoirpy loop builds each point's reservoir with the same sizes (units,
connectivity, input scaling, bias range, leak rate, spectral radius: reservoirpy scales it
itself), runs it once over the same normalised Mackey-Glass series, fits and scores a Ridge
readout on the same split and washout (its spectral_radius is the one it scaled to), and
computes the largest Lyapunov exponent with a naive NumPy loop (1000 steps after 100, zero
input; reservoirpy has none). Prints wall seconds, CPU seconds (this process and its
children: the -j 2 workers; Dask's workers are grandchildren and are not counted), points per
second and the ratio reservoirpy / rnnsim of the wall times (> 1: rnnsim faster).
"""
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from timing import parse_args

import rnnsim
from rnnsim.builtins.metrics import NRMSE_RIDGE, NRMSE_WASHOUT
from rnnsim.sweep import run_sweep
from rnnsim.tasks import mackey_glass_task

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "sweep_reservoir.yaml"
RADIUS = "network.layers[0].init.recurrent.spectral_radius"
LEAK = "network.layers[0].leak_rate"
GRIDS = {"full": ({RADIUS: "0.2:1.6:11", LEAK: "0.1:1.0:11"}, 3),
         "quick": ({RADIUS: "0.6:1.4:3", LEAK: [0.3, 1.0]}, 2)}


def cpu_seconds() -> float:
    """CPU seconds of this process and of its children that ended."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def timed(fn):
    cpu, wall = cpu_seconds(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def rnnsim_sweep(grid, repeats, folder: Path, **where):
    return run_sweep(str(CONFIG), grid=grid, repeats=repeats, output=folder / "table.csv",
                     on_error="fail", **where)


def reservoirpy_point(radius: float, leak: float, seed: int, u, y, split: int) -> dict:
    """One point the reservoirpy way: the config's reservoir, one run, one Ridge fit."""
    from reservoirpy.mat_gen import uniform
    from reservoirpy.nodes import Reservoir, Ridge

    layer = rnnsim.config.read_yaml(CONFIG)["network"]["layers"][0]
    bias = layer["init"]["bias"]
    node = Reservoir(units=layer["units"], lr=leak, sr=radius, input_connectivity=1.0,
                     rc_connectivity=layer["init"]["recurrent"]["connectivity"],
                     Win=uniform(low=-1.0, high=1.0),
                     bias=uniform(low=bias["low"], high=bias["high"]), activation="tanh",
                     seed=seed)
    states = node.run(u)
    washout = int(NRMSE_WASHOUT * split)
    readout = Ridge(ridge=NRMSE_RIDGE)
    readout.fit(states[:split], y[:split], warmup=washout)
    prediction = readout.run(states[split:])
    nrmse = float(np.sqrt(np.mean((y[split:] - prediction) ** 2)) / np.std(y[split:]))
    W = node.W.toarray() if hasattr(node.W, "toarray") else np.asarray(node.W)
    return {"spectral_radius": radius, "nrmse": nrmse,
            "largest_lyapunov": naive_largest_lyapunov(W, np.ravel(node.bias), leak, seed)}


def naive_largest_lyapunov(W, b, leak, seed, steps=1000, warmup=100) -> float:
    """h' = (1 - lr) h + lr tanh(W h + b) under zero input and one tangent vector, normalised
    every step."""
    rng = np.random.default_rng(seed)
    h, v = rng.uniform(-1.0, 1.0, len(W)), rng.standard_normal(len(W))
    v /= np.linalg.norm(v)
    total = 0.0
    for t in range(warmup + steps):
        a = np.tanh(W @ h + b)
        v = (1.0 - leak) * v + leak * (1.0 - a * a) * (W @ v)
        h = (1.0 - leak) * h + leak * a
        norm = np.linalg.norm(v)
        v /= norm
        if t >= warmup:
            total += np.log(norm)
    return total / steps


def reservoirpy_loop(table) -> list[dict]:
    net = rnnsim.Network.from_config(str(CONFIG))
    u, y, split = mackey_glass_task(net)
    u, y = np.asarray(u, np.float64), np.asarray(y, np.float64)
    return [reservoirpy_point(row[RADIUS], row[LEAK], row["seed"], u, y, split)
            for row in table]


def main():
    args = parse_args(__doc__)
    grid, repeats = GRIDS["quick" if args.quick else "full"]
    with tempfile.TemporaryDirectory() as tmp:
        pool, dask = Path(tmp, "pool"), Path(tmp, "dask")
        pool_wall, pool_cpu, pool_table = timed(
            lambda: rnnsim_sweep(grid, repeats, pool, workers=2))
        dask_wall, dask_cpu, dask_table = timed(
            lambda: rnnsim_sweep(grid, repeats, dask, workers=2, scheduler="local"))
        identical = (pool / "table.csv").read_bytes() == (dask / "table.csv").read_bytes()
    points = len(pool_table)
    rpy_wall, rpy_cpu, rpy_rows = timed(lambda: reservoirpy_loop(pool_table))
    ours = np.array([row["nrmse"] for row in pool_table])
    theirs = np.array([row["nrmse"] for row in rpy_rows])
    sizes = " x ".join(str(len({row[key] for row in pool_table})) for key in grid)
    print(f"{points} points ({sizes} grid values x {repeats} seeds; --quick: {args.quick})")
    print(f"{'run':32s} {'wall s':>8s} {'cpu s':>8s} {'points/s':>9s}")
    for label, wall, cpu in (("rnnsim -j 2", pool_wall, pool_cpu),
                             ("rnnsim Dask LocalCluster(2)", dask_wall, dask_cpu),
                             ("reservoirpy serial loop", rpy_wall, rpy_cpu)):
        print(f"{label:32s} {wall:8.2f} {cpu:8.2f} {points / wall:9.2f}")
    print(f"tables identical (-j 2 vs Dask): {identical}")
    print(f"median test NRMSE: rnnsim {np.median(ours):.4g}, reservoirpy {np.median(theirs):.4g}"
          " (different random reservoirs of the same sizes)")
    print(f"reservoirpy / rnnsim wall: -j 2 {rpy_wall / pool_wall:.2f}, Dask "
          f"{rpy_wall / dask_wall:.2f}; CPU per point: rnnsim -j 2 {pool_cpu / points:.3f} s, "
          f"reservoirpy {rpy_cpu / points:.3f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "points": points, "identical": identical,
            "wall_s": {"rnnsim_j2": pool_wall, "rnnsim_dask": dask_wall, "reservoirpy": rpy_wall},
            "cpu_s": {"rnnsim_j2": pool_cpu, "rnnsim_dask_parent": dask_cpu,
                      "reservoirpy": rpy_cpu}}, indent=2))
    if not identical:
        raise SystemExit("the -j 2 and Dask tables differ")


if __name__ == "__main__":
    main()
