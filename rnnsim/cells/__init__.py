"""Recurrent cells: the parameters of one layer and the kernels that run them.

A cell class lists its parameters (name -> initializer role, shape) and runs one direction of
its recurrence; ``CELLS`` maps the config's ``cell:`` names to the classes.
"""
from .base import Cell
from .elman import ElmanCell
from .esn import ESNCell
from .gru import GRUCell
from .lstm import LSTMCell

CELLS: dict[str, type[Cell]] = {"elman": ElmanCell, "lstm": LSTMCell, "gru": GRUCell,
                               "esn": ESNCell}

__all__ = ["CELLS", "Cell"]
