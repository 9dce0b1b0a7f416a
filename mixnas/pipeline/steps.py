"""What determines each pipeline step's result, and the guard every step passes before it runs.

A step's fingerprint holds the config values it depends on plus the digest of the step before
it, so a change upstream (say `supernet.train.lr`) shows in every later step too. The
fingerprints are functions of the config alone, so `mixnas run` checks them all before it
writes anything (`preflight`). Retraining is guarded per architecture by `mixnas train`'s own
fingerprint (mixnas.commands.train), which includes the architecture itself.

    run_dir/fingerprints/{train-supernet,collect,fit-predictor,search}.json
    run_dir/retrain/<name>/fingerprint.json

`--restart STEP` lets STEP and every later step whose fingerprint changed start over (their
outputs are removed first); steps before it must match.
"""
from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

from ..dataconf import ConfigError
from ..rundir import (TRAIN_NON_RESULT, ConfigChanged, check_step, code_version, data_digests, digest, flatten,
                      hold_lock, mismatch, without)
from .config import PipelineConfig

STEPS = ("train-supernet", "collect", "fit-predictor", "search", "retrain", "rank-check")


def step_values(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """{step: flattened values} of every step but retraining (fingerprinted per row)."""
    d = cfg.to_dict()
    supernet = flatten({"task": d["task"], "data": d["data"], "model": d["model"], "seed": d["seed"],
                        "supernet": d["supernet"], "data_files": data_digests(cfg.data.get("dir")),
                        "code": code_version()})
    supernet = without(supernet, "save_dir", *TRAIN_NON_RESULT)
    # num_archs may grow or shrink: the CSV keeps the rows of the seed's stream (collect checks them).
    # FLOPs and latency are collected at the cost options (e.g. a sequence length).
    cost = flatten({"cost": d["cost"]})
    collect = {"after": digest(supernet), **without(flatten({"collect": d["collect"]}), "num_archs", "chunk"), **cost}
    fit = {"after": digest(collect), **flatten({"collect.num_archs": cfg.collect.num_archs,
                                                 "predictor": d["predictor"]})}
    search = {"after": digest(fit), **flatten({"search": d["search"], "retrain.top_k": cfg.retrain.top_k})}
    # The rank check retrains its sample with the supernet's optimiser settings and scores it
    # like collect does; it depends on the supernet, not on the search.
    rank_check = {"after": digest(supernet), **without(flatten({"rank_check": d["rank_check"]}), "enabled"),
                  "collect.score_limit": cfg.collect.score_limit,  # the sample lies within the search limits
                  **flatten({"search.constraints": d["search"]["constraints"]}), **cost}
    return {"train-supernet": supernet, "collect": collect, "fit-predictor": fit, "search": search,
            "rank-check": rank_check}


def fingerprint_path(cfg: PipelineConfig, step: str) -> Path:
    return Path(cfg.run_dir) / "fingerprints" / f"{step}.json"


def step_outputs(cfg: PipelineConfig, step: str) -> list[Path]:
    run_dir = Path(cfg.run_dir)
    return {"train-supernet": [cfg.supernet_dir], "collect": [run_dir / "collect.csv"],
            "fit-predictor": [run_dir / "predictors"], "search": [run_dir / "search"],
            "rank-check": [run_dir / "rank_check"]}[step]


def restart_allowed(restart: str | None, step: str) -> bool:
    """Whether `--restart RESTART` lets `step` start over: RESTART is that step or an earlier one."""
    return restart is not None and STEPS.index(step) >= STEPS.index(restart)


def default_values(cfg: PipelineConfig) -> dict[str, dict[str, Any]]:
    """step_values of a config with every setting at its default (see rundir.same_values)."""
    return step_values(PipelineConfig(task=cfg.task, data=dict(cfg.data)))


def guard(cfg: PipelineConfig, step: str, restart: str | None = None) -> str:
    """Check (and on a permitted restart, clear) one step; see rundir.check_step."""
    return check_step(step, fingerprint_path(cfg, step), step_values(cfg)[step], step_outputs(cfg, step),
                      restart_allowed(restart, step), f"--restart {step}", default_values(cfg)[step])


def preflight(cfg: PipelineConfig, restart: str | None = None) -> None:
    """Every step's fingerprint checked before anything is written (a refused run leaves the
    directory as it was); an unknown --restart name is refused."""
    if restart is not None and restart not in STEPS:
        raise ConfigError(f"--restart {restart!r} is not a step; steps: {', '.join(STEPS)}")
    defaults = default_values(cfg)
    for step, values in step_values(cfg).items():
        if restart_allowed(restart, step) or (step == "rank-check" and not cfg.rank_check.enabled):
            continue
        reason = mismatch(step, fingerprint_path(cfg, step), values, step_outputs(cfg, step), f"--restart {step}",
                          defaults[step])
        if reason is not None:
            raise ConfigChanged(reason)


def check_feasible(cfg: PipelineConfig, space, model_config) -> None:
    """FLOPs and params limits below every architecture of the space are refused now, before
    any training. FLOPs and params add up over layers of equal width, so the smallest widths
    and depth with one attention kind everywhere, minimised over kinds, is the space's minimum."""
    from ..cost import count_flops, count_params
    from .search_step import restricted_space
    limits = cfg.search.constraints
    smallest = [restricted_space(space, kind).smallest() for kind in space.attention_kinds]
    for name, limit, count in (("flops", limits.flops, count_flops), ("params", limits.params, count_params)):
        if limit is None:
            continue
        least = min(count(arch, model_config, include_embeddings=False) for arch in smallest)
        if least > limit:
            raise ConfigError(f"search.constraints.{name}={limit:g} is below the smallest architecture of space "
                              f"{space.name} ({least:,} {name} without embeddings); raise it to at least {least:,}")


def is_main_rank() -> bool:
    """Rank 0 under torchrun (or a plain process): the one that locks and checks run_dir."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def locked_run_dir(cfg: PipelineConfig) -> Iterator[Path]:
    """Hold run_dir's lock (rank 0 only: torchrun's ranks are one run)."""
    with (hold_lock(cfg.run_dir, "run_dir") if is_main_rank() else nullcontext()):
        yield Path(cfg.run_dir)


def guard_step(cfg: PipelineConfig, step: str, restart: str | None = None) -> None:
    """A standalone step command's check (rank 0), then all ranks meet before any reads run_dir."""
    if is_main_rank():
        guard(cfg, step, restart)
    if "RANK" in os.environ:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.barrier()


def add_restart_flag(parser, step: str) -> None:
    """`--restart` of a single-step command: start `step` over if its config changed."""
    parser.add_argument("--restart", action="store_const", const=step, default=None,
                        help="start this step over when run_dir holds its result made with another config")
