"""Figures: hidden states over time, eigenvalues of the recurrent weights, Lyapunov spectra
and heat maps of sweep results.

Every function returns a matplotlib ``Figure`` (built without pyplot, so no global state or
GUI backend is touched); :func:`save` writes one to PNG or SVG atomically. matplotlib is an
optional extra, imported when a figure is made: ``pip install 'rnnsim[plot]'``.
"""
from __future__ import annotations

import difflib
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np

from . import dynamics, sweep as sweep_mod
from .errors import InputError
from .io import write_atomic
from .reservoir import layer_params
from .sparse import CSR

FORMATS = {".png": "png", ".svg": "svg"}
# Above this many units a sparse reservoir's eigenvalues are not computed (a dense eig).
EIGENVALUES_MAX = 2048
# Heat maps with at most this many cells print each cell's value.
ANNOTATED_CELLS = 144


def _figure(rows: int = 1, columns: int = 1, **kwargs):
    """A new Figure and its axes (always a flat list)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise InputError("plots need matplotlib, which is not installed: "
                         "pip install 'rnnsim[plot]'.") from None
    fig = Figure(figsize=kwargs.pop("figsize", (6.4 * columns, 3.2 * rows)), **kwargs)
    axes = fig.subplots(rows, columns, squeeze=False)
    return fig, list(axes.flat)


def save(fig, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` (.png or .svg) through a temporary file and a rename."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot write '{path}': pick a .png or .svg file name.")
    write_atomic(path, lambda tmp: fig.savefig(tmp, format=fmt))
    return path


def states(net, x, units: int | None = 32):
    """Each layer's hidden states over time for one sequence ``x`` (T, k), one panel per
    layer, at most ``units`` traces each (None: all)."""
    outputs = dynamics.layer_outputs(net, x)
    fig, axes = _figure(len(outputs), 1)
    steps = np.arange(1, len(x) + 1)
    for i, (ax, out) in enumerate(zip(axes, outputs)):
        cell = net.layers[i]
        shown = out[:, :units]
        ax.plot(steps, shown, linewidth=0.8)
        more = f", first {shown.shape[1]} of {out.shape[1]}" if shown.shape[1] < out.shape[1] else ""
        ax.set(xlabel="timestep t", ylabel="h_t",
               title=f"layer {i}: {cell.name}, {out.shape[1]} outputs per step{more}")
    fig.tight_layout()
    return fig


def recurrent_matrices(net, layer: int) -> dict[str, np.ndarray]:
    """The square recurrent matrices of a layer by label, as float64.

    What the cell gives (``Cell.recurrent_matrices``): e.g. U for elman, the gate blocks U_r,
    U_z, U_n for gru. Labels end in ' (reverse)' for a reverse direction. A sparse matrix is
    made dense up to ``EIGENVALUES_MAX`` rows.
    """
    matrices = net.layers[layer].recurrent_matrices(layer_params(net, layer))
    for label, w in matrices.items():
        if isinstance(w, CSR):
            if w.shape[0] > EIGENVALUES_MAX:
                raise InputError(f"layer {layer} has {w.shape[0]} units: its eigenvalues need "
                                 f"a dense matrix; plots stop at {EIGENVALUES_MAX} units.")
            matrices[label] = w.to_dense()
    return matrices


def eigenvalues(net):
    """The eigenvalues of every layer's recurrent matrices in the complex plane, with the
    unit circle: one panel per layer."""
    fig, axes = _figure(1, len(net.layers), figsize=(4.2 * len(net.layers), 4.2))
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 361))
    for i, ax in enumerate(axes):
        ax.plot(circle.real, circle.imag, color="0.6", linewidth=0.8, label="|z| = 1")
        for label, matrix in recurrent_matrices(net, i).items():
            eig = np.linalg.eigvals(matrix)
            ax.scatter(eig.real, eig.imag, s=10,
                       label=f"{label}: radius {np.max(np.abs(eig)):.3g}")
        ax.set(xlabel="Re", ylabel="Im", aspect="equal",
               title=f"layer {i}: {net.layers[i].name}")
        ax.legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return fig


def lyapunov(spectra):
    """Lyapunov spectra (exponents per step, sorted descending): one array, or a mapping of
    labels to arrays. Exponents that are -inf are left out."""
    if not isinstance(spectra, Mapping):
        spectra = {"": spectra}
    fig, (ax,) = _figure()
    for label, exponents in spectra.items():
        values = np.array([np.nan if e is None else e for e in exponents], np.float64)
        index = np.arange(1, len(values) + 1)
        shown = np.isfinite(values)
        ax.plot(index[shown], values[shown], marker="o", markersize=3, label=label or None)
    ax.axhline(0.0, color="0.5", linewidth=0.8)
    ax.set(xlabel="index i", ylabel="lambda_i (per step)", title="Lyapunov spectrum")
    if any(spectra):
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def sweep(table, x: str, y: str, metric: str):
    """A heat map of ``metric`` over the grid keys ``x`` and ``y`` of a sweep results table
    (a .csv or .parquet path written by ``rnnsim sweep``, or rows as dicts), averaged over
    the rows that share a grid cell (seeds and any other keys); cells without a finite value
    stay blank."""
    if isinstance(table, (str, os.PathLike)):
        if not Path(table).is_file():
            raise InputError(f"the sweep table '{table}' does not exist.")
        rows = sweep_mod.read_table(table)
    else:
        rows = list(table)
    if not rows:
        raise InputError("the sweep table has no rows.")
    for key, option in ((x, "--x"), (y, "--y"), (metric, "--metric")):
        if key not in rows[0]:
            close = [c for c in rows[0] if c.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]] \
                or difflib.get_close_matches(key, list(rows[0]), n=1, cutoff=0.5)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise InputError(f"{option} {key}: no such column{hint}; the table has "
                             f"{', '.join(rows[0])}.")
    groups = defaultdict(list)
    for row in rows:
        value = row[metric]
        if row[x] is not None and row[y] is not None and isinstance(value, (int, float)) \
                and math.isfinite(value):
            groups[(row[x], row[y])].append(float(value))
    xs, ys = _levels(r[x] for r in rows), _levels(r[y] for r in rows)
    grid = np.full((len(ys), len(xs)), np.nan)
    for (xv, yv), values in groups.items():
        grid[ys.index(yv), xs.index(xv)] = np.mean(values)
    fig, (ax,) = _figure(figsize=(6.4, 4.8))
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs], rotation=45, ha="right")
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    if grid.size <= ANNOTATED_CELLS:
        for (row, column), value in np.ndenumerate(grid):
            if np.isfinite(value):
                ax.text(column, row, f"{value:.3g}", ha="center", va="center", fontsize="small",
                        color="white" if value < np.nanmean(grid) else "black")
    per_cell = max((len(v) for v in groups.values()), default=0)
    ax.set(xlabel=x, ylabel=y, title=f"{metric} (mean of up to {per_cell} rows per cell)")
    fig.colorbar(image, ax=ax, label=metric)
    fig.tight_layout()
    return fig


def _levels(values) -> list:
    """The distinct values of a grid key, numbers in numeric order, then the rest as text."""
    distinct = set(values) - {None}
    numbers = sorted(v for v in distinct if isinstance(v, (int, float)))
    return numbers + sorted((v for v in distinct if not isinstance(v, (int, float))), key=str)


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


__all__ = ["eigenvalues", "lyapunov", "recurrent_matrices", "save", "states", "sweep"]
