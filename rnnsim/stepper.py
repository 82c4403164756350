"""A compiled streaming step: ``stepper = net.stepper(batch)``, then ``y = stepper(x_t)``.

The stepper binds every layer's step (``Cell.step_ops``) once: the weights, buffers and
states are copied into one byte arena, and the cells' kernel calls become one generated
``@njit`` function (``kernels/bound.py``) of the input, the arena and an int64 table. A
call is then one dispatch on three arrays, however many layers and kernel arguments.
"""
from __future__ import annotations

import numpy as np
from numba.core.dispatcher import Dispatcher

from . import guards, validation
from .errors import ConfigError, ShapeError
from .kernels import bound
from .results import State
from .validation import as_real_array

ALIGN = 64  # bytes: each array of the arena starts on a cache line


class _Binding:
    """The arena being laid out: each array's memory once, then views of the copy.

    An array is placed through its owner (the last ndarray of its ``base`` chain), so that
    views of one array keep sharing memory in the arena; an owner that is not one block of
    memory (neither C- nor Fortran-contiguous) cannot be, and each view of it is copied
    alone, once.
    """

    def __init__(self):
        self.owners: dict[int, tuple[np.ndarray, int]] = {}  # id(owner) -> (owner, offset)
        self.copies: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id(a) -> (a, C copy)
        self.size = 0
        self.arena: np.ndarray | None = None

    def _root(self, a: np.ndarray) -> tuple[np.ndarray, int]:
        """The block of memory holding ``a`` and ``a``'s byte offset in it."""
        owner = a
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if owner.flags.forc:  # C or Fortran order: its data pointer is where its bytes start
            return owner, (a.__array_interface__["data"][0]
                           - owner.__array_interface__["data"][0])
        if id(a) not in self.copies:  # kept with ``a``, so that its id stays ``a``'s
            self.copies[id(a)] = (a, np.ascontiguousarray(a))
        return self.copies[id(a)][1], 0

    def place(self, a: np.ndarray) -> int:
        """``a``'s byte offset in the arena (its memory placed if new)."""
        owner, offset = self._root(a)
        if id(owner) not in self.owners:
            if self.arena is not None:
                raise ValueError(f"an array of shape {a.shape} was not placed before the "
                                 "arena was allocated")
            self.owners[id(owner)] = (owner, self.size)
            self.size += -(-max(owner.nbytes, 1) // ALIGN) * ALIGN
        return self.owners[id(owner)][1] + offset

    def allocate(self) -> np.ndarray:
        """The aligned arena with every owner's bytes copied in."""
        raw = np.zeros(self.size + ALIGN, np.uint8)
        start = -raw.__array_interface__["data"][0] % ALIGN
        self.arena = raw[start:start + self.size]
        for owner, offset in self.owners.values():  # its bytes in memory order
            self.arena[offset:offset + owner.nbytes] = owner.ravel(order="K").view(np.uint8)
        return self.arena

    def view(self, a: np.ndarray) -> np.ndarray:
        """The arena's copy of ``a`` (same shape, dtype and strides)."""
        offset = self.place(a)
        strides = None if id(a) in self.copies else a.strides
        return np.ndarray(a.shape, a.dtype, buffer=self.arena, offset=offset, strides=strides)


class BoundStep:
    """The calls of one step (``Cell.step_ops`` lists) bound once: their arrays copied into
    one arena, their kernel calls compiled into as few functions as the Python calls between
    them allow.

    x : (1, B, k) the input the first call reads; ops : [(fn, args)] in order; checked : the
    arrays scanned for NaN/inf after the step (with ``check_output``); unbatched : the input
    comes as (k,) instead of (B, k); check_input : refuse a non-finite input before any call;
    staged : arrays of ``ops`` that the caller fills (through ``view``) before each call,
    checked with the input.
    ``first(x_t, arena, desc)`` loads x_t and runs the first compiled function; ``rest``
    the remaining calls, each returning a status or None (``kernels.bound``); ``view(a)``
    the arena's copy of an array of ``ops``.
    """

    def __init__(self, x: np.ndarray, ops: list, checked: list[np.ndarray], unbatched: bool,
                 check_input: bool = True, check_output: bool = True, staged: tuple = ()):
        binding = _Binding()
        arrays: dict[tuple, int] = {}  # (offset, dtype, shape) -> index in program.arrays
        program_arrays: list[tuple[str, int, int]] = []
        desc: list[int] = [int(check_input), int(check_output)]

        def array_index(a: np.ndarray) -> int:
            if not a.flags.c_contiguous:
                raise TypeError(f"a kernel argument of shape {a.shape} is not C-contiguous; "
                                "pass np.ascontiguousarray of it in step_ops")
            offset = binding.place(a)
            key = (offset, a.dtype.str, a.shape)
            if key not in arrays:
                arrays[key] = len(program_arrays)
                program_arrays.append((a.dtype.name, a.ndim, len(desc)))
                desc.extend([offset, a.nbytes, *a.shape])
            return arrays[key]

        def token(value):
            if isinstance(value, np.ndarray):
                return ("array", array_index(value))
            if isinstance(value, (bool, np.bool_)):
                desc.append(int(value))
                return ("bool", len(desc) - 1)
            if isinstance(value, (int, np.integer)):
                desc.append(int(value))
                return ("int", len(desc) - 1)
            if isinstance(value, (float, np.floating)):
                scalar = np.array([value], np.asarray(value).dtype)
                return ("scalar", array_index(scalar))
            if isinstance(value, tuple):
                return ("tuple", tuple(token(v) for v in value))
            raise TypeError(f"a kernel argument of type {type(value).__name__} cannot be bound; "
                            "step_ops passes arrays, numbers, bools and tuples of them to a "
                            "numba kernel")

        segments = [bound.Segment(load=array_index(x))]
        segments[0].staged = [array_index(a) for a in staged]
        plan: list = [segments[0]]  # segments and Python ops, in order
        for fn, args in ops:
            if isinstance(fn, Dispatcher):
                if not isinstance(plan[-1], bound.Segment):
                    segments.append(bound.Segment())
                    plan.append(segments[-1])
                plan[-1].calls.append((fn, tuple(token(a) for a in args)))
            else:
                for a in args:
                    if isinstance(a, np.ndarray):
                        binding.place(a)
                plan.append((fn, args))
        if not isinstance(plan[-1], bound.Segment):
            segments.append(bound.Segment())
            plan.append(segments[-1])
        plan[-1].checks = [array_index(a) for a in checked]
        program = bound.Program(program_arrays, segments, 1 if unbatched else 2)
        module = bound.build(program)
        arena = binding.allocate()
        self.arena, self.desc = arena, np.array(desc, np.int64)
        self.view = binding.view

        def python_op(fn, args):
            mapped = tuple(binding.view(a) if isinstance(a, np.ndarray) else a for a in args)
            return lambda: fn(*mapped)

        self.rest = []
        for item in plan:
            if isinstance(item, bound.Segment):
                segment = getattr(module, f"segment{segments.index(item)}")
                if item is not segments[0]:
                    self.rest.append(lambda segment=segment: segment(arena, self.desc))
            else:
                self.rest.append(python_op(*item))
        self.plan = ["compiled" if isinstance(item, bound.Segment) else "python"
                     for item in plan]
        self.first = module.segment0
        # compile the first function for the exact input type (an input of the wrong shape
        # returns before doing anything), then let it take no other: another type is coerced
        # in Python instead of compiled anew
        wrong = np.zeros((x.shape[2] + 1,) if unbatched else (x.shape[1], x.shape[2] + 1),
                         x.dtype)
        self.first(wrong, self.arena, self.desc)
        self.first.disable_compile()

    def set_checks(self, check_input: bool, check_output: bool) -> None:
        """Turn the compiled checks of the input (and staged arrays) and of the checked
        arrays on or off."""
        self.desc[bound.CHECK_INPUT] = check_input
        self.desc[bound.CHECK_OUTPUT] = check_output

    def __call__(self, x_t: np.ndarray) -> int:
        """One step on ``x_t`` of the exact type; the status (0: done)."""
        return self.finish(self.first(x_t, self.arena, self.desc))

    def finish(self, status: int) -> int:
        """The calls after ``first`` (none once a status is set); the step's status."""
        for call in self.rest:
            status = status or call()
        return status or 0


class Stepper:
    """One network's step with everything bound; see ``Network.stepper``."""

    def __init__(self, net, batch: int | None = None, state: State | None = None, *,
                 check_finite: bool = True, nonfinite: str | None = None):
        if any(layer.directions == 2 for layer in net.layers):
            raise ConfigError("stepper: a bidirectional layer needs the whole sequence; use "
                              "run on the full input, or make the layers unidirectional.")
        if net.device != "cpu":
            raise ConfigError(f"stepper: the compiled step runs on the CPU; this network runs "
                              f"on '{net.device}'. Load it with device='cpu', or use run.")
        problems = [problem for i, layer in enumerate(net.layers)
                    for problem in layer.chunk_problems(f"network.layers[{i}]")]
        if problems:
            raise ConfigError("stepper: one step at a time would not continue one run: "
                              + "; ".join(problems) + ".")
        self.net = net
        self.unbatched = batch is None
        self.batch = 1 if batch is None else batch
        self.mode = guards.nonfinite_mode(nonfinite, check_finite)
        self.check_finite = check_finite
        start = net.initial_state(batch) if state is None else state
        B, dtype = self.batch, net.dtype
        starts = net.start_states(start, None, B, self.unbatched, check_finite)
        x = np.zeros((1, B, net.input_size), dtype)
        inputs, outs, states, ops = [x], [], [], []
        for i, layer in enumerate(net.layers):
            out = np.zeros((1, B, layer.output_size), dtype)
            layer_states = {name: np.array(value, dtype) for name, value in starts[i].items()}
            ops += layer.step_ops(net.layer_params(i), inputs[-1], layer_states, out)
            inputs.append(out)
            outs.append(out)
            states.append(layer_states)
        self._bind(x, outs, states, ops)

    def _bind(self, x, outs, states, ops) -> None:
        checked = [a for i, out in enumerate(outs) for a in [out, *list(states[i].values())[1:]]]
        step = BoundStep(x, ops, checked, self.unbatched, self.check_finite,
                         self.mode != "ignore")
        self.plan = step.plan
        self._step = step
        self._first, self._arena, self._desc = step.first, step.arena, step.desc
        self._x = step.view(x)
        self._outs = [step.view(out) for out in outs]
        self._states = [{name: step.view(s) for name, s in layer.items()} for layer in states]
        self._more = bool(step.rest) or self.net.head is not None
        # copied now, as the layers' weights are
        self._head_params = {k: v.copy() for k, v in self.net.head_params().items()}
        top = self._outs[-1][0]
        self._output = top[0] if self.unbatched else top

    def __call__(self, x_t) -> np.ndarray:
        """Advance every layer by one step on ``x_t`` (B, k), or (k,) for an unbatched
        stepper; returns the head's output (the top layer's without a head), a new array."""
        try:
            status = self._first(x_t, self._arena, self._desc)
        except TypeError:
            x_t = self._coerce(x_t)
            status = self._first(x_t, self._arena, self._desc)
        if status or self._more:
            return self._finish(status, x_t)
        return self._output.copy()

    def _finish(self, status: int, x_t) -> np.ndarray:
        """The rest of a step: the Python ops and later segments, the checks, the head."""
        status = self._step.finish(status)
        if status:
            self._report(status, x_t)
        if self.net.head is None:
            return self._output.copy()
        return self._head()

    def _coerce(self, x_t) -> np.ndarray:
        x = as_real_array(x_t, "x_t")
        if x.ndim != (1 if self.unbatched else 2):
            self._shape_error(x)
        return np.ascontiguousarray(x, dtype=self.net.dtype)

    def _shape_error(self, x) -> None:
        k = self.net.input_size
        want = (k,) if self.unbatched else (self.batch, k)
        raise ShapeError(f"x_t has shape {np.shape(x)}; this stepper takes {want} (batch = "
                         f"{None if self.unbatched else self.batch}, k = input_size = {k}). "
                         "Make a stepper for that batch: net.stepper(batch).")

    def _report(self, status: int, x_t) -> None:
        if status == bound.INPUT_SHAPE:
            self._shape_error(x_t)
        if status == bound.INPUT_NONFINITE:
            validation.check_finite(np.asarray(x_t), "x_t")
        watch = guards.NonfiniteWatch(self.mode, self._x, single_step=True)
        for i, layer in enumerate(self.net.layers):
            watch.layer(i, layer, self._outs[i], self._states[i])
        watch.report(self.unbatched)

    def _head(self) -> np.ndarray:
        net = self.net
        y = net.head_forward(self._head_params, self._outs[-1], None)
        if self.mode != "ignore" and not np.isfinite(y).all():
            watch = guards.NonfiniteWatch(self.mode, self._x, single_step=True)
            watch.head(net.config.network.head.name, y, net.head.per_step, len(net.layers))
            watch.report(self.unbatched)
        y = np.array(y[0] if net.head.per_step else y)
        return y[0] if self.unbatched else y

    @property
    def state(self) -> State:
        """Where the stepper stands: a copy, to pass to ``run``, ``step`` or ``reset``."""
        return State(tuple({name: s[:, 0].copy() if self.unbatched else s.copy()
                            for name, s in layer.items()} for layer in self._states))

    def reset(self, state: State | None = None) -> None:
        """Start again from ``state`` (default: zeros)."""
        state = self.net.initial_state(None if self.unbatched else self.batch) \
            if state is None else state
        starts = self.net.start_states(state, None, self.batch, self.unbatched,
                                       self.check_finite)
        for mine, given in zip(self._states, starts):
            for name, value in mine.items():
                value[...] = given[name]
