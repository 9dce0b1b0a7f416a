"""SIGINT/SIGTERM during training: the update finishes, a checkpoint is written, `Interrupted`
is raised, and resuming ends bit-identical to an uninterrupted run (log records included,
also a train record whose interval spans the interruption). Plus the bound on skipped
non-finite updates in a row, and a finished run's rerun that changes nothing."""
import json
import os
import signal

import pytest
import torch

from train_toy import ToyTask, run
from mixnas.errors import Interrupted
from mixnas.train import load_checkpoint
from mixnas.train.trainer import NonFiniteLossError

# log_every=5 with the signal at update 7: the train record of update 10 sums updates 6..10,
# across the interruption.
OPTIONS = dict(max_updates=20, batch_size=8, dropout=0.2, noise=0.1, checkpoint_every=4, log_every=5)


class SignalAtCall(ToyTask):
    """Sends a signal to this process from inside the loss of the given call (mid-update)."""
    signum, at_call = signal.SIGINT, 7

    def loss(self, model, batch, step):
        out = super().loss(model, batch, step)
        if self.calls == self.at_call:
            os.kill(os.getpid(), self.signum)
        return out


def _records(save_dir):
    lines = (save_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed"} for line in lines]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_resume_is_bit_identical(tmp_path, signum):
    reference = tmp_path / "reference"
    run(reference, **OPTIONS)

    interrupted = tmp_path / "interrupted"
    task_class = type("Signal", (SignalAtCall,), {"signum": signum})
    previous = signal.getsignal(signum)
    with pytest.raises(Interrupted) as info:
        run(interrupted, task_class=task_class, **OPTIONS)
    assert signal.getsignal(signum) is previous  # the trainer's handler is gone again
    assert info.value.exit_code == 128 + signum
    assert "checkpoint_00000007.pt written" in str(info.value) and "run the same command" in str(info.value)
    assert (interrupted / "checkpoint_00000007.pt").exists()  # the update in progress was finished
    assert not (interrupted / "checkpoint_00000008.pt").exists()

    summary = run(interrupted, **OPTIONS)
    assert summary["step"] == 20
    want = load_checkpoint(reference / "checkpoint_00000020.pt")
    got = load_checkpoint(interrupted / "checkpoint_00000020.pt")
    for key in want["model"]:
        assert torch.equal(want["model"][key], got["model"][key]), key
    for index, state in want["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, got["optimizer"]["state"][index][name]), (index, name)
    assert want["batches"] == got["batches"] and want["scheduler"] == got["scheduler"]
    assert _records(interrupted) == _records(reference)


def test_consecutive_skips_are_bounded(tmp_path):
    class AlwaysNaN(ToyTask):
        def loss(self, model, batch, step):
            loss, stats = super().loss(model, batch, step)
            return loss * float("nan"), stats

    with pytest.raises(NonFiniteLossError, match="4 updates in a row were skipped"):
        run(tmp_path, task_class=AlwaysNaN, skip_nonfinite=True, max_skips_in_a_row=3, max_updates=50)
    skips = [r for r in _records(tmp_path) if r["kind"] == "skip"]
    assert len(skips) == 4


def test_isolated_skips_do_not_stop_a_run(tmp_path):
    # One NaN batch, then finite ones: the counter resets after each good update.
    summary = run(tmp_path, skip_nonfinite=True, max_skips_in_a_row=1, nan_at_call=3, max_updates=8)
    assert summary["step"] == 8 and summary["skipped_updates"] == 1


def test_rerun_of_a_finished_run_changes_no_file(tmp_path):
    first = run(tmp_path, max_updates=8, checkpoint_every=4, validate_every=4)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    again = run(tmp_path, max_updates=8, checkpoint_every=4, validate_every=4)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == files
    first.pop("task"), again.pop("task")
    assert again == first and again["train"] and again["valid"]
