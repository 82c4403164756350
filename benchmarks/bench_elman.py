"""Elman RNN: rnnsim against ONNX Runtime (when installed), same process, same inputs.

    python benchmarks/bench_elman.py [--quick] [--json out.json]

Prints µs per timestep (median of several runs after a warm-up) and ONNX Runtime's time divided
by rnnsim's (> 1 means rnnsim is faster); PyTorch is compared in bench_torch.py. Also measures the cold start of the quickstart: a new
process importing rnnsim and running its first simulation, with and without the on-disk
kernel cache.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np

import rnnsim
from timing import median_seconds, parse_args

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(1, 8, 16, 10000), (1, 8, 64, 10000), (1, 32, 256, 2000), (32, 32, 128, 1000),
          (64, 128, 512, 200)]


def elman_network(k: int, p: int) -> rnnsim.Network:
    cfg = {"network": {"input_size": k, "dtype": "float32", "seed": 0,
                       "layers": [{"units": p, "init": {"bias": {"name": "normal",
                                                                 "std": 0.1}}}]}}
    return rnnsim.Network.from_config(cfg)


def onnxruntime_runner(net: rnnsim.Network, x: np.ndarray):
    try:
        import onnx
        import onnxruntime
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    k, p = net.input_size, net.layers[0].units
    weights = {
        "W": net.params["layers.0.W"][None],
        "R": net.params["layers.0.U"][None],
        "B": np.concatenate([net.params["layers.0.b"], np.zeros(p, np.float32)])[None],
    }
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=p)
    graph = helper.make_graph(
        [node], "elman", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, None, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, name) for name, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = numba.get_num_threads()
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"X": x})[0][:, 0]


def speed_rows(quick: bool) -> list[dict]:
    rows = []
    for B, k, p, T in SHAPES:
        T = max(T // 10, 20) if quick else T
        net = elman_network(k, p)
        x = np.random.default_rng(0).standard_normal((T, B, k)).astype(np.float32)
        repeats = 3 if quick else 7
        ours = net.run(x).output
        row = {"cell": "elman", "B": B, "k": k, "p": p, "T": T,
               "rnnsim_us": median_seconds(lambda: net.run(x), repeats) / T * 1e6}
        runner = onnxruntime_runner(net, x)
        if runner is not None:
            np.testing.assert_allclose(runner(), ours, rtol=1e-3, atol=1e-4)
            row["onnxruntime_us"] = median_seconds(runner, repeats) / T * 1e6
            row["onnxruntime_ratio"] = row["onnxruntime_us"] / row["rnnsim_us"]
        rows.append(row)
    return rows


def quickstart_row(repeats: int = 200) -> dict:
    net = rnnsim.Network.from_config(ROOT / "configs" / "quickstart.yaml")
    x = np.random.default_rng(0).standard_normal((20, 4, 8)).astype(np.float32)
    seconds = median_seconds(lambda: net.run(x), repeats)
    return {"call_us": seconds * 1e6, "us_per_step": seconds / 20 * 1e6}


COLD = """
import time; t0 = time.perf_counter()
import numpy as np, rnnsim
t1 = time.perf_counter()
net = rnnsim.Network.from_config({config!r})
net.run(np.zeros((20, 4, 8), np.float32))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def cold_start() -> dict:
    """Seconds for import and for the first run in a fresh process, cache empty and warm."""
    code = COLD.format(config=str(ROOT / "configs" / "quickstart.yaml"))
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, RNNSIM_CACHE_DIR=cache)
        for label in ("empty_cache", "warm_cache"):
            result = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                    capture_output=True, text=True)
            import_s, first_run_s = map(float, result.stdout.split())
            out[label] = {"import_s": import_s, "first_run_s": first_run_s}
    return out


def main() -> None:
    args = parse_args(__doc__)
    results = {"threads": numba.get_num_threads(), "cold_start": cold_start(),
               "quickstart": quickstart_row(), "rows": speed_rows(args.quick)}
    print(f"threads: {results['threads']}")
    for label, c in results["cold_start"].items():
        print(f"cold start ({label}): import {c['import_s']:.2f} s, "
              f"first run {c['first_run_s']:.2f} s")
    q = results["quickstart"]
    print(f"quickstart (T=20, B=4, k=8, p=10): {q['call_us']:.1f} µs per run call, "
          f"{q['us_per_step']:.2f} µs per step")
    print(f"{'B':>3} {'k':>4} {'p':>5} {'T':>6} {'rnnsim':>9} {'ort':>9} {'ratio':>6}"
          "   (µs per step; ratio = onnxruntime / rnnsim)")
    for r in results["rows"]:
        peer = (f" {r['onnxruntime_us']:9.2f} {r['onnxruntime_ratio']:6.2f}"
                if "onnxruntime_us" in r else f" {'not installed':>16}")
        print(f"{r['B']:>3} {r['k']:>4} {r['p']:>5} {r['T']:>6} {r['rnnsim_us']:9.2f}{peer}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
