"""Built-in sweep metrics, registered through the same hook as a plugin's: each is
``fn(net, seed) -> float`` for one point of a sweep.

Each metric imports the modules it computes with when it runs: loading the plugins (every
``Network``) then costs no import of the dynamics, reservoir or task modules.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..hookspecs import hookimpl

# Washout of the nrmse metric's readout, as a fraction of the training steps.
NRMSE_WASHOUT = 0.1
NRMSE_RIDGE = 1e-6


def mean_abs_state(net, seed: int) -> float:
    """Mean |h| of the top layer over every step and sequence of the drive."""
    from ..tasks import draw_input

    return float(np.mean(np.abs(net.run(draw_input(net, seed=seed)).output), dtype=np.float64))


def final_state_norm(net, seed: int) -> float:
    """Euclidean norm of the top layer's final state (directions joined), mean over the batch."""
    from ..tasks import draw_input

    final = net.run(draw_input(net, seed=seed)).final[-1].astype(np.float64)  # (D, B, p)
    return float(np.mean(np.linalg.norm(final.swapaxes(0, 1).reshape(final.shape[1], -1),
                                        axis=-1)))


def spectral_radius(net, seed: int) -> float:
    """Largest |eigenvalue| of layer 0's recurrent matrix (its forward direction); the
    initializer's ``spectral_radius`` when the network's float64 build scaled it to that."""
    from .. import sparse

    layer = net.layers[0]
    if layer.gate_count() > 1:
        raise ConfigError(f"network.layers[0]: the {layer.name} cell has no single square "
                          f"recurrent matrix (its {layer.gate_count()} gates stack several), so it "
                          "has no spectral radius; use a cell without gates for this metric.")
    recurrent = [name for name, (role, _) in layer.parameter_shapes().items()
                 if role == "recurrent"][0]
    known = net.known_spectral_radius(f"layers.0.{recurrent}")
    if known is not None:  # scaled to it while the network was built
        return known
    matrices = layer.recurrent_matrices(net.layer_params(0))
    return sparse.spectral_radius(next(iter(matrices.values())))


def nrmse(net, seed: int) -> float:
    """Test NRMSE of one-step-ahead Mackey-Glass forecasting with the fitted ridge readout.

    The task of ``rnnsim fit --task mackey-glass``: the normalised series of
    ``run.timesteps + 1`` steps, the readout fitted on the first 80% (washout 10% of those),
    tested on the rest. Needs ``head: {name: ridge}`` and ``input_size: 1``.
    """
    from .. import reservoir
    from ..tasks import mackey_glass_task

    u, y, split = mackey_glass_task(net)
    return reservoir.fit_and_score(net, u, y, split, washout=int(NRMSE_WASHOUT * split),
                                   ridge=NRMSE_RIDGE)["test_nrmse"]


def memory_capacity(net, seed: int) -> float:
    """Jaeger's memory capacity on ``run.timesteps`` steps of seeded U(-1, 1) input, held
    out, with the config's ``run.memory_capacity`` options (max_delay, washout, ridge,
    test_fraction: sweepable as grid keys)."""
    from .. import reservoir

    return reservoir.memory_capacity(net, timesteps=net.config.run.timesteps, seed=seed,
                                     **reservoir.memory_options(net))


def largest_lyapunov(net, seed: int) -> float:
    """Largest Lyapunov exponent of layer 0 under zero input over ``run.timesteps`` steps,
    after ``run.lyapunov.warmup`` steps (rnnsim.dynamics)."""
    from ..dynamics import largest_lyapunov as lyapunov

    return lyapunov(net, steps=net.config.run.timesteps, warmup=net.config.run.lyapunov.warmup,
                    layer=0, seed=seed)


@hookimpl
def register_metrics(register):
    register("mean_abs_state", mean_abs_state, "mean |h| of the top layer under a seeded "
             "N(0,1) drive of run.timesteps x run.batch")
    register("final_state_norm", final_state_norm, "norm of the top layer's last state under "
             "that drive, mean over the batch")
    register("spectral_radius", spectral_radius, "largest |eigenvalue| of layer 0's recurrent "
             "matrix")
    register("nrmse", nrmse, "test NRMSE of a ridge readout on one-step Mackey-Glass "
             "forecasting (head: ridge, input_size: 1)")
    register("memory_capacity", memory_capacity, "Jaeger's memory capacity of the top layer, "
             "held out (options: run.memory_capacity)")
    register("largest_lyapunov", largest_lyapunov, "largest Lyapunov exponent of layer 0")
