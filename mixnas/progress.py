"""One-line progress of a counted job, for logs that are not terminals: done/total, rate, time left."""
from __future__ import annotations

import time


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


def time_left(seconds: float) -> str:
    """'~45 s left' under a minute and a half, else '~3.2 min left'."""
    return f"~{seconds:.0f} s left" if seconds < 90 else f"~{seconds / 60:.1f} min left"
