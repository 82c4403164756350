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
import re
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import numpy as np

from . import dynamics, sweep as sweep_mod
from .errors import InputError
from .io import write_atomic
from .sparse import CSR

FORMATS = {".png": "png", ".svg": "svg"}
# Above this many units a sparse reservoir's eigenvalues are not computed (a dense eig).
EIGENVALUES_MAX = 2048
# Heat maps with at most this many cells print each cell's value, at HEAT_FONT points (smaller
# only if the figure would be wider than HEAT_MAX_WIDTH inches); HEAT_MARGIN inches hold the
# y labels and the colour bar; a digit is about CHAR_WIDTH of the font size wide.
ANNOTATED_CELLS = 144
HEAT_FONT = 8.0
HEAT_MAX_WIDTH = 16.0
HEAT_MARGIN = 2.6
CHAR_WIDTH = 0.62


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


def state_symbol(cell) -> str:
    """The symbol of what a layer passes on at step t, read from its recurrence in
    ``Cell.equation``: ``a_t`` for elman (``a_{t-1}``), ``h_t`` for gru and lstm, ``x_t`` for
    esn; ``h_t`` when the equation names none."""
    match = re.search(r"([A-Za-z]\w*?)_\{t-1\}", cell.equation or "")
    return f"{match.group(1)}_t" if match else "h_t"


def _integer_ticks(axis) -> None:
    """Ticks only at whole numbers on an axis of steps or indices."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


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
        symbol = state_symbol(cell)
        width = (f"p = {cell.hidden_size} units" if cell.directions == 1 else
                 f"p = {cell.hidden_size} units x {cell.directions} directions")
        more = (f" (first {shown.shape[1]} of {out.shape[1]} drawn)"
                if shown.shape[1] < out.shape[1] else "")
        ax.set(xlabel="timestep t", ylabel=f"{symbol} (each unit)",
               title=f"layer {i}: {cell.name}, {symbol} of its {width}{more}")
        _integer_ticks(ax.xaxis)
    fig.tight_layout()
    return fig


def recurrent_matrices(net, layer: int) -> dict[str, np.ndarray]:
    """The square recurrent matrices of a layer by label, as float64.

    What the cell gives (``Cell.recurrent_matrices``): e.g. U for elman, the gate blocks U_r,
    U_z, U_n for gru. Labels end in ' (reverse)' for a reverse direction. A sparse matrix is
    made dense up to ``EIGENVALUES_MAX`` rows.
    """
    matrices = net.layers[layer].recurrent_matrices(net.layer_params(layer))
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
    layers = [recurrent_matrices(net, i) for i in range(len(net.layers))]
    # The legend goes below each panel, where it can cover no eigenvalue: a line per matrix.
    legend_inches = 0.3 + 0.2 * (1 + max(len(matrices) for matrices in layers))
    fig, axes = _figure(1, len(net.layers),
                        figsize=(4.2 * len(net.layers), 4.2 + legend_inches))
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 361))
    for i, ax in enumerate(axes):
        ax.plot(circle.real, circle.imag, color="0.6", linewidth=0.8, label="|z| = 1")
        for label, matrix in layers[i].items():
            eig = np.linalg.eigvals(matrix)
            ax.scatter(eig.real, eig.imag, s=10,
                       label=f"{label}: radius {np.max(np.abs(eig)):.3g}")
        ax.set(xlabel="Re", ylabel="Im", aspect="equal",
               title=f"layer {i}: {net.layers[i].name}")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  frameon=False)
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
    _integer_ticks(ax.xaxis)
    if any(spectra):
        ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def memory(curves):
    """Forgetting curves: r2 of the delay-d readout against d, from ``memory_curve`` results
    (one, or a mapping of labels to them); the legend gives each capacity (their sum)."""
    if not isinstance(curves, Mapping) or "r2" in curves:
        curves = {"": curves}
    fig, (ax,) = _figure()
    for label, curve in curves.items():
        r2 = np.asarray(curve["r2"], np.float64)
        capacity = float(np.sum(r2))
        ax.plot(np.asarray(curve["delays"]), r2, marker="o", markersize=2,
                label=f"{label} MC = {capacity:.3g}".strip())
    ax.set(xlabel="delay d (steps)", ylabel="r^2 of u(t - d)", ylim=(-0.02, 1.02),
           title="memory (held-out forgetting curve)")
    _integer_ticks(ax.xaxis)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def sweep(table, x: str, y: str, metric: str, scale: str = "auto", stat: str = "median"):
    """A heat map of ``metric`` over the grid keys ``x`` and ``y`` of a sweep results table
    (a .csv or .parquet path written by ``rnnsim sweep``, or rows as dicts), the ``stat``
    ('median', robust to one bad seed, or 'mean') of the rows that share a grid cell (seeds
    and any other keys); cells without a finite value stay blank. ``scale`` is the colour
    scale: 'log', 'linear', or 'auto' (log when every value is positive and they span more
    than two decades)."""
    if scale not in ("auto", "log", "linear") or stat not in ("median", "mean"):
        raise InputError(f"scale must be auto, log or linear and stat median or mean; got "
                         f"scale={scale!r}, stat={stat!r}.")
    if isinstance(table, (str, os.PathLike)):
        if not Path(table).is_file():
            raise InputError(f"the sweep table '{table}' does not exist.")
        rows = sweep_mod.read_table(table)
    else:
        rows = list(table)
    if not rows:
        raise InputError("the sweep table has no rows.")
    x, y = _column(rows[0], x), _column(rows[0], y)
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
    reduce = np.median if stat == "median" else np.mean
    for (xv, yv), values in groups.items():
        grid[ys.index(yv), xs.index(xv)] = reduce(values)
    finite = grid[np.isfinite(grid)]
    positive = finite.size and finite.min() > 0
    if scale == "log" and not positive:
        raise InputError(f"--log: {metric} has values <= 0, which a log colour scale cannot "
                         "show; use the linear scale.")
    log = scale == "log" or (scale == "auto" and positive and finite.max() > 100 * finite.min())
    texts = {cell: f"{value:.3g}" for cell, value in np.ndenumerate(grid)
             if np.isfinite(value)} if grid.size <= ANNOTATED_CELLS else {}
    # Wide enough for the widest cell label at HEAT_FONT points in every column, and the
    # font made smaller only beyond HEAT_MAX_WIDTH inches.
    chars = max((len(t) for t in texts.values()), default=1)
    label_inches = HEAT_FONT * CHAR_WIDTH * chars / 72 + 0.1
    width = min(HEAT_MAX_WIDTH, max(6.4, HEAT_MARGIN + label_inches * len(xs)))
    fontsize = min(HEAT_FONT, HEAT_FONT * (width - HEAT_MARGIN) / len(xs) / label_inches)
    fig, (ax,) = _figure(figsize=(width, max(4.8, 1.8 + 0.3 * len(ys))))
    from matplotlib.colors import LogNorm, Normalize

    norm = (LogNorm if log else Normalize)(*((finite.min(), finite.max()) if finite.size
                                             else (None, None)))
    image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", norm=norm)
    ax.set_xticks(range(len(xs)), [_label(v) for v in xs], rotation=45, ha="right")
    ax.set_yticks(range(len(ys)), [_label(v) for v in ys])
    middle = norm(np.nanmedian(grid)) if finite.size else 0.5
    for (row, column), text in texts.items():
        ax.text(column, row, text, ha="center", va="center", fontsize=fontsize,
                color="white" if norm(grid[row, column]) < middle else "black")
    per_cell = max((len(v) for v in groups.values()), default=0)
    ax.set(xlabel=axis_label(x), ylabel=axis_label(y),
           title=f"{metric} ({stat} of up to {per_cell} rows per cell)")
    fig.colorbar(image, ax=ax, label=f"{metric} ({'log' if log else 'linear'} scale)")
    fig.tight_layout()
    return fig


def _column(row: dict, key: str) -> str:
    """The table column of a grid key: ``key`` itself, or the canonical path ``sweep``
    writes for an alias such as ``network.layers[0].spectral_radius``."""
    if key in row:
        return key
    canonical = sweep_mod.canonical_key(key)
    return canonical if canonical in row else key


def _levels(values) -> list:
    """The distinct values of a grid key, numbers in numeric order, then the rest as text."""
    distinct = set(values) - {None}
    numbers = sorted(v for v in distinct if isinstance(v, (int, float)))
    return numbers + sorted((v for v in distinct if not isinstance(v, (int, float))), key=str)


def _label(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def axis_label(key: str) -> str:
    """A grid key path as an axis label: its last key first, where it sits after it:
    ``network.layers[0].init.recurrent.spectral_radius`` -> ``spectral_radius (layer 0,
    init.recurrent)``."""
    parts = key.split(".")
    if parts[0] == "network":
        parts = parts[1:]
    if len(parts) == 1:
        return parts[0]
    where = ".".join(parts[:-1]).replace("layers[", "layer ").replace("].", ", ").rstrip("]")
    return f"{parts[-1]} ({where})"


__all__ = ["axis_label", "eigenvalues", "lyapunov", "memory", "recurrent_matrices", "save",
           "state_symbol", "states", "sweep"]
