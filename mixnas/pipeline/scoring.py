"""What every pipeline step shares: the task, the space and supernet of a config, seeded
architecture sampling, and scoring a model on a fixed validation subset."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..fileio import safe_torch_load
from ..families import family_for_task, family_of
from ..space import SearchSpace
from .config import PipelineConfig

SUPERNET_FILE, SPACE_FILE = "supernet.pt", "space.yaml"
_STEP_STRIDE = 1_000_003  # a prime: (seed, step) pairs map to distinct streams for any step < stride


def sample_arch(space: SearchSpace, seed: int, step: int):
    """The sub-network trained at update `step`: a pure function of (seed, step), so a resumed
    run (or another rank) draws exactly the same architecture."""
    return space.sample(random.Random(seed * _STEP_STRIDE + step))


def fixed_archs(space: SearchSpace, seed: int, count: int, purpose: str) -> list:
    """`count` architectures from a stream named by `purpose`, independent of the training stream."""
    rng = random.Random(f"mixnas-{purpose}-{seed}")
    return [space.sample(rng) for _ in range(count)]


def build_task(cfg: PipelineConfig):
    return family_for_task(cfg.task).build_task(cfg.data_config())


def load_space(cfg: PipelineConfig, supernet_dir: Path | None = None) -> SearchSpace:
    """The space stored beside trained supernet weights if there is one, else the config's."""
    stored = supernet_dir / SPACE_FILE if supernet_dir is not None else None
    space = SearchSpace.load(stored if stored is not None and stored.is_file() else cfg.supernet.space)
    expected = family_for_task(cfg.task).name
    if family_of(space).name != expected:
        raise ValueError(f"supernet.space {cfg.supernet.space!r} is a {family_of(space).name} space but the task is "
                         f"{cfg.task}; choose a {expected} space")
    return space


def build_supernet(cfg: PipelineConfig, task, space: SearchSpace) -> nn.Module:
    torch.manual_seed(cfg.seed)  # the initial weights are part of the run's seed
    return family_of(space).build_supernet(space, task.model_config(cfg.model.config),
                                           share_projections=cfg.supernet.share_projections)


def load_supernet(cfg: PipelineConfig, supernet_path: str | Path):
    """(task, space, supernet with trained weights) from a `train-supernet` output: the run's
    supernet directory or its supernet.pt."""
    path = Path(supernet_path)
    weights = path / SUPERNET_FILE if path.is_dir() else path
    if not weights.is_file():
        raise ValueError(f"no supernet weights at {weights}; run `mixnas train-supernet` first or pass its "
                         f"{SUPERNET_FILE}")
    # Read the file first: a truncated supernet.pt is unreadable, not a mismatch with the config.
    state = safe_torch_load(weights, "supernet weights", "rerun `mixnas train-supernet` or restore the file")
    if not isinstance(state, dict):
        raise ValueError(f"{weights} holds a {type(state).__name__}, not supernet weights; "
                         f"rerun `mixnas train-supernet` or restore the file")
    task = build_task(cfg)
    space = load_space(cfg, weights.parent)
    supernet = build_supernet(cfg, task, space)
    try:
        supernet.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{weights} does not fit the supernet of this config (space, model.config, "
                         f"share_projections): {str(e).splitlines()[0]}") from None
    return task, space, supernet


def score(task, model: nn.Module, limit: int | None) -> dict[str, Any]:
    """The task's validation metrics on the head of the val split that `limit` names (examples
    for classification, batches for translation), plus "score": the metric a search optimises."""
    metrics = task.score_metrics(model, limit)
    key, _ = task.score_key()
    return {"score": float(metrics[key]), **{k: float(v) for k, v in metrics.items()}}


def higher_is_better(task) -> bool:
    return task.score_key()[1]


def kendall_tau(a, b) -> float | None:
    """Kendall tau-b between two score lists; None when undefined (a constant list)."""
    from scipy.stats import kendalltau
    tau = kendalltau(a, b).statistic
    return None if tau != tau else float(tau)
