"""Reading input arrays and writing results atomically."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import InputError


def read_array(path: str | os.PathLike, name: str = "x") -> np.ndarray:
    """The input array in a ``.npy``, ``.npz`` (array ``name``, or its only array) or ``.csv``.

    A CSV file holds one sequence: one row per timestep, one column per feature, comma
    separated; a first row of column names is skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file '{path}' does not exist. Check the path.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if name in data.files:
                    return data[name]
                if len(data.files) == 1:
                    return data[data.files[0]]
                raise InputError(f"input file '{path}' holds arrays {data.files} and none is "
                                 f"called '{name}'. Save the input under the name '{name}'.")
        if suffix == ".csv":
            return _read_csv(path)
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"input file '{path}' cannot be read as {suffix}: {exc}.") from None
    raise InputError(f"input file '{path}' has an unknown type '{suffix}'; use .npy, .npz "
                     "or .csv.")


def read_optional_array(path: str | os.PathLike, name: str) -> np.ndarray | None:
    """The array ``name`` of an ``.npz`` file, or None when the file has no such array."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[name] if name in data.files else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"input file '{path}' cannot be read as .npz: {exc}.") from None


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
