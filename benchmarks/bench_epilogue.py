"""Where a batched step's time goes: the packed tile alone against the whole kernel.

    python benchmarks/bench_epilogue.py [--cells lstm,gru] [--dtype float32] [--repeats 8]

On one thread (numba's set to 1 here), for each cell and shape, times with the thread's own
CPU time (``time.thread_time``: other processes on the machine do not count) the fastest of
``repeats`` runs of

- ``tile``: the recurrent product alone, ``tiles.panel_tile`` over every panel and batch row of
  the layer's own packed [W U], T times (no gates, no states);
- ``fast``: the layer's kernel with ``fast_math`` activations (float32 arithmetic);
- ``default``: the default kernel (activations as accurate as libm).

and prints µs per step, the tile's GFLOP/s and the share of a step that is not the tile. The
difference between ``default`` and ``fast`` is the cost of the accurate activations.
"""
import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numba  # noqa: E402
import numpy as np  # noqa: E402

import rnnsim  # noqa: E402
from rnnsim.kernels.cpu import gru, tiles  # noqa: E402
from rnnsim.kernels.options import JIT  # noqa: E402
from timing import fastest_cpu_seconds  # noqa: E402

SHAPES = [(32, 32, 128, 100), (64, 128, 512, 10)]
HALVES = 2  # sub-panels per panel, as the LSTM and GRU kernels pack them
GRU_PER_CALL, GRU_SPLIT = gru.PER_CALL, gru.N_GATE  # the GRU kernel's tile (reset_after)


@numba.njit(**JIT)
def tile_steps(H, P, bias, G, steps, k, gates):
    """The tile of every panel and row of H, ``steps`` times (``tiles.panel_tile``)."""
    for _ in range(steps):
        for pan in range(P.shape[0]):
            b = 0
            while b < H.shape[0]:
                if gates == 4:
                    b += tiles.panel_tile(H, b, H.shape[0], P, pan, bias, G, k, 4, HALVES, 1, -1)
                else:
                    b += tiles.panel_tile(H, b, H.shape[0], P, pan, bias, G, k, 3, HALVES,
                                          GRU_PER_CALL, GRU_SPLIT)


def measure(cell: str, dtype: str, B: int, k: int, p: int, T: int, repeats: int) -> dict:
    net = rnnsim.Network.from_config({"network": {
        "input_size": k, "dtype": dtype, "seed": 0, "layers": [{"cell": cell, "units": p}]}})
    fast = rnnsim.Network(net.config, net.params)
    fast.fast_math = True
    x = np.random.default_rng(0).standard_normal((T, B, k)).astype(dtype)
    layer = net.layers[0]
    gates = layer.gate_count()
    P = layer.packed("U", (net.params["layers.0.W"], net.params["layers.0.U"]), gates,
                     gates * HALVES)
    H = np.random.default_rng(1).standard_normal((B, P.shape[1])).astype(dtype)
    units = tiles.panel_units(dtype, gates, gates * HALVES)
    bias = np.zeros((4, P.shape[0] * units), dtype)  # GRU: n's recurrent part apart
    G = np.zeros((4, tiles.ROWS, units), dtype)
    us = {
        "tile": fastest_cpu_seconds(lambda: tile_steps(H, P, bias, G, T, k, gates), repeats),
        "fast": fastest_cpu_seconds(lambda: fast.run(x), repeats),
        "default": fastest_cpu_seconds(lambda: net.run(x), repeats),
    }
    us = {name: seconds / T * 1e6 for name, seconds in us.items()}
    flops = 2 * B * gates * p * (k + p)
    return {"cell": cell, "shape": (B, k, p), "us": us, "tile_gflops": flops / us["tile"] / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    print(f"one thread, thread CPU time, {args.dtype}, µs per step")
    print("cell   B,k,p          tile   fast  default  tile GFLOP/s  not tile (default)")
    for cell in args.cells.split(","):
        for B, k, p, T in SHAPES:
            row = measure(cell, args.dtype, B, k, p, T, args.repeats)
            us = row["us"]
            print(f"{cell:5} {B:3},{k:3},{p:4} {us['tile']:8.1f} {us['fast']:7.1f} "
                  f"{us['default']:8.1f} {row['tile_gflops']:12.1f} "
                  f"{1 - us['tile'] / us['default']:12.0%}")


if __name__ == "__main__":
    main()
