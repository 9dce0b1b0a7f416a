"""Retraining (pipeline step 6): every searched architecture and every baseline, from scratch.

Each row is trained once per seed (`retrain.seeds`: the run's seed, seed+1, ...), each an
ordinary `mixnas train` experiment (`train_experiment`) in run_dir/retrain/<name>/seed-<s>/
with `retrain.train` settings: the same seeds, data order and budget for every row, so
differences beyond the seed spread come from the architectures. `arch.yaml` in each directory
makes the run reproducible with `mixnas train`. A finished retraining with the same
fingerprint is reused; an interrupted one resumes from its last checkpoint. The first seed's
exported model's latency is measured with the collect step's protocol and cached in its
latency.json.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..cost import measure_latency, protocol_differences
from ..experiment import EvalSection, Experiment, resolve_arch
from ..families import family_for_task, family_of
from ..experiment import ModelSection as ExperimentModel
from ..fileio import read_json, write_json
from ..models import load_model
from ..rundir import FINGERPRINT_FILE, ConfigChanged, mismatch
from .config import PipelineConfig
from ..progress import Progress
from .workers import run_in_processes

RESULTS_FILE, LATENCY_FILE, ARCH_FILE = "results.json", "latency.json", "arch.yaml"


def retrain_dir(cfg: PipelineConfig, name: str, seed: int | None = None) -> Path:
    """run_dir/retrain/<name>, or the training run of one seed in it (seed-<s>)."""
    directory = Path(cfg.run_dir) / "retrain" / name
    return directory if seed is None else directory / f"seed-{seed}"


def retrain_seeds(cfg: PipelineConfig) -> list[int]:
    """The run's seed and the next `retrain.seeds - 1`: every row is trained with each."""
    return [cfg.seed + i for i in range(cfg.retrain.seeds)]


def retrain_done(cfg: PipelineConfig, name: str) -> bool:
    return all((retrain_dir(cfg, name, seed) / RESULTS_FILE).is_file() for seed in retrain_seeds(cfg))


def baseline_archs(cfg: PipelineConfig) -> list[tuple[str, Any]]:
    """(name, arch) of the configured baselines; the name is the preset's or file's stem."""
    out = []
    for item in cfg.baselines:
        arch = resolve_arch(item)
        if family_of(arch).name != family_for_task(cfg.task).name:  # the task's models (a variant's base's)
            raise ValueError(f"baseline {item!r} is a {family_of(arch).task} architecture but the task is {cfg.task}")
        out.append((f"baseline-{Path(item).stem}", arch))
    return out


def experiment_for(cfg: PipelineConfig, name: str, seed: int) -> Experiment:
    directory = retrain_dir(cfg, name, seed)
    train = dataclasses.replace(cfg.retrain.train, save_dir=str(directory), seed=seed)
    return Experiment(task=cfg.task, model=ExperimentModel(arch=str(directory / ARCH_FILE), config=dict(cfg.model.config)),
                      data=dict(cfg.data), train=train,
                      eval=EvalSection(split=cfg.retrain.split, average_last=cfg.retrain.average_last))


def check_retrain(cfg: PipelineConfig, name: str, arch, restart: bool) -> None:
    """Refuse now (before other work) a retraining directory made for another architecture
    or retraining config, unless `restart`; see mixnas.rundir."""
    from ..commands.train import default_fingerprint, experiment_fingerprint, train_outputs
    if restart:
        return
    for seed in retrain_seeds(cfg):
        directory = retrain_dir(cfg, name, seed)
        reason = mismatch(f"retrain/{name}/seed-{seed}", directory / FINGERPRINT_FILE,
                          experiment_fingerprint(experiment_for(cfg, name, seed), arch), train_outputs(directory),
                          "--restart retrain", default_fingerprint(experiment_for(cfg, name, seed), arch))
        if reason is not None:
            raise ConfigChanged(reason)


def retrain(cfg: PipelineConfig, name: str, arch, task, log=lambda line: None, restart: bool = False) -> dict[str, Any]:
    """{"seeds": {seed: results.json}, "latency": measured latency} of `name`; trains each seed
    that is missing (a finished retraining with the same fingerprint is returned as it is).
    Latency is measured once, on the first seed's model: the architecture decides it."""
    from ..commands.train import train_experiment

    per_seed = {}
    for seed in retrain_seeds(cfg):
        directory = retrain_dir(cfg, name, seed)
        if not (directory / RESULTS_FILE).is_file():
            log(f"retrain {name} (seed {seed}): {_plan(cfg, directory)}")
        train_experiment(experiment_for(cfg, name, seed), task=task, arch=arch, restart=restart,
                         label=f"retrain {name} seed {seed}")
        per_seed[seed] = read_json(directory / RESULTS_FILE, "retraining results")
    first = retrain_dir(cfg, name, retrain_seeds(cfg)[0])
    return {"seeds": per_seed, "latency": measured_latency(cfg, first)}


def train_in_parallel(cfg: PipelineConfig, targets: list[tuple[str, Any]], restart: bool,
                      log=lambda line: None) -> None:
    """Train every missing (row, seed) with `retrain.workers` processes at once (see workers.py);
    `retrain` then only reads the results and measures latency in this process, after all
    training is over, so no timing is taken beside a training."""
    jobs = [(cfg.to_dict(), name, arch.to_dict(), seed, restart) for name, arch in targets
            for seed in retrain_seeds(cfg) if not (retrain_dir(cfg, name, seed) / RESULTS_FILE).is_file()]
    if cfg.retrain.workers < 2 or len(jobs) < 2:
        return  # `retrain` trains them in this process
    for _, name, _, seed, _ in jobs:
        log(f"retrain {name} (seed {seed}): {_plan(cfg, retrain_dir(cfg, name, seed))} "
            f"({cfg.retrain.workers} at a time)")
    progress = Progress("retrain: trainings finished", len(jobs))
    progress(0)
    run_in_processes(_train_job, jobs, cfg.retrain.workers, on_done=lambda n: log(progress(n)))


def _plan(cfg: PipelineConfig, directory: Path) -> str:
    from ..train import list_checkpoints
    done = list_checkpoints(directory)
    start = f"resuming from {done[-1].name}" if done else "from scratch"
    return f"{cfg.retrain.train.max_updates} updates, {start}"


def _train_job(cfg_dict: dict[str, Any], name: str, arch_dict: dict[str, Any], seed: int, restart: bool) -> None:
    from ..commands.train import train_experiment
    from ..dataconf import from_dict
    from ..space.arch import arch_from_dict
    from .config import PipelineConfig
    from .run import apply_threads

    cfg = from_dict(PipelineConfig, cfg_dict)
    apply_threads(cfg)
    train_experiment(experiment_for(cfg, name, seed), arch=arch_from_dict(arch_dict), restart=restart,
                     label=f"retrain {name} seed {seed}")


def measured_latency(cfg: PipelineConfig, directory: Path) -> dict[str, Any]:
    """Latency of the exported model (batch 1, collect.latency_* protocol, at the pipeline's
    `cost` options), and at each of retrain.lengths, cached in latency.json with its protocol;
    a cache measured with another protocol, cost options or lengths is measured again.

    {"ms": the protocol's statistic (collect.latency_stat on collect.latency_clock), "ms_mean" /
    "ms_std": HAT's trimmed mean and std on the same clock, "runs": count, "protocol": how,
    "cost": the cost options, "by_length": {str(length): ms}}."""
    cached = directory / LATENCY_FILE
    options, cost = cfg.collect.latency_options(), cfg.cost_options()
    lengths = [str(n) for n in cfg.retrain.lengths]
    if cached.is_file():
        latency = read_json(cached, "measured latency")
        if (isinstance(latency, dict) and not protocol_differences(latency.get("protocol"), **options)
                and latency.get("cost", cost) == cost and list(latency.get("by_length", {})) == lengths):
            return latency
    model = load_model(directory / "model")
    result = measure_latency(model, **options, **cost)
    by_length = {str(n): measure_latency(model, **options, **cfg.cost_options(n)).ms for n in cfg.retrain.lengths}
    latency = {"ms": result.ms, "ms_mean": result.ms_mean, "ms_std": result.ms_std, "runs": len(result.runs),
               "protocol": result.protocol, "cost": cost, "by_length": by_length}
    write_json(cached, latency)
    return latency
