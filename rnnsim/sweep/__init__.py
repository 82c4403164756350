"""Parameter sweeps: every point of a grid of config values, run in parallel, resumable.

A grid maps config key paths (``network.layers[0].units``) to values. Every point of the
cartesian product (times ``repeats``) becomes a full config whose ``network.seed`` is derived
from the base seed and the point's own values, so a point gets the same seed whatever else is
swept. Points run in worker processes (or on a Dask cluster); each finished point is written
atomically to ``<table stem>.points/<hash of its config>.json``, so a rerun skips it; the table
(CSV or Parquet) is rebuilt from those files.

The jobs live in one module each: ``keys`` (config key paths), ``grid`` (grid values, the
points and their seeds, the checks of a config's ``sweep:`` section), ``table`` (point files
and tables) and ``run`` (metrics and the runners). ``run`` (process pools, asyncio) is imported
on first use of its names, so that checking a config (``rnnsim validate``) stays quick.
"""
import importlib

from .grid import Point, config_hash, expand, grid_values, parse_config, point_seed, \
    sweep_problems
from .keys import canonical_key, check_key_path, split_key_path
from .table import points_folder, read_table, write_table

_RUN = ("SweepTable", "evaluate_point", "resolve_metrics", "run_sweep")


def __getattr__(name):
    if name in _RUN:
        return getattr(importlib.import_module(".run", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Point", "SweepTable", "canonical_key", "check_key_path", "config_hash",
           "evaluate_point", "expand", "grid_values", "parse_config", "point_seed",
           "points_folder", "read_table", "resolve_metrics", "run_sweep", "split_key_path",
           "sweep_problems", "write_table"]
