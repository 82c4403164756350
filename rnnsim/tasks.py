"""What the API draws or builds for a run when the user gives no data: seeded standard-normal
inputs and the Mackey-Glass forecasting task. The CLI, sweeps and metrics all call these, so
the same seed gives the same input everywhere."""
from __future__ import annotations

import math

import numpy as np

from . import guards
from .errors import ConfigError
from .longrun import DrawnInput
from .reservoir import mackey_glass


def drawn_input(net, timesteps: int | None = None, batch: int | None = None,
                seed: int | None = None) -> DrawnInput:
    """Seeded N(0, 1) input of the config's ``run`` size (or the given T, B) in ``net``'s
    layout, drawn a chunk at a time (for a run streamed to disk); seed: ``network.seed``."""
    config = net.config
    T = timesteps or config.run.timesteps
    B = batch or config.run.batch
    batch_first = config.network.batch_first
    shape = (B, T, net.input_size) if batch_first else (T, B, net.input_size)
    return DrawnInput(config.network.seed if seed is None else seed, shape, net.dtype,
                      time_axis=1 if batch_first else 0)


def draw_input(net, timesteps: int | None = None, batch: int | None = None,
               seed: int | None = None) -> np.ndarray:
    """``drawn_input`` as one array, checked against the memory budget first."""
    source = drawn_input(net, timesteps, batch, seed)
    size = math.prod(source.shape)
    guards.check_fits({f"drawn input {source.shape}": size * net.dtype.itemsize,
                       "its float64 draw": size * 8}, "the drawn input",
                      "Stream the run to disk with --output out.npy: the input is then drawn "
                      "a chunk at a time.")
    return source.whole()


def draw_sequence(net, timesteps: int, seed: int | None = None) -> np.ndarray:
    """One sequence (T, k) of ``draw_input``."""
    x = draw_input(net, timesteps, 1, seed)
    return x[0] if net.config.network.batch_first else x[:, 0]


def mackey_glass_task(net, timesteps: int | None = None):
    """One-step-ahead forecasting of the Mackey-Glass series, normalised to mean 0 and std 1:
    inputs u (T, 1), targets y (T, 1) = u shifted by one step, and the first test step (80%).
    T is ``timesteps`` or the config's ``run.timesteps``; the network takes one feature."""
    if net.input_size != 1:
        raise ConfigError(f"network.input_size: the Mackey-Glass task feeds one feature; the "
                          f"network has input_size = {net.input_size}.")
    series = mackey_glass((timesteps or net.config.run.timesteps) + 1)
    series = ((series - series.mean()) / series.std()).astype(net.dtype)
    return series[:-1], series[1:], int(0.8 * (len(series) - 1))
