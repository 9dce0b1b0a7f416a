"""Progress of long counted work, readable on a terminal and in a log.

- `Progress(what, total)(done)`: one line, 'collected 40/300 (13%), 0.52/s, ~8.3 min left'.
- `Tracker(what, total)`: a tqdm bar when the stream is a terminal, else a `Progress` line every
  `interval` seconds (CI, nohup, log files); used by evaluation loops.
- `bars_allowed(stream)`: whether a bar may be drawn. Never inside a worker process of
  `mixnas.pipeline.workers` (`mark_worker`): two workers' bars on one terminal overwrite each
  other, so workers write labelled lines instead.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

_in_worker = False


def mark_worker() -> None:
    """Called in a pipeline worker process: progress there is written as lines, never as bars."""
    global _in_worker
    _in_worker = True


def bars_allowed(stream: TextIO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return not _in_worker and hasattr(stream, "isatty") and stream.isatty()


class Progress:
    """`Progress(total)(done)` -> 'collected 40/300 (13%), 0.52/s, ~8.3 min left'. The rate counts
    only what this process did (a resumed job starts from the count it found)."""

    def __init__(self, what: str, total: int):
        self.what, self.total = what, total
        self.start: float | None = None
        self.first = 0

    def __call__(self, done: int, total: int | None = None) -> str:
        total = self.total if total is None else total
        now = time.monotonic()
        if self.start is None:  # the first report: the rate starts here
            self.start, self.first = now, done
            return f"{self.what} {done}/{total} ({done / total:.0%})"
        rate = (done - self.first) / (now - self.start) if now > self.start else 0.0
        line = f"{self.what} {done}/{total} ({done / total:.0%}), {rate:.3g}/s"
        if 0 < rate and done < total:
            line += f", {time_left((total - done) / rate)}"
        return line


class Tracker:
    """`advance(n)` after each piece of work; `close()` at the end (or use it as a context
    manager). A bar on a terminal; elsewhere a line at most every `interval` seconds, and a
    last line at the end when any was written."""

    def __init__(self, what: str, total: int, interval: float = 30.0, stream: TextIO | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.interval, self.done, self.printed = interval, 0, False
        self.bar = None
        if bars_allowed(self.stream):
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=what, file=self.stream, leave=False, dynamic_ncols=True)
        self.line = Progress(what, total)
        self.line(0)  # the rate counts from here
        self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.interval:
            self._print()

    def _print(self) -> None:
        print(self.line(self.done), file=self.stream, flush=True)
        self.printed, self.last = True, time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.printed and self.done:
            self._print()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def time_left(seconds: float) -> str:
    """'~45 s left' under a minute and a half, '~3.2 min left' under an hour and a half, else
    '~2.4 h left'."""
    if seconds < 90:
        return f"~{seconds:.0f} s left"
    return f"~{seconds / 60:.1f} min left" if seconds < 5400 else f"~{seconds / 3600:.1f} h left"
