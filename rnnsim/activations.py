"""Activations chosen by config: a registered function bound to its parameter values."""
from __future__ import annotations

import difflib
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import kernels
from .config import Spec
from .errors import ConfigError, PluginError
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
        module = kernels.build("elementwise", [self.entry.fn])
        with compile_errors([self]):
            module.apply_activation_serial(z.reshape(-1), out.reshape(-1), self.kernel_args(z.dtype))
        return out


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
            problems.append(f"{where}.{key}: expected a number, got {value!r}.")
    if problems:
        raise ConfigError("\n".join(problems))
    values = tuple(float(given.get(k, default)) for k, default in entry.params.items())
    return BoundActivation(entry, values)


class compile_errors:
    """Turn a numba compilation failure into a PluginError naming the activations involved."""

    def __init__(self, activations):
        self.activations = activations

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        stage = _stage(exc, [a.entry.fn for a in self.activations]) if exc is not None else None
        if stage is None:
            return False
        names = ", ".join(f"'{a.name}' (plugin '{a.entry.source.plugin}', package "
                          f"{a.entry.source.package})" for a in self.activations)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if stage == "run":
            raise PluginError(f"the kernel with activation {names} raised "
                              f"{type(exc).__name__}: {first}. Fix the activation so that it "
                              "returns a number for every input.") from None
        raise PluginError(
            f"numba could not compile the kernel with activation {names}: {first}. An "
            "activation must be a scalar function in numba's nopython subset (math functions, "
            "arithmetic, comparisons; no NumPy arrays, no calls to plain Python functions)."
        ) from None


def _stage(exc: BaseException, functions) -> str | None:
    """'compile' when ``exc`` came from numba compiling the kernel (its own errors, or another
    exception raised inside its compiler), 'run' when it was raised inside one of ``functions``
    at run time (numba gives it a traceback entry at the ``raise``), else None."""
    if isinstance(exc, kernels.KernelCompileError):
        return "compile"
    codes = {(code.co_filename, code.co_name) for code in
             (getattr(getattr(fn, "py_func", fn), "__code__", None) for fn in functions)
             if code is not None}
    tb, last = exc.__traceback__, None
    while tb is not None:
        code = tb.tb_frame.f_code
        if Path(code.co_filename).match("numba/core/compiler.py"):
            return "compile"
        last, tb = code, tb.tb_next
    return "run" if last is not None and (last.co_filename, last.co_name) in codes else None
