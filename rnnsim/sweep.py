"""Parameter sweeps: every point of a grid of config values, run in parallel, resumable.

A grid maps config key paths (``network.layers[0].units``) to values. Every point of the
cartesian product (times ``repeats``) becomes a full config whose ``network.seed`` is derived
from the base seed and the point's own values, so a point gets the same seed whatever else is
swept. Points run in worker processes (or on a Dask cluster); each finished point is written
atomically to ``<table stem>.points/<hash of its config>.json``, so a rerun skips it; the table
(CSV or Parquet) is rebuilt from those files.
"""
from __future__ import annotations

import concurrent.futures
import copy
import csv
import difflib
import hashlib
import inspect
import itertools
import json
import math
import multiprocessing
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import yaml

from . import config as config_mod
from .config import Config, HeadInit, LayerInit, Spec, key_path
from .errors import ConfigError, RnnsimError
from .io import write_atomic
from .network import SPECTRAL_RADIUS, Network
from .plugins import Metric, get_plugins, keyword_params

# Bumped when the point files or the metrics change meaning: old point files are then ignored.
POINT_FORMAT = 2
DASK_HINT = "install it with `pip install 'rnnsim[dask]'`"
PARQUET_HINT = "install pyarrow with `pip install 'rnnsim[parquet]'`, or write a .csv table"
TABLE_SUFFIXES = (".csv", ".parquet")


# --- metrics ----------------------------------------------------------------------------------

def resolve_metrics(metrics: Iterable[str | Callable | Metric]) -> list[Metric]:
    """Registry names, ``Metric`` objects or plain ``fn(net, seed)`` functions as ``Metric``\\ s.

    A function's column is its ``__name__``; pass a module-level function so that worker
    processes can import it.
    """
    resolved, problems = [], []
    for metric in metrics:
        if isinstance(metric, Metric):
            resolved.append(metric)
        elif isinstance(metric, str):
            try:
                resolved.append(get_plugins().metrics.get(metric, "metrics"))
            except ConfigError as exc:
                problems.append(str(exc))
        elif callable(metric):
            resolved.append(Metric(metric.__name__, metric, inspect.getdoc(metric) or ""))
        else:
            problems.append(f"metrics: expected a metric name or a function, got {metric!r}.")
    names = [m.name for m in resolved]
    problems += [f"metrics: metric '{name}' is given twice." for name in sorted(set(names))
                 if names.count(name) > 1]
    if problems:
        raise ConfigError("\n".join(problems))
    return resolved


# --- grid -------------------------------------------------------------------------------------

_PART = re.compile(r"([A-Za-z_]\w*)((?:\[\d+\])*)")


def split_key_path(path: str) -> tuple | None:
    """``network.layers[0].units`` -> ``('network', 'layers', 0, 'units')``; None if malformed."""
    parts: list = []
    for chunk in path.strip().split("."):
        match = _PART.fullmatch(chunk)
        if match is None:
            return None
        parts.append(match.group(1))
        parts += [int(i) for i in re.findall(r"\d+", match.group(2))]
    return tuple(parts)


def _canonical(parts: tuple) -> tuple:
    """Expand the alias ``network.layers[i].spectral_radius`` (the recurrent initializer's)."""
    if (len(parts) == 4 and parts[:2] == ("network", "layers") and isinstance(parts[2], int)
            and parts[3] == SPECTRAL_RADIUS):
        return parts[:3] + ("init", "recurrent", SPECTRAL_RADIUS)
    return parts


def canonical_key(path: str) -> str:
    """The table column of a grid key path, aliases expanded: ``network.layers[0].spectral_radius``
    is written as ``network.layers[0].init.recurrent.spectral_radius``. A malformed path is
    returned as it is."""
    parts = split_key_path(path)
    return path if parts is None else key_path(_canonical(parts))


def _spec_mapping(value) -> dict:
    return {"name": value} if isinstance(value, str) else dict(value or {})


def _known_paths(model, value, prefix: str = "") -> list[str]:
    """Every key path of ``model`` with the list lengths of ``value`` (for did-you-mean)."""
    paths = []
    for name, field in model.model_fields.items():
        if model is Config and name == "sweep":
            continue
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        inner = config_mod._model_in(field.annotation)
        item = value.get(name) if isinstance(value, dict) else None
        if inner is Spec:
            keys = set(_spec_mapping(item)) | {"name"}
            if model in (LayerInit, HeadInit):
                keys.add(SPECTRAL_RADIUS)
            paths += [f"{path}.{key}" for key in sorted(keys)]
        elif inner is not None and isinstance(item, list):
            for i, entry in enumerate(item):
                paths += _known_paths(inner, entry, f"{path}[{i}]")
        elif inner is not None and isinstance(item, dict):
            paths += _known_paths(inner, item, path)
    return paths


def check_key_path(path: str, data: Mapping, swept: Iterable[str] = ()) -> tuple[str, str | None]:
    """``(canonical path, problem)`` for a grid key checked against the schema and ``data``.

    ``data`` is the config as a plain mapping (``Config.dump()``); the problem is None when the
    path names a key that a value can be given to. Parameters of plugin specs are checked
    against the plugin unless the spec's name is itself in ``swept``.
    """
    parts = split_key_path(path)
    if parts is None:
        return path, (f"'{path}' is not a key path; write keys joined by dots with list indices "
                      "in brackets, e.g. network.layers[0].units.")
    parts = _canonical(parts)
    canonical = key_path(parts)

    def unknown() -> tuple[str, str]:
        close = difflib.get_close_matches(canonical, _known_paths(Config, data), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return canonical, f"unknown config key path '{canonical}'{hint}."

    if parts[0] == "sweep":
        return canonical, (f"'{canonical}' is in the sweep section, which cannot be swept; "
                           "grid keys are the config's own keys.")
    model, parent, value = Config, None, data
    for depth, part in enumerate(parts):
        here = key_path(parts[:depth])
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(value, list):
                return canonical, f"'{here}' is not a list, so '{canonical}' cannot index it."
            if part >= len(value):
                return canonical, (f"'{here}' has {len(value)} entries in the config, so index "
                                   f"{part} in '{canonical}' is out of range.")
            value = value[part]
            continue
        if model is Spec:
            if not last:
                return unknown()
            return canonical, _spec_param_problem(parent, value, parts[:depth], part, swept)
        if model is None or not isinstance(model, type) or part not in model.model_fields:
            return unknown()
        parent, model = model, config_mod._model_in(model.model_fields[part].annotation)
        value = value.get(part) if isinstance(value, dict) else None
        if model is Spec:
            value = None if value is None else _spec_mapping(value)
        if value is None and model is not None and not last:
            return canonical, (f"'{key_path(parts[:depth + 1])}' is not set in the config; set "
                               f"it there to sweep '{canonical}'.")
    return canonical, None


def _spec_param_problem(owner, spec: dict, spec_parts: tuple, param: str,
                        swept: Iterable[str]) -> str | None:
    """None if ``param`` is a parameter the spec's plugin takes; else what is wrong."""
    spec_path = key_path(spec_parts)
    if param == "name" or param in spec or {spec_path, f"{spec_path}.name"} & set(swept):
        return None
    plugins = get_plugins()
    initializer = owner in (LayerInit, HeadInit)
    registry = plugins.initializers if initializer else plugins.activations
    if spec["name"] not in registry:
        return None  # the config's own check names the unknown plugin
    entry = registry.entries[spec["name"]]
    if initializer:
        accepted = keyword_params(entry.fn)
        if accepted is None:
            return None
        accepted = [*accepted, SPECTRAL_RADIUS]
    else:
        accepted = list(entry.params)
    if param in accepted:
        return None
    close = difflib.get_close_matches(param, accepted, n=1)
    hint = f" (did you mean '{spec_path}.{close[0]}'?)" if close else ""
    kind = "initializer" if initializer else "activation"
    return (f"unknown config key path '{spec_path}.{param}'{hint}: {kind} '{spec['name']}' "
            f"takes {', '.join(accepted) or 'no parameters'}.")


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
        values = [_scalar(text, where) for text in spec.split(",")]
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
            raise ConfigError(f"{where}: the value {value!r} is given twice.")
        seen.add(text)
    return values


def _scalar(text: str, where: str):
    text = text.strip()
    if not text:
        raise ConfigError(f"{where}: an empty value; separate values with single commas.")
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
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
    config = config_mod.parse(source)
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


# --- points -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One run of a sweep: its grid values, seed, full config and the hash naming its file."""

    params: dict
    seed: int
    config: dict
    key: str

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params.items()) + f", seed={self.seed}"


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
                checked = config_mod.parse(data).dump()
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
                raise ConfigError(f"sweep point {shown}: {exc}") from None
            points.append(Point(params, seed, checked, config_hash(checked)))
    return list(axes), points


def evaluate_point(config: Mapping, metrics: Sequence[Metric]) -> dict[str, float]:
    """Build the point's network and compute every metric; what a worker process runs."""
    net = Network.from_config(config)
    seed = net.config.network.seed
    values = {}
    for metric in metrics:
        view = copy.copy(net)
        view.params = dict(net.params)  # a metric that fits the head leaves the next one alone
        values[metric.name] = float(metric.fn(view, seed))
    return values


# --- files ------------------------------------------------------------------------------------

def points_folder(output: str | os.PathLike) -> Path:
    """Where a table's per-point files live: ``results.csv`` -> ``results.points/``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.points")


def _write_json(path: Path, record: dict) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))


def _read_point(path: Path) -> dict | None:
    """A point file's metrics, or None if it is missing, unreadable or of another format."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != POINT_FORMAT:
        return None
    return record.get("metrics") if isinstance(record.get("metrics"), dict) else None


def _cell(value):
    """A table cell: numbers and strings as they are, anything else as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def write_table(path: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV, or Parquet when ``path`` ends in .parquet, atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        pa, pq = _pyarrow()
        table = pa.table({c: [_cell(row[c]) for row in rows] for c in columns})
        write_atomic(path, lambda tmp: pq.write_table(table, tmp))
        return

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row[c] is None else _csv_text(_cell(row[c]))
                                 for c in columns])

    write_atomic(path, write_csv)


def _csv_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def read_table(path: str | os.PathLike) -> list[dict]:
    """The rows of a table written by ``write_table`` (CSV cells parsed back to numbers)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return _pyarrow()[1].read_table(path).to_pylist()
    with path.open(newline="") as handle:
        return [{k: _scalar(v, path.name) if v else None for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(f"a .parquet table needs pyarrow: {PARQUET_HINT}.") from None
    return pyarrow, pyarrow.parquet


# --- running ----------------------------------------------------------------------------------

class SweepTable(list):
    """The rows of a sweep's table (one dict per point, in grid order).

    columns : the grid's key paths, ``seed``, then the metrics; path : the table written;
    computed, resumed : how many points ran now and how many were read from point files.
    """

    def __init__(self, rows, columns, path, computed, resumed):
        super().__init__(rows)
        self.columns, self.path = list(columns), Path(path)
        self.computed, self.resumed = computed, resumed


def run_sweep(config: str | os.PathLike | Mapping | Config, grid: Mapping[str, Any] | None = None,
              metrics: Sequence[str | Callable | Metric] | None = None,
              output: str | os.PathLike | None = None, *, repeats: int | None = None,
              seed: int | None = None, workers: int | None = None, scheduler: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> SweepTable:
    """Run every point of ``grid`` on ``config`` and write the table of ``metrics``.

    config : YAML path, mapping or ``Config``; its ``sweep:`` section gives whatever of grid,
        metrics, output, repeats and seed is not passed here
    grid : key path -> values (a list, ``START:STOP:COUNT[:log]`` or ``'a,b,c'``)
    metrics : registered metric names (``register_metrics``), ``Metric`` objects, or module-level ``fn(net, seed)``
    output : the table, ``.csv`` or ``.parquet``; finished points are kept in
        ``points_folder(output)`` and not run again
    repeats : seeds per grid point (default 1); seed : base of the per-point seeds
        (default ``network.seed``)
    workers : parallel processes, or Dask workers with ``scheduler='local'`` (default: the
        CPU count; 1 runs in this process)
    scheduler : a Dask scheduler address (``tcp://host:8786``) or ``'local'`` for a
        throwaway local cluster; None runs on this machine
    progress : called as ``progress(finished, total)`` as points finish
    """
    config = config if isinstance(config, Config) else parse_config(config)
    section = config.sweep
    grid = grid if grid is not None else section.grid if section else None
    metrics = metrics if metrics is not None else section.metrics if section else None
    output = output if output is not None else section.output if section else None
    repeats = repeats if repeats is not None else section.repeats if section else 1
    seed = seed if seed is not None else section.seed if section else None
    missing = [name for name, value in (("grid", grid), ("metrics", metrics), ("output", output))
               if not value]
    if missing:
        raise ConfigError(f"the sweep needs {', '.join(missing)}: pass them, or set them in the "
                          "config's sweep: section (see docs/sweeps.md).")
    output = Path(output)
    if output.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"sweep output '{output}': the table must end in .csv or .parquet.")
    if output.suffix == ".parquet":
        _pyarrow()
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ConfigError(f"sweep repeats must be an integer >= 1; got {repeats!r}.")
    outcomes = []  # both checked, so that every mistake is reported at once
    for check in (lambda: resolve_metrics(metrics), lambda: expand(config, grid, repeats, seed)):
        try:
            outcomes.append(check())
        except ConfigError as exc:
            outcomes.append(exc)
    errors = [str(o) for o in outcomes if isinstance(o, ConfigError)]
    if errors:
        raise ConfigError("\n".join(errors))
    metrics, (paths, points) = outcomes
    folder = points_folder(output)
    results, pending = {}, []
    for point in points:
        stored = _read_point(folder / f"{point.key}.json") or {}
        results[point.key] = stored
        todo = [m for m in metrics if m.name not in stored]
        if todo:
            pending.append((point, todo))
    total, finished = len(points), len(points) - len(pending)
    if progress is not None:
        progress(finished, total)

    def record(point: Point, values: dict) -> None:
        nonlocal finished
        stored = results[point.key] = {**results[point.key], **values}
        _write_json(folder / f"{point.key}.json",
                    {"format": POINT_FORMAT, "params": point.params, "seed": point.seed,
                     "metrics": stored, "config": point.config})
        finished += 1
        if progress is not None:
            progress(finished, total)

    workers = os.cpu_count() or 1 if workers is None else workers
    _run(pending, workers, scheduler, record)
    columns = [*paths, "seed", *[m.name for m in metrics]]
    rows = [{**point.params, "seed": point.seed,
             **{m.name: results[point.key][m.name] for m in metrics}} for point in points]
    write_table(output, rows, columns)
    return SweepTable(rows, columns, output, len(pending), total - len(pending))


def _run(pending, workers: int, scheduler: str | None, record) -> None:
    """Evaluate ``(point, metrics)`` pairs here, in a process pool or on Dask."""
    if not pending:
        return
    if scheduler is not None:
        _run_dask(pending, workers, scheduler, record)
    elif workers == 1 or len(pending) == 1:
        for point, todo in pending:
            record(point, _evaluated(point, lambda: evaluate_point(point.config, todo)))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, len(pending)), context,
                                                    initializer=_one_thread) as pool:
            futures = {pool.submit(evaluate_point, point.config, todo): point
                       for point, todo in pending}
            try:
                for future in concurrent.futures.as_completed(futures):
                    record(futures[future], _evaluated(futures[future], future.result))
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise


def _run_dask(pending, workers: int, scheduler: str, record) -> None:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"--scheduler needs dask.distributed: {DASK_HINT}.") from None
    cluster = None
    try:
        if scheduler == "local":
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
            address = cluster.scheduler_address
        else:
            try:
                distributed.comm.get_address_host_port(scheduler)
            except ValueError as exc:
                raise ConfigError(f"--scheduler '{scheduler}': {exc}; give the scheduler's "
                                  "address, e.g. tcp://host:8786, or 'local'.") from None
            address = scheduler
        try:
            client = distributed.Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at '{scheduler}': {exc}. Start "
                              "one with `dask scheduler` and `dask worker ADDRESS`, or use "
                              "--scheduler local.") from None
        with client:
            futures = {client.submit(evaluate_point, point.config, todo, pure=False): point
                       for point, todo in pending}
            try:
                for future in distributed.as_completed(futures, loop=client.loop):
                    record(futures[future], _evaluated(futures[future], future.result))
            except BaseException:
                client.cancel(list(futures))
                raise
    finally:
        if cluster is not None:
            cluster.close()


def _evaluated(point: Point, compute: Callable[[], dict]) -> dict:
    """``compute()``; an RnnsimError it raises names the point."""
    try:
        return compute()
    except RnnsimError as exc:
        raise type(exc)(f"sweep point {point.describe()}: {exc}") from None


def _one_thread() -> None:
    """Worker-process setup: one numba thread and one BLAS thread each, so N workers use N
    cores."""
    import numba

    from .threads import one_blas_thread

    numba.set_num_threads(1)
    one_blas_thread()
