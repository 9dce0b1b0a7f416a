"""The one-line progress of counted jobs (collect): count, percent, rate and time left."""
import mixnas.progress as progress
from mixnas.progress import Progress


def test_progress_line_rate_and_time_left(monkeypatch):
    clock = iter([100.0, 110.0, 160.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    line = Progress("collected", 300)
    assert line(20) == "collected 20/300 (7%)"  # resumed at 20: the rate starts here
    assert line(40) == "collected 40/300 (13%), 2/s, ~2.2 min left"  # 20 in 10 s
    assert line(300) == "collected 300/300 (100%), 4.67/s"  # 280 in 60 s; done: no time left shown
