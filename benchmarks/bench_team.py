"""Where two threads sharing one batch row's step pays for its barrier: ``TEAM_STEP_WORK``.

    python benchmarks/bench_team.py [--cells elman,lstm,gru] [--dtype float32] [--repeats 25]
                                    [--sizes 16,32,...]

For B = 1 and growing p, times each cell with the step's units on one thread and shared by all
threads (``cells/base.py``: ``run_rows``), median of ``repeats`` alternated runs, and prints the
multiply-adds per step of each shape with the faster mode. The constant is chosen from these
figures on a quiet machine (the choice is never made from the load at run time).
"""
import argparse
import time

import numpy as np

import rnnsim
from rnnsim.cells import base

SIZES = (16, 32, 64, 96, 128, 192, 256, 384, 512)


def median_seconds(net, x, repeats: int) -> dict[str, float]:
    """Median seconds of a run with the units on one thread and shared, the two alternated
    (this machine's speed drifts: runs of one mode back to back would see different drifts)."""
    net.run(x)
    times = {"one": [], "shared": []}
    for _ in range(repeats):
        for mode, threshold in (("one", float("inf")), ("shared", 0)):
            base.TEAM_STEP_WORK = threshold
            start = time.perf_counter()
            net.run(x)
            times[mode].append(time.perf_counter() - start)
    return {mode: float(np.median(seconds)) for mode, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="elman,lstm,gru")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="units p")
    args = parser.parse_args()
    base.THREADED_WORK = 0
    print(f"threads: {base.thread_count()}; TEAM_STEP_WORK now {base.TEAM_STEP_WORK}")
    print("cell   p   step MACs   one thread us/step   shared us/step   faster")
    for cell in args.cells.split(","):
        for p in map(int, args.sizes.split(",")):
            net = rnnsim.Network.from_config({"network": {
                "input_size": 32, "dtype": args.dtype,
                "layers": [{"cell": cell, "units": p}]}})
            gates = net.layers[0].gate_count()
            work = gates * p * (32 + p)
            T = max(20, int(2e7 // work))
            x = np.random.default_rng(0).standard_normal((T, 1, 32)).astype(args.dtype)
            times = {mode: seconds / T * 1e6
                     for mode, seconds in median_seconds(net, x, args.repeats).items()}
            faster = min(times, key=times.get)
            print(f"{cell:6} {p:4} {work:10,} {times['one']:14.2f} {times['shared']:16.2f}"
                  f"   {faster}")


if __name__ == "__main__":
    main()
