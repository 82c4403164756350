"""Entry points and versions of the installed distributions, read from their metadata folders.

``entry_points(group)`` and ``version(name)`` give the answers of ``importlib.metadata``'s
functions of the same names for the usual layouts (a ``NAME-VERSION.dist-info`` or
``.egg-info`` folder in a directory on ``sys.path``: wheels, editable installs of either
kind), without importing ``importlib.metadata`` (about 25 ms, for every command that lists
plugins) or reading every distribution's metadata. Every other layout (a zip file or an egg
on ``sys.path``, an import hook that finds distributions of its own, a metadata folder whose
name ``importlib.metadata`` would not read the same way) is answered by
``importlib.metadata`` itself. Nothing is cached: each call reads the folders as they are.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from importlib.machinery import PathFinder
from typing import Any, NamedTuple

METADATA_SUFFIXES = (".dist-info", ".egg-info")
# importlib.metadata.EntryPoint's value syntax: module, optional :attribute, optional [extras]
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


class EntryPoint(NamedTuple):
    """One entry point: ``name = value`` in ``group`` of distribution ``package`` at
    ``version`` (the distribution's ``Name`` and ``Version`` metadata; None when missing)."""

    name: str
    value: str
    group: str
    package: str | None
    version: str | None

    def load(self) -> Any:
        """Import the module the value names and return its attribute (the module itself when
        the value names no attribute), as ``importlib.metadata.EntryPoint.load``."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"entry point value {self.value!r} is not 'module:attribute'")
        found = importlib.import_module(match.group("module"))
        return functools.reduce(getattr, filter(None, (match.group("attr") or "").split(".")),
                                found)


class _Fallback(Exception):
    """A layout that only ``importlib.metadata`` reads right."""


def normalize(name: str) -> str:
    """A distribution name as ``importlib.metadata`` compares them (PEP 503, ``_`` for runs
    of ``-_.``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point in ``group`` of the distributions on ``sys.path``, in
    ``importlib.metadata.entry_points(group=group)``'s order; a distribution found twice counts
    once, where ``sys.path`` finds it first."""
    try:
        folders = _metadata_folders()
        found = []
        for folder in folders.values():
            pairs = _group_pairs(_read(folder, "entry_points.txt"), group)
            if pairs:
                headers = _headers(folder)
                found += [EntryPoint(name, value, group, headers.get("name"),
                                     headers.get("version")) for name, value in pairs]
        return found
    except _Fallback:
        import importlib.metadata

        return [EntryPoint(ep.name, ep.value, ep.group, ep.dist.name if ep.dist else None,
                           ep.dist.version if ep.dist else None)
                for ep in importlib.metadata.entry_points(group=group)]


def version(name: str) -> str | None:
    """The ``Version`` of the distribution ``name`` found first on ``sys.path`` (as
    ``importlib.metadata.version``); None when none is installed."""
    try:
        folder = _metadata_folders().get(normalize(name))
        return None if folder is None else _headers(folder).get("version")
    except _Fallback:
        import importlib.metadata

        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None


def _metadata_folders() -> dict[str, str]:
    """Normalized distribution name -> its metadata folder (or egg-info file), the first of
    each name in ``sys.path`` order and, within a directory, in listing order."""
    if any(getattr(finder, "find_distributions", None) is not None and finder is not PathFinder
           for finder in sys.meta_path):
        raise _Fallback
    folders: dict[str, str] = {}
    for entry in sys.path:
        if not isinstance(entry, str):
            raise _Fallback
        root = entry or "."
        if os.path.basename(root).lower().endswith(".egg"):
            raise _Fallback
        try:
            children = os.listdir(root)
        except NotADirectoryError:  # a zip file
            raise _Fallback from None
        except OSError:  # missing or unreadable: importlib.metadata skips it too
            continue
        for child in children:
            if not child.lower().endswith(METADATA_SUFFIXES):
                continue
            stem, dot, suffix = child.rpartition(".")
            name = stem.partition("-")[0]
            if not name or f"{dot}{suffix}" not in METADATA_SUFFIXES:
                raise _Fallback  # importlib.metadata would name it from its metadata
            folders.setdefault(normalize(name), os.path.join(root, child))
    return folders


def _read(folder: str, filename: str) -> str | None:
    """The text of ``filename`` in a metadata folder (the path itself for ``''``); None when
    there is none, as ``PathDistribution.read_text``."""
    try:
        with open(os.path.join(folder, filename) if filename else folder,
                  encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None


def _headers(folder: str) -> dict[str, str]:
    """The first value of each header of the distribution's core metadata (``METADATA``,
    ``PKG-INFO``, or an egg-info file itself), with lower-case keys."""
    text = _read(folder, "METADATA") or _read(folder, "PKG-INFO") or _read(folder, "") or ""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():  # the headers end at the first blank line
            break
        if line[0] in " \t":  # the next line of a folded header
            continue
        key, colon, value = line.partition(":")
        if not colon:  # not a header: the email parser takes the rest as the body
            break
        headers.setdefault(key.lower(), value.lstrip(" \t"))
    return headers


def _group_pairs(text: str | None, group: str) -> list[tuple[str, str]]:
    """The ``name = value`` lines of section ``[group]`` of an ``entry_points.txt``, read as
    ``importlib.metadata`` reads it (a line that is not a pair makes it fail: ``_Fallback``)."""
    pairs, section = [], None
    for line in map(str.strip, (text or "").splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line.strip("[]")
        elif section is not None:
            name, equals, value = line.partition("=")
            if not equals:
                raise _Fallback
            if section == group:
                pairs.append((name.strip(), value.strip()))
    return pairs
