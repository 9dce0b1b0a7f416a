"""Two processes under torchrun: they match one process with the same global batch, and a
data-parallel run resumed from a checkpoint is bit-identical to an uninterrupted one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mixnas.train import load_checkpoint
from train_toy import run

SCRIPT = Path(__file__).with_name("train_toy.py")


def _assert_same(a, b, exact):
    assert a.keys() == b.keys()
    for key in a:
        same = torch.equal(a[key], b[key]) if exact else torch.allclose(a[key], b[key], rtol=0, atol=1e-6)
        assert same, key


def test_two_processes_match_single_process_and_resume_exactly(tmp_path):
    # Global batch per update: 2 micro-batches of 4 examples. One process accumulates them
    # (update_freq=2); two ranks take one each. Only head (update % 2) is used, so half the
    # weights get no gradient in every update, as in supernet training.
    common = dict(max_updates=16, batch_size=4, switch_heads=True, checkpoint_every=8)
    run(tmp_path / "single", update_freq=2, **common)

    # Resume: per-rank dropout and noisy collate, interrupted at update 6 of 12.
    noisy = dict(batch_size=4, dropout=0.2, noise=0.1, checkpoint_every=0)
    runs = [[str(tmp_path / "ddp"), {**common, "update_freq": 1}],
            [str(tmp_path / "whole"), {**noisy, "max_updates": 12}],
            [str(tmp_path / "halves"), {**noisy, "max_updates": 6}],
            [str(tmp_path / "halves"), {**noisy, "max_updates": 12}]]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(SCRIPT), json.dumps(runs)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    single = load_checkpoint(tmp_path / "single" / "checkpoint_00000016.pt")
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint_00000016.pt")
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    _assert_same(single["model"], ddp["model"], exact=False)
    # Each head was trained on every other update only, in both runs.
    assert len(ddp["optimizer"]["state"]) == len(single["optimizer"]["state"])
    for index, state in single["optimizer"]["state"].items():
        assert torch.equal(state["step"], ddp["optimizer"]["state"][index]["step"])
    # Rank 0 alone wrote the log.
    records = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 17))

    whole = load_checkpoint(tmp_path / "whole" / "checkpoint_00000012.pt")
    halves = load_checkpoint(tmp_path / "halves" / "checkpoint_00000012.pt")
    _assert_same(whole["model"], halves["model"], exact=True)
    assert not torch.equal(whole["rng"][0]["torch"], whole["rng"][1]["torch"])  # ranks differ
    for rank in range(2):
        assert torch.equal(whole["rng"][rank]["torch"], halves["rng"][rank]["torch"])
