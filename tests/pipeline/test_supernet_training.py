import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mixnas.pipeline import (build_supernet, build_task, load_pipeline_config, load_space, sample_arch,
                             supernet_training_task, train_supernet)
from mixnas.train import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def micro(tmp_path, *overrides):
    return load_pipeline_config("micro", [f"run_dir={tmp_path}", *overrides])


def test_sub_network_is_a_pure_function_of_seed_and_step(tmp_path):
    cfg = micro(tmp_path)
    space = load_space(cfg)
    first = [sample_arch(space, 3, s) for s in range(20)]
    random.seed(123)  # the global RNG plays no part
    assert [sample_arch(space, 3, s) for s in range(20)] == first
    assert len(set(first)) > 10
    assert [sample_arch(space, 4, s) for s in range(20)] != first
    # The training task activates exactly that sub-network at update s.
    task = build_task(cfg)
    supernet = build_supernet(cfg, task, space)
    train_task = supernet_training_task(cfg, task, space, supernet)
    train_task.train_batches.set_epoch(1)
    batch = next(train_task.train_batches)
    for step in (0, 7, 7, 1000):
        train_task.loss(supernet, batch, step)
        assert supernet.arch == sample_arch(space, cfg.seed, step)


def test_sandwich_loss_is_sum_of_largest_smallest_and_random(tmp_path):
    cfg = micro(tmp_path, "supernet.sandwich=true")
    task, space = build_task(cfg), load_space(cfg)
    supernet = build_supernet(cfg, task, space)
    train_task = supernet_training_task(cfg, task, space, supernet)
    train_task.train_batches.set_epoch(1)
    batch = next(train_task.train_batches)
    loss, stats = train_task.loss(supernet, batch, 5)
    expected = 0.0
    for arch in (space.largest(), space.smallest(), sample_arch(space, cfg.seed, 5)):
        supernet.set_arch(arch)
        expected += task.loss(supernet, batch)[0].item()
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["sample_size"] == 3 * len(batch.labels)


def test_early_stop_at_second_validation_and_stays_stopped(tmp_path):
    cfg = micro(tmp_path, "supernet.early_stop_tau=-1.0")
    summary = train_supernet(cfg)
    assert summary["stopped_early"] and summary["step"] == 2 * cfg.supernet.train.validate_every
    first, second = summary["rank_taus"]
    assert first is None and -1.0 < second <= 1.0
    resumed = train_supernet(micro(tmp_path, "supernet.early_stop_tau=-1.0"))
    assert resumed["step"] == summary["step"] and resumed["stopped_early"]
    assert resumed["rank_taus"] == summary["rank_taus"]  # restored from the checkpoint


def test_threshold_above_one_never_stops(tmp_path):
    cfg = micro(tmp_path, "supernet.early_stop_tau=1.01")
    summary = train_supernet(cfg)
    train = cfg.supernet.train
    assert not summary["stopped_early"] and summary["step"] == train.max_updates
    assert len(summary["rank_taus"]) == train.max_updates // train.validate_every


RESUME_OVERRIDES = ("supernet.early_stop_tau=1.01", "supernet.sandwich=true")
SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from mixnas.pipeline import load_pipeline_config, train_supernet
train_supernet(load_pipeline_config("micro", sys.argv[1:]))
"""


def run_training(run_dir: Path, kill_after_checkpoint: str | None = None) -> None:
    args = [sys.executable, "-c", SCRIPT, f"run_dir={run_dir}", *RESUME_OVERRIDES]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE)
    if kill_after_checkpoint is not None:
        target = run_dir / "supernet" / kill_after_checkpoint
        deadline = time.monotonic() + 60
        while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (run_dir / "supernet" / "supernet.pt").exists(), "training finished before the kill"
        return
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]


def test_sigkill_and_resume_is_bit_identical(tmp_path):
    train_supernet(micro(tmp_path / "ref", *RESUME_OVERRIDES))  # uninterrupted, in this process
    run_training(tmp_path / "killed", kill_after_checkpoint="checkpoint_00000012.pt")
    run_training(tmp_path / "killed")
    ref = torch.load(tmp_path / "ref/supernet/supernet.pt", weights_only=True)
    resumed = torch.load(tmp_path / "killed/supernet/supernet.pt", weights_only=True)
    assert ref.keys() == resumed.keys()
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)
    last = "supernet/checkpoint_00000048.pt"
    ref_task, resumed_task = (load_checkpoint(tmp_path / d / last)["task"] for d in ("ref", "killed"))
    assert ref_task["rank_taus"] == resumed_task["rank_taus"] and len(ref_task["rank_taus"]) == 6
    assert ref_task["rank_scores"] == resumed_task["rank_scores"]
