"""Reading input arrays and writing results atomically."""
from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from . import guards
from .errors import InputError

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


def _read_csv(path: Path) -> np.ndarray:
    lines = path.read_text().splitlines()
    first = lines[0].split(",") if lines else []
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


def write_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, sync it to disk, then rename
    it to ``path`` and sync the folder: after a crash ``path`` is the old file or the whole
    new one. The file gets the mode a plainly created file gets (``tempfile`` makes it
    private); the temporary file never outlives a failed ``write``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(tmp))
        os.chmod(tmp, default_mode())
        fsync(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync(path.parent)


def write_folder_atomic(path: Path, write) -> None:
    """Call ``write(tmp)`` on a new temporary folder next to ``path``, sync what it wrote, then
    put it in place of ``path``: after a crash ``path`` is the old folder or the whole new one
    (``recover_folder`` puts the old one back if the crash fell between the two renames that
    replace it). The folder gets the mode a plainly created one gets."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        write(tmp)
        for written in tmp.rglob("*"):
            fsync(written)
        tmp.chmod(default_mode(folder=True))
        fsync(tmp)
        old = _previous(path)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        fsync(path.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recover_folder(path: Path) -> None:
    """Undo a crash inside ``write_folder_atomic``: put the previous folder back where the new
    one never arrived, and remove a previous folder left after it did."""
    path = Path(path).resolve()
    old = _previous(path)
    if not old.is_dir():
        return
    try:
        if path.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, path)
    except OSError:  # a read-only folder: leave it as it is
        pass


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


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
