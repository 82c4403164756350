"""Activations chosen by config: a registered function bound to its parameter values."""
from __future__ import annotations

import difflib
import functools
import numbers
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import kernels
from .errors import ConfigError, PluginError, RnnsimError, shown
from .kernels.options import ACTIVATION_JIT

if TYPE_CHECKING:  # types only: the plugin registry and the config sit above this module
    from .config import Spec
    from .plugins import Activation, Plugins


@dataclass(frozen=True)
class BoundActivation:
    """A registered activation with its parameters fixed, in the order ``fn`` takes them."""

    entry: Activation
    params: tuple[float, ...]

    @property
    def name(self) -> str:
        return self.entry.name

    def kernel_args(self, dtype) -> tuple:
        """The parameters as scalars of the kernel's dtype (no float64 promotion in float32)."""
        return tuple(np.dtype(dtype).type(v) for v in self.params)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """Apply to every element of ``z`` (or along the last axis for a vector activation)."""
        if not self.entry.elementwise:
            return self.entry.fn(z, *self.params)
        z = np.ascontiguousarray(z)
        out = np.empty_like(z)
        with compile_errors([self]):
            self._apply(z.reshape(-1), out.reshape(-1), self.kernel_args(z.dtype))
        return out

    @functools.cached_property
    def _apply(self):
        """The compiled elementwise kernel, looked up once (a dynamics map calls this per
        step)."""
        return kernels.build("elementwise", [self.entry.fn]).apply_activation_serial


def bind(spec: Spec, where: str, plugins: Plugins, vector_ok: bool = False) -> BoundActivation:
    """Resolve ``spec`` against the registry; errors name the key path ``where``."""
    entry = plugins.activations.get(spec.name, f"{where}.name" if spec.params else where)
    if not entry.elementwise and not vector_ok:
        raise ConfigError(
            f"{where}: activation '{entry.name}' works across units and can only be used in a "
            "head (head.activation). Pick an elementwise one such as 'tanh' for a layer."
        )
    given = spec.params
    problems = []
    for key, value in given.items():
        if key not in entry.params:
            close = difflib.get_close_matches(key, entry.params, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            takes = ", ".join(entry.params) or "no parameters"
            problems.append(f"{where}.{key}: activation '{entry.name}' has no parameter "
                            f"'{key}'{hint}; it takes {takes}.")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            problems.append(f"{where}.{key}: expected a number, got {shown(value)}.")
    if problems:
        raise ConfigError("\n".join(problems))
    values = tuple(float(given.get(k, default)) for k, default in entry.params.items())
    return BoundActivation(entry, values)


class compile_errors:
    """Turn a failure inside a kernel into a PluginError naming the activations involved.

    numba's own errors are compile failures. Another exception is the activations' run-time
    failure when it was raised in a function they reach (matched by function name, never by
    file path, so a plugin that moved is still recognised); anything else is rnnsim's own and
    propagates as it is.
    """

    def __init__(self, activations, dtype=np.float64):
        self.activations = activations
        self.dtype = dtype

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception) or \
                isinstance(exc, (RnnsimError, MemoryError)):
            return False
        if not isinstance(exc, kernels.KernelCompileError) and \
                _raised_in(exc) not in _reached_names(self.activations):
            # numba's compiler can fail with a plain exception too: an activation that does
            # not compile alone is named; anything else is rnnsim's own and propagates
            check_compiles(self.activations, self.dtype)
            return False
        if isinstance(exc, kernels.KernelCompileError):
            raise PluginError(f"numba could not compile the kernel with activation "
                              f"{_names(self.activations)}: {numba_reason(exc)}\n{_SUBSET}") \
                from exc
        check_compiles(self.activations, self.dtype)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PluginError(f"the kernel with activation {_names(self.activations)} raised "
                          f"{type(exc).__name__}: {first}. Fix the activation so that it "
                          "returns a number for every input.") from exc


_SUBSET = ("An activation must be a scalar function in numba's nopython subset (math "
           "functions, arithmetic, comparisons; no NumPy arrays, no dicts or other Python "
           "objects, no calls to plain Python functions: call an @numba.njit helper instead).")

_checked: set = set()


def check_compiles(activations, dtype) -> None:
    """Compile each elementwise activation alone for ``dtype`` scalars, once per process.

    Raises a PluginError with numba's reason (its message, file and line) for the first that
    numba refuses. The GPU path calls this before launching, so a device (or numba's
    simulator, which compiles nothing) never runs what the CPU refuses.
    """
    import numba

    scalar = numba.from_dtype(np.dtype(dtype))
    for activation in activations:
        key = (activation.entry.fn, scalar)
        if key in _checked or not activation.entry.elementwise:
            continue
        try:
            numba.njit(**ACTIVATION_JIT)(activation.entry.fn).compile(
                (scalar,) * (1 + len(activation.params)))
        except Exception as exc:  # numba's own errors, or any raised inside its compiler
            raise PluginError(f"numba could not compile activation {_names([activation])}: "
                              f"{numba_reason(exc)}\n{_SUBSET}") from exc
        _checked.add(key)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def numba_reason(exc: BaseException) -> str:
    """numba's message without its pipeline preamble and pass trail: the reason, then the
    file, line and source it points at (another exception: its type and message)."""
    if not isinstance(exc, kernels.KernelCompileError):
        return f"{type(exc).__name__}: {exc}"
    plain = _ANSI.sub("", str(exc))  # numba colours its messages where colorama is installed
    lines = [line.rstrip() for line in plain.strip().splitlines()]
    lines = [line for line in lines if not line.startswith(("Failed in ", "During: "))]
    return "\n".join(line for i, line in enumerate(lines)
                     if line or (i and lines[i - 1])).strip() or type(exc).__name__


def _raised_in(exc: BaseException) -> str:
    """The name of the function the exception was raised in (its innermost traceback entry)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return "" if tb is None else tb.tb_frame.f_code.co_name


def _reached_names(activations) -> set[str]:
    functions, _ = kernels.reached([a.entry.fn for a in activations])
    return {fn.__name__ for fn in functions}


def _names(activations) -> str:
    return ", ".join(f"'{a.name}' (plugin '{a.entry.source.plugin}', package "
                     f"{a.entry.source.package})" for a in activations)
