"""Run recurrent layers on an NVIDIA GPU through numba.cuda (``device="cuda"``).

``Network`` calls :func:`run_layer` in place of ``Cell.run`` when its device is ``cuda``, and
``ensembles.run_ensemble`` calls :func:`run_members`. This module checks that a GPU is there,
compiles the layer's activations as CUDA device functions from the same plugin source as the
CPU path (``kernels.build(..., target="cuda")``), moves the arrays, picks a launch
:class:`Plan` and launches the kernels of ``kernels/cuda/``: one launch projects the inputs of
all steps (or of a chunk of steps, to bound device memory), one persistent launch per
direction runs the recurrence. ``numba.cuda`` is imported on first use only.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from . import kernels
from .activations import check_compiles, compile_errors
from .errors import ConfigError

INSTALL_HINT = "pip install 'rnnsim[cuda]'"
# Threads per block: with up to 255 registers per thread, 256 threads always fit on an SM.
MAX_THREADS = 256
# Under the simulator each thread is a Python thread: fewer of them, striding, run faster.
SIMULATED_THREADS = 16
# Dynamic shared memory per block without the opt-in that numba.cuda does not expose.
SHARED_BYTES = 48 * 1024
# Device memory for the input projections of one chunk of steps.
CHUNK_BYTES = 1 << 30

# Per layer: its weights as last uploaded, name -> (copies of the host arrays, device array).
_UPLOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def require_cuda():
    """The ``numba.cuda`` module, ready to run kernels; ConfigError saying what is missing."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise ConfigError(f"device 'cuda' needs numba's CUDA target, which cannot be imported "
                          f"({exc}); install it with `{INSTALL_HINT}`, or use device: cpu."
                          ) from None
    if not cuda.is_available():
        try:
            cuda.current_context()
            reason = "no CUDA device"
        except cuda.CudaSupportError as exc:  # "Error at driver init: \n\nCUDA driver ..."
            lines = [line.strip().rstrip(":").rstrip(".") for line in str(exc).splitlines()]
            reason = next((line for line in lines
                           if line and not line.startswith("Error at driver init")),
                          "no CUDA driver")
        raise ConfigError(f"device 'cuda': no usable NVIDIA GPU was found ({reason}). Run on "
                          f"a machine with an NVIDIA GPU and its driver, with `{INSTALL_HINT}`, "
                          "or use device: cpu (network.device in the config, --device on "
                          "the command line).")
    return cuda


def simulated() -> bool:
    """True under numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run as Python."""
    import numba

    return bool(getattr(numba.config, "ENABLE_CUDASIM", 0))


@dataclass(frozen=True)
class Plan:
    """How a recurrent kernel is launched.

    rows : batch rows each block (and each thread) computes, 1, 4 or 8 (``variants.ROW_BLOCKS``)
    unit_blocks : blocks the units of a row are spread over (> 1 needs ``grid``)
    grid : a cooperative launch whose blocks sync every step (the ``grid`` variants)
    threads : threads per block
    """

    rows: int
    unit_blocks: int
    grid: bool
    threads: int

    def variant(self, kernel: str) -> str:
        return f"{kernel}_{'grid' if self.grid else 'block'}{self.rows}"

    def units_per_block(self, units: int) -> int:
        return -(-units // self.unit_blocks)

    def blocks(self, batch: int) -> tuple[int, int]:
        return self.unit_blocks, -(-batch // self.rows)


def plan_launch(cuda, units: int, batch: int, row_bytes: int,
                shared_weights: bool = True) -> Plan:
    """The launch for ``batch`` rows of ``units`` units, each row keeping ``row_bytes`` of
    state in shared memory.

    Rows are blocked by 4 or 8 when they share their weights (a weight read serves them all)
    and their states fit in shared memory together. When the rows give fewer blocks than the
    GPU has multiprocessors, the units of each row are spread over blocks of one cooperative
    launch, at most one block per multiprocessor so that every block is resident (a grid sync
    needs that).
    """
    if row_bytes > SHARED_BYTES:
        raise ConfigError(f"a layer of {units} units keeps {row_bytes} bytes of state per "
                          f"sequence in GPU shared memory, more than the {SHARED_BYTES} a "
                          "block has; use fewer units, float32, or device: cpu.")
    rows = 1 if batch < 4 or not shared_weights else 4 if batch < 64 else 8
    while rows > 1 and rows * row_bytes > SHARED_BYTES:
        rows = 4 if rows == 8 else 1
    groups = -(-batch // rows)
    multiprocessors = 1 if simulated() else cuda.get_current_device().MULTIPROCESSOR_COUNT
    unit_blocks = 1
    if 2 * groups <= multiprocessors and units >= 128:
        unit_blocks = min(multiprocessors // groups, -(-units // 32))
        unit_blocks = -(-units // -(-units // unit_blocks))
    return Plan(rows, unit_blocks, unit_blocks > 1, _threads(-(-units // unit_blocks)))


def run_layer(layer, params: dict, x: np.ndarray, states: dict[str, np.ndarray],
              lengths: np.ndarray | None = None, *, plan: Plan | None = None):
    """``Cell.run`` on the GPU, with the same arguments and results (host arrays in and out).

    plan : the launch (default: ``plan_launch``); tests pass one to reach every variant.
    """
    if layer.cuda_template is None:
        raise ConfigError(f"cell '{layer.name}' has no CUDA kernel; run it with device: cpu.")
    cuda = require_cuda()
    T, B = x.shape[:2]
    lengths = (np.full(B, T, np.int64) if lengths is None
               else np.ascontiguousarray(lengths, dtype=np.int64))
    states = {name: value.copy() for name, value in states.items()}
    outs = []
    check_compiles(layer.activations, x.dtype)
    with compile_errors(layer.activations, x.dtype):
        module = kernels.build(layer.cuda_template, [a.entry.fn for a in layer.activations],
                               "cuda")
        for d, suffix in enumerate(layer.suffixes):
            run = CudaRun(cuda, module, layer, x, lengths, d == 1, plan)
            outs.append(layer.run_cuda(run, params, suffix,
                                       **{n: s[d] for n, s in states.items()}))
    output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
    return output, states


class CudaRun:
    """One direction of one layer: the shared steps of every cell's GPU run."""

    def __init__(self, cuda, module, layer, x, lengths, reverse, plan):
        self.cuda, self.module, self.layer = cuda, module, layer
        self.x, self.lengths, self.reverse = x, lengths, reverse
        self.dtype = x.dtype
        self.row_values = layer.cuda_row_values()
        self.plan = plan or plan_launch(cuda, layer.units, x.shape[1],
                                        self.row_values * self.dtype.itemsize)
        self.args = [a.kernel_args(x.dtype) for a in layer.activations]

    def upload(self, array: np.ndarray, dtype=None):
        return self.cuda.to_device(np.ascontiguousarray(array, dtype=dtype or self.dtype))

    def weights(self, name: str, sources, prepare=lambda array: array, dtype=None):
        """``prepare(*sources)`` on the device, kept with the layer for the next runs.

        It is uploaded again only when a source array has changed: the sources are compared
        with copies kept from the last upload (one pass over them), so weights edited in
        place are picked up, and a run does not transpose and copy unchanged weights again.
        """
        kept = _UPLOADED.setdefault(self.layer, {}).get(name)
        if kept is not None and len(kept[0]) == len(sources) and all(
                old.shape == new.shape and old.dtype == new.dtype and np.array_equal(old, new)
                for old, new in zip(kept[0], sources)):
            return kept[1]
        array = self.upload(prepare(*sources), dtype)
        _UPLOADED[self.layer][name] = (tuple(np.array(s) for s in sources), array)
        return array

    def stage(self, weight_values: int) -> tuple[bool, int]:
        """Whether the block's weights go into shared memory after its rows' states, and the
        shared bytes to ask for."""
        size, fixed = self.dtype.itemsize, self.plan.rows * self.row_values
        staged = (fixed + weight_values) * size <= SHARED_BYTES
        return staged, (fixed + (weight_values if staged else 0)) * size

    def recur(self, params, suffix, width: int, kernel: str, shared: int, args) -> np.ndarray:
        """Project the inputs chunk by chunk and run ``kernel`` over each chunk.

        params, suffix : the layer's input weights ``W<suffix>`` (G, k) and bias ``b<suffix>``;
        width : columns of the output and state; args(xp, out, lengths, steps) -> the
        kernel's arguments. Returns the output (T, B, width).
        """
        T, B, _ = self.x.shape
        W = params["W" + suffix]
        G = W.shape[0]
        steps_per_chunk = max(1, min(T, CHUNK_BYTES // (B * G * self.dtype.itemsize)))
        starts = list(range(0, T, steps_per_chunk))
        Wt = self.weights("W" + suffix, (W,), lambda W: W.T[None])
        bias = self.weights("b" + suffix, (params.get("b" + suffix, np.zeros(G, W.dtype)),),
                            lambda b: b[None])
        member = self.upload(np.zeros(B), np.int64)
        xp = self.cuda.device_array((min(T, steps_per_chunk), B, G), self.dtype)
        out = self.cuda.device_array((T, B, width), self.dtype)
        launch = getattr(self.module, self.plan.variant(kernel))
        for t0 in reversed(starts) if self.reverse else starts:
            t1 = min(T, t0 + steps_per_chunk)
            chunk = xp[:t1 - t0]
            project(self.cuda, self.upload(self.x[t0:t1]), Wt, bias, member, chunk)
            lengths = np.clip(self.lengths - t0, 0, t1 - t0)
            launch[self.plan.blocks(B), self.plan.threads, 0, shared](
                *args(chunk, out[t0:t1], self.upload(lengths, np.int64), int(lengths.max())))
        return out.copy_to_host()


def project(cuda, x, Wt, bias, member, out) -> None:
    """out[t, b] = Wt[m].T x[t, b] + bias[m] (m = member[b]) for every step: one launch."""
    T, B, _ = x.shape
    G = out.shape[2]
    rows = 8 if T >= 8 else 1
    module = kernels.build("projection", [], "cuda")
    threads = _threads(G)
    grid = (-(-G // threads), min(-(-T // rows), 65535), min(B, 65535))
    if simulated():  # each simulated thread is a Python thread: let few of them stride
        grid = (grid[0], 1, 1)
    getattr(module, f"project_block{rows}")[grid, threads](x, Wt, bias, member, out)


def _threads(items: int) -> int:
    """Threads per block for ``items`` parallel work items: whole warps of 32, at most
    MAX_THREADS (SIMULATED_THREADS under the simulator)."""
    if simulated():
        return min(items, SIMULATED_THREADS)
    return min(MAX_THREADS, -(-items // 32) * 32)


def transposed(U: np.ndarray, gates: int) -> np.ndarray:
    """U (gates*p, q) as Ut (gates, q, p) with Ut[g, j, i] = U[g*p + i, j]."""
    p = U.shape[0] // gates
    return np.ascontiguousarray(U.reshape(gates, p, -1).transpose(0, 2, 1))


def stacked_name(parameter: str, members) -> str:
    """The upload cache's name of a parameter stacked over ``members`` (layers)."""
    return parameter + "".join(f"@{id(m)}" for m in members[1:])


def run_members(first, members: list, params: list[dict], u: np.ndarray, *,
                plan: Plan | None = None) -> np.ndarray:
    """``ESNCell.run_members`` on the GPU: every member's states on ``u`` (T, k) in one
    launch, one batch row per member: (T, M, N) on the host."""
    cuda = require_cuda()
    M = len(members)
    x = np.ascontiguousarray(np.broadcast_to(u[:, None, :], (u.shape[0], M, u.shape[1])))
    member = np.arange(M, dtype=np.int64)
    check_compiles(first.activations, u.dtype)
    with compile_errors(first.activations, u.dtype):
        module = kernels.build(first.cuda_template, [a.entry.fn for a in first.activations],
                               "cuda")
        plan = plan or plan_launch(cuda, first.units, M, first.units * x.dtype.itemsize,
                                   shared_weights=False)
        run = CudaRun(cuda, module, first, x, np.full(M, len(u), np.int64), False, plan)
        z = first.cuda_projection(run, members, params, x, member)
        first.cuda_recur(run, members, params, z, np.zeros((M, first.units), u.dtype), member,
                         run.lengths)
    return z.copy_to_host()
