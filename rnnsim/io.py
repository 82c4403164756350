"""Reading input arrays and writing results atomically."""
from __future__ import annotations

import ctypes
import errno
import math
import os
import shutil
import struct
import tempfile
import tokenize
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from . import guards
from .errors import InputError, OutputError

try:
    import fcntl
except ImportError:  # Windows: no locks, so abandoned temporaries stay
    fcntl = None

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# What a damaged or hostile file makes numpy and zipfile raise (NotImplementedError: an
# unknown compression method; RuntimeError: an encrypted member; TokenError, SyntaxError:
# numpy parsing a mangled header).
READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError,
               NotImplementedError, RuntimeError, OverflowError, SyntaxError,
               tokenize.TokenError, struct.error, zipfile.BadZipFile, zlib.error)


def read_array(path: str | os.PathLike, name: str = "x", mmap: bool = False) -> np.ndarray:
    """The input array in a ``.npy``, ``.npz`` (array ``name``, or its only array) or ``.csv``.

    A CSV file holds one sequence: one row per timestep, one column per feature, comma
    separated; a first row of column names is skipped. With ``mmap`` a ``.npy`` comes back as
    a read-only ``np.memmap`` that is read from disk only where used. No file is unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file '{path}' does not exist. Check the path.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            with open(path, "rb") as fh:
                _npy_header(fh, os.fstat(fh.fileno()).st_size, f"input file '{path}'",
                            in_memory=not mmap)
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        if suffix == ".npz":
            with _open_npz(path) as archive:
                members = _npz_members(archive)
                if name not in members and len(members) != 1:
                    raise InputError(f"input file '{path}' holds arrays {list(members)} and "
                                     f"none is called '{name}'. Save the input under the name "
                                     f"'{name}'.")
                pick = name if name in members else next(iter(members))
                return _read_member(archive, members[pick], f"array '{pick}' of '{path}'")
        if suffix == ".csv":
            return _read_csv(path)
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"input file '{path}' cannot be read as {suffix}: {exc}.") from None
    raise InputError(f"input file '{path}' has an unknown type '{suffix}'; use .npy, .npz "
                     "or .csv.")


def read_optional_array(path: str | os.PathLike, name: str) -> np.ndarray | None:
    """The array ``name`` of an ``.npz`` file, or None when the file has no such array."""
    return read_npz(path, [name]).get(name)


def read_npz(path: str | os.PathLike, names=None) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (only ``names`` when given), checked before reading:
    no pickled objects, no declared size beyond the data or the memory."""
    path = Path(path)
    try:
        with _open_npz(path) as archive:
            return {name: _read_member(archive, info, f"array '{name}' of '{path}'")
                    for name, info in _npz_members(archive).items()
                    if names is None or name in names}
    except InputError:
        raise
    except READ_ERRORS as exc:
        raise InputError(f"'{path}' cannot be read as .npz: {exc}.") from None


def _open_npz(path: Path) -> zipfile.ZipFile:
    with open(path, "rb") as fh:
        if fh.read(4) not in ZIP_MAGICS:
            raise InputError(f"'{path}' is not an .npz file (a zip archive of .npy arrays, "
                             "as np.savez writes).")
    return zipfile.ZipFile(path)


def _npz_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    return {info.filename.removesuffix(".npy"): info for info in archive.infolist()}


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> np.ndarray:
    with archive.open(info) as fh:
        _npy_header(fh, info.file_size, label, in_memory=True)
    with archive.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _npy_header(fh, size: int, label: str, in_memory: bool):
    """(shape, fortran_order, dtype) of the ``.npy`` stream ``fh`` of ``size`` bytes.

    Refuses object arrays (they need pickle, which can run code) and shapes whose bytes exceed
    the data (a truncated file, or a header lying about its size) or, for arrays to be read
    into memory, the memory available: before anything is allocated.
    """
    version = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(fh)
    if dtype.hasobject:
        raise InputError(f"{label} holds Python objects (dtype {dtype}); reading them would "
                         "need pickle, which can run code, so rnnsim refuses. Save plain "
                         "numeric arrays.")
    if any(d < 0 for d in shape):
        raise InputError(f"{label} declares the impossible shape {shape}.")
    declared = math.prod(shape) * dtype.itemsize
    data = size - fh.tell()
    if declared > data:
        raise InputError(f"{label} declares shape {shape} of {dtype} ({declared:,} bytes) but "
                         f"holds {max(data, 0):,} bytes of data: the file is truncated or "
                         "damaged. Write it again.")
    if in_memory:
        guards.check_fits({f"{label} {shape}": declared}, f"reading {label}",
                          "A .npy input is read piece by piece when the run streams to disk "
                          "(`rnnsim run --output out.npy`, or run(np.load(path, mmap_mode='r'), "
                          "out=...)).", InputError)
    return shape, fortran, dtype


# A CSV number takes two bytes at least ("1,") and becomes 8 (float64), with about as much
# again of parsing buffers: the memory a .csv needs, per byte of the file.
CSV_BYTES_PER_BYTE = 8


def _read_csv(path: Path) -> np.ndarray:
    size = path.stat().st_size
    guards.check_fits({f"input file '{path}' ({size:,} bytes of text)":
                       CSV_BYTES_PER_BYTE * size},
                      f"the numbers in '{path}'", "Save large inputs as .npy: it is read piece "
                      "by piece when the run streams to disk.", InputError)
    with open(path) as fh:
        first = fh.readline(1 << 16).split(",")
    skip = 1 if first and not _numeric(first[0]) else 0
    array = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    if array.size == 0:
        raise InputError(f"input file '{path}' holds no numbers.")
    return array


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` through a temporary file and a rename: never half a file."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"output file '{path}' must end in .npz.")
    if not path.parent.is_dir():
        raise InputError(f"cannot write '{path}': folder '{path.parent}' does not exist.")
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file name would get '.npz' appended
            np.savez(fh, **arrays)

    write_atomic(path, write)
    return path


# Temporaries are named ".<name>.rnnsim-XXXXXXXX.tmp" beside their target, and the writer
# holds a lock on each while it lives: a temporary nobody holds was left by a killed writer.
TEMP_MARK, TEMP_SUFFIX = "rnnsim-", ".tmp"


def write_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, sync it to disk, then rename
    it to ``path`` and sync the folder: after a crash ``path`` is the old file or the whole
    new one. The file gets the mode a plainly created file gets (``tempfile`` makes it
    private); the temporary file never outlives a failed ``write``, and temporaries that
    killed writers left beside ``path`` are removed. Raises ``OutputError`` (an ``OSError``)
    when the file cannot be written."""
    path = _target(path)
    if path.is_dir():
        raise OutputError(f"cannot write the file '{path}': it is a folder. Give a file name.")
    with _temporary(path, folder=False) as tmp:
        _guarded(path, lambda: write(tmp))
        _guarded(path, lambda: os.chmod(tmp, default_mode()))
        fsync(tmp)
        _guarded(path, lambda: os.replace(tmp, path))
    fsync(path.parent)


def write_folder_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a new temporary folder next to ``path``, sync what it wrote, then
    swap it with ``path`` in one step (``renameat2(RENAME_EXCHANGE)``; where the system has
    none, two renames that ``recover_folder`` completes after a crash): ``path`` is the old
    folder or the whole new one. An existing ``path`` is replaced only when every entry in it
    is one the new folder writes again, so nothing the writer does not rewrite is deleted.
    The folder gets the mode a plainly created one gets. Raises ``OutputError``."""
    path = _target(path)
    cwd = Path.cwd().resolve()
    if path == cwd or path in cwd.parents:
        raise OutputError(f"cannot write the folder '{path}': it is the current folder or "
                          "one above it. Give a new folder's path.")
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot write the folder '{path}': a file is in the way. Give a "
                          "new folder's path.")
    recover_folder(path)
    with _temporary(path, folder=True) as tmp:
        _guarded(path, lambda: write(tmp))
        if path.is_dir():
            _check_replaceable(path, {p.name for p in tmp.iterdir()})
        for written in tmp.rglob("*"):
            fsync(written)
        _guarded(path, lambda: tmp.chmod(default_mode(folder=True)))
        fsync(tmp)
        if not (path.is_dir() and _exchange(tmp, path)):
            _guarded(path, lambda: _swap_by_renames(tmp, path))
        fsync(path.parent)


def _check_replaceable(path: Path, written: set[str]) -> None:
    others = sorted(p.name for p in path.iterdir() if p.name not in written)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5
                                         else "")
        raise OutputError(f"cannot write the folder '{path}': it holds {shown}, which "
                          "writing it would delete. Choose a new path, or move them away.")


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` atomically; False where the system cannot."""
    libc = _libc()
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_cwd, rename_exchange = -100, 2
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OutputError(f"cannot write the folder '{b}': {os.strerror(code)}.")


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _swap_by_renames(tmp: Path, path: Path) -> None:
    old = _previous(path)
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    fsync(path.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(path: Path) -> None:
    """Undo a crash between the two renames of ``write_folder_atomic``'s fallback: put the
    previous folder back where the new one never arrived, and remove a previous folder left
    after it did."""
    path = Path(path).resolve()
    old = _previous(path)
    if not old.is_dir() or old.is_symlink():
        return
    try:
        if path.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, path)
    except OSError:  # a read-only folder: leave it as it is
        pass


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.{TEMP_MARK}old")


def _target(path) -> Path:
    """``path`` made absolute (its symlinked folders resolved), its folder created."""
    path = Path(path).resolve()
    if not path.name or path.name in (".", ".."):
        raise OutputError(f"cannot write '{path}': give a file or folder name, not the root.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(path, exc) from None
    return path


@contextmanager
def _temporary(path: Path, folder: bool):
    """A new temporary file (or folder) beside ``path``, locked while it lives and removed
    after; first removes the temporaries that killed writers left beside ``path``."""
    _remove_abandoned(path)
    tmp, lock = _new_temporary(path, folder)
    try:
        yield tmp
    finally:
        _remove(tmp)
        if lock is not None:
            os.close(lock)


def _new_temporary(path: Path, folder: bool) -> tuple[Path, int | None]:
    """(a new temporary beside ``path``, the descriptor locking it). A temporary removed
    before it was locked, by another writer taking it for abandoned, is made again."""
    prefix, suffix = f".{path.name}.{TEMP_MARK}", TEMP_SUFFIX
    for _ in range(100):
        try:
            if folder:
                tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
            else:
                handle, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
                os.close(handle)
                tmp = Path(name)
        except OSError as exc:
            raise _output_error(path, exc) from None
        if fcntl is None:
            return tmp, None
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:  # taken for abandoned and removed: make another
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return tmp, fd
        except FileNotFoundError:
            pass
        os.close(fd)
    raise OutputError(f"cannot write '{path}': its temporary files keep vanishing (another "
                      "process removes them). Write elsewhere.")


def _remove_abandoned(path: Path) -> None:
    """Remove the temporaries beside ``path`` that no living writer holds."""
    if fcntl is None:
        return
    prefix = f".{path.name}.{TEMP_MARK}"
    try:
        siblings = [e for e in os.scandir(path.parent)
                    if e.name.startswith(prefix) and e.name.endswith(TEMP_SUFFIX)
                    and not e.is_symlink()]
    except OSError:
        return
    for entry in siblings:
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _remove(Path(entry.path))
        except OSError:  # a living writer holds it
            pass
        finally:
            os.close(fd)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        try:
            tmp.unlink()
        except OSError:  # already renamed into place, or not ours to remove any more
            pass


def _guarded(path: Path, step) -> None:
    """``step()``, its ``OSError`` raised as an ``OutputError`` that names ``path``."""
    try:
        step()
    except OutputError:
        raise
    except OSError as exc:
        raise _output_error(path, exc) from None


def _output_error(path: Path, exc: OSError) -> OutputError:
    hint = {errno.ENOSPC: "Free some disk space and try again.",
            getattr(errno, "EDQUOT", errno.ENOSPC): "Free some disk space and try again.",
            errno.EACCES: "Write into a folder you may write to.",
            errno.EPERM: "Write into a folder you may write to.",
            errno.EROFS: "The file system is read-only: write elsewhere.",
            errno.EISDIR: "A folder is in the way: give another name.",
            errno.ENOTDIR: "A file is in the way of a folder on the path."}
    reason = exc.strerror or str(exc)
    return OutputError(f"cannot write '{path}': {reason}. "
                       f"{hint.get(exc.errno, 'Fix the cause and try again.')} Whatever was "
                       "there before is unchanged.")


def fsync(path: Path) -> None:
    """Flush a file's, or a folder's entries', data to disk (where the system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to sync a folder
        pass
    finally:
        os.close(fd)


def default_mode(folder: bool = False) -> int:
    """The permissions a new file (or folder) gets under this process's umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask
