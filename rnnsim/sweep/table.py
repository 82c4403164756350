"""A sweep's files: one JSON file per finished point, and the table (CSV or Parquet) rebuilt
from them."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import ConfigError
from ..io import write_atomic
from .grid import POINT_FORMAT, parse_scalar


PARQUET_HINT = "install pyarrow with `pip install 'rnnsim[parquet]'`, or write a .csv table"
TABLE_SUFFIXES = (".csv", ".parquet")


def points_folder(output: str | os.PathLike) -> Path:
    """Where a table's per-point files live: ``results.csv`` -> ``results.points/``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.points")


def write_point(path: Path, record: dict) -> None:
    """Write a finished point's record (its format, params, seed and metrics) atomically."""
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))


def read_point(path: Path) -> dict | None:
    """A point file's metrics, or None if it is missing, unreadable or of another format."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != POINT_FORMAT:
        return None
    return record.get("metrics") if isinstance(record.get("metrics"), dict) else None


def _cell(value):
    """A table cell: numbers and strings as they are, anything else as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def write_table(path: str | os.PathLike, rows: Sequence[Mapping], columns: Sequence[str]) -> None:
    """Write ``rows`` as CSV, or Parquet when ``path`` ends in .parquet, atomically."""
    path = Path(path)
    if path.suffix == ".parquet":
        pa, pq = require_pyarrow()
        table = pa.table({c: [_cell(row[c]) for row in rows] for c in columns})
        write_atomic(path, lambda tmp: pq.write_table(table, tmp))
        return

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if row[c] is None else _csv_text(_cell(row[c]))
                                 for c in columns])

    write_atomic(path, write_csv)


def _csv_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def read_table(path: str | os.PathLike) -> list[dict]:
    """The rows of a table written by ``write_table`` (CSV cells parsed back to numbers)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return require_pyarrow()[1].read_table(path).to_pylist()
    with path.open(newline="") as handle:
        return [{k: parse_scalar(v, path.name) if v else None for k, v in row.items()}
                for row in csv.DictReader(handle)]


def require_pyarrow():
    """``(pyarrow, pyarrow.parquet)``; a ConfigError saying how to install them if missing."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError(f"a .parquet table needs pyarrow: {PARQUET_HINT}.") from None
    return pyarrow, pyarrow.parquet
