"""Runs streamed to disk in chunks of steps: bounded memory, atomic output, resumable.

``Network.run(x, out="out.npy")`` (and ``rnnsim run --output out.npy``) runs ``x`` a chunk of
steps at a time, carrying the state from chunk to chunk, so that neither the input, the
output nor the buffers need to fit in memory at once. While it runs, everything lives in the
hidden folder ``.out.npy.partial/`` next to the output: the output (and a per-step head's
``y``) being filled, and ``progress.npz``, replaced atomically after each chunk, with the
chunks done, the state after them and hashes of the config, the weights, the run's other
arguments and the input read so far. At the end the files are renamed into place:

- ``out.npy``: the output, exactly as ``run(x).output`` (renamed last: when it exists, the run
  is complete);
- ``out.y.npy``: the head's ``y`` when the head has a time axis;
- ``out.state.npz``: ``final_<layer>_<state>`` for every state of every layer (``final_0_h``,
  ``final_0_c``...) and a head's ``y`` without a time axis.

A killed run therefore leaves either no ``out.npy`` or a complete one, never a half-written
file; ``resume=True`` continues from the last complete chunk, after checking that the
config, the weights, the arguments and the input read so far are the ones of the interrupted
run, and gives the same bits as an uninterrupted run.
"""
from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import guards
from .version import installed_version
from .errors import ConfigError, InputError, NonfiniteError, NonfiniteWarning, ShapeError
from .io import read_npz, write_npz
from .progress import reporter
from .results import RunResult, State
from .validation import as_real_array, checked_lengths

if TYPE_CHECKING:  # the module runs networks, but never imports the module that defines them
    from .network import Network

# The default chunk holds about this many bytes of buffers (input, layers, output).
CHUNK_BYTES = 64 << 20
PROGRESS = "progress.npz"
OUTPUT, Y, STATE = "output.npy", "y.npy", "state.npz"


class DrawnInput:
    """Seeded N(0, 1) input drawn a chunk at a time: the same numbers as one
    ``np.random.default_rng([seed, 1]).standard_normal(shape)``, in bounded memory.

    shape : (T, B, k), or (B, T, k) with ``time_axis`` 1
    """

    def __init__(self, seed: int, shape: tuple[int, int, int], dtype, time_axis: int = 0):
        self.seed = seed
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.time_axis = time_axis
        self._rows = None   # with time_axis 1: one generator per sequence
        self._rng = None    # with time_axis 0: the generator and the next step it draws
        self._next = 0

    def whole(self) -> np.ndarray:
        """The entire input at once."""
        return self._generator().standard_normal(self.shape).astype(self.dtype)

    def _generator(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, 1])

    def read(self, t0: int, t1: int) -> np.ndarray:
        """Steps ``t0`` to ``t1`` (laid out as ``shape``)."""
        if self.time_axis == 0:
            B, k = self.shape[1:]
            if self._rng is None or self._next != t0:
                self._rng, self._next = self._generator(), 0
                self._skip(self._rng, t0 * B * k)
            self._next = t1
            return self._rng.standard_normal((t1 - t0, B, k)).astype(self.dtype)
        B, T, k = self.shape
        if self._rows is None or self._next != t0:
            rng, self._rows = self._generator(), []
            for _ in range(B):  # each sequence's numbers follow the previous sequence's
                row = np.random.default_rng()
                row.bit_generator.state = rng.bit_generator.state
                self._skip(row, t0 * k)
                self._rows.append(row)
                self._skip(rng, T * k)
        self._next = t1
        return np.stack([row.standard_normal((t1 - t0, k)) for row in self._rows]
                        ).astype(self.dtype)

    @staticmethod
    def _skip(rng: np.random.Generator, count: int, block: int = 1 << 20) -> None:
        for start in range(0, count, block):
            rng.standard_normal(min(block, count - start))


class _ArrayInput:
    """An array (or memmap) read a chunk of steps at a time. A C-ordered ``.npy`` memmap is
    read with plain file reads, so the pages read do not stay mapped in the process."""

    def __init__(self, x, time_axis: int):
        self.x = x
        self.shape = x.shape
        self.dtype = x.dtype
        self.time_axis = time_axis
        self.path = None
        if (isinstance(x, np.memmap) and isinstance(x.base, mmap.mmap) and x.filename
                and x.flags.c_contiguous):
            self.path, self.offset = x.filename, x.offset

    def read(self, t0: int, t1: int) -> np.ndarray:
        if self.path is None:
            part = self.x[t0:t1] if self.time_axis == 0 else self.x[:, t0:t1]
            return np.array(part)
        shape = list(self.shape)
        shape[self.time_axis] = t1 - t0
        chunk = np.empty(shape, self.dtype)
        step_bytes = math.prod(self.shape[self.time_axis + 1:]) * self.dtype.itemsize
        with open(self.path, "rb", buffering=0) as fh:
            if self.time_axis == 0:
                _pread(fh, chunk, self.offset + t0 * step_bytes)
            else:
                T = self.shape[1]
                for b in range(self.shape[0]):
                    _pread(fh, chunk[b], self.offset + (b * T + t0) * step_bytes)
        return chunk


def _pread(fh, into: np.ndarray, position: int) -> None:
    view = memoryview(into).cast("B")
    fh.seek(position)
    done = 0
    while done < len(view):
        got = fh.readinto(view[done:])
        if not got:
            raise InputError(f"the input file ended early at byte {position + done:,}; it "
                             "was truncated while the run read it.")
        done += got


def _pwrite(fd: int, data: np.ndarray, position: int) -> None:
    view = memoryview(np.ascontiguousarray(data)).cast("B")
    os.lseek(fd, position, os.SEEK_SET)
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])


class _NpyWriter:
    """A ``.npy`` file of known shape, written a chunk of steps at a time at its offsets."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype, time_axis: int,
                 create: bool):
        self.path, self.shape, self.dtype, self.time_axis = path, shape, np.dtype(dtype), time_axis
        nbytes = math.prod(shape) * self.dtype.itemsize
        if create:
            with open(path, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, {
                    "descr": np.lib.format.dtype_to_descr(self.dtype),
                    "fortran_order": False, "shape": shape})
                self.offset = fh.tell()
                fh.truncate(self.offset + nbytes)
        else:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                found = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                         else np.lib.format.read_array_header_2_0)(fh)
                self.offset = fh.tell()
            if found != (shape, False, self.dtype) or path.stat().st_size != self.offset + nbytes:
                raise InputError(f"the interrupted run's '{path}' does not have the expected "
                                 f"shape {shape} of {self.dtype}; run again without resume.")
        self.fd = os.open(path, os.O_RDWR)

    def write(self, t0: int, chunk: np.ndarray) -> None:
        step_bytes = math.prod(self.shape[self.time_axis + 1:]) * self.dtype.itemsize
        chunk = np.asarray(chunk, self.dtype)
        if self.time_axis == 0:
            _pwrite(self.fd, chunk, self.offset + t0 * step_bytes)
            return
        T = self.shape[1]
        for b in range(self.shape[0]):
            _pwrite(self.fd, chunk[b], self.offset + (b * T + t0) * step_bytes)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def outputs(out: str | os.PathLike) -> dict[str, Path]:
    """The files a run streamed to ``out`` leaves: output, y (a per-step head's) and state."""
    out = Path(out)
    return {"output": out, "y": out.with_name(f"{out.stem}.y.npy"),
            "state": out.with_name(f"{out.stem}.state.npz")}


def partial_folder(out: str | os.PathLike) -> Path:
    """Where a run streamed to ``out`` keeps its files until it completes."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def run_to_file(net: Network, x, out: str | os.PathLike, h0=None, c0=None, *, lengths=None,
                check_finite: bool = True, nonfinite: str | None = None,
                chunk_steps: int | None = None, resume: bool = False,
                progress=None) -> RunResult:
    """Run ``net`` on ``x`` a chunk of steps at a time, streaming the output to ``out`` (.npy).

    x : laid out as for ``Network.run``: an array, a memmap (``np.load(path, mmap_mode='r')``:
        read from disk a chunk at a time) or a ``DrawnInput``
    h0, c0, lengths, check_finite, nonfinite : as for ``Network.run``
    chunk_steps : steps per chunk (default: about 64 MiB of buffers per chunk); the steps are
        split into equal chunks of at most this many
    resume : continue an interrupted run to the same ``out`` from its last complete chunk
    progress : None, ``progress(steps_done, T)`` called after each chunk (and once at the
        start), or a tqdm-compatible bar (``rnnsim.progress.reporter``)
    Returns a ``RunResult`` whose ``output`` (and per-step ``y``) are read-only memmaps of the
    written files.
    """
    out = Path(out)
    if out.suffix != ".npy":
        raise InputError(f"out='{out}': a run streamed to disk writes a .npy file; name it "
                         "like 'out.npy' (use rnnsim.io.write_npz for small results).")
    if not out.parent.is_dir() or out.is_dir():
        raise InputError(f"cannot write '{out}': " + ("it is a folder." if out.is_dir() else
                         f"folder '{out.parent}' does not exist."))
    _check_streamable(net)
    try:
        with _exclusive(out):
            return _run_to_file(net, x, out, h0, c0, lengths, check_finite, nonfinite,
                                chunk_steps, resume, reporter(progress))
    except OSError as exc:  # no space left, no permission, a file vanished
        raise InputError(f"the run streamed to '{out}' failed: {exc.strerror or exc} "
                         f"({exc.filename or out}). The chunks finished so far are kept in "
                         f"'{partial_folder(out)}': fix the cause and run again with "
                         "resume.") from None


@contextmanager
def _exclusive(out: Path):
    """Hold the lock file ``.out.npy.lock`` so that two runs never write the same files
    (where the OS has ``fcntl``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    lock = out.with_name(f".{out.name}.lock")
    try:  # never through a symlink planted there, never truncating anything
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise InputError(f"cannot take the lock file '{lock}' for '{out}': "
                         f"{exc.strerror or exc}" + (" (it is a symlink, which rnnsim does "
                         "not follow)" if lock.is_symlink() else "") + ". Remove it, or write "
                         "elsewhere.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"another run is writing '{out}' (it holds '{lock}'); wait for it "
                             "to end, or write elsewhere.") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _run_to_file(net, x, out: Path, h0, c0, lengths, check_finite, nonfinite, chunk_steps,
                 resume, progress) -> RunResult:
    mode = guards.nonfinite_mode(nonfinite, check_finite)
    source, unbatched = _source(net, x)
    time_axis = 0 if unbatched else source.time_axis
    T = source.shape[time_axis]
    B = 1 if unbatched else source.shape[1 - time_axis]
    lengths = checked_lengths(lengths, T, B, unbatched)
    state = _start_state(net, h0, c0, B, unbatched, check_finite)
    partial = partial_folder(out)
    saved = _progress(partial, out) if resume and (partial / PROGRESS).is_file() else None
    if chunk_steps is None and saved is not None:  # resume with the interrupted run's chunks
        chunk_steps = saved[0]["identity"].get("chunk steps")
    steps = _chunk_steps(net, chunk_steps, B)
    bounds = _Bounds(T, steps)
    identity = _identity(net, source, lengths, state, steps)
    done, digest = 0, hashlib.blake2b(digest_size=16)
    if saved is not None:
        done, state = _resumed(net, saved, identity, source, bounds, digest, out)
    else:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
    out_shape = _output_shape(net, source.shape, unbatched)
    _check_disk(net, out, out_shape, done == 0)
    per_step_head = net.head is not None and net.head.per_step
    if progress is not None:
        progress(int(bounds[done]), T)
    writers = {}
    try:
        if done < bounds.count:
            writers["output"] = _NpyWriter(partial / OUTPUT, out_shape, net.dtype, time_axis,
                                           create=done == 0)
            if per_step_head and done > 0:
                writers["y"] = _NpyWriter(partial / Y, *_saved_layout(partial / Y), time_axis,
                                          create=False)
        for i in range(done, bounds.count):
            t0, t1 = int(bounds[i]), int(bounds[i + 1])
            chunk = source.read(t0, t1)
            digest.update(np.ascontiguousarray(chunk).data)
            if check_finite:
                _check_chunk_finite(chunk, t0, time_axis, source.shape)
            part_lengths = None if lengths is None else np.clip(lengths - t0, 0, t1 - t0)
            result, mode = _run_chunk(net, chunk, state, part_lengths, mode, t0)
            writers["output"].write(t0, result.output)
            if per_step_head:
                if "y" not in writers:
                    shape = list(result.y.shape)
                    shape[time_axis] = T
                    writers["y"] = _NpyWriter(partial / Y, tuple(shape), result.y.dtype,
                                              time_axis, create=True)
                writers["y"].write(t0, result.y)
            state = result.state
            for writer in writers.values():
                writer.sync()
            _save_progress(partial, identity, i + 1, digest.hexdigest(), state)
            if progress is not None:
                progress(t1, T)
    finally:
        for writer in writers.values():
            writer.close()
    return _finish(net, out, partial, state, lengths, unbatched, mode)


def _check_streamable(net: Network) -> None:
    problems = []
    for i, layer in enumerate(net.layers):
        if layer.directions == 2:
            problems.append(f"network.layers[{i}].bidirectional: a reverse direction needs the "
                            "whole sequence at once")
        problems += layer.chunk_problems(f"network.layers[{i}]")
    if problems:
        raise ConfigError("a run streamed to disk goes a chunk of steps at a time, which this "
                          "network does not allow: " + "; ".join(problems) + ". Run it in "
                          "memory (without out=/--output .npy), or change those layers.")


def _source(net: Network, x):
    """The input as something read a chunk at a time, checked like ``Network.run`` checks x."""
    batch_first = net.config.network.batch_first
    if not isinstance(x, DrawnInput):
        x = as_real_array(x, "x")
    k = net.input_size
    if len(x.shape) not in (2, 3) or x.shape[-1] != k or 0 in x.shape:
        layout = "(B, T, k)" if batch_first else "(T, B, k)"
        raise ShapeError(f"input x has shape {tuple(x.shape)}; expected {layout} or (T, k) for "
                         f"one sequence, with k = input_size = {k} and T, B >= 1.")
    unbatched = len(x.shape) == 2
    if isinstance(x, DrawnInput):
        return x, unbatched
    return _ArrayInput(x, 1 if batch_first and not unbatched else 0), unbatched


def _start_state(net: Network, h0, c0, B: int, unbatched: bool, check_finite: bool) -> State:
    starts = net.start_states(h0, c0, B, unbatched, check_finite)
    if unbatched:
        starts = [{name: s[:, 0] for name, s in states.items()} for states in starts]
    return State(tuple(starts))



def _chunk_steps(net: Network, chunk_steps, B: int) -> int:
    if chunk_steps is None:
        per_step = sum(guards.run_buffer_bytes(net, 1, B).values())
        return max(1, CHUNK_BYTES // max(1, per_step))
    if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, (int, np.integer)) \
            or chunk_steps < 1:
        raise InputError(f"chunk_steps={chunk_steps!r}: give a positive number of steps.")
    return int(chunk_steps)


class _Bounds:
    """Chunk boundaries: ``count`` = ceil(T / steps) chunks of equal length (within one
    step); ``bounds[i]`` is computed when asked, so any T takes no memory."""

    def __init__(self, T: int, steps: int):
        self.T, self.count = T, -(-T // steps)

    def __getitem__(self, i: int) -> int:
        return i * self.T // self.count if self.count else 0


def _output_shape(net: Network, x_shape, unbatched: bool) -> tuple[int, ...]:
    width = net.layers[-1].output_size
    return tuple(x_shape[:-1]) + (width,)


def _hash(*arrays) -> str:
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.data)
    return digest.hexdigest()


def _identity(net: Network, source, lengths, state: State, steps: int) -> dict:
    """What must not change between an interrupted run and its resumption."""
    return {
        "rnnsim version": installed_version(),
        "config": hashlib.sha256(json.dumps(net.config.dump(), sort_keys=True,
                                            default=str).encode()).hexdigest(),
        "weights": _hash(*(net.params[name] for name in sorted(net.params))),
        "device": getattr(net, "device", "cpu"),
        "fast math": net.fast_math,
        "input shape": list(source.shape),
        "input dtype": str(source.dtype),
        "lengths": _hash(lengths),
        "initial state": _hash(*(s for states in state.layers for s in states.values())),
        "chunk steps": steps,
    }


def _save_progress(partial: Path, identity: dict, chunks: int, input_hash: str,
                   state: State) -> None:
    meta = json.dumps({"identity": identity, "chunks done": chunks, "input read": input_hash})
    arrays = {"meta": np.array(meta)}
    arrays.update(state.arrays("state"))
    write_npz(partial / PROGRESS, arrays)


def _progress(partial: Path, out: Path) -> tuple[dict, dict]:
    """The interrupted run's progress: (meta, arrays)."""
    saved = read_npz(partial / PROGRESS)
    try:
        meta = json.loads(str(saved["meta"]))
        if not isinstance(meta["identity"], dict) or int(meta["chunks done"]) < 1:
            raise ValueError
    except (KeyError, ValueError, TypeError):
        raise InputError(f"cannot resume '{out}': '{partial / PROGRESS}' is damaged. Run "
                         "again without resume.") from None
    return meta, saved


def _resumed(net: Network, saved: tuple[dict, dict], identity: dict, source, bounds, digest,
             out: Path):
    """(chunks done, state after them) of the interrupted run, once it is shown to match."""
    meta, saved = saved
    before, done = meta["identity"], int(meta["chunks done"])
    partial = partial_folder(out)
    changed = [key for key in identity if before.get(key) != identity[key]]
    if changed:
        raise InputError(f"cannot resume '{out}': the {', '.join(changed)} differ from the "
                         "interrupted run's, so its results would not continue this run. "
                         "Resume with the same config, weights, input and options, or run "
                         f"again without resume (which discards '{partial}').")
    for i in range(done):
        digest.update(np.ascontiguousarray(source.read(int(bounds[i]), int(bounds[i + 1]))).data)
    if digest.hexdigest() != meta["input read"]:
        raise InputError(f"cannot resume '{out}': the first {int(bounds[done]):,} steps of the "
                         "input differ from those the interrupted run read. Resume with the "
                         f"same input, or run again without resume (which discards '{partial}').")
    try:
        return done, State.from_arrays(saved, "state", _state_names(net))
    except KeyError:
        raise InputError(f"cannot resume '{out}': '{partial / PROGRESS}' lacks a layer's "
                         "state. Run again without resume.") from None


def _state_names(net: Network) -> list[list[str]]:
    return [list(layer.state_sizes()) for layer in net.layers]


def _saved_layout(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of a ``.npy`` file the interrupted run was writing."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)(fh)
            return shape, dtype
    except (OSError, ValueError) as exc:
        raise InputError(f"the interrupted run's '{path}' cannot be read ({exc}); run again "
                         "without resume.") from None


def _check_disk(net: Network, out: Path, shape, fresh: bool) -> None:
    if not fresh:
        return
    need = math.prod(shape) * net.dtype.itemsize
    if net.head is not None and net.head.per_step:
        need += need // shape[-1] * net.head.units
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ShapeError(f"the output of shape {shape} needs {guards.format_bytes(need)} on "
                         f"disk, more than the {guards.format_bytes(free)} free in "
                         f"'{out.parent}'. Write it elsewhere, or run fewer steps.")


def _check_chunk_finite(chunk: np.ndarray, t0: int, time_axis: int, shape) -> None:
    bad = ~np.isfinite(chunk)
    if bad.any():
        index = [int(i) for i in np.argwhere(bad)[0]]
        index[time_axis] += t0
        raise InputError(f"x holds NaN/inf at index {tuple(index)} of shape {tuple(shape)} (step "
                         f"{index[time_axis]}). Clean the input, or pass check_finite=False "
                         "(--allow-nonfinite on the CLI) to run anyway.")


def _run_chunk(net: Network, chunk, state: State, lengths, mode: str, t0: int):
    """One chunk's RunResult; NaN/inf faults are reported with steps counted from 0."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonfiniteWarning)
            result = net.run(chunk, state, lengths=lengths, check_finite=False, nonfinite=mode)
    except NonfiniteError as exc:
        fault = exc.fault.shifted(t0)
        raise NonfiniteError(fault.message(), fault) from None
    for warning in caught:
        if isinstance(warning.message, NonfiniteWarning):
            fault = warning.message.fault.shifted(t0)
            warnings.warn(NonfiniteWarning(fault.message(), fault), stacklevel=4)
            mode = "ignore"  # once NaN, later chunks would only repeat it
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    return result, mode


def _finish(net: Network, out: Path, partial: Path, state: State, lengths, unbatched: bool,
            mode: str) -> RunResult:
    """Write the final states, rename the files into place and return the result."""
    paths = outputs(out)
    if not (partial / OUTPUT).exists():  # a resumed run that had renamed everything
        shutil.rmtree(partial, ignore_errors=True)
        return completed(net, out)
    y = None
    if net.head is not None and not net.head.per_step and not (partial / STATE).exists():
        output = np.load(partial / OUTPUT, mmap_mode="r", allow_pickle=False)
        states = (output[:, None] if unbatched else output.swapaxes(0, 1)
                  if net.config.network.batch_first else output)
        y = net.head_forward(net.head_params(), states, lengths)
        watch = guards.NonfiniteWatch(mode, None)
        watch.head(net.config.network.head.name, y, False, len(net.layers))
        watch.report(unbatched)
        y = y[0] if unbatched else y
    if not (partial / STATE).exists():
        arrays = state.arrays("final")
        if y is not None:
            arrays["y"] = y
        write_npz(partial / STATE, arrays)
    if net.head is None or not net.head.per_step:  # a y from an earlier run to this path
        paths["y"].unlink(missing_ok=True)
    for name, key in ((Y, "y"), (STATE, "state"), (OUTPUT, "output")):
        if (partial / name).exists():
            os.replace(partial / name, paths[key])
    shutil.rmtree(partial, ignore_errors=True)
    return completed(net, out)


def completed(net: Network, out: str | os.PathLike) -> RunResult:
    """The result of a run streamed to ``out``, read back (output and per-step y memmapped)."""
    paths = outputs(out)
    saved = read_npz(paths["state"])
    final = State.from_arrays(saved, "final", _state_names(net))
    if net.head is None:
        y = None
    elif net.head.per_step:
        y = np.load(paths["y"], mmap_mode="r", allow_pickle=False)
    else:
        y = saved["y"]
    return RunResult(np.load(out, mmap_mode="r", allow_pickle=False), final.layers, y)
