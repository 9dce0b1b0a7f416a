"""Independent trainings run side by side, one process each (`retrain.workers`).

A 2-core machine trains two small models at once about twice as fast as one after the other
(each with one intra-op thread). The jobs must be independent and deterministic, each in its
own directory: then the results equal a sequential run's, and the caller reads them back as
finished runs. Processes are spawned, not forked, so no torch state is shared.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def run_in_processes(function: Callable[..., Any], jobs: list[tuple], workers: int) -> None:
    """Call function(*job) for every job, `workers` at a time (in this process when there is
    nothing to gain). A worker's error is raised here with its own message."""
    if workers < 2 or len(jobs) < 2:
        for job in jobs:
            function(*job)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(function, *job) for job in jobs]:
            future.result()
