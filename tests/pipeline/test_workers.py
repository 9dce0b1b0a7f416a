"""Retraining workers: results as a sequential run, and a clean stop on SIGINT/SIGTERM."""
import os
import signal
import threading
import time

import pytest
from worker_jobs import finish_despite_stop, train_until_stopped, write

from mixnas.errors import Interrupted
from mixnas.pipeline.workers import run_in_processes


@pytest.mark.parametrize("workers", [1, 2])
def test_every_job_runs_and_each_end_is_reported(tmp_path, workers):
    finished = []
    run_in_processes(write, [(str(tmp_path), i) for i in range(3)], workers=workers, on_done=finished.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done-0", "done-1", "done-2"]
    assert finished == [1, 2, 3]  # for progress lines: how many are done, in the main process


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_main_process_stops_every_worker_cleanly(tmp_path, sig):
    """`kill -INT <main pid>` (or TERM): both running trainings checkpoint, the queued ones never
    start, and the main process raises Interrupted (one line, exit 128 + signal)."""
    jobs = [(str(tmp_path), i) for i in range(4)]

    def send_when_started():
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), sig)

    threading.Thread(target=send_when_started, daemon=True).start()
    with pytest.raises(Interrupted) as stopped:
        run_in_processes(train_until_stopped, jobs, workers=2)
    assert stopped.value.exit_code == 128 + sig and "run the same command again" in str(stopped.value)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-0", "checkpoint-1", "started-0", "started-1"]  # queued jobs never started
    assert (tmp_path / "checkpoint-0").read_text() == str(int(sig))


def test_a_signal_during_a_jobs_startup_stops_it_when_its_training_begins(tmp_path):
    """Ctrl-C while the workers are still loading data (ignoring signals) is not lost: each
    training finds the stop pending when it begins and checkpoints at once (not after its
    whole budget)."""
    jobs = [(str(tmp_path), i, 1.5) for i in range(2)]

    def send_when_started():
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # during the 1.5 s startup

    threading.Thread(target=send_when_started, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Interrupted):
        run_in_processes(train_until_stopped, jobs, workers=2)
    assert time.monotonic() - start < 30  # the jobs would run a minute if the signal were lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0", "checkpoint-1", "started-0", "started-1"]


def test_progress_counts_only_the_jobs_that_finished_when_stopped(tmp_path):
    """Cancelled and stopped jobs are not reported as finished (a stop once printed
    'trainings finished 18/18' after one of 18 had)."""
    finished = []

    def send_when_started():
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=send_when_started, daemon=True).start()
    with pytest.raises(Interrupted):
        run_in_processes(finish_despite_stop, [(str(tmp_path), i) for i in range(5)], workers=2,
                         on_done=finished.append)
    # jobs 2-4 were cancelled (their futures complete first), job 0 stopped, job 1 finished
    assert (tmp_path / "done-1").exists() and not (tmp_path / "started-2").exists() and finished == [1]


def test_interrupted_survives_pickling():
    """A worker's Interrupted crosses the process boundary with its signal and message."""
    import pickle
    copy = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM, "saved; rerun")))
    assert (copy.signum, str(copy), copy.exit_code) == (signal.SIGTERM, "saved; rerun", 143)
