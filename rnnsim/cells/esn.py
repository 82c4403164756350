"""The echo-state (leaky-integrator reservoir) cell, with dense or sparse (CSR) recurrent weights
and optional output feedback."""
from __future__ import annotations

import time
import zlib
from typing import Any, Optional, Union

import numpy as np
from pydantic import Field, field_validator

from ..config import CellOptions
from ..activations import compile_errors
from ..errors import ConfigError
from ..sparse import CSR
from .. import device
from .base import Cell, input_projection, project_into, thread_count
from .maps import DENSE_MAX, LayerMap, matmul, rows

# Multiply-adds per step below which one thread runs the whole call (a parallel region costs
# a few µs to start).
PARALLEL_WORK = 32_768
# Multiply-adds of one batch row per step from which its units may be split over the threads
# when there are fewer rows than threads: that costs a fork/join per step (~1.2 µs with
# numba's OpenMP layer on an idle machine; benchmarks/RESULTS.md).
SPLIT_WORK = 65_536
# A split step is ~1.8x faster on idle cores but many times slower while other processes
# hold the cores (a step waits for a descheduled thread). So such runs go in chunks of
# ADAPT_STEPS steps, split or not, each way timed and the faster kept; the slower is timed
# again after RETIME chunks, and after twice as many each time it loses again.
ADAPT_STEPS = 16
RETIME = 16
# Many rows of one sparse reservoir run in blocks of tiles.block_rows rows (esn_batched) from
# this fraction of a block on.
BATCHED_BLOCK_FILL = 0.5
# Column indices fit in uint16 up to this many units (2 bytes per nonzero instead of 4).
UINT16_UNITS = 1 << 16


class ESNMap(LayerMap):
    """x' = (1 - lr) x + lr f(d + W x), W dense or CSR (kept sparse above ``DENSE_MAX``)."""

    def __init__(self, layer, params, suffix):
        super().__init__(layer, params, suffix)
        w = layer.recurrent_matrix(params)
        if isinstance(w, CSR):
            w = w.astype(np.float64)
            self.w = w.to_dense() if w.shape[0] <= DENSE_MAX else w
        else:
            self.w = np.asarray(w, np.float64)
        self.lr = layer.leak_rate()
        self.dense_jacobian = not isinstance(self.w, CSR)

    def drive(self, x, noise=True):
        """W_in (s u_t) + b, plus the configured noise when ``noise`` (as ``Network.run``)."""
        return self.layer.projection(self.params, np.asarray(x, np.float64)[:, None],
                                     noise)[:, 0]

    def _pre(self, s, d):
        return d + matmul(self.w, s[..., None])[..., 0]

    def __call__(self, s, d):
        return (1.0 - self.lr) * s + self.lr * self.activate(0, self._pre(s, d), slope=False)[0]

    def jvp(self, s, d, v):
        slope = self.activate(0, self._pre(s, d))[1]
        return rows(1.0 - self.lr, v) + rows(self.lr * slope, matmul(self.w, v))

    def leaky_form(self):
        return None if isinstance(self.w, CSR) else (np.ascontiguousarray(self.w),
                                                     np.ascontiguousarray(self.lr))

    def jacobian(self, s, d):
        if isinstance(self.w, CSR):
            return super().jacobian(s, d)
        slope = self.activate(0, self._pre(s, d))[1]
        return rows(self.lr * slope, self.w) + np.diag(1.0 - self.lr)


class FeedbackConfig(CellOptions):
    """Output feedback of an esn layer: the head's previous output y_{t-1} enters through W_fb
    (initialized by ``init.feedback``)."""

    scaling: Union[float, list[float]] = Field(default=1.0, description="scales y_{t-1}: one "
                                               "value or one per output")


class ESNOptions(CellOptions):
    """The esn cell's own layer keys."""

    leak_rate: Optional[Union[float, list[float]]] = Field(
        default=None, description="leak rate lr in (0, 1], one value or one per unit (default 1)")
    input_scaling: Optional[Union[float, list[float]]] = Field(
        default=None, description="scales u_t, one value or one per feature (default 1)")
    noise: Optional[float] = Field(default=None, ge=0, description="std of Gaussian noise added "
                                   "inside f (default 0)")
    noise_seed: Optional[int] = Field(default=None, ge=0, description="seed of that noise "
                                      "(default 0)")
    sparse: Optional[bool] = Field(default=None, description="store and run W in CSR form, "
                                   "never dense")
    feedback: Optional[FeedbackConfig] = Field(default=None, description="feed the head's "
                                               "output y_{t-1} back in (true: default scaling)")

    @field_validator("feedback", mode="before",
                     json_schema_input_type=Union[bool, FeedbackConfig, None])
    @classmethod
    def _feedback_flag(cls, value: Any) -> Any:
        return ({} if value else None) if isinstance(value, bool) else value


class ESNCell(Cell):
    """x_t = (1 - lr) x_{t-1} + lr f(W x_{t-1} + W_in (s * u_t) + W_fb (s_fb * y_{t-1}) + b
    + noise * xi_t).

    ``lr`` (``leak_rate``) is a scalar or one value per unit, ``s`` (``input_scaling``) a
    scalar or one value per feature, ``xi_t`` standard normal, seeded by ``noise_seed``.
    With ``sparse: true`` W is stored and run in CSR form and never made dense. With
    ``feedback`` the top layer also receives the ridge head's previous output y_{t-1}
    (y_{-1} = 0 unless a state says otherwise): the targets when fitting or with ``teacher``
    (teacher forcing), the head's own predictions otherwise, computed inside the time loop.
    The fed-back y is the layer's second state (``c`` in ``State`` and ``RunResult.final_c``).
    """

    name = "esn"
    map_class = ESNMap
    template = "esn"
    cuda_template = "esn"
    reservoir = True
    equation = "x_t = (1-lr) x_{t-1} + lr f(W x_{t-1} + W_in (s*u_t) + b)"
    symbols = {"Win": "W_in", "W": "W", "b": "b", "Wfb": "W_fb"}
    Options = ESNOptions

    def __init__(self, config, input_size, activations, where="layer", options=None):
        super().__init__(config, input_size, activations, where, options)
        options = self.options
        problems = []
        if config.bidirectional:
            problems.append(f"{where}.bidirectional: an esn layer runs forward only; remove it.")
        lr = np.asarray(1.0 if options.leak_rate is None else options.leak_rate, np.float64)
        if lr.ndim and lr.shape != (self.units,):
            problems.append(f"{where}.leak_rate: give one value or one per unit ({self.units}), "
                            f"got {lr.size}.")
        elif np.any(lr <= 0) or np.any(lr > 1):
            problems.append(f"{where}.leak_rate: every value must lie in (0, 1].")
        scale = np.asarray(1.0 if options.input_scaling is None else options.input_scaling)
        if scale.ndim and scale.shape != (input_size,):
            problems.append(f"{where}.input_scaling: give one value or one per input feature "
                            f"({input_size}), got {scale.size}.")
        if options.noise is not None and options.noise < 0:
            problems.append(f"{where}.noise: the noise std must be >= 0.")
        if problems:
            raise ConfigError("\n".join(problems))
        self.sparse = bool(options.sparse)
        self.sparse_parameters = ("W",) if self.sparse else ()
        # m, the outputs fed back: set by attach() from the head's units.

    def attach(self, head, top: bool, device: str, where: str) -> list[str]:
        """Connect the layer's output feedback (if any) to the network's ``head``.

        top : whether this is the top layer (the one the head reads); device : where the
        network runs. Returns the config problems found, each with its key path.
        """
        feedback = self.options.feedback
        if feedback is None:
            return []
        problems = []
        if not top:
            problems.append(f"{where}.feedback: only the top layer can receive the head's "
                            "output; move feedback to the last layer.")
        if head is None or not head.linear_readout:
            problems.append(f"{where}.feedback: output feedback needs a ridge head, whose "
                            "linear readout y_t = W_out x_t + b_out is fed back; add `head: "
                            "{name: ridge, units: <outputs>}`.")
        elif np.ndim(feedback.scaling) and np.shape(feedback.scaling) != (head.units,):
            problems.append(f"{where}.feedback.scaling: give one value or one per output "
                            f"(head.units = {head.units}), got {np.size(feedback.scaling)}.")
        if device != "cpu":
            problems.append(f"{where}.feedback: output feedback runs on the CPU only; use "
                            "device: cpu.")
        if not problems:
            self.feedback_size = head.units
            self.equation = ("x_t = (1-lr) x_{t-1} + lr f(W x_{t-1} + W_in (s*u_t) + W_fb "
                             "(s_fb*y_{t-1}) + b)")
        return problems

    def state_sizes(self) -> dict[str, int]:
        """The reservoir state ``h``, and with output feedback the fed-back output ``y``."""
        return {"h": self.units, **({"y": self.feedback_size} if self.feedback_size else {})}

    def parameter_shapes(self):
        N, k = self.units, self.input_size
        shapes = {"Win": ("input", (N, k)), "W": ("recurrent", (N, N))}
        if self.config.bias:
            shapes["b"] = ("bias", (N,))
        if self.feedback_size:
            shapes["Wfb"] = ("feedback", (N, self.feedback_size))
        return shapes

    def leak_rate(self) -> np.ndarray:
        """lr for every unit: (N,) float64."""
        lr = 1.0 if self.options.leak_rate is None else self.options.leak_rate
        return np.broadcast_to(np.asarray(lr, np.float64), (self.units,))

    def recurrent_matrix(self, params: dict):
        """W as stored: a dense (N, N) array or a ``CSR``."""
        return CSR.from_params(params, "W", (self.units,) * 2) if self.sparse else params["W"]

    def projection(self, params: dict, x: np.ndarray, noise: bool = True) -> np.ndarray:
        """W_in (s * u_t) + b (+ the configured noise when ``noise``) for all steps: (T, B, N),
        the kernel's in/out buffer."""
        if self.options.input_scaling is not None:
            x = x * np.asarray(self.options.input_scaling, dtype=x.dtype)
        z = input_projection(x, params["Win"], params.get("b"))
        if noise and self.options.noise:
            rng = np.random.default_rng([self.options.noise_seed or 0, zlib.crc32(b"esn-noise")])
            for t in range(z.shape[0]):
                z[t] += (self.options.noise * rng.standard_normal(z.shape[1:])).astype(z.dtype)
        return z

    def _feedback_weights(self, params: dict, dtype) -> np.ndarray:
        """W_fb with its columns scaled by s_fb: (N, m)."""
        scaling = np.asarray(self.options.feedback.scaling, dtype=np.float64)
        return (params["Wfb"] * scaling).astype(dtype)

    def run(self, params, x, states, lengths=None, teacher=None):
        """``Cell.run``; with output feedback ``params`` also holds ``head.W`` and ``head.b``,
        ``states["y"]`` (1, B, m) is y_{-1} and ``teacher`` (T, B, m), if given, is fed back in
        place of the head's predictions (teacher forcing). The final y is each row's last
        fed-back output."""
        T, B = x.shape[:2]
        lengths = np.full(B, T, np.int64) if lengths is None else lengths
        states = {name: value.copy() for name, value in states.items()}
        h, y = states["h"], states.get("y")
        z = self.projection(params, x)
        with compile_errors(self.activations):
            if teacher is None:
                self._run([self], [params], z, h[0], np.zeros(B, np.int64), lengths,
                          None if y is None else y[0])
                return z, states
            fed = np.concatenate([y[0][None], teacher[:-1]]).astype(z.dtype, copy=False)
            z += input_projection(fed, self._feedback_weights(params, z.dtype), None)
            self._run([self], [params], z, h[0], np.zeros(B, np.int64), lengths)
        rows = np.flatnonzero(lengths > 0)
        y[0, rows] = teacher[lengths[rows] - 1, rows]
        return z, states

    def generate(self, params: dict, h0: np.ndarray, y0: np.ndarray, steps: int):
        """Closed loop: the head's output y_{t-1} is the input u_t (head.units = input_size),
        and is fed back through W_fb too with output feedback. ``params`` holds ``head.W`` and
        ``head.b``; h0 : (1, B, N) and y0 : (1, B, m) the start. Returns the states
        (steps, B, N), the final h and the final y like ``run``."""
        B = h0.shape[1]
        h, y = h0.copy(), y0.copy()
        z = self.projection(params, np.zeros((steps, B, self.input_size), h0.dtype))
        scale = np.asarray(1.0 if self.options.input_scaling is None
                           else self.options.input_scaling, np.float64)
        closed = (params["Win"] * scale).astype(h0.dtype)
        if self.feedback_size:
            closed += self._feedback_weights(params, h0.dtype)
        with compile_errors(self.activations):
            self._run([self], [params], z, h[0], np.zeros(B, np.int64),
                      np.full(B, steps, np.int64), y[0], [closed])
        return z, h, y

    def run_members(self, members: list["ESNCell"], params: list[dict], u: np.ndarray):
        """Members' states on the shared input ``u`` (T, k), one batch row each: (T, M, N).

        With output feedback each member's ``params`` also hold its ``head.W`` and ``head.b``
        and y_{-1} = 0."""
        x = u[:, None, :]
        z = np.stack([layer.projection(p, x)[:, 0] for layer, p in zip(members, params)], 1)
        h0 = np.zeros(z.shape[1:], z.dtype)
        y0 = None if not self.feedback_size else np.zeros((len(members), self.feedback_size),
                                                          z.dtype)
        with compile_errors(self.activations):
            self._run(members, params, z, h0, np.arange(len(members), dtype=np.int64),
                      np.full(len(members), len(u), np.int64), y0)
        return z

    def _run(self, members, params, z, h, member, lengths, y=None, feedback=None):
        """The kernel on ``z`` (T, B, N) in place, ``h`` (B, N) and ``y`` (B, m) in/out.

        y : the fed-back outputs y_{-1}, or None without feedback; feedback : each member's
        (N, m) weights of y_{t-1} (default: its scaled W_fb).
        """
        module = self.kernels()
        batched, args, readout, work, row_work = self._kernel_args(members, params, z, h, member,
                                                                   lengths, y, feedback)
        if batched:
            blocks = args[-2].shape[0]
            kernel = module.esn_batched_parallel if blocks > 1 and thread_count() > 1 else \
                module.esn_batched_serial
            kernel(*args)
            return
        variant, bounds = schedule(z.shape[1], work, row_work)
        if len(bounds) == 2:
            getattr(module, f"esn_{variant}")(*args, bounds, *readout)
        else:
            run_timed(module, z, h, args[2:-1], lengths, bounds, readout)

    def _kernel_args(self, members, params, z, h, member, lengths, y=None, feedback=None):
        """The kernel's arguments for ``_run``: (batched, args, readout, work, row_work). A
        batched run calls ``esn_batched_*(*args)``; any other ``esn_*(*args, bounds,
        *readout)``, ``args`` ending with ``lengths``; work and row_work are the multiply-adds
        of a batch row and of each unit per step (``schedule``)."""
        dtype = z.dtype
        B, N = z.shape[1:]
        M = len(members)
        lr = np.stack([layer.leak_rate() for layer in members]).astype(dtype)
        keep = (1.0 - np.stack([layer.leak_rate() for layer in members])).astype(dtype)
        if y is None:
            y = np.zeros((B, 0), dtype)
            F, Wout, bout = (np.zeros((M, N, 0), dtype), np.zeros((M, 0, N), dtype),
                             np.zeros((M, 0), dtype))
        else:
            if feedback is None:
                feedback = [layer._feedback_weights(p, dtype) for layer, p in zip(members, params)]
            F = np.ascontiguousarray(np.stack(feedback), dtype=dtype)
            Wout = np.ascontiguousarray(np.stack([p["head.W"] for p in params]), dtype=dtype)
            bout = np.ascontiguousarray(np.stack([p["head.b"] for p in params]), dtype=dtype)
        if self.sparse:
            mats = [layer.recurrent_matrix(p) for layer, p in zip(members, params)]
            offsets = np.cumsum([0] + [w.nnz for w in mats[:-1]])
            indptr = np.stack([w.indptr.astype(np.int64) + o for w, o in zip(mats, offsets)])
            index = np.uint16 if N <= UINT16_UNITS else np.uint32
            if M == 1:  # no copy of a reservoir's nonzeros where none is needed
                data = np.ascontiguousarray(mats[0].data, dtype)
                indices = mats[0].indices.astype(index)
            else:
                data = np.concatenate([w.data for w in mats]).astype(dtype, copy=False)
                indices = np.concatenate([w.indices for w in mats]).astype(index)
            WT = np.zeros((M, 0, 0), dtype)
            work = data.size // M
            row_work = np.diff(indptr[0])
        else:
            WT = np.ascontiguousarray(np.stack([p["W"] for p in params]).transpose(0, 2, 1),
                                      dtype=dtype)
            data, indices = np.zeros(0, dtype), np.zeros(0, np.uint16)
            indptr = np.zeros((M, N + 1), np.int64)
            work = N * N
            row_work = np.full(N, N)
        from ..kernels.cpu import tiles  # numba, on first run

        width = tiles.block_rows(z)
        activation = self.activations[0].kernel_args(dtype)
        if self.sparse and M == 1 and F.shape[2] == 0 and B >= BATCHED_BLOCK_FILL * width:
            blocks = -(-B // width)
            return True, (z, h, data, indices, indptr, lr, keep, lengths,
                          np.zeros((blocks, 2, N, width), dtype), activation), (), work, row_work
        return (False, (z, h, WT, data, indices, indptr, lr, keep, member, lengths),
                (F, Wout, bout, y, activation), work, row_work)

    def step_ops(self, params, x, states, out):
        """A step for ``Network.stepper``: the input projection (NumPy's BLAS, the bits of
        ``run``) into ``out``, then the compiled reservoir update in place."""
        B, N = out.shape[1:]
        y = states.get("y")
        batched, args, readout, _, _ = self._kernel_args(
            [self], [params], out, states["h"][0], np.zeros(B, np.int64), np.ones(B, np.int64),
            None if y is None else y[0])
        module = self.kernels()
        project = (self._project_into, (x, params["Win"], params.get("b"), out))
        if batched:
            return [project, (module.esn_batched_serial, args)]
        return [project, (module.esn_serial, args + (np.array([0, N], np.int64),) + readout)]

    def _project_into(self, x, Win, b, out) -> None:
        """``out[...]`` = W_in (s * u_t) + b, as ``_projection`` without noise."""
        if self.options.input_scaling is not None:
            x = x * np.asarray(self.options.input_scaling, dtype=x.dtype)
        project_into(x, Win, b, out)

    def recurrent_matrices(self, params):
        w = self.recurrent_matrix(params)
        return {"W": w.astype(np.float64) if isinstance(w, CSR) else np.asarray(w, np.float64)}

    def chunk_problems(self, where):
        if not self.options.noise:
            return []
        return [f"{where}.noise: the noise sequence restarts in every chunk, so chunks would "
                "not continue one run"]

    def run_cuda(self, run, params, suffix, h):
        B = h.shape[0]
        z = self.cuda_projection(run, [self], [params], run.x, np.zeros(B, np.int64))
        self.cuda_recur(run, [self], [params], z, h, np.zeros(B, np.int64), run.lengths)
        return z.copy_to_host()

    def cuda_projection(self, run, members, params, x, member):
        """z = W_in (s * u_t) + b (+ noise) of every row, on the device: (T, B, N)."""
        T, B, _ = x.shape
        N = members[0].units
        if any(layer.options.noise for layer in members):
            # The noise comes from the CPU path's seeded generator, so both devices agree; the
            # rows of x are grouped by member, in member order.
            return run.upload(np.concatenate([layer.projection(p, x[:, member == m]) for m, (
                layer, p) in enumerate(zip(members, params))], axis=1))
        scale = np.stack([np.broadcast_to(np.asarray(
            1.0 if layer.options.input_scaling is None else layer.options.input_scaling), x.shape[2])
            for layer in members]).astype(run.dtype)
        Wt = run.weights(device.stacked_name("Win", members), [p["Win"] for p in params],
                         lambda *Win: np.stack([w.T for w in Win]))
        bias = run.weights(device.stacked_name("b", members),
                           [p.get("b", np.zeros(N)) for p in params], lambda *b: np.stack(b))
        z = run.cuda.device_array((T, B, N), run.dtype)
        scaled = run.upload(x * scale[member][None])
        device.project(run.cuda, scaled, Wt, bias, run.upload(member, np.int64), z)
        return z

    def cuda_recur(self, run, members, params, z, h, member, lengths):
        """Run the reservoirs over z in place (states); h (B, N) is overwritten with the final
        states."""
        layer = members[0]
        N = layer.units
        per_block = run.plan.units_per_block(N)
        lr = np.stack([m.leak_rate() for m in members])
        args = (run.upload(lr), run.upload(1.0 - lr), run.upload(member, np.int64),
                run.upload(lengths, np.int64), int(lengths.max()), per_block)
        h_dev = run.upload(h)
        if layer.sparse:
            mats = [m.recurrent_matrix(p) for m, p in zip(members, params)]
            offsets = np.cumsum([0] + [w.nnz for w in mats[:-1]])
            kernel, shared = "esn_csr", run.plan.rows * N * run.dtype.itemsize
            weights = (
                run.weights(device.stacked_name("W.data", members), [w.data for w in mats],
                            lambda *data: np.concatenate(data)),
                run.weights(device.stacked_name("W.indices", members), [w.indices for w in mats],
                            lambda *indices: np.concatenate(indices), np.int32),
                run.weights(device.stacked_name("W.indptr", members), [w.indptr for w in mats],
                            lambda *indptr: np.stack([i.astype(np.int64) + o for i, o in
                                                      zip(indptr, offsets)]), np.int64))
        else:
            stage, shared = run.stage(N * per_block)
            kernel = "esn_dense"
            weights = (run.weights(device.stacked_name("W", members), [p["W"] for p in params],
                                   lambda *W: np.stack([w.T for w in W])),)
            args = args + (stage,)
        launch = getattr(run.module, run.plan.variant(kernel))
        launch[run.plan.blocks(h.shape[0]), run.plan.threads, 0, shared](
            z, h_dev, *weights, *args, *run.args)
        h_dev.copy_to_host(h)


def run_timed(module, z, h, weights, lengths, bounds, readout) -> None:
    """The esn kernel in chunks of ``ADAPT_STEPS`` steps, with each step's units split into
    ``bounds`` or not (one thread per batch row), whichever ran faster (see ``RETIME``)."""
    B, N = z.shape[1:]
    ways = {"split": (module.esn_parallel, bounds),
            "whole": (module.esn_parallel if B > 1 else module.esn_serial,
                      np.array([0, N], np.int64))}
    per_step: dict[str, float] = {}
    retime = interval = RETIME
    steps = int(lengths.max(initial=0))
    for chunk, t0 in enumerate(range(0, steps, ADAPT_STEPS)):
        t1 = min(steps, t0 + ADAPT_STEPS)
        untimed = [way for way in ways if way not in per_step]
        if untimed:
            way = untimed[0]
        else:
            way = (max if chunk == retime else min)(per_step, key=per_step.get)
        kernel, chunks = ways[way]
        start = time.perf_counter()
        kernel(z[t0:t1], h, *weights, np.clip(lengths - t0, 0, t1 - t0), chunks, *readout)
        per_step[way] = (time.perf_counter() - start) / (t1 - t0)
        if chunk == retime:
            faster = min(per_step, key=per_step.get)
            interval = RETIME if way == faster else 2 * interval
            retime = chunk + interval
    z[steps:] = 0


def schedule(batch: int, work: int, row_work: np.ndarray) -> tuple[str, np.ndarray]:
    """The kernel variant and the row chunks ``bounds`` for ``batch`` rows.

    work : multiply-adds of one batch row per step; row_work : (N,) those of each unit. Calls
    with fewer than ``PARALLEL_WORK`` multiply-adds per step run on one thread. Otherwise the
    rows go to the threads, one region for the whole call; when there are fewer rows than
    threads and a row has at least ``SPLIT_WORK`` multiply-adds, each step's units are split
    into chunks of equal work instead (at B = 1: one chunk per thread).
    """
    N = len(row_work)
    threads = thread_count()
    whole = np.array([0, N], np.int64)
    if threads < 2 or batch * work < PARALLEL_WORK:
        return "serial", whole
    if batch >= threads or work < SPLIT_WORK:
        return ("serial" if batch == 1 else "parallel"), whole
    chunks = min(-(-threads // batch), max(1, N))
    cumulative = np.concatenate([[0], np.cumsum(row_work)])
    bounds = np.searchsorted(cumulative, cumulative[-1] * np.arange(chunks + 1) / chunks)
    bounds[0], bounds[-1] = 0, N
    return "parallel", bounds.astype(np.int64)
