"""Jobs for tests/pipeline/test_workers.py (importable by the spawned worker processes)."""
import time
from pathlib import Path

from mixnas.errors import Interrupted
from mixnas.train.signals import StopSignals


def train_until_stopped(directory: str, index: int, startup: float = 0.0) -> None:
    """A stand-in for a training: `startup` seconds (loading data, signals ignored), then
    'updates' until a stop signal, then a 'checkpoint' file."""
    out = Path(directory)
    (out / f"started-{index}").write_text("")
    time.sleep(startup)
    with StopSignals(lambda: "abandoned") as signals:
        for _ in range(600):  # at most a minute
            if signals.requested(False):
                (out / f"checkpoint-{index}").write_text(str(signals.received))
                raise Interrupted(signals.received)
            time.sleep(0.1)
    (out / f"finished-{index}").write_text("")


def write(directory: str, index: int) -> None:
    (Path(directory) / f"done-{index}").write_text("")


def finish_despite_stop(directory: str, index: int) -> None:
    """Job 1 takes 1.5 s and finishes even when a stop arrives meanwhile (like a training in
    its last update); the others train until stopped."""
    if index != 1:
        return train_until_stopped(directory, index)
    (Path(directory) / f"started-{index}").write_text("")
    time.sleep(1.5)
    write(directory, index)
