"""SIGINT / SIGTERM during training: finish the update, checkpoint, stop cleanly.

While a `StopSignals` block is active (main thread only: Python sets handlers there), the
first SIGINT or SIGTERM is only recorded; the trainer checks `requested` between updates,
writes a checkpoint and raises `Interrupted` (exit 130 / 143 from the CLI). A second signal
raises at once, abandoning the update in progress (the previous checkpoint stays valid).
Under torchrun every rank sends its flags through the update's collective (`flags` / `agree`),
so all ranks stop after the same update and meet at the checkpoint's barrier.
"""
from __future__ import annotations

import signal
import threading
from typing import Any, Callable

from mixnas.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# A stop requested before the block began (e.g. Ctrl-C while a pipeline worker was still loading
# its data, when it ignores signals): a function returning that signal or None. Pipeline worker
# processes set it (mixnas/pipeline/workers.py); elsewhere nothing is ever pending.
_pending: Callable[[], int | None] = lambda: None


def set_pending_stop(check: Callable[[], int | None]) -> None:
    global _pending
    _pending = check


class StopSignals:
    def __init__(self, abandon_message: Callable[[], str]):
        self.abandon_message = abandon_message  # what a second signal says (how to resume)
        self.received: int | None = None  # by this process
        self.agreed: int | None = None  # by any rank, as of the last update's collective
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        self.received, self.agreed = _pending(), None
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._previous.items():
            signal.signal(sig, old)
        self._previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise Interrupted(signum, self.abandon_message())
        self.received = signum

    def flags(self) -> list[float]:
        """This process's signals as numbers to sum over ranks."""
        return [float(self.received == sig) for sig in STOP_SIGNALS]

    def agree(self, summed: list[float]) -> None:
        received = [sig for sig, count in zip(STOP_SIGNALS, summed) if count > 0]
        self.agreed = int(received[-1]) if received else None

    def requested(self, distributed: bool) -> int | None:
        """The signal to stop for, if any (agreed across ranks when distributed)."""
        return self.agreed if distributed else self.received
