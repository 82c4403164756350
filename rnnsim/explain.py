"""The learner's view: each layer's equations with shapes in k and p, run on several T."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .display import symbolic
from .network import Network, RunResult
from .plot import save


def describe(net: Network) -> list[str]:
    """Lines explaining every layer and the head, with symbolic and numeric shapes."""
    lines = []
    rows = net.parameter_table()
    for i, layer in enumerate(net.layers):
        k, p = layer.input_size, layer.units
        acts = ", ".join(a.name for a in layer.activations)
        way = ", bidirectional (2 directions)" if layer.directions == 2 else ""
        lines.append(f"layer {i}: {layer.name}{way}, k = {k} inputs, p = {p} units, "
                     f"activations {acts}")
        lines.append(f"  {layer.equation}")
        mine = [r for r in rows if r["name"].startswith(f"layers.{i}.")]
        lines += _parameter_lines(
            mine, lambda r: (("p", p), ("k", k) if r["role"] == "input" else ("p", p)))
    if net.head is not None:
        q, p = net.head.units, net.head.in_features
        lines.append(f"head: {net.config.network.head.name}, q = {q} outputs from p = {p}, "
                     f"f_y = {net.head.activation.name}")
        lines.append(f"  {net.head.equation}")
        mine = [r for r in rows if r["name"].startswith("head.")]
        lines += _parameter_lines(mine, lambda r: (("q", q), ("p", p)))
    return lines


def _parameter_lines(rows, sizes) -> list[str]:
    """One line per parameter; ``sizes(row)`` names its (fan_out, fan_in) sizes."""
    lines = []
    for r in rows:
        shape = symbolic(r["shape"], *sizes(r))
        numeric = " x ".join(map(str, r["shape"]))
        lines.append(f"  {r['symbol']:<12} {shape:<8} = {numeric:<10} {r['count']:>8,}")
    lines.append(f"  {'parameters':<12} {'':<8}   {'':<10} {sum(r['count'] for r in rows):>8,}"
                 " (none depends on T)")
    return lines


def run_lengths(net: Network, steps) -> list[tuple[np.ndarray, RunResult]]:
    """Run the same network on one seeded sequence of each length in ``steps``."""
    runs = []
    for T in steps:
        x = np.random.default_rng([net.config.network.seed, T]).standard_normal(
            (T, net.input_size)).astype(net.dtype)
        runs.append((x, net.run(x)))
    return runs


def describe_runs(net: Network, runs) -> list[str]:
    """Lines showing the same weights on each length."""
    count = net.parameter_count()
    lines = [f"the same {count:,} weights, run on sequences of different lengths:"]
    for x, result in runs:
        y = "" if result.y is None else f", y {result.y.shape}"
        lines.append(f"  T = {x.shape[0]:<5} x {x.shape} -> output {result.output.shape}{y}")
    lines.append("The recurrence applies one cell T times: T comes from the input, p from the "
                 "config.")
    return lines


def plot(net: Network, runs, path) -> Path:
    """Draw the loop unrolled over time and each run's hidden-state traces."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'rnnsim[plot]'.") from None
    fig, axes = plt.subplots(1 + len(runs), 1, figsize=(9, 2.6 * (1 + len(runs))))
    _draw_unrolled(axes[0], net)
    for ax, (x, result) in zip(axes[1:], runs):
        ax.plot(np.arange(1, x.shape[0] + 1), result.output, linewidth=0.8)
        ax.set(xlabel="timestep t", ylabel="a_t (each unit)",
               title=f"T = {x.shape[0]}: {result.output.shape[-1]} units over time")
    fig.tight_layout()
    try:
        return save(fig, path)
    finally:
        plt.close(fig)


def _draw_unrolled(ax, net: Network) -> None:
    shown = 5
    p = net.layers[0].units
    for t in range(shown):
        ax.add_patch(__import__("matplotlib").patches.FancyBboxPatch(
            (t * 2, 0), 1.2, 1, boxstyle="round,pad=0.05", facecolor="#cde"))
        ax.text(t * 2 + 0.6, 0.5, f"cell\n{p} units", ha="center", va="center", fontsize=8)
        ax.text(t * 2 + 0.6, -0.4, f"x_{t + 1}", ha="center")
        ax.text(t * 2 + 0.6, 1.4, f"a_{t + 1}", ha="center")
        if t < shown - 1:
            ax.annotate("", xy=(t * 2 + 2, 0.5), xytext=(t * 2 + 1.25, 0.5),
                        arrowprops={"arrowstyle": "->"})
    ax.text(shown * 2 - 0.2, 0.5, "... T steps", va="center")
    ax.set(xlim=(-0.5, shown * 2 + 1.5), ylim=(-0.8, 1.8),
           title="one cell (W_a, U_a, b_a) reused at every timestep")
    ax.axis("off")
