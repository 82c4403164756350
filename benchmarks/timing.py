"""What every benchmark script shares: the timer and the command-line options."""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fastest_cpu_seconds(fn, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``fn()`` after a warm-up, in this thread's own CPU
    time (other processes on the machine do not count)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


def parse_args(doc: str, sections: tuple[str, ...] = ()) -> argparse.Namespace:
    """``--quick`` and ``--json PATH``, with the script's docstring as its description; with
    ``sections``, ``--only SECTION`` (repeatable; ``args.only``: the sections to run, all by
    default)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter sequences, fewer repeats")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    if sections:
        parser.add_argument("--only", action="append", choices=sections,
                            help="run only this section (repeat for several; default: all)")
    args = parser.parse_args()
    if sections and not args.only:
        args.only = list(sections)
    return args
