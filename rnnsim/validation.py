"""Checks of the arrays users pass in (inputs, states, lengths), shared by every entry point:
each error names the array, its shape and what was expected."""
from __future__ import annotations

import numpy as np

from .errors import InputError, ShapeError


def as_real_array(value, name: str) -> np.ndarray:
    """``value`` as an array of real numbers; a ShapeError naming ``name`` otherwise."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ShapeError(f"{name} cannot be read as an array: {exc}.") from None
    if array.dtype.kind not in "biuf":
        raise ShapeError(f"{name} has dtype {array.dtype}; expected real numbers "
                         "(float32 or float64).")
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """An InputError naming ``name`` and the first NaN/inf when ``array`` holds any."""
    with np.errstate(all="ignore"):  # a finite sum clears it without a mask array
        if array.dtype.kind in "iu" or np.isfinite(np.sum(array)):
            return
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{name} holds {int(bad.sum())} NaN/inf value(s), the first at index "
                         f"{index} of shape {array.shape}. Clean the input, or pass "
                         "check_finite=False (--allow-nonfinite on the CLI) to run anyway.")


def checked_lengths(lengths, T: int, B: int, unbatched: bool) -> np.ndarray | None:
    """``lengths`` as (B,) int64 within [0, T], or None when not given."""
    if lengths is None:
        return None
    value = as_real_array(lengths, "lengths")
    if unbatched and value.ndim == 0:
        value = value[None]
    if value.dtype.kind not in "iu" or value.shape != (B,):
        raise ShapeError(f"lengths has shape {value.shape} and dtype {value.dtype}; expected "
                         f"({B},) integers, the steps of each sequence.")
    if value.size and (value.min() < 0 or value.max() > T):
        raise ShapeError(f"lengths must lie in [0, T] = [0, {T}]; got values from "
                         f"{value.min()} to {value.max()}.")
    return value.astype(np.int64)
