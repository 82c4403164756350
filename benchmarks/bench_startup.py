"""Start-up of the commands that run no kernel: fresh processes, fastest of N.

Each command runs in a new interpreter (``python -m rnnsim ...``), the commands taking turns,
N times; the table gives the fastest wall time (what a user waits for: interpreter start,
imports, the work, exit) and the fastest CPU time of the main thread (``time.thread_time()``
at exit: less sensitive to other processes on the machine, blind to threads such as
OpenBLAS's). ``--against PATH`` times another checkout (its ``rnnsim`` package first on
``PYTHONPATH``) in the same turns, for a before/after comparison on equal terms. Compile the
bytecode first (``python -m compileall rnnsim``) and leave ``PYTHONDONTWRITEBYTECODE`` unset,
or every run compiles it again.

    python benchmarks/bench_startup.py [--repeats 7] [--against ../main]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (("--help",), ("run", "configs/quickstart.yaml", "--bogus"),
            ("validate", "configs/quickstart.yaml"), ("import", "--help"), ("plugins",))
# Runs a command as `python -m rnnsim` does, then reports the main thread's CPU time.
RUNNER = ("import sys, time\nfrom rnnsim.cli import cli\ntry:\n"
          "    cli(sys.argv[1:], prog_name='rnnsim')\nexcept SystemExit:\n    pass\n"
          "sys.stderr.write(f'\\nTHREAD_TIME {time.thread_time()}\\n')\n")


def timed(tree: Path, args: tuple[str, ...]) -> tuple[float, float]:
    """(wall seconds, main-thread CPU seconds) of one run of ``rnnsim ARGS`` in ``tree`` (its
    package imported, its configs read)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], cwd=tree, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    cpu = [line for line in done.stderr.splitlines() if line.startswith("THREAD_TIME ")]
    if not cpu:
        raise SystemExit(f"rnnsim {' '.join(args)} from {tree} failed:\n{done.stderr}")
    return wall, float(cpu[-1].split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each command")
    parser.add_argument("--against", type=Path, help="another checkout to time alongside")
    options = parser.parse_args()
    trees = [ROOT] + ([options.against.resolve()] if options.against else [])
    best = {}
    for _ in range(options.repeats):
        for args in COMMANDS:
            for tree in trees:
                wall, cpu = timed(tree, args)
                old = best.get((tree, args), (float("inf"), float("inf")))
                best[tree, args] = (min(old[0], wall), min(old[1], cpu))
    names = ["this checkout"] + ([str(options.against)] if options.against else [])
    print(f"fastest of {options.repeats}, seconds: wall (main-thread CPU); "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| command | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for args in COMMANDS:
        cells = [f"{best[tree, args][0]:.3f} ({best[tree, args][1]:.3f})" for tree in trees]
        print(f"| `rnnsim {' '.join(args)}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
