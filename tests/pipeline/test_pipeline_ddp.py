"""Supernet training under torchrun: 2 processes equal 1 process with the same global batch.

Both runs activate the same sub-network at every update (seeded by the update number), so
the data-parallel supernet follows the single-process one; sub-network weights that an update
leaves unused get no gradient on any rank."""
import os
import subprocess
import sys

import torch

from mixnas.pipeline import load_pipeline_config, train_supernet
from mixnas.train import load_checkpoint

UPDATES = 6
COMMON = ["supernet.train.validate_every=0", "supernet.train.checkpoint_every=0",
          f"supernet.train.max_updates={UPDATES}"]


def test_two_ranks_match_one_process(tmp_path):
    single = load_pipeline_config("micro", [f"run_dir={tmp_path / 'single'}", *COMMON,
                                            "supernet.train.update_freq=2"])
    train_supernet(single)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "mixnas.cli", "train-supernet", "--config", "micro", f"run_dir={tmp_path / 'ddp'}", *COMMON],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    name = f"checkpoint_{UPDATES:08d}.pt"
    a = load_checkpoint(tmp_path / "single" / "supernet" / name)
    b = load_checkpoint(tmp_path / "ddp" / "supernet" / name)
    assert b["world_size"] == 2
    assert a["model"].keys() == b["model"].keys()
    changed = 0
    for key, value in a["model"].items():
        assert torch.allclose(value, b["model"][key], rtol=0, atol=1e-5), key
    # Only the sampled slices trained: the optimizer holds state for the same parameters.
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for index, state in a["optimizer"]["state"].items():
        changed += 1
        assert torch.equal(state["step"], b["optimizer"]["state"][index]["step"])
    assert changed > 0
