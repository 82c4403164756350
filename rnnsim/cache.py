"""The on-disk kernel cache: where it is, what it holds, and a size cap (least recently used
kernels go first).

A cached kernel is one generated source file ``<stem>.py`` (its name hashes everything its
code depends on) plus numba's machine code for it under ``__pycache__/<stem>.*``. The source
file's modification time records when a process last used the kernel.

numba unpickles its index and data files when it loads a kernel, so whoever can write in the
folder can run code as its user: the folder is created readable and writable by its user only,
and one that others may write in is refused.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CacheError

DEFAULT_MAX_MB = 256


def cache_dir() -> Path:
    """Where generated kernels live: ``$RNNSIM_CACHE_DIR``, else the user's cache folder."""
    explicit = os.environ.get("RNNSIM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnsim" / "kernels"


def private_dir() -> Path:
    """``cache_dir()``, created with mode 0700 where missing; ``CacheError`` when it (or its
    ``__pycache__``) belongs to another user or others may write in it."""
    folder = cache_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in (folder, folder / "__pycache__"):
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        others = ("another user" if hasattr(os, "geteuid") and info.st_uid != os.geteuid()
                  else "every user" if info.st_mode & 0o002
                  else "its group" if info.st_mode & 0o020 else None)
        if others is not None:
            raise CacheError(
                f"the kernel cache folder '{path}' may be written by {others} (mode "
                f"{info.st_mode & 0o777:o}): numba loads pickled files from it, so a file "
                f"planted there would run as you. Make it yours alone (chmod 700 '{path}'), or "
                "point RNNSIM_CACHE_DIR at a folder of your own.")
    return folder


def max_bytes() -> int:
    """The cap: ``$RNNSIM_CACHE_MAX_MB`` megabytes (default 256)."""
    value = os.environ.get("RNNSIM_CACHE_MAX_MB", str(DEFAULT_MAX_MB))
    try:
        return int(float(value) * 2**20)
    except ValueError:
        return DEFAULT_MAX_MB * 2**20


@dataclass(frozen=True)
class Entry:
    """One cached kernel: its stem, files, bytes on disk and last use (seconds since epoch)."""

    stem: str
    files: tuple[Path, ...]
    size: int
    last_used: float


def entries(folder: Path | None = None) -> list[Entry]:
    """Every cached kernel in ``folder`` (default: ``cache_dir()``), least recently used first."""
    folder = cache_dir() if folder is None else folder
    compiled: dict[str, list[Path]] = {}
    for path in (folder / "__pycache__").glob("*"):
        compiled.setdefault(path.name.split(".", 1)[0], []).append(path)
    found = []
    for source in folder.glob("*.py"):
        files = [source, *compiled.get(source.stem, [])]
        try:
            size = sum(f.stat().st_size for f in files)
            found.append(Entry(source.stem, tuple(files), size, source.stat().st_mtime))
        except FileNotFoundError:  # removed by another process meanwhile
            continue
    return sorted(found, key=lambda e: (e.last_used, e.stem))


def touch(path: Path) -> None:
    """Record that the kernel generated in ``path`` was used now."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(keep: set[str] = frozenset(), folder: Path | None = None,
          limit: int | None = None) -> list[str]:
    """Remove least recently used kernels until the folder is within ``limit`` bytes (default
    ``max_bytes()``); never the stems in ``keep``. Returns the stems removed."""
    limit = max_bytes() if limit is None else limit
    found = entries(folder)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= limit:
            break
        if entry.stem in keep:
            continue
        _remove(entry)
        total -= entry.size
        removed.append(entry.stem)
    return removed


def clear(folder: Path | None = None) -> int:
    """Remove every cached kernel; returns how many there were."""
    found = entries(folder)
    for entry in found:
        _remove(entry)
    pycache = (cache_dir() if folder is None else folder) / "__pycache__"
    if pycache.is_dir() and not any(pycache.iterdir()):
        shutil.rmtree(pycache, ignore_errors=True)
    return len(found)


def info(folder: Path | None = None) -> dict:
    """The folder, its kernel count, bytes, the cap and the oldest and newest use."""
    folder = cache_dir() if folder is None else folder
    found = entries(folder)
    return {"folder": str(folder), "kernels": len(found), "bytes": sum(e.size for e in found),
            "max_bytes": max_bytes(),
            "oldest_use": _iso(found[0].last_used) if found else None,
            "newest_use": _iso(found[-1].last_used) if found else None}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds))


def _remove(entry: Entry) -> None:
    # the source goes first: a process that sees no source regenerates the kernel
    for path in entry.files:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
