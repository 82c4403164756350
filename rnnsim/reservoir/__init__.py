"""Reservoir computing: ridge readouts, closed-loop generation, benchmark series and analyses
of echo-state networks, one job per module (``readout``, ``generation``, ``datasets``,
``analysis``). ``Network.fit`` and ``Network.generate`` delegate here; sparse weights and
spectral radii live in :mod:`rnnsim.sparse`, ensembles in :mod:`rnnsim.ensembles`.
"""
from .analysis import (analyze, echo_state_check, memory_capacity, memory_curve,
                       memory_options, recurrent_matrix)
from .datasets import mackey_glass
from .generation import generate
from .readout import fit, fit_and_score, has_feedback, nrmse, ridge_regression, teacher_signal

__all__ = ["analyze", "echo_state_check", "fit", "fit_and_score", "generate", "has_feedback",
           "mackey_glass", "memory_capacity", "memory_curve", "memory_options", "nrmse",
           "recurrent_matrix", "ridge_regression", "teacher_signal"]
