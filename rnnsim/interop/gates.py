"""What every importer does to another framework's stacked gate weights.

Frameworks stack a gated cell's weights in gate blocks of ``p`` rows, each in its own order
(docs/interop.md lists them); rnnsim keeps one order per cell. A GRU's recurrent bias of the
candidate n stays inside ``r * (U_n h + bn)``; the others add to the input biases.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def reorder_blocks(a: np.ndarray, order: Sequence[int], axis: int = 0) -> np.ndarray:
    """``a``'s gate blocks along ``axis`` (len(order) equal parts) taken in ``order``, as a new
    C-contiguous array."""
    parts = np.split(np.asarray(a), len(order), axis=axis)
    return np.ascontiguousarray(np.concatenate([parts[i] for i in order], axis=axis))


def gru_biases(input_bias: np.ndarray, recurrent_bias: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """(b, bn) of an rnnsim GRU with ``reset_after`` from the input and recurrent biases
    (3p each, in rnnsim's r, z, n order): r and z take both sums, n keeps its recurrent part
    apart."""
    p = len(input_bias) // 3
    b = np.concatenate([input_bias[:2 * p] + recurrent_bias[:2 * p], input_bias[2 * p:]])
    return b, np.ascontiguousarray(recurrent_bias[2 * p:])
