"""tanh and sigmoid as the kernels compile them: worst error in ulp, and ns per element.

    python benchmarks/bench_activations.py [--points 4000000]

For float32 and float64, each form is bound as the generated kernels bind an activation (its
own ``njit`` with the activation options, inlined by LLVM into a vectorising loop):

- ``default``: the default kernels' forms (``approx.precise_*``: float32 through the float64
  approximation rounded once, float64 the approximation with its division corrected);
- ``fast``: the ``fast_math`` forms (``approx.tanh``/``approx.sigmoid``);
- ``libm``: the built-in scalar functions (libm's ``tanh``/``exp``).

The error is against ``np.longdouble`` (x87 extended precision, 64-bit mantissa) over random
points in [-20, 20], [-1, 1], [-85, 0] and geometric ones down to 1e-8 on both sides: the worst
in ulp of the result's dtype, also where |f(x)| > 1e-3. The time is the fastest of many
passes over 4096 points uniform in [-6, 6], one thread.
"""
import argparse
import time

import numba
import numpy as np

from rnnsim.builtins import activations as builtins
from rnnsim.kernels.cpu import approx
from rnnsim.kernels.options import ACTIVATION_JIT, JIT

FORMS = {"default": "precise_{}", "fast": "{}", "libm": None}


def form(kind: str, name: str):
    fn = getattr(builtins, name) if FORMS[kind] is None else \
        getattr(approx, FORMS[kind].format(name))
    scalar = numba.njit(**ACTIVATION_JIT)(fn)

    @numba.njit(**JIT)
    def apply(x, y):
        for i in range(x.size):
            y[i] = scalar(x[i])
    return apply


def points(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    part = count // 8
    return np.concatenate([rng.uniform(-20, 20, 4 * part), rng.uniform(-1, 1, 2 * part),
                           rng.uniform(-85, 0, part), np.geomspace(1e-8, 20, part // 2),
                           -np.geomspace(1e-8, 20, part // 2)])


def measure(apply, x: np.ndarray, exact: np.ndarray, dtype) -> tuple[float, float, float]:
    """(worst ulp, worst ulp where |f| > 1e-3, ns per element)."""
    xs = x.astype(dtype)
    y = np.empty_like(xs)
    apply(xs, y)
    ulp = np.spacing(np.abs(exact).astype(dtype)).astype(np.longdouble)
    error = np.abs(y.astype(np.longdouble) - exact) / ulp
    sample = np.random.default_rng(1).uniform(-6, 6, 4096).astype(dtype)
    out = np.empty_like(sample)
    best = np.inf
    for _ in range(2000):
        start = time.perf_counter()
        apply(sample, out)
        best = min(best, time.perf_counter() - start)
    return float(error.max()), float(error[np.abs(exact) > 1e-3].max()), best / 4096 * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=4_000_000)
    args = parser.parse_args()
    x = points(args.points)
    print("name     dtype    form      worst ulp  (|f|>1e-3)  ns/element")
    for name in ("tanh", "sigmoid"):
        for dtype in (np.float32, np.float64):
            exact_x = x.astype(dtype).astype(np.longdouble)
            with np.errstate(over="ignore"):
                exact = np.tanh(exact_x) if name == "tanh" else 1 / (1 + np.exp(-exact_x))
            for kind in FORMS:
                worst, large, ns = measure(form(kind, name), x, exact, dtype)
                print(f"{name:8} {np.dtype(dtype).name:8} {kind:8} {worst:10.2f} "
                      f"{large:11.2f} {ns:11.3f}")


if __name__ == "__main__":
    main()
