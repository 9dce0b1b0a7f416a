"""Rank check: does the supernet rank architectures like training them from scratch does?

K architectures are chosen to spread over the space (`stratified_archs`), scored with
inherited supernet weights, then each is built as a standalone model, trained from scratch
for `retrain_updates` with the supernet's optimiser settings, and scored again on the same
validation subset (collect.score_limit). The Kendall tau and Spearman rho between the two
score lists, with 95% paired-bootstrap intervals (`rank_statistics`), measure the assumption
every weight-sharing NAS rests on.

Sampling. K independent random draws cluster in the middle of the FLOPs distribution and
mostly mix attention kinds, so the check would say little about the ends of the space. A
seeded pool of POOL_PER_ARCH x K distinct architectures satisfying the search's analytic
constraints (FLOPs, params; the region the search chooses from) is drawn from a seed-named
stream, each described by its FLOPs quantile in the pool and the fraction of its attention
modules of each kind. The selection starts from the purest architecture among the pool's
cheapest 5% and the purest among its most expensive 5% (of another dominant kind where one
exists), adds for every attention kind of the space not yet dominant (> half of the modules)
in the selection its purest architecture farthest from those chosen, and fills the rest by
greedy max-min distance on the (FLOPs quantile, kind fractions) vector. The rows are ordered
by FLOPs.

Each retraining is a trainer run in `run_dir/rank_check/u{U}/arch_<digest>`, the digest of
the architecture, seed, data and training settings, so an interrupted check resumes and
archs shared by two checks (another K) are trained once. A finished `rank_check.json` made
from the same supernet weights, architectures and settings is returned as it is.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..cost import count_flops, count_params
from ..dataconf import to_dict
from ..fileio import file_sha256, read_json, write_json
from ..models import build_model
from ..rundir import TRAIN_NON_RESULT, data_digests, digest, flatten, without
from ..train import Trainer
from .config import PipelineConfig
from ..progress import Progress
from .workers import run_in_processes
from .scoring import SUPERNET_FILE, kendall_tau, load_supernet, score

POOL_PER_ARCH = 50        # pool size per selected architecture
EDGE_FRACTION = 0.05      # the anchors come from the pool's cheapest / most expensive 5%
BOOTSTRAP_RESAMPLES = 2000
RESULT_FILE = "rank_check.json"


# ---------------------------------------------------------------- stratified sampling
def arch_profile(arch, model_config, kinds: tuple[str, ...], cost: dict[str, int] | None = None) -> dict[str, Any]:
    """FLOPs without embeddings (at the family's `cost` options), the fraction of its attention
    modules of each kind, and the per-layer attention code ('S C R')."""
    from .search_step import attention_code, layer_kinds
    layers = layer_kinds(arch)
    return {"flops": count_flops(arch, model_config, include_embeddings=False, **(cost or {})),
            "fractions": {kind: sum(k == kind for k in layers) / len(layers) for kind in kinds},
            "attention": attention_code(arch)}


def draw_pool(space, model_config, seed: int, size: int, limits: dict[str, float] | None = None,
              cost: dict[str, int] | None = None) -> tuple[list, list[dict[str, Any]], int]:
    """Up to `size` distinct architectures within `limits` ({"flops": ..., "params": ...},
    analytic, without embeddings) from the stream named by `seed`: (archs, profiles, draws)."""
    limits = limits or {}
    rng = random.Random(f"mixnas-rank-check-{seed}")
    archs, profiles, seen, draws = [], [], set(), 0
    while len(archs) < size and draws < 100 * size:
        arch = space.sample(rng)
        draws += 1
        if arch in seen:
            continue
        seen.add(arch)
        profile = arch_profile(arch, model_config, space.attention_kinds, cost)
        if "flops" in limits and profile["flops"] > limits["flops"]:
            continue
        if "params" in limits and count_params(arch, model_config, include_embeddings=False) > limits["params"]:
            continue
        archs.append(arch)
        profiles.append(profile)
    return archs, profiles, draws


def select_spread(flops, fractions, k: int) -> list[int]:
    """Indices of `k` pool members spread over FLOPs and attention kinds (see the module
    docstring); `flops` (n,), `fractions` (n, kinds). Deterministic: ties go to the lower
    index, after FLOPs where stated."""
    flops, fractions = np.asarray(flops, dtype=np.float64), np.asarray(fractions, dtype=np.float64)
    n = len(flops)
    if k > n:
        raise ValueError(f"cannot choose {k} architectures from a pool of {n}")
    order = np.lexsort((np.arange(n), flops))                  # ascending FLOPs, stable
    quantile = np.empty(n)
    quantile[order] = np.arange(n) / max(n - 1, 1)
    points = np.column_stack([quantile, fractions])
    purity, dominant = fractions.max(1), fractions.argmax(1)
    edge = max(1, math.ceil(EDGE_FRACTION * n))
    low = min(order[:edge], key=lambda i: (-purity[i], flops[i], i))
    chosen = [int(low)]
    if k >= 2:
        high = min(order[::-1][:edge], key=lambda i: (dominant[i] == dominant[low], -purity[i], -flops[i], i))
        chosen.append(int(high))

    def distance(candidates: np.ndarray) -> np.ndarray:
        diff = points[candidates, None, :] - points[None, chosen, :]
        return np.sqrt((diff ** 2).sum(-1)).min(1)

    for kind in range(fractions.shape[1]):
        if len(chosen) >= k:
            break
        if any(fractions[i, kind] > 0.5 for i in chosen):
            continue
        candidates = np.array([i for i in range(n) if fractions[i, kind] > 0.5 and i not in chosen], dtype=int)
        if len(candidates):
            best = max(zip(fractions[candidates, kind], distance(candidates), -candidates))
            chosen.append(int(-best[2]))
    while len(chosen) < k:
        candidates = np.array([i for i in range(n) if i not in chosen], dtype=int)
        chosen.append(int(candidates[int(np.argmax(distance(candidates)))]))
    return sorted(chosen, key=lambda i: (flops[i], i))


def stratified_archs(space, model_config, seed: int, k: int, limits: dict[str, float] | None = None,
                     pool_size: int | None = None, cost: dict[str, int] | None = None
                     ) -> tuple[list, list[dict[str, Any]], dict[str, Any]]:
    """(archs, profiles, pool summary): `k` architectures of a seeded pool of `pool_size`
    (default POOL_PER_ARCH x k), spread over FLOPs and attention kinds, ordered by FLOPs."""
    pool, profiles, draws = draw_pool(space, model_config, seed, pool_size or POOL_PER_ARCH * k, limits, cost)
    if len(pool) < k:
        where = f" within {limits}" if limits else ""
        raise ValueError(f"only {len(pool)} distinct architectures of space {space.name}{where} were found in "
                         f"{draws} draws; lower rank_check.k (--k) to at most {len(pool)} or relax the constraints")
    kinds = space.attention_kinds
    flops = [p["flops"] for p in profiles]
    picked = select_spread(flops, [[p["fractions"][kind] for kind in kinds] for p in profiles], k)
    summary = {"size": len(pool), "draws": draws, "limits": dict(limits or {}),
               "flops_min": min(flops), "flops_max": max(flops)}
    return [pool[i] for i in picked], [profiles[i] for i in picked], summary


# ---------------------------------------------------------------- statistics
def _tau_b_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b of every row pair of (R, n) arrays (scipy's definition; NaN when a row is constant)."""
    sa = np.sign(a[:, :, None] - a[:, None, :])
    sb = np.sign(b[:, :, None] - b[:, None, :])
    num = (sa * sb).sum((1, 2))
    den = np.sqrt(np.count_nonzero(sa, (1, 2)).astype(np.float64) * np.count_nonzero(sb, (1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho (Pearson of average ranks) of every row pair; NaN when a row is constant."""
    from scipy.stats import rankdata
    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def spearman(a, b) -> float | None:
    """Spearman rho between two score lists; None when undefined (a constant list)."""
    rho = _spearman_rows(np.asarray([a], dtype=np.float64), np.asarray([b], dtype=np.float64))[0]
    return None if rho != rho else float(rho)


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the defined bootstrap values; None when fewer than half are
    defined (constant resamples: the statistic has no distribution worth quoting)."""
    finite = values[np.isfinite(values)]
    if len(finite) < max(1, len(values) // 2):
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def rank_statistics(a, b, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95,
                    indices: np.ndarray | None = None) -> dict[str, Any]:
    """{"tau", "spearman", "tau_ci95", "spearman_ci95"} between paired score lists `a`, `b`.

    The intervals are percentile intervals of a paired bootstrap: `resamples` draws of n
    architectures with replacement (numpy Generator seeded by `seed`, or the given (R, n)
    `indices`, so several statistics share resamples), each statistic recomputed on the
    resampled pairs. Resamples on which a statistic is undefined (a constant list, e.g. one
    architecture drawn n times) are left out; an interval is None when fewer than half are
    defined or the point estimate is undefined."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = len(a)
    if len(b) != n or n < 2:
        raise ValueError(f"need two score lists of the same length >= 2, got {len(a)} and {len(b)}")
    tau, rho = kendall_tau(a, b), spearman(a, b)
    if indices is None:
        indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    taus, rhos = [], []
    for chunk in np.array_split(indices, max(1, len(indices) * n * n // 2_000_000)):
        taus.append(_tau_b_rows(a[chunk], b[chunk]))
        rhos.append(_spearman_rows(a[chunk], b[chunk]))
    taus, rhos = np.concatenate(taus), np.concatenate(rhos)
    return {"tau": tau, "spearman": rho,
            "tau_ci95": None if tau is None else _interval(taus, level),
            "spearman_ci95": None if rho is None else _interval(rhos, level)}


# ---------------------------------------------------------------- the check
def run_rank_check(cfg: PipelineConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The rank check of a pipeline run: cfg.rank_check.k architectures, cfg.rank_check.updates
    updates each, the supernet in run_dir/supernet. Resumes unfinished retrainings and returns
    a finished result for the same supernet, architectures and settings as it is. Runs whether
    or not cfg.rank_check.enabled is set (the caller decides)."""
    return rank_check(cfg, cfg.supernet_dir, cfg.rank_check.k, cfg.rank_check.updates, log=log)


def rank_check(cfg: PipelineConfig, supernet_path: str | Path, k: int, retrain_updates: int,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """{"n", "tau", "spearman", "ci95" (of tau), "spearman_ci95", "tau_loss", "spearman_loss",
    "tau_loss_ci95", "spearman_loss_ci95", "metric", "higher_is_better", "retrain_updates",
    "rows": [{"index", "arch", "flops", "fractions", "attention", "inherited", "retrained",
    "inherited_loss", "retrained_loss", "dir"}], "pool", "bootstrap", "supernet_sha256",
    "score_limit", "seed"}, also written to run_dir/rank_check/u{U}/rank_check.json.

    "tau"/"spearman" compare the search metric (accuracy ties are common after short budgets;
    None when a list is constant), the *_loss ones the validation loss, which rarely ties."""
    if k < 2:
        raise ValueError(f"--k must be >= 2 to rank architectures, got {k}")
    if retrain_updates < 1:
        raise ValueError(f"--updates must be >= 1, got {retrain_updates}")
    path = Path(supernet_path)
    weights = path / SUPERNET_FILE if path.is_dir() else path
    task, space, supernet = load_supernet(cfg, supernet_path)
    model_config = task.model_config(cfg.model.config)
    constraints = cfg.search.constraints
    limits = {name: value for name, value in (("flops", constraints.flops), ("params", constraints.params))
              if value is not None}
    archs, profiles, pool = stratified_archs(space, model_config, cfg.seed, k, limits, cost=cfg.cost_options())
    out_dir = Path(cfg.run_dir) / "rank_check" / f"u{retrain_updates}"
    limit = cfg.collect.score_limit
    train_settings = without(flatten(to_dict(_retrain_config(cfg, out_dir, retrain_updates))),
                             "save_dir", *TRAIN_NON_RESULT)
    common = {"seed": cfg.seed, "data": cfg.data, "data_files": data_digests(cfg.data.get("dir")),
              "model": cfg.model.config, "train": train_settings}
    dirs = [f"arch_{digest({**common, 'arch': arch.to_dict()})}" for arch in archs]
    key = {"n": k, "retrain_updates": retrain_updates, "score_limit": limit, "seed": cfg.seed,
           "supernet_sha256": file_sha256(weights),
           "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "level": 0.95, "method": "percentile, paired"}}
    finished = _finished(out_dir / RESULT_FILE, key, dirs)
    if finished is not None:
        return finished

    # Trainings not finished yet run `retrain.workers` at a time first; the loop below then
    # resumes each finished run (no update) and scores it.
    pending = [(cfg.to_dict(), arch.to_dict(), str(out_dir / name), retrain_updates, f"rank check {i + 1}/{k}")
               for i, (arch, name) in enumerate(zip(archs, dirs)) if not _trained(out_dir / name, retrain_updates)]
    if cfg.retrain.workers > 1 and len(pending) > 1:
        progress = Progress("rank check: architectures trained", len(pending))
        if log is not None:
            log(f"rank check: training {len(pending)} architectures, {cfg.retrain.workers} at a time")
            progress(0)
        run_in_processes(_train_arch, pending, cfg.retrain.workers,
                         on_done=None if log is None else (lambda n: log(progress(n))))
    scored = Progress("rank check: retrained and scored", k)
    scored(0)
    rows = []
    for index, (arch, profile, name) in enumerate(zip(archs, profiles, dirs)):
        supernet.set_arch(arch)
        inherited = score(task, supernet, limit)
        torch.manual_seed(cfg.seed)
        model = build_model(arch, model_config)
        with Trainer(task.training_task(model, cfg.seed, validate_split=None),
                     _retrain_config(cfg, out_dir / name, retrain_updates), label=f"rank check {index + 1}/{k}") as trainer:
            trainer.train()
        retrained = score(task, model, limit)
        rows.append({"index": index, "arch": arch.to_dict(), **profile,
                     "inherited": inherited["score"], "retrained": retrained["score"],
                     "inherited_loss": inherited["loss"], "retrained_loss": retrained["loss"], "dir": name})
        if log is not None:
            log(f"{scored(index + 1)} ({profile['attention']}, {profile['flops']:,} FLOPs)")
    metric, higher = task.score_key()
    column = lambda name: [r[name] for r in rows]  # noqa: E731
    indices = np.random.default_rng(cfg.seed).integers(0, k, size=(BOOTSTRAP_RESAMPLES, k))
    on_metric = rank_statistics(column("inherited"), column("retrained"), indices=indices)
    on_loss = rank_statistics(column("inherited_loss"), column("retrained_loss"), indices=indices)
    result = {**key, "tau": on_metric["tau"], "ci95": on_metric["tau_ci95"],
              "spearman": on_metric["spearman"], "spearman_ci95": on_metric["spearman_ci95"],
              "tau_loss": on_loss["tau"], "tau_loss_ci95": on_loss["tau_ci95"],
              "spearman_loss": on_loss["spearman"], "spearman_loss_ci95": on_loss["spearman_ci95"],
              "metric": metric, "higher_is_better": higher, "pool": pool, "rows": rows}
    result = json.loads(json.dumps(result))  # the value a later call reads back, exactly
    write_json(out_dir / RESULT_FILE, result, allow_nan=True)
    return result


def _trained(save_dir: Path, updates: int) -> bool:
    from ..train import latest_checkpoint
    last = latest_checkpoint(save_dir)
    return last is not None and int(last.stem.split("_")[1]) >= updates


def _train_arch(cfg_dict: dict[str, Any], arch_dict: dict[str, Any], save_dir: str, updates: int,
                label: str = "") -> None:
    """One rank-check training in a worker process, exactly as the loop in rank_check does it."""
    from ..dataconf import from_dict
    from ..space.arch import arch_from_dict
    from .run import apply_threads
    from .scoring import build_task

    cfg = from_dict(PipelineConfig, cfg_dict)
    apply_threads(cfg)
    task = build_task(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(arch_from_dict(arch_dict), task.model_config(cfg.model.config))
    with Trainer(task.training_task(model, cfg.seed, validate_split=None),
                 _retrain_config(cfg, Path(save_dir), updates), label=label) as trainer:
        trainer.train()


def _finished(path: Path, key: dict[str, Any], dirs: list[str]) -> dict[str, Any] | None:
    """The saved result when it was made from the same weights, architectures and settings."""
    if not path.is_file():
        return None
    try:
        saved = read_json(path, "rank check result")
    except ValueError:
        return None  # damaged: computed again (the retrainings are reused)
    if not isinstance(saved, dict) or any(saved.get(name) != value for name, value in json.loads(json.dumps(key)).items()):
        return None
    if [row.get("dir") for row in saved.get("rows", [])] != dirs:
        return None
    return saved


def _retrain_config(cfg: PipelineConfig, save_dir: Path, updates: int):
    """The supernet's optimiser settings, a budget of `updates`, no validation, one final checkpoint."""
    train = cfg.supernet.train
    return dataclasses.replace(train, save_dir=str(save_dir), max_updates=updates, max_epochs=0, max_time=0.0,
                               warmup_updates=min(train.warmup_updates, updates // 10), checkpoint_every=0,
                               keep_last=1, resume="auto", validate_every=0, validate_every_epoch=False,
                               progress=True, tensorboard=False)
