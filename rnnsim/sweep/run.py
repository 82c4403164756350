"""Running a sweep: metrics resolved from the registry, points evaluated in worker processes
or on a Dask cluster, finished points kept, the table written."""
from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import inspect
import math
import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..config import Config
from ..errors import ConfigError, RnnsimError, shown
from ..network import Network
from ..plugins import Metric, get_plugins
from .grid import POINT_FORMAT, Point, expand, parse_config
from .table import (TABLE_SUFFIXES, points_folder, read_point, require_pyarrow, write_point,
                    write_table)


DASK_HINT = "install it with `pip install 'rnnsim[dask]'`"
ON_ERROR = ("fail", "record", "skip")
# The key under which evaluate_point returns a point's failures, and the table's column.
ERRORS = "error"


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
            problems.append(f"metrics: expected a metric name or a function, got {shown(metric)}.")
    names = [m.name for m in resolved]
    problems += [f"metrics: metric '{name}' is given twice." for name in sorted(set(names))
                 if names.count(name) > 1]
    if problems:
        raise ConfigError("\n".join(problems))
    return resolved


def evaluate_point(config: Mapping, metrics: Sequence[Metric]) -> dict[str, Any]:
    """Build the point's network and compute every metric; what a worker process runs.

    Returns metric name -> value. A metric that raises is left out, and so is every metric
    when the network cannot be built: ``values[ERRORS]`` then lists ``(where, exception)``
    pairs, for the caller's ``on_error`` policy.
    """
    try:
        net = Network.from_config(config)
    except Exception as exc:  # noqa: BLE001 - the point's failure, judged by on_error
        return {ERRORS: [("network", exc)]}
    seed = net.config.network.seed
    values, errors = {}, []
    for metric in metrics:
        view = copy.copy(net)
        view.params = dict(net.params)  # a metric that fits the head leaves the next one alone
        try:
            values[metric.name] = float(metric.fn(view, seed))
        except Exception as exc:  # noqa: BLE001 - named below, judged by on_error
            errors.append((f"metric '{metric.name}'", exc))
    if errors:
        values[ERRORS] = errors
    return values


class SweepTable(list):
    """The rows of a sweep's table (one dict per point, in grid order).

    columns : the grid's key paths, ``seed``, then the metrics (and ``error`` when a point
    failed under ``on_error='record'``); path : the table written; computed, resumed : how
    many points ran now and how many were read from point files; failed : ``(point, error)``
    text pairs of the points that failed, whatever the policy.
    """

    def __init__(self, rows, columns, path, computed, resumed, failed=()):
        super().__init__(rows)
        self.columns, self.path = list(columns), Path(path)
        self.computed, self.resumed, self.failed = computed, resumed, list(failed)


def run_sweep(config: str | os.PathLike | Mapping | Config, grid: Mapping[str, Any] | None = None,
              metrics: Sequence[str | Callable | Metric] | None = None,
              output: str | os.PathLike | None = None, *, repeats: int | None = None,
              seed: int | None = None, workers: int | None = None, scheduler: str | None = None,
              progress: Callable[[int, int], None] | None = None,
              on_error: str | None = None) -> SweepTable:
    """Run every point of ``grid`` on ``config`` and write the table of ``metrics``.

    config : YAML path, mapping or ``Config``; its ``sweep:`` section gives whatever of grid,
        metrics, output, repeats and seed is not passed here
    grid : key path -> values (a list, ``START:STOP:COUNT[:log]`` or ``'a,b,c'``)
    metrics : registered metric names (``register_metrics``), ``Metric`` objects, or
        module-level ``fn(net, seed)``
    output : the table, ``.csv`` or ``.parquet``; finished points are kept in
        ``points_folder(output)`` and not run again
    repeats : seeds per grid point (default 1); seed : base of the per-point seeds
        (default ``network.seed``)
    workers : parallel processes, or Dask workers with ``scheduler='local'`` (default: the
        CPU count; 1 runs in this process)
    scheduler : a Dask scheduler address (``tcp://host:8786``) or ``'local'`` for a
        throwaway local cluster; None runs on this machine
    progress : called as ``progress(finished, total)`` as points finish
    on_error : what a point whose network cannot be built, or a metric that raises, does:
        ``'fail'`` stops the sweep with the error (finished points stay in their files);
        ``'record'`` (default, or the sweep section's ``on_error``) writes NaN for the
        metrics it lacks and the error's text in an ``error`` column; ``'skip'`` leaves the
        point out of the table. Either way the point is tried again by the next run (only
        finished metrics are kept), and ``table.failed`` lists it.
    """
    config = config if isinstance(config, Config) else parse_config(config)
    section = config.sweep
    grid = grid if grid is not None else section.grid if section else None
    metrics = metrics if metrics is not None else section.metrics if section else None
    output = output if output is not None else section.output if section else None
    repeats = repeats if repeats is not None else section.repeats if section else 1
    seed = seed if seed is not None else section.seed if section else None
    on_error = on_error if on_error is not None else section.on_error if section else "record"
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}; got {on_error!r}.")
    missing = [name for name, value in (("grid", grid), ("metrics", metrics), ("output", output))
               if not value]
    if missing:
        raise ConfigError(f"the sweep needs {', '.join(missing)}: pass them, or set them in the "
                          "config's sweep: section (see docs/sweeps.md).")
    output = Path(output)
    if output.suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"sweep output '{output}': the table must end in .csv or .parquet.")
    if output.suffix == ".parquet":
        require_pyarrow()
    if not (isinstance(repeats, int) and repeats >= 1):
        raise ConfigError(f"sweep repeats must be an integer >= 1; got {shown(repeats)}.")
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
    results, pending, failures = {}, [], {}
    for point in points:
        stored = read_point(folder / f"{point.key}.json") or {}
        results[point.key] = stored
        todo = [m for m in metrics if m.name not in stored]
        if todo:
            pending.append((point, todo))
    total, finished = len(points), len(points) - len(pending)
    if progress is not None:
        progress(finished, total)

    def record(point: Point, values: dict) -> None:
        nonlocal finished
        errors = values.pop(ERRORS, [])
        if errors and on_error == "fail":
            where, exc = errors[0]
            if isinstance(exc, RnnsimError):
                raise type(exc)(f"sweep point {point.describe()}: {where}: {exc}") from None
            raise exc
        if errors:
            failures[point.key] = "; ".join(f"{where}: {type(exc).__name__}: {exc}"
                                            for where, exc in errors)
        stored = results[point.key] = {**results[point.key], **values}
        write_point(folder / f"{point.key}.json",
                    {"format": POINT_FORMAT, "params": point.params, "seed": point.seed,
                     "metrics": stored, "config": point.config})
        finished += 1
        if progress is not None:
            progress(finished, total)

    workers = os.cpu_count() or 1 if workers is None else workers
    _run(pending, workers, scheduler, record)
    columns = [*paths, "seed", *[m.name for m in metrics]]
    rows = [{**point.params, "seed": point.seed,
             **{m.name: results[point.key].get(m.name, math.nan) for m in metrics}}
            for point in points if on_error != "skip" or point.key not in failures]
    if failures and on_error == "record":
        columns.append(ERRORS)
        for point, row in zip(points, rows):
            row[ERRORS] = failures.get(point.key)
    write_table(output, rows, columns)
    failed = [(point.describe(), failures[point.key]) for point in points
              if point.key in failures]
    return SweepTable(rows, columns, output, len(pending), total - len(pending), failed)


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
                                                    initializer=init_worker,
                                                    initargs=(os.getpid(),)) as pool:
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
            _check_scheduler(distributed, address)
        try:
            client = distributed.Client(address, timeout=_connect_timeout(),
                                        set_as_default=False)
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


def _connect_timeout() -> float:
    """Seconds to wait for a scheduler: Dask's ``distributed.comm.timeouts.connect`` (30 s
    unless set, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``)."""
    import dask.config
    from dask.utils import parse_timedelta

    return parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")


def _check_scheduler(distributed, address: str) -> None:
    """Ask ``address`` who it is, within the connect timeout overall: a server that never
    answers, or answers anything but a Dask scheduler's identity, is a ``ConfigError`` before
    a ``Client`` (which could wait on it forever) is made."""
    timeout = _connect_timeout()

    async def identity():
        comm = await distributed.comm.connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), timeout))
    except Exception as exc:  # timeouts, refused connections, garbage decoded as frames
        problem = (f"no answer within {timeout:g} s" if isinstance(exc, TimeoutError)
                   else f"{type(exc).__name__}: {str(exc)[:200]}")
        raise ConfigError(f"cannot reach the Dask scheduler at '{address}': {problem}. Start "
                          "one with `dask scheduler` and `dask worker ADDRESS`, or use "
                          "--scheduler local.") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise ConfigError(f"'{address}' answered, but not as a Dask scheduler (it said "
                          f"{shown(reply)}). Check the address and port.")


def _evaluated(point: Point, compute: Callable[[], dict]) -> dict:
    """``compute()``; an RnnsimError it raises names the point."""
    try:
        return compute()
    except RnnsimError as exc:
        raise type(exc)(f"sweep point {point.describe()}: {exc}") from None


def init_worker(parent: int | None = None) -> None:
    """Worker-process setup: one numba thread and one BLAS thread each, so N workers use N
    cores; with ``parent`` (the sweep's process id) the worker ends as soon as that process is
    gone, killed included (each worker holds its task queue open itself, so it would wait on
    it forever)."""
    import numba

    if parent is not None:
        threading.Thread(target=_exit_without, args=(parent,), daemon=True,
                         name="rnnsim-parent-watch").start()

    from ..threads import one_blas_thread

    numba.set_num_threads(1)
    one_blas_thread()


def _exit_without(parent: int, every: float = 0.2) -> None:
    """End this process once its parent is no longer ``parent``."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)
