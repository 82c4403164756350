"""GPU: rnnsim's CUDA kernels against PyTorch's cuDNN RNN/LSTM/GRU, and a reservoir ensemble.

    python benchmarks/bench_cuda.py [--quick] [--json out.json]

Needs an NVIDIA GPU, ``pip install 'rnnsim[cuda]'`` and a CUDA build of torch. float32,
k = 64 input features, B in {1, 64, 4096}, p in {64, 256, 1024}, T = 1000 (100 with --quick).
Both sides go from host arrays to host arrays: rnnsim's ``net.run(x)`` (weights uploaded,
input projected and recurrence run on the GPU, output copied back) against
``module(x.cuda()).cpu()`` under ``torch.no_grad()``; torch with input and output left on the
GPU is reported too (``torch_resident_us``), to show what the copies cost. Each row first
checks that both give the same output; a size that does not fit in GPU memory is reported
as ``out of memory``. µs per timestep, median of 3 runs after a warm-up; ratio = torch /
rnnsim (> 1: rnnsim faster).

The ensemble: 1024 echo-state reservoirs of N = 256 units (dense W, different weights and
leak rates, k = 1) on one shared input, ``run_ensemble(nets, u, device="cuda")`` against a
PyTorch loop of one batched matmul (``torch.bmm``) per step; the effective bandwidth counts
the bytes of W read per step (every member's N x N weights) against the GPU's peak.
"""
from __future__ import annotations

import json
import time

import numpy as np

import rnnsim
from rnnsim.ensembles import ensemble, run_ensemble
from timing import median_seconds, parse_args

K = 64
BATCHES = (1, 64, 4096)
UNITS = (64, 256, 1024)
MODES = ("RNN", "LSTM", "GRU")
MEMBERS, RESERVOIR_UNITS = 1024, 256


def gpu_description(cuda) -> dict:
    """The GPU's name and peak memory bandwidth (GB/s) from the device's attributes."""
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    peak = 2 * dev.MEMORY_CLOCK_RATE * 1e3 * dev.GLOBAL_MEMORY_BUS_WIDTH / 8 / 1e9
    return {"gpu": name, "multiprocessors": dev.MULTIPROCESSOR_COUNT,
            "peak_bandwidth_GBs": round(peak, 1)}


def cell_row(torch, launch_error, mode: str, B: int, p: int, T: int) -> dict:
    row = {"cell": mode, "B": B, "k": K, "p": p, "T": T}
    torch.manual_seed(0)
    module = getattr(torch.nn, mode)(K, p).eval()
    net = rnnsim.from_torch(module)
    net = rnnsim.Network(net.config, net.params, device="cuda")
    module = module.cuda()
    x = np.random.default_rng(0).standard_normal((T, B, K)).astype(np.float32)
    try:
        x_gpu = torch.from_numpy(x).cuda()

        def run_torch():
            with torch.no_grad():
                out = module(torch.from_numpy(x).cuda())[0].cpu().numpy()
            torch.cuda.synchronize()
            return out

        def run_torch_resident():
            with torch.no_grad():
                module(x_gpu)
            torch.cuda.synchronize()

        expected = run_torch()
        np.testing.assert_allclose(net.run(x).output, expected, rtol=1e-3, atol=1e-4)
        del expected
        row["rnnsim_us"] = median_seconds(lambda: net.run(x), 3) / T * 1e6
        row["torch_us"] = median_seconds(run_torch, 3) / T * 1e6
        row["torch_resident_us"] = median_seconds(run_torch_resident, 3) / T * 1e6
        row["ratio"] = row["torch_us"] / row["rnnsim_us"]
    except (torch.cuda.OutOfMemoryError, MemoryError, launch_error) as exc:
        text = str(exc)
        row["error"] = "out of memory" if "memory" in text.lower() else text.splitlines()[0]
    finally:
        torch.cuda.empty_cache()
    return row


def ensemble_row(torch, gpu: dict, T: int) -> dict:
    base = {"network": {"input_size": 1, "layers": [{"cell": "esn", "units": RESERVOIR_UNITS}]}}
    rng = np.random.default_rng(0)
    members = [{"seed": m, "leak_rate": float(rng.uniform(0.1, 1.0))} for m in range(MEMBERS)]
    nets = ensemble(base, members)
    u = rng.standard_normal((T, 1)).astype(np.float32)
    layer_params = [{k.split(".", 2)[2]: v for k, v in net.params.items()} for net in nets]
    W = torch.tensor(np.stack([p["W"] for p in layer_params])).cuda()
    Win = torch.tensor(np.stack([p["Win"] for p in layer_params])).cuda()
    b = torch.tensor(np.stack([p["b"] for p in layer_params]))[:, :, None].cuda()
    lr = torch.tensor(np.stack([net.layers[0].leak_rate() for net in nets]),
                      dtype=torch.float32)[:, :, None].cuda()
    u_gpu = torch.from_numpy(u).cuda()

    def run_torch():
        state = torch.zeros(MEMBERS, RESERVOIR_UNITS, 1, device="cuda")
        out = torch.empty(T, MEMBERS, RESERVOIR_UNITS, device="cuda")
        with torch.no_grad():
            for t in range(T):
                pre = torch.bmm(W, state) + Win * u_gpu[t] + b
                state = (1 - lr) * state + lr * torch.tanh(pre)
                out[t] = state[:, :, 0]
        result = out.cpu().numpy()
        torch.cuda.synchronize()
        return result

    checked = min(T, 100)  # near the edge of stability: compare before rounding grows
    np.testing.assert_allclose(run_ensemble(nets, u, device="cuda").states[:checked],
                               run_torch()[:checked], rtol=1e-3, atol=1e-3)
    row = {"cell": "esn ensemble", "members": MEMBERS, "N": RESERVOIR_UNITS, "k": 1, "T": T,
           "rnnsim_us": median_seconds(lambda: run_ensemble(nets, u, device="cuda"), 3) / T * 1e6,
           "torch_bmm_us": median_seconds(run_torch, 3) / T * 1e6}
    row["ratio"] = row["torch_bmm_us"] / row["rnnsim_us"]
    weight_bytes = MEMBERS * RESERVOIR_UNITS * RESERVOIR_UNITS * 4
    row["weight_GBs"] = weight_bytes / (row["rnnsim_us"] * 1e-6) / 1e9
    row["of_peak"] = row["weight_GBs"] / gpu["peak_bandwidth_GBs"]
    return row


def main() -> None:
    args = parse_args(__doc__)
    try:
        import torch
        from rnnsim.device import require_cuda

        cuda = require_cuda()
        from numba.cuda.cudadrv.driver import CudaAPIError
    except (ImportError, rnnsim.RnnsimError) as exc:
        raise SystemExit(f"bench_cuda needs an NVIDIA GPU, rnnsim[cuda] and torch: {exc}")
    if not torch.cuda.is_available():
        raise SystemExit("bench_cuda needs a CUDA build of torch (torch.cuda.is_available()).")
    T = 100 if args.quick else 1000
    gpu = gpu_description(cuda)
    print(f"{gpu['gpu']}, {gpu['multiprocessors']} SMs, peak {gpu['peak_bandwidth_GBs']} GB/s; "
          f"torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()}), float32, k={K}")
    print(f"{'cell':>4} {'B':>5} {'p':>5} {'T':>5} {'rnnsim':>10} {'torch':>10} "
          f"{'resident':>10} {'ratio':>6}   (µs per step; ratio = torch / rnnsim)")
    rows = []
    for mode in MODES:
        for B in BATCHES:
            for p in UNITS:
                start = time.perf_counter()
                row = cell_row(torch, CudaAPIError, mode, B, p, T)
                rows.append(row)
                if "error" in row:
                    print(f"{mode:>4} {B:>5} {p:>5} {T:>5}  {row['error']}", flush=True)
                    continue
                print(f"{mode:>4} {B:>5} {p:>5} {T:>5} {row['rnnsim_us']:10.2f} "
                      f"{row['torch_us']:10.2f} {row['torch_resident_us']:10.2f} "
                      f"{row['ratio']:6.2f}   ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    row = ensemble_row(torch, gpu, T)
    rows.append(row)
    print(f"esn ensemble: {MEMBERS} x N={RESERVOIR_UNITS}, T={T}: rnnsim "
          f"{row['rnnsim_us']:.2f} µs/step, torch bmm loop {row['torch_bmm_us']:.2f} "
          f"(ratio {row['ratio']:.2f}); W read at {row['weight_GBs']:.0f} GB/s = "
          f"{row['of_peak']:.0%} of peak")
    if args.json:
        args.json.write_text(json.dumps({**gpu, "torch": torch.__version__, "T": T,
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
