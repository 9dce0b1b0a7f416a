"""A run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from train_toy import run
from mixnas.train import load_checkpoint

SCRIPT = Path(__file__).with_name("train_toy.py")
# Dropout, noisy collate (torch/numpy/python RNG), shuffled batches, gradient accumulation
# over an epoch boundary (12 batches per epoch, 2 per update), validation every 10 updates.
OPTIONS = dict(max_updates=30, update_freq=2, batch_size=8, dropout=0.2, noise=0.1, checkpoint_every=4)


def _train_records(save_dir):
    lines = (Path(save_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    reference = tmp_path / "uninterrupted"
    run(reference, **OPTIONS)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), json.dumps([[str(killed), {**OPTIONS, "sleep": 0.05}]])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (killed / "checkpoint_00000008.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 60 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "checkpoint_00000030.pt").exists(), "the run finished before the kill"

    summary = run(killed, **OPTIONS)  # resume="auto" picks up the latest checkpoint
    assert summary["step"] == 30

    want = load_checkpoint(reference / "checkpoint_00000030.pt")
    got = load_checkpoint(killed / "checkpoint_00000030.pt")
    assert want["model"].keys() == got["model"].keys()
    for key in want["model"]:
        assert torch.equal(want["model"][key], got["model"][key]), key
    want_opt, got_opt = want["optimizer"]["state"], got["optimizer"]["state"]
    assert want_opt.keys() == got_opt.keys() and want_opt
    for index in want_opt:
        for name, value in want_opt[index].items():
            assert torch.equal(value, got_opt[index][name]), (index, name)
    assert want["scheduler"] == got["scheduler"]
    assert want["batches"] == got["batches"]
    assert torch.equal(want["rng"][0]["torch"], got["rng"][0]["torch"])
    # The resumed log drops what the killed run wrote after its checkpoint: same records.
    strip = lambda records: [{k: v for k, v in r.items() if k != "elapsed"} for r in records]
    assert strip(_train_records(killed)) == strip(_train_records(reference))


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    run(tmp_path, max_updates=6, checkpoint_every=0)
    before = load_checkpoint(tmp_path / "checkpoint_00000006.pt")["model"]
    summary = run(tmp_path, max_updates=6, checkpoint_every=0)
    after = load_checkpoint(tmp_path / "checkpoint_00000006.pt")["model"]
    assert summary["step"] == 6
    assert all(torch.equal(before[k], after[k]) for k in before)
