"""`rnnsim bench`: the CPU benchmark matrix, rnnsim against every installed peer.

Each row (cell, dtype, B, k, p, T) builds one seeded rnnsim network and, from the same
weights, the peers that are installed and support it: PyTorch (``torch.nn.RNN/LSTM/GRU``),
ONNX Runtime (a one-node ``RNN/LSTM/GRU`` model) and, for echo-state rows, reservoirpy. All
run in this process with the same threads (numba's, ``torch.set_num_threads``, ONNX Runtime's
``intra_op_num_threads``) on the same input. Outputs are first checked to agree (on the first
steps: chaotic dynamics amplify rounding over long sequences), then every candidate is timed
in interleaved rounds, rnnsim with and without ``fast_math``; a round's candidates are
separated by a short pause so that another library's spinning threads go idle. Results are
µs per step (median of the rounds), peer / rnnsim ratios (> 1: rnnsim faster) and rnnsim's
GFLOP/s (2 B G p (k + p) per step, G gates) against the GEMM peak of this machine measured
with numpy at the start (the best of one thread and as many as rnnsim's kernels use:
``gemm_peak``). An echo-state row also gives the GB/s that its sparse kernel streams
(``reservoir_bytes`` per step) against the read bandwidth of a plain sum over as many bytes,
measured in this process just before the row (``read_bandwidth``): the sparse kernel is bound
by memory and load instructions, not by multiply-adds.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cells.base import thread_count
from .errors import ConfigError
from .plugins import get_plugins

# (B, k, p, T): the rows of the matrix for each recurrent cell
SHAPES = [(1, 8, 16, 4000), (1, 8, 64, 4000), (1, 32, 256, 1000), (32, 32, 128, 300),
          (64, 128, 512, 40)]
# echo-state rows against reservoirpy: (N, connectivity, T), k = 1, B = 1, CSR weights
ESN_SHAPES = [(100, 0.1, 4000), (1000, 0.1, 2000), (10_000, 0.01, 500)]
CELLS = ("elman", "lstm", "gru", "esn")
PAUSE_S = 0.01  # between two candidates of a round
READ_BYTES = 1 << 24  # read by one timing of read_bandwidth
CHECK_STEPS = 50
TOLERANCE = {"float32": {"rtol": 1e-3, "atol": 1e-4}, "float64": {"rtol": 1e-9, "atol": 1e-10}}


@dataclass
class Row:
    """One line of the matrix and its measurements (µs per step)."""

    cell: str
    dtype: str
    B: int
    k: int
    p: int
    T: int
    connectivity: float | None = None
    us: dict[str, float] = field(default_factory=dict)
    agree: dict[str, float] = field(default_factory=dict)  # max |peer - rnnsim| on the check
    nbytes: int | None = None  # echo-state rows: bytes one step streams (reservoir_bytes)
    read_gbs: float | None = None  # and a plain sum's GB/s over as many (read_bandwidth)

    @property
    def flops(self) -> float:
        """Floating-point operations of one step (the recurrent cells' matmuls; a sparse
        reservoir's nonzeros)."""
        recurrent = self.p * self.p * (self.connectivity or 1.0)
        cell = get_plugins().cells.get(self.cell, "bench.cells").cls
        return 2.0 * self.B * cell.gate_count() * (self.p * self.k + recurrent)

    @property
    def gbs(self) -> float | None:
        """GB/s that rnnsim's faster mode streams (echo-state rows; None for the others)."""
        if self.nbytes is None:
            return None
        return self.nbytes / (min(self.us["rnnsim"], self.us["rnnsim_fast"]) * 1e-6) / 1e9

    def ratio(self, peer: str, ours: str = "rnnsim") -> float | None:
        if peer not in self.us or ours not in self.us:
            return None
        return self.us[peer] / self.us[ours]


def gemm_peak(dtype: str, n: int = 1024, repeats: int = 7) -> float:
    """GFLOP/s of numpy's matrix product of two n x n matrices: the best of ``repeats``
    rounds, which alternate BLAS between as many threads as the kernels use
    (``thread_count()``) and one thread, whatever limit the environment set.

    One setting alone misjudged the peak: on a busy machine a multithreaded product waits for its
    slowest thread and came out slower than one thread, so rnnsim showed "209%" of it; a BLAS
    limited to one thread (``OPENBLAS_NUM_THREADS=1``) measured one core against rnnsim's threads.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    counts = sorted({thread_count(), 1}, reverse=True)
    best = math.inf
    for i in range(repeats):
        with threadpool_limits(limits=counts[i % len(counts)], user_api="blas"):
            if i < len(counts):
                a @ b  # the first product on these threads starts them
            best = min(best, _seconds(lambda: a @ b))
    return 2 * n**3 / best / 1e9


def reservoir_bytes(units: int, nnz: int, dtype: str) -> int:
    """Bytes that one step of the sparse esn kernel reads and writes for one sequence: each
    nonzero's value and column (uint16 up to 65,536 units, else uint32), the int64 row
    offsets, and the input projection, previous state and new state (N values each)."""
    from .cells.esn import UINT16_UNITS

    itemsize = np.dtype(dtype).itemsize
    index = 2 if units <= UINT16_UNITS else 4
    return nnz * (itemsize + index) + (units + 1) * 8 + 3 * units * itemsize


def read_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """GB/s of a plain sum over a float64 buffer of ``nbytes``, read over and over (at least
    ``READ_BYTES`` per timing): the fastest of ``repeats`` rounds, which alternate one thread
    (no parallel region, whose start waits for a descheduled pool thread on a busy machine)
    and as many threads as the kernels use. A buffer of a reservoir's size stays in the
    cache level the reservoir does."""
    from .kernels.cpu.bandwidth import chunk_sum, read_sum

    buf = np.ones(max(nbytes // 8, 1))
    passes = max(1, READ_BYTES // buf.nbytes)
    sums = [functools.partial(chunk_sum, buf, 0, buf.size, passes)]
    if thread_count() > 1:
        sums.append(functools.partial(read_sum, buf, passes, thread_count()))
    for fn in sums:
        fn()  # compiles (or loads) the kernels, starts the threads
    best = min(_seconds(sums[i % len(sums)]) for i in range(max(repeats, len(sums))))
    return buf.nbytes * passes / best / 1e9


def _seconds(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def network(row: Row):
    """The seeded rnnsim network of a row (recurrent cells: nonzero biases)."""
    import rnnsim

    if row.cell == "esn":
        from .builtins.reservoir import input_bernoulli, sparse_random
        from .sparse import scale_spectral_radius

        rng = np.random.default_rng(row.p)
        w = scale_spectral_radius(sparse_random((row.p, row.p), rng, np.float64,
                                                row.connectivity), 0.9, "W")
        config = rnnsim.config.parse({"network": {"input_size": 1, "dtype": row.dtype,
                                                  "layers": [{"cell": "esn", "units": row.p,
                                                              "leak_rate": 0.3,
                                                              "sparse": True}]}})
        return rnnsim.Network(config, {**w.params("layers.0.W"),
                                       "layers.0.Win": input_bernoulli((row.p, 1), rng,
                                                                       np.float64),
                                       "layers.0.b": np.zeros(row.p)})
    bias = {"bias": {"name": "normal", "std": 0.1}}
    return rnnsim.Network.from_config({"network": {
        "input_size": row.k, "dtype": row.dtype, "seed": 0,
        "layers": [{"cell": row.cell, "units": row.p, "init": bias}]}})


def first_layer(net) -> dict[str, np.ndarray]:
    return {name.split(".", 2)[2]: value for name, value in net.params.items()}


def torch_runner(net, row: Row, threads: int):
    """A function of x running ``torch.nn`` with the network's weights, or None."""
    try:
        import torch
    except ImportError:
        return None
    if row.cell == "esn":
        return None
    torch.set_num_threads(threads)
    module = {"elman": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[row.cell](
        row.k, row.p).to(getattr(torch, row.dtype)).eval()
    params = first_layer(net)
    recurrent_bias = np.zeros_like(params["b"])
    if row.cell == "gru":
        recurrent_bias[2 * row.p:] = params["bn"]
    state = {"weight_ih_l0": params["W"], "weight_hh_l0": params["U"], "bias_ih_l0": params["b"],
             "bias_hh_l0": recurrent_bias}
    module.load_state_dict({name: torch.from_numpy(np.ascontiguousarray(value))
                            for name, value in state.items()})
    def run(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x))[0].numpy()

    return run


ONNX_ORDER = {"elman": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}  # rnnsim gates -> ONNX's


def onnxruntime_runner(net, row: Row, threads: int):
    """A function of x running a one-node ONNX model in ONNX Runtime, or None."""
    session = onnx_session(net, row, threads)
    if session is None:
        return None
    return lambda x: session.run(None, {"X": x})[0][:, 0]


def onnx_model(net, row: Row, states: bool = False):
    """A one-node RNN/LSTM/GRU ``onnx.ModelProto`` with the network's weights, or None (no
    onnx package, an esn row). With ``states`` the model also takes ``initial_h`` (and
    ``initial_c``) and returns ``Y_h`` (and ``Y_c``): one step from a state, the way an
    application streams through an ONNX session."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    if row.cell == "esn":
        return None
    params, p = first_layer(net), row.p

    def onnx_order(a):
        return np.concatenate([a[g * p:(g + 1) * p] for g in ONNX_ORDER[row.cell]])

    recurrent_bias = np.zeros(len(ONNX_ORDER[row.cell]) * p, row.dtype)
    if row.cell == "gru":
        recurrent_bias[2 * p:] = params["bn"]
    weights = {"W": onnx_order(params["W"])[None], "R": onnx_order(params["U"])[None],
               "B": np.concatenate([onnx_order(params["b"]), recurrent_bias])[None]}
    attributes = {"hidden_size": p}
    if row.cell == "gru":
        attributes["linear_before_reset"] = 1
    op = {"elman": "RNN", "lstm": "LSTM", "gru": "GRU"}[row.cell]
    element = TensorProto.FLOAT if row.dtype == "float32" else TensorProto.DOUBLE
    names = ["initial_h", "initial_c"][:2 if row.cell == "lstm" else 1] if states else []
    inputs = [helper.make_tensor_value_info("X", element, [None, None, row.k])]
    inputs += [helper.make_tensor_value_info(name, element, [1, None, p]) for name in names]
    outputs = ["Y"] + [name.replace("initial_", "Y_") for name in names]
    node = helper.make_node(op, ["X", "W", "R", "B", ""][:5 if names else 4] + names,
                            outputs, **attributes)
    graph = helper.make_graph(
        [node], "bench", inputs,
        [helper.make_tensor_value_info(name, element, None) for name in outputs],
        [numpy_helper.from_array(np.ascontiguousarray(v), name) for name, v in weights.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def onnx_session(net, row: Row, threads: int, states: bool = False):
    """An ONNX Runtime session of ``onnx_model``, or None (no ONNX Runtime, no kernel for
    the type)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    model = onnx_model(net, row, states)
    if model is None:
        return None
    names = [value.name for value in model.graph.input[1:]]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # Idle intra-op threads otherwise spin on, for seconds: the next candidate of the round
    # (any library) then runs up to 2x slower. ONNX Runtime itself loses ~10% at B = 1.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4  # a type without a kernel is reported by returning None
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
        session.run(None, {"X": np.zeros((1, 1, row.k), row.dtype),
                           **{name: np.zeros((1, 1, row.p), row.dtype) for name in names}})
    except Exception:  # no kernel for this type (ONNX Runtime's CPU RNNs are float32 only)
        return None
    return session


def reservoirpy_runner(net, row: Row, threads: int):
    """A function of x running reservoirpy's Reservoir with the network's weights, or None."""
    if row.cell != "esn" or row.dtype != "float64" or row.B != 1:
        return None
    try:
        from reservoirpy.nodes import Reservoir
    except ImportError:
        return None
    from .sparse import CSR

    params = first_layer(net)
    w = CSR.from_params(params, "W", (row.p, row.p))
    node = Reservoir(W=w.to_scipy().tocsr(), Win=params["Win"], bias=params["b"], lr=0.3,
                     activation="tanh", input_dim=1)
    return lambda x: node.run(x[:, 0])[:, None]  # from zero, then on from the last state


PEERS = {"torch": torch_runner, "onnxruntime": onnxruntime_runner,
         "reservoirpy": reservoirpy_runner}
# The modules each peer needs; a peer without them gets a column of '-'.
PEER_MODULES = {"torch": ("torch",), "onnxruntime": ("onnxruntime", "onnx"),
                "reservoirpy": ("reservoirpy",)}


def missing_peers() -> list[str]:
    """The peers whose packages are not installed."""
    return [peer for peer, modules in PEER_MODULES.items()
            if any(importlib.util.find_spec(module) is None for module in modules)]


def missing_note(missing: list[str]) -> str | None:
    """A line saying which peers are not installed and how to install them; None if none."""
    if not missing:
        return None
    return (f"not installed: {', '.join(missing)} (their columns show '-'); pip install "
            "'rnnsim[bench]' installs every peer (make bench pins torch==2.13.0, a CPU build)")


def versions() -> dict[str, str]:
    """Versions of rnnsim, numba, numpy and every installed peer."""
    from . import distributions

    found = {package: distributions.version(package)
             for package in ("rnnsim", "numba", "numpy", "torch", "onnxruntime", "reservoirpy")}
    return {package: version for package, version in found.items() if version is not None}


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": thread_count(),
            "python": platform.python_version(), "system": platform.system()}


def rows_of(cells, dtypes, quick: bool) -> list[Row]:
    """The matrix: every shape of every cell in every dtype (T / 10 with ``quick``)."""
    rows = []
    for cell in cells:
        for dtype in dtypes:
            if cell == "esn":
                rows += [Row(cell, dtype, 1, 1, n, max(T // 10, 20) if quick else T, density)
                         for n, density, T in ESN_SHAPES]
            else:
                rows += [Row(cell, dtype, B, k, p, max(T // 10, 20) if quick else T)
                         for B, k, p, T in SHAPES]
    return rows


def measure(row: Row, repeats: int, peers: dict[str, Callable] = PEERS) -> Row:
    """Check that the peers agree with rnnsim on the first steps, then time every candidate
    in ``repeats`` interleaved rounds; fills ``row.us`` and ``row.agree``."""
    threads = thread_count()
    net = network(row)
    x = np.random.default_rng(0).standard_normal((row.T, row.B, row.k)).astype(row.dtype)
    if row.cell == "esn":
        x = np.random.default_rng(0).uniform(-1, 1, (row.T, row.B, row.k)).astype(row.dtype)
    check = x[:CHECK_STEPS]
    expected = net.run(check).output
    candidates = {}
    for name, build in peers.items():
        runner = build(net, row, threads)
        if runner is None:
            continue
        got = runner(check)  # the first call: reservoirpy starts from zero
        np.testing.assert_allclose(got, expected, **TOLERANCE[row.dtype],
                                   err_msg=f"{name} disagrees with rnnsim on {row}")
        row.agree[name] = float(np.max(np.abs(got - expected)))
        candidates[name] = functools.partial(runner, x)
    fast = network(row)
    fast.params = net.params
    fast.fast_math = True
    candidates = {"rnnsim": lambda: net.run(x), "rnnsim_fast": lambda: fast.run(x),
                  **candidates}
    times = {name: [] for name in candidates}
    for fn in candidates.values():
        fn()
    for _ in range(repeats):
        for name, fn in candidates.items():
            time.sleep(PAUSE_S)
            times[name].append(_seconds(fn))
    row.us = {name: statistics.median(t) / row.T * 1e6 for name, t in times.items()}
    if row.cell == "esn":
        row.nbytes = reservoir_bytes(row.p, net.params["layers.0.W.data"].size, row.dtype)
        row.read_gbs = read_bandwidth(row.nbytes)
    return row


COLD = """
import time
start = time.perf_counter()
import numpy as np, rnnsim
imported = time.perf_counter()
net = rnnsim.Network.from_config({{"network": {{"input_size": 8, "layers": [
    {{"cell": "{cell}", "units": 16}}]}}}})
net.run(np.zeros((20, {batch}, 8), np.float32))
print(imported - start, time.perf_counter() - imported)
"""


def cold_start(cells=("elman", "lstm", "gru")) -> list[dict]:
    """Seconds to import rnnsim and for the first ``net.run`` in a fresh process, with empty
    kernel caches (compiling) and then with the caches it left (loading)."""
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, RNNSIM_CACHE_DIR=cache, NUMBA_CACHE_DIR=cache)
        for cell in cells:
            for label in ("empty cache", "warm cache"):
                code = COLD.format(cell=cell, batch=4)
                result = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                        capture_output=True, text=True)
                import_s, first_run_s = map(float, result.stdout.split())
                out.append({"cell": cell, "cache": label, "import_s": import_s,
                            "first_run_s": first_run_s})
    return out


def import_peers() -> None:
    """Import the installed peers before rnnsim runs anything: PyTorch imported after numba's
    OpenMP threading layer started runs its threaded CPU operations ~100x slower."""
    for name in ("torch", "onnxruntime", "reservoirpy"):
        try:
            __import__(name)
        except ImportError:
            pass


def run_matrix(cells=CELLS, dtypes=("float32", "float64"), quick=False, repeats=None,
               progress: Callable[[str], None] | None = None) -> dict:
    """Measure the matrix; returns the machine, versions, GEMM peaks and the rows."""
    unknown = [cell for cell in cells if cell not in CELLS]
    if unknown:
        raise ConfigError(f"bench: unknown cell(s) {unknown}; choose from {', '.join(CELLS)}.")
    repeats = repeats or (3 if quick else 9)
    import_peers()
    peak = {dtype: gemm_peak(dtype) for dtype in dtypes}
    results = {"machine": machine(), "versions": versions(), "repeats": repeats,
               "gemm_peak_gflops": peak, "missing_peers": missing_peers(), "rows": []}
    for row in rows_of(cells, dtypes, quick):
        measure(row, repeats)
        results["rows"].append(row)
        if progress is not None:
            progress(format_row(row, peak[row.dtype]))
    return results


def peers_in(rows) -> list[str]:
    return [name for name in PEERS if any(name in row.us for row in rows)]


HEADER = (f"{'cell':>5} {'dtype':>7} {'B':>3} {'k':>4} {'p':>5} {'T':>5} {'rnnsim':>9} "
          f"{'fast':>9} {'torch':>9} {'ratio':>6} {'ort':>9} {'ratio':>6} {'rpy':>9} "
          f"{'ratio':>6} {'GFLOP/s':>8} {'of peak':>7} {'GB/s':>6} {'of sum':>6}")


def rate(row: Row) -> float:
    """rnnsim's GFLOP/s on a row, in its faster mode."""
    return row.flops / (min(row.us["rnnsim"], row.us["rnnsim_fast"]) * 1e-6) / 1e9


def format_row(row: Row, peak: float) -> str:
    """One line of the table: µs per step, peer / rnnsim ratios, rnnsim's GFLOP/s."""
    gflops = rate(row)
    cells = [f"{row.cell:>5} {row.dtype:>7} {row.B:>3} {row.k:>4} {row.p:>5} {row.T:>5}",
             f"{row.us['rnnsim']:9.2f} {row.us['rnnsim_fast']:9.2f}"]
    for peer in PEERS:
        if peer in row.us:
            cells.append(f"{row.us[peer]:9.2f} {row.ratio(peer):6.2f}")
        else:
            cells.append(f"{'-':>9} {'-':>6}")
    cells.append(f"{gflops:8.1f} {gflops / peak:7.0%}")
    if row.gbs is None:
        cells.append(f"{'-':>6} {'-':>6}")
    else:
        cells.append(f"{row.gbs:6.1f} {row.gbs / row.read_gbs:6.0%}")
    return " ".join(cells)


def table(results: dict) -> str:
    """The whole table as text, with the machine and the GEMM peaks."""
    m = results["machine"]
    peaks = ", ".join(f"{dtype} {value:.0f} GFLOP/s"
                      for dtype, value in results["gemm_peak_gflops"].items())
    lines = [f"{m['cpu']}, {m['cores']} cores, {m['threads']} threads; numpy GEMM peak (best "
             f"of 1 and {m['threads']} BLAS threads): {peaks}",
             "µs per step (median of rounds); ratio = peer / rnnsim exact (> 1: rnnsim "
             "faster); fast = rnnsim with fast_math; GFLOP/s of rnnsim's faster mode; esn "
             "rows: GB/s its sparse kernel streams, of sum = of a plain sum's GB/s over as "
             "many bytes (measured before the row)",
             HEADER]
    lines += [format_row(row, results["gemm_peak_gflops"][row.dtype])
              for row in results["rows"]]
    above = [row for row in results["rows"]
             if rate(row) > results["gemm_peak_gflops"][row.dtype]]
    if above:
        lines.append(f"{len(above)} row(s) above 100% of the peak: the GEMM peak was measured "
                     "low (the machine was busy while it ran); rerun on an idle machine")
    note = missing_note(results.get("missing_peers", []))
    if note:
        lines.append(note)
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The table as Markdown (for benchmarks/RESULTS.md): µs per step, ratios peer / rnnsim
    for both modes, GFLOP/s and fraction of the GEMM peak."""
    peers = peers_in(results["rows"])
    head = ["cell", "dtype", "B", "k", "p", "T", "rnnsim", "fast"]
    for peer in peers:
        head += [peer, f"{peer} / rnnsim", f"{peer} / fast"]
    head += ["GFLOP/s", "of peak", "GB/s", "of sum"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    for row in results["rows"]:
        peak = results["gemm_peak_gflops"][row.dtype]
        gflops = rate(row)
        cells = [row.cell, row.dtype, row.B, row.k, row.p, row.T, f"{row.us['rnnsim']:.2f}",
                 f"{row.us['rnnsim_fast']:.2f}"]
        for peer in peers:
            if peer in row.us:
                cells += [f"{row.us[peer]:.2f}", f"{row.ratio(peer):.2f}",
                          f"{row.ratio(peer, 'rnnsim_fast'):.2f}"]
            else:
                cells += ["-", "-", "-"]
        cells += [f"{gflops:.1f}", f"{gflops / peak:.0%}"]
        cells += ["-", "-"] if row.gbs is None else [f"{row.gbs:.1f}",
                                                     f"{row.gbs / row.read_gbs:.0%}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def to_json(results: dict) -> str:
    rows = []
    for row in results["rows"]:
        data = asdict(row)
        data["flops_per_step"] = row.flops
        data["gbs"] = row.gbs
        data["ratio"] = {peer: row.ratio(peer) for peer in row.us if peer in PEERS}
        data["ratio_fast"] = {peer: row.ratio(peer, "rnnsim_fast") for peer in row.us
                              if peer in PEERS}
        rows.append(data)
    return json.dumps({**results, "rows": rows}, indent=2)


def plot(results: dict, path: Path) -> None:
    """A bar chart of µs per step per row (log scale), one bar per candidate."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("bench --plot needs matplotlib: pip install 'rnnsim[plot]'.") from None
    from .plot import save

    rows = results["rows"]
    names = ["rnnsim", "rnnsim_fast"] + peers_in(rows)
    labels = [f"{r.cell} {r.dtype[5:]}\n({r.B},{r.k},{r.p})" for r in rows]
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows)), 5))
    for i, name in enumerate(names):
        xs = [j + i * width for j, row in enumerate(rows) if name in row.us]
        ys = [row.us[name] for row in rows if name in row.us]
        ax.bar(xs, ys, width, label=name)
    ax.set_yscale("log")
    ax.set_ylabel("µs per step (lower is faster)")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))], labels, fontsize=7)
    ax.legend()
    ax.set_title(f"rnnsim vs peers, {results['machine']['threads']} threads")
    fig.tight_layout()
    try:
        save(fig, path)
    finally:
        plt.close(fig)
