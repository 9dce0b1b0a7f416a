"""Two processes under torchrun match one process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from train_toy import run
from mixnas.train import load_checkpoint

SCRIPT = Path(__file__).with_name("train_toy.py")


def test_two_process_gloo_matches_single_process(tmp_path):
    # Global batch per update: 2 micro-batches of 4 examples. One process accumulates them
    # (update_freq=2); two ranks take one each. Only head (update % 2) is used, so half the
    # weights get no gradient in every update, as in supernet training.
    common = dict(max_updates=16, batch_size=4, switch_heads=True, checkpoint_every=8)
    run(tmp_path / "single", update_freq=2, **common)

    ddp_dir = tmp_path / "ddp"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(SCRIPT), str(ddp_dir), "--options", json.dumps({**common, "update_freq": 1})],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]

    single = load_checkpoint(tmp_path / "single" / "checkpoint_00000016.pt")
    ddp = load_checkpoint(ddp_dir / "checkpoint_00000016.pt")
    assert ddp["world_size"] == 2 and len(ddp["rng"]) == 2
    for key, value in single["model"].items():
        assert torch.allclose(value, ddp["model"][key], rtol=0, atol=1e-6), key
    # Each head trained on every other update only; Adam state exists for both.
    assert len(ddp["optimizer"]["state"]) == len(single["optimizer"]["state"])
    for index, state in single["optimizer"]["state"].items():
        assert torch.equal(state["step"], ddp["optimizer"]["state"][index]["step"])
    # Rank 0 alone wrote the log.
    records = [json.loads(x) for x in (ddp_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 17))
