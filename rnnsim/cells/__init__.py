"""Recurrent cells: the parameters of one layer and the kernels that run them.

A cell class lists its parameters (name -> initializer role, shape), runs one direction of its
recurrence, and owns its GPU runner and dynamics map. Cells reach configs by registration
(``register_cells``; the built-ins in ``rnnsim.builtins.cells``), never through a table here.
"""
from .base import Cell

__all__ = ["Cell"]
