"""Plant known bugs in a copy of the project and check that the tests catch every one.

    python benchmarks/mutants.py [--only NAME ...] [--ref GIT_REF] [--no-baseline] [--list]

Copies the project (the working tree's tracked and untracked, not ignored, files; or the tree
of ``--ref``) to a temporary folder, runs the mutants' test files there once unmodified (the
baseline must pass), then for each mutant: edits the copy, runs the mutant's test files with
``pytest -x``, restores the copy. A mutant whose tests still pass has *survived*: a blind spot
in the tests. Exits 1 if any mutant survived or could not be planted (its text is gone: update
the mutant), 2 if the baseline fails.

The copy is what runs: PYTHONPATH puts its folder first (the editable install's finder comes
after the path entries), the script checks that ``rnnsim`` is imported from the copy, and the
kernel caches (RNNSIM_CACHE_DIR, NUMBA_CACHE_DIR) are folders of the run's own.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutant:
    name: str
    file: str  # relative to the project root
    edits: list[tuple[str, str]]  # (text, replacement): each text must occur exactly once
    tests: list[str]
    why: str


MUTANTS = [
    Mutant("cuda-gru-bn-dropped-reset-before", "rnnsim/kernels/cuda/gru.py",
           [("an[r] = xp[step_time(s, lengths[b], reverse), b, 2 * p + i] + bn[i]",
             "an[r] = xp[step_time(s, lengths[b], reverse), b, 2 * p + i]")],
           ["tests/test_cuda.py"], "the CUDA GRU forgets b_hn when reset_after is false"),
    Mutant("cuda-lstm-peepholes-i-f-swapped", "rnnsim/kernels/cuda/lstm.py",
           [("gi += P[0, i] * c[b, i]\n                        gf += P[1, i] * c[b, i]",
             "gi += P[1, i] * c[b, i]\n                        gf += P[0, i] * c[b, i]")],
           ["tests/test_cuda.py"], "the CUDA LSTM's input and forget peepholes swapped"),
    Mutant("write-atomic-in-place", "rnnsim/io.py",
           [("    path.parent.mkdir(parents=True, exist_ok=True)\n    handle, tmp =",
             "    path.parent.mkdir(parents=True, exist_ok=True)\n    write(path)\n"
             "    return\n    handle, tmp =")],
           ["tests/test_io.py"], "io.write_atomic writes straight into the target"),
    Mutant("model-save-in-place", "rnnsim/io.py",
           [("    path.parent.mkdir(parents=True, exist_ok=True)\n    recover_folder(path)\n",
             "    path.mkdir(parents=True, exist_ok=True)\n    write(path)\n    return\n")],
           ["tests/test_io.py"], "Network.save writes into the model folder itself"),
    Mutant("kernel-cache-key-without-helpers", "rnnsim/kernels/codegen.py",
           [("+ sorted({_defining_text(fn) for fn in functions}) + constants", "+ []")],
           ["tests/test_kernel_cache.py"], "the kernel cache key leaves out the functions an "
           "activation calls (a stale kernel after editing a helper)"),
    Mutant("cpu-lstm-forget-bias-dropped", "rnnsim/cells/lstm.py",
           [("        padded = bias.shape[1]\n",
             "        bias[1] = 0\n        padded = bias.shape[1]\n")],
           ["tests/test_lstm_gru.py"], "the CPU LSTM drops the forget gate's bias"),
    Mutant("cpu-esn-leak-rate-swapped", "rnnsim/kernels/cpu/esn.py",
           [("keep[mb, i] * prev[i] + lr[mb, i] * act0(",
             "lr[mb, i] * prev[i] + keep[mb, i] * act0("),
            ("keep[0, i] * prev[i, j] + lr[0, i] * act0(",
             "lr[0, i] * prev[i, j] + keep[0, i] * act0(")],
           ["tests/test_esn.py"], "the CPU echo-state kernels use lr where 1 - lr belongs"),
]


def project_files(ref: str | None) -> list[str] | None:
    """The working tree's tracked and untracked, not ignored, files (None with ``ref``)."""
    if ref is not None:
        return None
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in listing.stdout.decode().split("\0")
            if name and (ROOT / name).is_file()]


def copy_project(dest: Path, ref: str | None) -> None:
    if ref is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    for name in project_files(ref):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def environment(copy: Path, scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM",
                                                           "RNNSIM_CUDA_TESTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    env["RNNSIM_CACHE_DIR"] = str(scratch / "rnnsim-cache")
    env["NUMBA_CACHE_DIR"] = str(scratch / "numba-cache")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_the_copy(copy: Path, env: dict[str, str]) -> None:
    found = subprocess.run([sys.executable, "-c", "import rnnsim; print(rnnsim.__file__)"],
                           cwd=copy, env=env, capture_output=True, text=True, check=True)
    path = Path(found.stdout.strip()).resolve()
    if copy.resolve() not in path.parents:
        raise SystemExit(f"rnnsim is imported from {path}, not from the copy {copy}.")


def run_tests(copy: Path, env: dict[str, str], tests: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", *tests, "-x", "-q",
                             "-p", "no:cacheprovider"], cwd=copy, env=env, capture_output=True,
                            text=True)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode, lines[-1] if lines else "", time.perf_counter() - start


def plant(copy: Path, mutant: Mutant) -> str | None:
    """Edit the copy; returns the original text, or None when an edit's text is not found."""
    path = copy / mutant.file
    original = path.read_text()
    text = original
    for old, new in mutant.edits:
        if text.count(old) != 1:
            return None
        text = text.replace(old, new)
    path.write_text(text)
    return original


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--ref", help="copy this git commit instead of the working tree")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the run of the unmodified copy")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list or not mutants:
        for m in MUTANTS:
            print(f"{m.name:36} {m.file:30} {' '.join(m.tests)}\n{'':36} {m.why}")
        return 0 if args.list else 1

    with tempfile.TemporaryDirectory(prefix="rnnsim-mutants-") as scratch:
        scratch = Path(scratch)
        copy = scratch / "rnnsim"
        copy.mkdir()
        copy_project(copy, args.ref)
        env = environment(copy, scratch)
        check_imports_the_copy(copy, env)
        print(f"copy of {args.ref or 'the working tree'} in {copy}", flush=True)
        if not args.no_baseline:
            tests = sorted({t for m in mutants for t in m.tests})
            code, summary, seconds = run_tests(copy, env, tests)
            print(f"{'baseline':36} {'pass' if code == 0 else 'FAIL':9} {seconds:6.0f} s  "
                  f"{summary}", flush=True)
            if code != 0:
                print("the unmodified copy fails its tests: no mutant can be judged.")
                return 2
        outcomes = {}
        for mutant in mutants:
            original = plant(copy, mutant)
            if original is None:
                outcomes[mutant.name] = "not planted"
                print(f"{mutant.name:36} {'NOT PLANTED':9} its text is gone from "
                      f"{mutant.file}; update the mutant", flush=True)
                continue
            try:
                code, summary, seconds = run_tests(copy, env, mutant.tests)
            finally:
                (copy / mutant.file).write_text(original)
            outcome = {0: "SURVIVED", 1: "killed"}.get(code, f"error {code}")
            outcomes[mutant.name] = outcome
            print(f"{mutant.name:36} {outcome:9} {seconds:6.0f} s  {summary}", flush=True)

    bad = {name: outcome for name, outcome in outcomes.items() if outcome != "killed"}
    print(f"{len(outcomes) - len(bad)} of {len(outcomes)} mutants killed"
          + (f"; not killed: {', '.join(f'{n} ({o})' for n, o in bad.items())}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
