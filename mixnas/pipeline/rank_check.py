"""Rank check: does the supernet rank architectures like training them does?

K architectures (a seed-named stream, independent of training and collection) are scored
with inherited supernet weights, then each is built as a standalone model, trained from
scratch for a fixed budget of `retrain_updates` with the supernet's optimiser settings, and
scored again on the same validation subset (collect.score_limit). The Kendall tau between
the two score lists is the assumption every weight-sharing NAS rests on. Each retraining is
a trainer run in `run_dir/rank_check/u{U}/arch_{i}`, so an interrupted check resumes and a
finished one is reused.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..fileio import write_json
from ..models import build_model
from ..train import Trainer
from .config import PipelineConfig
from .scoring import fixed_archs, kendall_tau, load_supernet, score


def rank_check(cfg: PipelineConfig, supernet_path: str | Path, k: int, retrain_updates: int) -> dict[str, Any]:
    """{"tau", "tau_loss", "metric", "higher_is_better", "retrain_updates", "rows": [{"index",
    "arch", "inherited", "retrained", "inherited_loss", "retrained_loss"}]}, also written to
    run_dir/rank_check/u{U}/rank_check.json. "tau" compares the search metric (accuracy ties
    are common after short budgets; None when a list is constant), "tau_loss" the validation
    loss, which rarely ties."""
    if k < 2:
        raise ValueError(f"--k must be >= 2 to rank architectures, got {k}")
    if retrain_updates < 1:
        raise ValueError(f"--updates must be >= 1, got {retrain_updates}")
    task, space, supernet = load_supernet(cfg, supernet_path)
    model_config = task.model_config(cfg.model.config)
    limit = cfg.collect.score_limit
    out_dir = Path(cfg.run_dir) / "rank_check" / f"u{retrain_updates}"
    rows = []
    for index, arch in enumerate(fixed_archs(space, cfg.seed, k, "rank-check")):
        supernet.set_arch(arch)
        inherited = score(task, supernet, limit)
        torch.manual_seed(cfg.seed)
        model = build_model(arch, model_config)
        with Trainer(task.training_task(model, cfg.seed, validate_split=None),
                     _retrain_config(cfg, out_dir / f"arch_{index}", retrain_updates)) as trainer:
            trainer.train()
        retrained = score(task, model, limit)
        rows.append({"index": index, "arch": arch.to_dict(), "inherited": inherited["score"],
                     "retrained": retrained["score"], "inherited_loss": inherited["loss"],
                     "retrained_loss": retrained["loss"]})
    metric, higher = task.score_key()
    column = lambda key: [r[key] for r in rows]  # noqa: E731
    result = {"tau": kendall_tau(column("inherited"), column("retrained")),
              "tau_loss": kendall_tau(column("inherited_loss"), column("retrained_loss")),
              "metric": metric, "higher_is_better": higher, "retrain_updates": retrain_updates, "rows": rows}
    write_json(out_dir / "rank_check.json", result, allow_nan=True)
    return result


def _retrain_config(cfg: PipelineConfig, save_dir: Path, updates: int):
    """The supernet's optimiser settings, a budget of `updates`, no validation, one final checkpoint."""
    train = cfg.supernet.train
    return dataclasses.replace(train, save_dir=str(save_dir), max_updates=updates, max_epochs=0, max_time=0.0,
                               warmup_updates=min(train.warmup_updates, updates // 10), checkpoint_every=0,
                               keep_last=1, resume="auto", validate_every=0, validate_every_epoch=False,
                               progress=False, tensorboard=False)
