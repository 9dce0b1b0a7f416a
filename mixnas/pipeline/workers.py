"""Independent trainings run side by side, one process each (`retrain.workers`).

A 2-core machine trains two small models at once about twice as fast as one after the other
(each with one intra-op thread). The jobs must be independent and deterministic, each in its
own directory: then the results equal a sequential run's, and the caller reads them back as
finished runs. Processes are spawned, not forked, so no torch state is shared.

Stopping: SIGINT or SIGTERM to the main process (Ctrl-C, `kill`) is passed on to the workers;
a worker in a training checkpoints after its current update and stops (mixnas.train.signals),
a worker between jobs ignores it, jobs not yet started are cancelled, and the main process
raises `Interrupted` once every worker has stopped: one line, exit 130 or 143, and the same
command continues from the checkpoints. A second signal stops waiting at once.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import CancelledError, ProcessPoolExecutor, as_completed
from typing import Any, Callable

from mixnas.errors import Interrupted
from mixnas.progress import mark_worker
from mixnas.train.signals import set_pending_stop

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPPED = ("stopped by {name}: the running trainings wrote a checkpoint; run the same command again "
           "to continue")


_stop: Any = None  # in a worker: the event the main process sets when it is told to stop


def _init_worker(stop: Any) -> None:
    """Worker initializer. Its own process group, so a terminal's Ctrl-C reaches it once, passed
    on by the main process; signals between jobs are ignored (a training handles its own)."""
    global _stop
    _stop = stop
    mark_worker()  # progress as labelled lines: bars of two workers would overwrite each other
    os.setpgrp()
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    # A signal ignored while a job was still starting (loading data) is not lost: its training
    # finds the stop pending as it begins, checkpoints and stops.
    set_pending_stop(lambda: int(signal.SIGINT) if stop.is_set() else None)


def _run_job(function: Callable[..., Any], job: tuple) -> Any:
    if _stop is not None and _stop.is_set():  # queued before the stop: do not start it
        raise Interrupted(signal.SIGINT)
    return function(*job)


def run_in_processes(function: Callable[..., Any], jobs: list[tuple], workers: int,
                     on_done: Callable[[int], None] | None = None) -> None:
    """Call function(*job) for every job, `workers` at a time (in this process when there is
    nothing to gain). A worker's error is raised here with its own message. `on_done(n)` is
    called here each time a job finishes, n the number finished so far (for progress lines)."""
    if workers < 2 or len(jobs) < 2:
        for n, job in enumerate(jobs, 1):
            function(*job)
            if on_done is not None:
                on_done(n)
        return
    received: list[int] = []
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker,
                             initargs=(stop,)) as pool:
        futures = [pool.submit(_run_job, function, job) for job in jobs]

        def forward(signum: int, frame: Any) -> None:
            if received:
                raise Interrupted(signum, f"stopped by a second {signal.Signals(signum).name}; the trainings "
                                          f"keep their last checkpoints")
            received.append(signum)
            stop.set()
            for future in futures:
                future.cancel()  # not started yet
            for child in multiprocessing.active_children():
                os.kill(child.pid, signum)

        previous = ({sig: signal.signal(sig, forward) for sig in STOP_SIGNALS}
                    if threading.current_thread() is threading.main_thread() else {})
        try:
            finished = 0  # jobs that ran to the end (cancelled and stopped ones do not count)
            for future in as_completed(futures):
                try:
                    future.result()
                except (CancelledError, Interrupted):
                    if not received:
                        raise
                    continue
                finished += 1
                if on_done is not None:
                    on_done(finished)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if received:
        raise Interrupted(received[0], STOPPED.format(name=signal.Signals(received[0]).name))
