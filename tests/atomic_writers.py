"""Every writer of a result file, each able to stop part-way through writing its new content.

``write_old(kind, path)`` writes a first version; ``write_new(kind, path, fault)`` writes a
second one and calls ``fault()`` once part of the new bytes has gone out, before the writer
would finish: in ``test_io.py`` the fault raises (a writer that fails), in a child process it
reports and waits to be killed with SIGKILL (``python atomic_writers.py KIND PATH``).
"""
import io
import sys
from pathlib import Path

import numpy as np

# kind: the file (or model folder) name it writes
KINDS = {"write_atomic": "out.bin", "write_npz": "out.npz", "plot": "out.png",
         "table": "table.csv", "model": "model"}
OLD = bytes(range(256)) * 64
NEW = bytes(reversed(range(256))) * 512  # 128 KiB: more than any write buffer
TABLE_ROWS = 3000  # about 40 KiB of CSV: several buffers reach the file before the fault


class Figure:
    """What ``plot.save`` asks of a figure: ``savefig(path, format=...)``."""

    def __init__(self, data: bytes, fault=None):
        self.data, self.fault = data, fault

    def savefig(self, path, format):
        with open(path, "wb") as fh:
            if self.fault is None:
                fh.write(self.data)
                return
            fh.write(self.data[: len(self.data) // 2])
            fh.flush()
            self.fault()


class FaultyFloat(float):
    """A table cell that calls ``fault`` when the CSV writer formats it."""

    fault = None

    def __repr__(self):
        type(self).fault()
        return float.__repr__(self)


def partial_savez(fault):
    """A stand-in for ``np.savez`` that writes the first half of the real archive, then faults."""
    real = np.savez

    def savez(file, *args, **kwds):
        buffer = io.BytesIO()
        real(buffer, *args, **kwds)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if hasattr(file, "write"):
            file.write(half)
            file.flush()
        else:
            with open(file, "wb") as fh:
                fh.write(half)
        fault()

    return savez


def network(seed: int):
    import rnnsim

    return rnnsim.Network.from_config({"network": {"input_size": 3, "seed": seed, "layers": [
        {"cell": "lstm", "units": 40, "init": {"bias": {"name": "uniform"}}}]}})


def write_old(kind: str, path: Path) -> None:
    from rnnsim import io as rio, plot, sweep

    if kind == "write_atomic":
        rio.write_atomic(path, lambda tmp: tmp.write_bytes(OLD))
    elif kind == "write_npz":
        rio.write_npz(path, {"x": np.arange(100.0)})
    elif kind == "plot":
        plot.save(Figure(OLD), path)
    elif kind == "table":
        sweep.write_table(path, [{"a": 1, "b": 0.5}], ["a", "b"])
    elif kind == "model":
        network(1).save(path)
    else:
        raise ValueError(kind)


def write_new(kind: str, path: Path, fault) -> None:
    from rnnsim import io as rio, plot, sweep

    if kind == "write_atomic":
        def write(tmp):
            with open(tmp, "wb") as fh:
                fh.write(NEW[: len(NEW) // 2])
                fh.flush()
                fault()
                fh.write(NEW[len(NEW) // 2:])

        rio.write_atomic(path, write)
    elif kind in ("write_npz", "model"):
        real, np.savez = np.savez, partial_savez(fault)
        try:
            if kind == "write_npz":
                rio.write_npz(path, {"x": np.arange(20000.0), "y": np.ones(50)})
            else:
                network(2).save(path)
        finally:
            np.savez = real
    elif kind == "plot":
        plot.save(Figure(NEW, fault), path)
    elif kind == "table":
        FaultyFloat.fault = staticmethod(fault)
        rows = [{"a": i, "b": i / 7} for i in range(TABLE_ROWS)]
        sweep.write_table(path, rows + [{"a": -1, "b": FaultyFloat(0.25)}], ["a", "b"])
    else:
        raise ValueError(kind)


def snapshot(path: Path):
    """The bytes of a file, or {name: bytes} of a folder's files."""
    if path.is_dir():
        return {p.name: p.read_bytes() for p in sorted(path.iterdir())}
    return path.read_bytes()


def wait_to_be_killed():
    print("writing", flush=True)
    sys.stdin.read()  # the parent never closes stdin: it sends SIGKILL
    raise SystemExit("not killed")


if __name__ == "__main__":
    write_new(sys.argv[1], Path(sys.argv[2]), wait_to_be_killed)
    raise SystemExit("the fault was never reached")
