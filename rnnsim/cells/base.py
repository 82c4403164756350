"""The base class of recurrent cells and helpers their ``run`` methods share."""
from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Mapping, Optional

import numpy as np
from pydantic import Field, ValidationError

from .. import device, kernels
from ..activations import BoundActivation, compile_errors
from ..config import CellOptions, LayerConfig, Spec, built_by, describe_error
from ..errors import ConfigError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor


# A call runs on one thread below this many multiply-adds: handing work to another thread
# costs tens of microseconds.
THREADED_WORK = 2_000_000
# Threads share the units of the same rows (``kernels/cpu/team.py``) when there are fewer rows
# than threads and a step does at least this many multiply-adds: a barrier per step then costs
# little, and each core streams only its share of the weights from its own cache. Decided by
# size alone, so that the same call always runs the same code. Measured with
# benchmarks/bench_team.py (2-core Zen 4, k = 32, median of 25 alternated runs): on a quiet
# machine sharing wins from ~12k (LSTM k = 8, p = 64, 18k: 1.05 -> 0.76 us a step), but in some
# processes each step's barrier waits ~0.8 us more (the same row took 1.56-1.60 us in `rnnsim
# bench` and bench_onnx; in such processes both threads were seen on one CPU at times). From
# ~50k a one-thread step is long enough (> 2.5 us) that sharing does not lose even then.
TEAM_STEP_WORK = 50_000
# With more rows, the threads still share the units once a batch row's weights (multiply-adds
# per row and step) outgrow the caches: each thread then reads half of them per step instead of
# all of them for its rows.
TEAM_ROW_WORK = 1 << 20
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)


def run_rows(kernel, batch: int, steps: int, step_work: float, *args) -> None:
    """Run ``kernel(first, last, member, members, sync, *args)`` over all batch rows.

    ``step_work`` is the multiply-adds of one step. The rows are split into one chunk per thread
    (``thread_count``), or, with fewer rows than threads or a row's weights beyond the caches, all
    threads run all rows, each on its share of the units (``team``; see ``TEAM_STEP_WORK``,
    ``TEAM_ROW_WORK``); below ``THREADED_WORK`` one call does it all. The kernels release the GIL,
    so the calls run in parallel on a pool of threads (one of them the calling thread), each
    through the whole sequence. This takes the place of numba's ``prange``: a parallel variant of a
    kernel compiles 2-3 times slower than the serial one, and plain threads spin on no core when
    idle.
    """
    threads = thread_count()
    sync = np.zeros(8, np.int64)
    if threads < 2 or steps * step_work < THREADED_WORK:
        kernel(0, batch, 0, 1, sync, *args)
        return
    few = batch < threads
    team = (few or step_work / batch >= TEAM_ROW_WORK) and step_work >= TEAM_STEP_WORK
    if few and not team:
        kernel(0, batch, 0, 1, sync, *args)
        return
    if team:
        calls = [(0, batch, member, threads) for member in range(threads)]
    else:
        size = -(-batch // threads)
        from ..kernels.cpu import tiles

        if batch >= threads * tiles.ROWS:  # whole tiles of rows per thread
            size = -(-size // tiles.ROWS) * tiles.ROWS
        calls = [(first, min(batch, first + size), 0, 1) for first in range(0, batch, size)]
    pool = _thread_pool(len(calls) - 1)
    futures = [pool.submit(kernel, *call, sync, *args) for call in calls[1:]]
    kernel(*calls[0], sync, *args)
    for future in futures:
        future.result()


def thread_count() -> int:
    """Threads the kernels may use: numba's setting (``numba.set_num_threads``).

    Read without starting numba's threading layer while nothing has started it (then nobody
    has set it either): numba's OpenMP layer started before PyTorch is imported makes
    PyTorch's multithreaded CPU operations about 100 times slower (docs/performance.md).
    """
    import numba
    import numba.np.ufunc.parallel as numba_parallel

    if not getattr(numba_parallel, "_is_initialized", True):
        return numba.config.NUMBA_NUM_THREADS
    return numba.get_num_threads()


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, made anew after a fork (threads do not survive one)."""
    global _pool
    if _pool is None or _pool[:2] != (os.getpid(), workers):
        from concurrent.futures import ThreadPoolExecutor  # with the first threaded run

        _pool = (os.getpid(), workers, ThreadPoolExecutor(workers))
    return _pool[2]


class ClipOptions(CellOptions):
    """The ``clip`` key of cells that clip their pre-activations (as ONNX's ``clip``)."""

    clip: Optional[float] = Field(default=None, gt=0, description="clip pre-activations to "
                                  "[-clip, clip] (ONNX)")


class GateOptions(CellOptions):
    """The ``gate_activation`` key of gated cells."""

    gate_activation: Optional[Spec] = Field(default=None, description="the gates' activation "
                                            "(default sigmoid)")


class Cell:
    """One layer: ``units`` (p) hidden units, run over however many timesteps the input has."""

    name = ""
    template = ""
    equation = ""
    symbols: dict[str, str] = {}
    # Config keys naming this cell's activations, with their defaults, in kernel order.
    activation_slots: dict[str, str] = {"activation": "tanh"}
    # The cell's own layer keys (a ``config.CellOptions`` subclass); every other key is an error.
    Options: type[CellOptions] = CellOptions
    # Outputs of the head fed back into this layer (esn ``feedback``); None: none.
    feedback_size: int | None = None
    # Whether the layer is a reservoir (echo-state analyses and ridge readouts apply).
    reservoir = False
    # One letter per gate block of the stacked W/U rows, in kernel order ("" for one block).
    gate_labels = ""
    # The kernels/cuda/ template of ``run_cuda``; None: the cell runs on the CPU only.
    cuda_template = None
    # The dynamics map of one direction (a ``cells.maps.LayerMap``); None: no analysis.
    map_class = None
    # Use the activations' fast variants in the kernels (set by the network: fast_math).
    fast_math = False

    def __init__(self, config: LayerConfig, input_size: int, activations: list[BoundActivation],
                 where: str = "layer", options: CellOptions | None = None):
        self.options = self.parse_options(config, where) if options is None else options
        self.config = config
        self.units = config.units
        self.input_size = input_size
        self.activations = activations
        self.directions = 2 if config.bidirectional else 1
        self.output_size = self.directions * self.hidden_size
        self._packed: dict[str, tuple] = {}

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Parameter-name suffix of each direction: '' forward, '_reverse' reverse."""
        return ("", "_reverse")[: self.directions]

    def kernels(self):
        """The compiled kernel module for this cell's activations: their fast variants with
        ``fast_math``, else their vectorised forms, where they have them."""
        return kernels.build(self.template, [
            (a.entry.fast if self.fast_math else a.entry.vectorised) or a.entry.fn
            for a in self.activations])

    def packed(self, key: str, matrices: tuple[np.ndarray, np.ndarray], gates: int,
               vectors: int) -> np.ndarray:
        """[W U] of ``matrices`` (gates*p rows each) in the kernels' packed form
        (``kernels/cpu/tiles.py``).

        The packed form is kept under ``key`` with a copy of the matrices it was made from;
        each call compares the matrices with that copy (one vectorised pass, no packing) and
        packs them again where they differ, so weights edited in place are always picked up.
        Read-only matrices (``a.flags.writeable = False``, all the way to the array owning the
        memory) seen before at the same address skip the comparison: they cannot have changed.
        """
        from ..kernels.cpu import tiles  # numba, on first run

        W, U = (np.ascontiguousarray(m) for m in matrices)
        marks = (read_only_mark(W), read_only_mark(U))
        entry = self._packed.get(key)
        if entry is not None and None not in marks and entry[3] == marks:
            return entry[0]
        shape = tiles.packed_shape(U.shape[0], W.shape[1] + U.shape[1], gates, vectors, U.dtype)
        if entry is None or entry[0].shape != shape or entry[0].dtype != U.dtype or \
                entry[1].shape != W.shape:
            entry = (tiles.empty_packed(shape, U.dtype), W.copy(), U.copy())
            tiles.pack(W, U, entry[0], gates)
        elif not (tiles.same(W, entry[1]) and tiles.same(U, entry[2])):
            np.copyto(entry[1], W)
            np.copyto(entry[2], U)
            tiles.pack(W, U, entry[0], gates)
        # the marks name the owners by id: keep the owners alive so no id is reused
        self._packed[key] = entry[:3] + (marks, (W, U))
        return entry[0]

    @classmethod
    def gate_count(cls) -> int:
        """Blocks of ``units`` rows stacked in W and U (1 for a cell without gates)."""
        return max(1, len(cls.gate_labels))

    def parameter_shapes(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Each parameter's name mapped to (initializer role, shape): ``gate_shapes`` of every
        direction; a cell with more parameters adds them."""
        return {name: shape for suffix in self.suffixes
                for name, shape in self.gate_shapes(suffix).items()}

    def gate_shapes(self, suffix: str) -> dict[str, tuple[str, tuple[int, ...]]]:
        """One direction's stacked weights: W (G p, k), U (G p, hidden_size) and, with
        ``bias``, b (G p,), G = ``gate_count()`` blocks of ``units`` rows."""
        rows = self.gate_count() * self.units
        shapes = {"W" + suffix: ("input", (rows, self.input_size)),
                  "U" + suffix: ("recurrent", (rows, self.hidden_size))}
        if self.config.bias:
            shapes["b" + suffix] = ("bias", (rows,))
        return shapes

    @property
    def hidden_size(self) -> int:
        """Width of the hidden state h_t, the layer's output per direction."""
        return self.units

    def state_sizes(self) -> dict[str, int]:
        """The cell's states, name -> width per direction, in order: the first is the one the
        layer outputs (``h``); an LSTM adds its cell state ``c``, a spiking cell might add a
        membrane and a refractory counter. ``State`` and ``RunResult`` carry them all."""
        return {"h": self.hidden_size}

    @property
    def cell_size(self) -> int | None:
        """Width of the second state (an LSTM's c_t), or None for a cell with one state."""
        sizes = list(self.state_sizes().values())
        return sizes[1] if len(sizes) > 1 else None

    def zero_states(self, batch: int, dtype) -> dict[str, np.ndarray]:
        """Every state as zeros (D, batch, width)."""
        return {name: np.zeros((self.directions, batch, width), dtype)
                for name, width in self.state_sizes().items()}

    def run(self, params: dict, x: np.ndarray, states: dict[str, np.ndarray],
            lengths: np.ndarray | None = None):
        """Run all directions on ``x`` (T, B, k) from ``states`` (name -> (D, B, width), as
        ``state_sizes``).

        ``lengths`` (B,) int64 are the steps of each sequence (None: all T); outputs past a
        sequence's end are zero and its state stays as it was at its last step. Each
        direction's ``run_direction`` receives its states by name (``h`` (B, hidden_size),
        ``c``...), which it overwrites with the final ones.
        Returns ``(output (T, B, D*hidden_size), final states by name)``.
        """
        T, B = x.shape[:2]
        if lengths is None:
            lengths = np.full(B, T, np.int64)
        states = {name: value.copy() for name, value in states.items()}
        outs = []
        with compile_errors(self.activations):
            for d, suffix in enumerate(self.suffixes):
                outs.append(self.run_direction(params, suffix, x, lengths=lengths,
                                               reverse=d == 1,
                                               **{n: s[d] for n, s in states.items()}))
        output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=-1)
        return output, states

    def run_direction(self, params, suffix, x, h, lengths, reverse, **states):
        """One direction over ``x`` (T, B, k): the states arrive by name (``h`` (B, width)...)
        and are overwritten with the final ones. Returns the output (T, B, hidden_size).

        The default runs ``forward_call``'s kernel over the batch rows (``run_rows``)."""
        out = np.empty(x.shape[:2] + (self.hidden_size,), x.dtype)
        call = self.forward_call(params, suffix, x, lengths, reverse, out, h=h, **states)
        if call is None:
            raise NotImplementedError(f"cell '{self.name}' defines neither run_direction nor "
                                      "forward_call")
        kernel, step_work, args = call
        run_rows(kernel, x.shape[1], x.shape[0], step_work, *args)
        return out

    def forward_call(self, params, suffix, x, lengths, reverse, out, **states):
        """The kernel call of one direction over ``x`` (T, B, k) into ``out`` (T, B,
        hidden_size), for a kernel that ``run_rows`` runs: ``(kernel, multiply-adds of one
        step, arguments after run_rows's own)``. None (the default): the cell's
        ``run_direction`` calls its kernels itself."""
        return None

    def step_ops(self, params: dict, x: np.ndarray, states: dict[str, np.ndarray],
                 out: np.ndarray) -> list[tuple]:
        """The calls of one step of a forward layer, bound once by ``Network.stepper``.

        x : (1, B, k) the step's input; states : name -> (1, B, width), updated in place;
        out : (1, B, hidden_size) receives the output; params : the layer's, by short name.
        Returns ``[(fn, args)]`` run in order: a numba kernel runs inside the compiled step,
        any other callable from Python, each with the stepper's copies of the arrays in
        ``args`` (the same object, or views of one array, stay one array). The default calls
        ``forward_call``'s kernel when the cell has one, else ``run`` from Python.
        """
        B = x.shape[1]
        call = self.forward_call(params, "", x, np.ones(B, np.int64), False, out,
                                 **{name: state[0] for name, state in states.items()})
        if call is not None:
            kernel, _, args = call
            return [(kernel, (0, B, 0, 1, np.zeros(8, np.int64)) + tuple(args))]
        names = list(states)

        def step(x, out, *values):
            output, finals = self.run(params, x, dict(zip(names, values)))
            out[...] = output
            for name, value in zip(names, values):
                value[...] = finals[name]

        return [(step, (x, out, *states.values()))]

    def recurrent_matrices(self, params: dict) -> dict:
        """The square matrices of the recurrence by label, float64 (dense, or ``sparse.CSR``):
        each gate's block of U (``U_i``, ...; ``U`` without gates), ' (reverse)' appended for a
        reverse direction. What an eigenvalue plot shows."""
        matrices = {}
        for suffix, label in zip(self.suffixes, ("", " (reverse)")):
            u = np.asarray(params["U" + suffix], np.float64)
            for gate, block in zip(self.gate_labels or " ", np.split(u, self.gate_count())):
                name = f"U_{gate}" if gate.strip() else "U"
                matrices[name + label] = self.square(block, params, suffix)
        return matrices

    def square(self, block: np.ndarray, params: dict, suffix: str) -> np.ndarray:
        """A gate's block of U made square (a cell with a projection multiplies it in)."""
        return block

    def attach(self, head, top: bool, device: str, where: str) -> list[str]:
        """Connect the layer to the network's ``head`` once both are built (``top``: the layer
        the head reads); the config problems found, each with its key path."""
        return []

    def chunk_problems(self, where: str) -> list[str]:
        """Why runs of consecutive chunks of steps would not continue one run (a run streamed
        to disk), each with its key path; none for a cell whose state carries everything."""
        return []

    def cuda_row_values(self) -> int:
        """Values of GPU shared memory each batch row of a block needs (its state, and what a
        second phase of the step gathers from every unit)."""
        return self.hidden_size

    def run_cuda(self, run, params: dict, suffix: str, h):
        """One direction on the GPU (``device.CudaRun`` ``run``); like ``run_direction``, the
        states arrive by name and are overwritten with the final ones. Returns the output.

        The default fits a cell whose one state h is its output: it launches the template's
        first kernel as ``kernel(xp, Ut, h, out, lengths, steps, reverse, clip,
        units_per_block, stage, *activation parameters)``, Ut (G, p, p) the G gate blocks
        of U transposed (``device.transposed``), staged in shared memory when they fit."""
        p, gates = self.units, self.gate_count()
        per_block = run.plan.units_per_block(p)
        stage, shared = run.stage(gates * p * per_block)
        Ut = run.weights("U" + suffix, (params["U" + suffix],),
                         lambda U: device.transposed(U, gates))
        h_dev = run.upload(h)
        clip = self.clip(run.dtype)
        out = run.recur(params, suffix, p, run.module.KERNELS[0], shared,
                        lambda xp, out, lengths, steps: (xp, Ut, h_dev, out, lengths, steps,
                                                         run.reverse, clip, per_block, stage,
                                                         *run.args))
        h_dev.copy_to_host(h)
        return out

    @classmethod
    def parse_options(cls, config: LayerConfig | Mapping, where: str = "layer",
                      cells=None) -> CellOptions:
        """The layer's keys beyond every layer's (``config.model_extra``, or a mapping of them)
        checked against ``Options``; a ConfigError lists every problem with its key path.
        ``cells`` (the registry) lets a stray key name the cells it is an option of."""
        given = config if isinstance(config, Mapping) else (config.model_extra or {})
        entry = cells.entries.get(cls.name) if cells is not None else None
        owner = f"cell '{cls.name}'" + (f" (plugin '{entry.source.plugin}')" if entry else "")
        with built_by(cls.Options, owner):
            try:
                return cls.Options.model_validate(dict(given))
            except ValidationError as exc:
                raise ConfigError("\n".join(cls._option_problem(error, where, cells)
                                             for error in exc.errors())) from None

    @classmethod
    def _option_problem(cls, error: dict, where: str, cells) -> str:
        allowed = list(LayerConfig.model_fields) + list(cls.Options.model_fields)
        key = error["loc"][0] if error["loc"] else ""
        if error["type"] != "extra_forbidden" or len(error["loc"]) != 1:
            return describe_error(error, (where,), allowed)
        owners = [e.cls.name for e in (cells.entries.values() if cells is not None else ())
                  if key in e.cls.Options.model_fields]
        if owners:
            return (f"{where}.{key}: not an option of cell '{cls.name}' (it is one of cell "
                    f"{', '.join(repr(o) for o in owners)}). Remove it, or pick that cell.")
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        own = ", ".join(cls.Options.model_fields) or "none"
        return (f"{where}.{key}: unknown key{hint}; not an option of cell '{cls.name}'. Its "
                f"options: {own}; every layer also takes {', '.join(LayerConfig.model_fields)}.")

    def clip(self, dtype) -> float:
        """The kernels' clip threshold in ``dtype`` (np.inf: none)."""
        clip = getattr(self.options, "clip", None)
        return dtype.type(np.inf if clip is None else clip)


def read_only_mark(a: np.ndarray) -> tuple | None:
    """(owner's id, address, shape, strides, dtype) of an array whose memory nothing can
    write (it and every array it views are read-only, down to an owning array or ``bytes``),
    else None."""
    owner = a
    while isinstance(owner, np.ndarray):
        if owner.flags.writeable:
            return None
        if owner.base is None:
            break
        owner = owner.base
    if not isinstance(owner, (np.ndarray, bytes)):
        return None
    return id(owner), a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str


def project_into(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, out: np.ndarray) -> None:
    """``out[...] = input_projection(x, W, b)``: a step op of ``Cell.step_ops``."""
    out[...] = input_projection(x, W, b)


def input_projection(x: np.ndarray, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """W x_t + b for every step at once: one GEMM over all T*B rows, hoisted out of time.

    A single row goes through the GEMM as two: BLAS takes another (matrix-vector) path for one
    row that rounds differently, and one streamed step must give the bits of a long run.
    """
    T, B, k = x.shape
    rows = x.reshape(T * B, k)
    if T * B == 1:
        xp = (np.concatenate([rows, rows]) @ W.T)[:1]
    else:
        xp = rows @ W.T
    if b is not None:
        xp += b
    return xp.reshape(T, B, W.shape[0])
