"""The one-line progress of counted jobs (collect): count, percent, rate and time left."""
import io

import mixnas.progress as progress
from mixnas.progress import Progress, Tracker


def test_progress_line_rate_and_time_left(monkeypatch):
    clock = iter([100.0, 110.0, 160.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    line = Progress("collected", 300)
    assert line(20) == "collected 20/300 (7%)"  # resumed at 20: the rate starts here
    assert line(40) == "collected 40/300 (13%), 2/s, ~2.2 min left"  # 20 in 10 s
    assert line(300) == "collected 300/300 (100%), 4.67/s"  # 280 in 60 s; done: no time left shown


class _Log(io.StringIO):
    def isatty(self) -> bool:  # a log file, not a terminal
        return False


def test_tracker_writes_lines_when_not_a_terminal(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    log = _Log()
    with Tracker("translating test", 100, interval=30.0, stream=log) as t:
        for at, n in ((10.0, 10), (20.0, 10), (31.0, 20), (40.0, 60)):
            now[0] = at
            t.advance(n)  # a line at 31 s only (40 done in 31 s); 40 s is within 30 s of it
    lines = log.getvalue().splitlines()
    assert lines[0] == "translating test 40/100 (40%), 1.29/s, ~46 s left"
    assert lines[-1] == "translating test 100/100 (100%), 2.5/s"  # the last line at close
    assert len(lines) == 2


def test_a_short_job_writes_nothing_and_workers_never_draw_bars(monkeypatch):
    log = _Log()
    with Tracker("scoring", 5, interval=30.0, stream=log) as t:
        t.advance(5)
    assert log.getvalue() == ""  # finished within the interval: no line at all

    class Terminal(_Log):
        def isatty(self) -> bool:
            return True
    assert progress.bars_allowed(Terminal())
    monkeypatch.setattr(progress, "_in_worker", True)
    assert not progress.bars_allowed(Terminal())


def test_time_left_units():
    assert progress.time_left(45) == "~45 s left"
    assert progress.time_left(600) == "~10.0 min left"
    assert progress.time_left(3 * 3600) == "~3.0 h left"
