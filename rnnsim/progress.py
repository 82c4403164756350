"""Progress of long work: callbacks for the Python API and a bar on a terminal for the CLI.

The API's long functions (``Network.run`` streamed to disk, ``dynamics.analyze``,
``reservoir.fit``...) take ``progress``: None, a callable ``progress(done, total)``, or a
``tqdm``-compatible object (``update(n)``, and ``total`` set when it is None), turned into a
callable by ``reporter``. The CLI draws a ``Bar`` on stderr when stderr is a terminal (steps
done, rate, time left), and nothing when it is piped or under ``--quiet``.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

Callback = Callable[[int, int], None]
# Seconds before a bar first shows (work that ends sooner shows none); RNNSIM_PROGRESS_DELAY.
DELAY = 0.5
# Seconds between redraws: on new progress, and while none comes (the elapsed time moves).
INTERVAL = 0.2


def reporter(progress) -> Callback | None:
    """``progress`` as a callable ``(done, total)``: None stays None, a callable is kept, a
    tqdm-compatible object (with ``update``) is advanced by the difference to the last call."""
    if progress is None or (callable(progress) and not hasattr(progress, "update")):
        return progress
    if not hasattr(progress, "update"):
        raise TypeError(f"progress={progress!r}: give a callable progress(done, total) or an "
                        "object with update(n), such as a tqdm bar.")
    last = [0]

    def advance(done: int, total: int) -> None:
        if getattr(progress, "total", 0) is None:
            progress.total = total
        if done > last[0]:
            progress.update(done - last[0])
            last[0] = done

    return advance


class Stages:
    """One progress of ``total`` units over consecutive stages of known sizes: ``stage(size)``
    returns the callback of the next stage, whose ``done`` counts from 0 to ``size``."""

    def __init__(self, progress: Callback | None, total: int):
        self.progress, self.total, self.offset = progress, total, 0

    def stage(self, size: int) -> Callback | None:
        if self.progress is None:
            return None
        offset, self.offset = self.offset, self.offset + size

        def report(done: int, _total: int = size) -> None:
            self.progress(offset + min(done, size), self.total)

        report(0)
        return report


def duration(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Bar:
    """A one-line bar redrawn in place on ``stream``: ``label  done/total unit  pct  rate
    unit/s  m:ss left``, or the elapsed time while no total is known. Call it as a progress
    callback; a thread redraws it while no call comes, so slow steps still show time passing;
    ``close`` draws the last state (when the bar was shown) and ends the line."""

    def __init__(self, label: str, unit: str = "steps", stream=None, delay: float | None = None):
        self.label, self.unit = label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.delay = float(os.environ.get("RNNSIM_PROGRESS_DELAY", DELAY)) if delay is None \
            else delay
        self.start = time.monotonic()
        self.done, self.total = 0, None
        self.shown = False
        self.width = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def __call__(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def _tick(self) -> None:
        while not self._stop.wait(INTERVAL):
            if time.monotonic() - self.start >= self.delay:
                self._draw()

    def line(self) -> str:
        """What the bar shows now."""
        elapsed = time.monotonic() - self.start
        if not self.total:
            return f"{self.label}  {duration(elapsed)} elapsed"
        parts = [f"{self.label}  {self.done:,}/{self.total:,} {self.unit}",
                 f"{100 * self.done / self.total:3.0f}%"]
        if self.done and elapsed > 0:
            rate = self.done / elapsed
            parts.append(f"{rate:,.0f} {self.unit}/s" if rate >= 10 else
                         f"{rate:.3g} {self.unit}/s")
            left = (self.total - self.done) / rate
            parts.append(f"{duration(left)} left" if self.done < self.total else
                         f"{duration(elapsed)} total")
        else:  # nothing done yet to measure a rate by: the time passing
            parts.append(f"{duration(elapsed)} elapsed")
        return "  ".join(parts)

    def _draw(self) -> None:
        with self._lock:
            text = self.line()
            pad = " " * max(0, self.width - len(text))
            self.stream.write(f"\r{text}{pad}")
            self.stream.flush()
            self.width, self.shown = len(text), True

    def above(self, write: Callable[[], None]) -> None:
        """Erase the bar's line and call ``write()``, which prints a line of its own: the
        bar is drawn again below it at the next redraw."""
        with self._lock:
            if self.shown:
                self.stream.write("\r" + " " * self.width + "\r")
                self.stream.flush()
                self.width = 0
            write()

    def close(self) -> None:
        """Stop redrawing; draw the final state and end the line if the bar was shown."""
        self._stop.set()
        self._ticker.join()
        if self.shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


@contextmanager
def shown(label: str, unit: str = "steps", quiet: bool = False,
          stream=None) -> Iterator[Callback | None]:
    """A ``Bar`` on ``stream`` (default stderr) while the block runs, or None when ``quiet``
    or the stream is not a terminal (piped, redirected to a file)."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not is_terminal(stream):
        yield None
        return
    bar = Bar(label, unit, stream)
    try:
        yield bar
    finally:
        bar.close()
