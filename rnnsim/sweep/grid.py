"""A sweep's grid: values from lists, ranges and comma lists; the points of the cartesian
product with their seeds and validated configs; the checks of a config's ``sweep:`` section.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .. import config as config_mod
from .. import yamlfile
from ..config import Config
from ..errors import ConfigError, shown
from ..plugins import get_plugins
from .keys import check_key_path, split_key_path


# Bumped when the point files or the metrics change meaning: old point files are then ignored.
POINT_FORMAT = 2


def grid_values(spec: Any, where: str) -> list:
    """The values of one grid axis.

    ``spec`` is a list, a scalar, or a string: ``START:STOP:COUNT`` (COUNT values evenly
    spaced, both ends included; integers when both ends are written as integers and every
    value is whole), ``START:STOP:COUNT:log`` (evenly spaced in log scale), or ``a,b,c``.
    Values of a range are rounded to 12 significant digits (0.7, not 0.7000000000000001).
    """
    if isinstance(spec, str) and ":" in spec:
        values = _range(spec, where)
    elif isinstance(spec, str):
        values = [parse_scalar(text, where) for text in spec.split(",")]
    elif isinstance(spec, (list, tuple)):
        values = list(spec)
    else:
        values = [spec]
    if not values:
        raise ConfigError(f"{where}: the list of values is empty.")
    seen = set()
    for value in values:
        text = json.dumps(value, sort_keys=True, default=str)
        if text in seen:
            raise ConfigError(f"{where}: the value {shown(value)} is given twice.")
        seen.add(text)
    return values


def parse_scalar(text: str, where: str):
    """One value of a comma list or a table cell: an int, a float, a bool or a string."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{where}: an empty value; separate values with single commas.")
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return yamlfile.load_yaml(text, where)
    except ConfigError:
        return text


def _range(text: str, where: str) -> list:
    fields = [f.strip() for f in text.split(":")]
    usage = (f"{where}: '{text}' is not a range; write START:STOP:COUNT (linear), "
             "START:STOP:COUNT:log (geometric) or a comma list such as 0.5,1,2.")
    if len(fields) not in (3, 4) or (len(fields) == 4 and fields[3] != "log"):
        raise ConfigError(usage)
    try:
        ends = [_number(f) for f in fields[:2]]
        count = int(fields[2])
    except ValueError:
        raise ConfigError(usage) from None
    if count < 1:
        raise ConfigError(f"{where}: COUNT in '{text}' must be at least 1.")
    log = len(fields) == 4
    if log and min(ends) <= 0:
        raise ConfigError(f"{where}: a log range needs START and STOP > 0; got '{text}'.")
    values = (np.geomspace if log else np.linspace)(*ends, count)
    values = [float(f"{v:.12g}") for v in values]
    if all(isinstance(e, int) for e in ends) and all(v.is_integer() for v in values):
        return [int(v) for v in values]
    return values


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text) from None
        return value


def parse_config(source: str | os.PathLike | Mapping) -> Config:
    """``config.parse`` and then the checks of its ``sweep:`` section, every problem at once."""
    config = config_mod.parse(source, get_plugins().cells)
    if config.sweep is not None:
        problems = sweep_problems(config)
        if problems:
            raise ConfigError(config_mod.format_errors(config_mod.origin_of(source), problems))
    return config


def sweep_problems(config: Config) -> list[str]:
    """Every problem of ``config.sweep``'s grid keys, values and metric names, with key paths."""
    sweep, data, problems = config.sweep, config.dump(), []
    for path, spec in sweep.grid.items():
        where = f"sweep.grid.{path}"  # a path of the YAML file, not of the config's keys
        problem = check_key_path(path, data, sweep.grid)[1]
        if problem:
            problems.append(f"sweep.grid: {problem}")
        try:
            grid_values(spec, where)
        except ConfigError as exc:
            problems.append(str(exc))
    metrics = get_plugins().metrics
    for i, name in enumerate(sweep.metrics):
        if name not in metrics:
            problems.append(metrics.unknown(name, f"sweep.metrics[{i}]"))
    return problems


@dataclass(frozen=True)
class Point:
    """One run of a sweep: its grid values, seed, full config and the hash naming its file."""

    params: dict
    seed: int
    config: dict
    key: str

    def describe(self) -> str:
        return ", ".join(f"{k}={shown(v)}" for k, v in self.params.items()) + f", seed={self.seed}"


def point_seed(base_seed: int, params: Mapping[str, Any], repeat: int = 0) -> int:
    """A seed in [0, 2**32) from the base seed, the point's grid values and the repeat index.

    It depends on nothing else: not on the order of the grid keys or values, nor on the other
    points of the sweep.
    """
    text = json.dumps({"seed": base_seed, "params": dict(params), "repeat": repeat},
                      sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def config_hash(config: Mapping) -> str:
    """A hash of a full config (and the point-file format): the name of its point file."""
    text = json.dumps({"format": POINT_FORMAT, "config": config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _assign(data: dict, parts: tuple, value) -> None:
    """Set ``data`` at the key path ``parts``; a bare plugin name becomes ``{name: ...}``."""
    node = data
    for part in parts[:-1]:
        child = node[part]
        if isinstance(child, str):
            child = node[part] = {"name": child}
        node = child
    node[parts[-1]] = copy.deepcopy(value)


def expand(config: Config, grid: Mapping[str, Any], repeats: int = 1,
           base_seed: int | None = None) -> tuple[list[str], list[Point]]:
    """The grid's canonical key paths and its points, every point's config validated.

    ``grid`` maps key paths to values as taken by ``grid_values``; ``network.seed`` may be a
    grid key, and then it is the point's seed (with ``repeats`` 1).
    """
    base = config.dump()
    base.pop("sweep", None)
    axes, problems = {}, []
    for path, spec in grid.items():
        canonical, problem = check_key_path(path, base, grid)
        if problem:
            problems.append(f"grid: {problem}")
        elif canonical in axes:
            problems.append(f"grid {path}: '{canonical}' is given twice.")
        try:
            values = grid_values(spec, f"grid {path}")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        axes[canonical] = [v.item() if isinstance(v, np.generic) else v for v in values]
    if not grid:
        problems.append("grid: give at least one key path and its values.")
    if "network.seed" in axes and repeats > 1:
        problems.append(f"grid network.seed: the seeds are swept, so repeats must be 1 (it "
                        f"is {repeats}).")
    if problems:
        raise ConfigError("\n".join(problems))
    base_seed = config.network.seed if base_seed is None else base_seed
    points = []
    for values in itertools.product(*axes.values()):
        params = dict(zip(axes, values))
        for repeat in range(repeats):
            data = copy.deepcopy(base)
            for path, value in params.items():
                _assign(data, split_key_path(path), value)
            seed = params.get("network.seed", point_seed(base_seed, params, repeat))
            data["network"]["seed"] = seed
            try:
                checked = config_mod.parse(data, get_plugins().cells).dump()
            except ConfigError as exc:
                point = ", ".join(f"{k}={shown(v)}" for k, v in params.items())
                raise ConfigError(f"sweep point {point}: {exc}") from None
            points.append(Point(params, seed, checked, config_hash(checked)))
    return list(axes), points
