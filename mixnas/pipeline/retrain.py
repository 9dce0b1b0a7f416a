"""Retraining (pipeline step 6): every searched architecture and every baseline, from scratch.

Each is an ordinary `mixnas train` experiment (`train_experiment`) in
run_dir/retrain/<name>/ with `retrain.train` settings and the run's seed: the same initial
weights' seed, data order and budget for all, so differences come from the architectures.
`arch.yaml` in that directory makes the run reproducible with `mixnas train`. A finished
retraining (results.json present) is reused; an interrupted one resumes from its last
checkpoint (the trainer's resume="auto"). The exported model's latency is then measured with
the collect step's protocol and cached in latency.json.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..cost import measure_latency
from ..experiment import EvalSection, Experiment, resolve_arch
from ..experiment import ModelSection as ExperimentModel
from ..fileio import read_json, write_json
from ..models import load_model
from ..rundir import FINGERPRINT_FILE, ConfigChanged, mismatch
from .config import PipelineConfig

RESULTS_FILE, LATENCY_FILE, ARCH_FILE = "results.json", "latency.json", "arch.yaml"


def retrain_dir(cfg: PipelineConfig, name: str) -> Path:
    return Path(cfg.run_dir) / "retrain" / name


def retrain_done(cfg: PipelineConfig, name: str) -> bool:
    return (retrain_dir(cfg, name) / RESULTS_FILE).is_file()


def baseline_archs(cfg: PipelineConfig) -> list[tuple[str, Any]]:
    """(name, arch) of the configured baselines; the name is the preset's or file's stem."""
    out = []
    for item in cfg.baselines:
        arch = resolve_arch(item)
        if arch.task != cfg.task:
            raise ValueError(f"baseline {item!r} is a {arch.task} architecture but the task is {cfg.task}")
        out.append((f"baseline-{Path(item).stem}", arch))
    return out


def experiment_for(cfg: PipelineConfig, name: str) -> Experiment:
    train = dataclasses.replace(cfg.retrain.train, save_dir=str(retrain_dir(cfg, name)), seed=cfg.seed)
    return Experiment(task=cfg.task, model=ExperimentModel(arch=str(retrain_dir(cfg, name) / ARCH_FILE),
                                                           config=dict(cfg.model.config)),
                      data=dict(cfg.data), train=train, eval=EvalSection(split=cfg.retrain.split, average_last=cfg.retrain.average_last))


def check_retrain(cfg: PipelineConfig, name: str, arch, restart: bool) -> None:
    """Refuse now (before other work) a retraining directory made for another architecture
    or retraining config, unless `restart`; see mixnas.rundir."""
    from ..commands.train import experiment_fingerprint, train_outputs
    directory = retrain_dir(cfg, name)
    if restart:
        return
    reason = mismatch(f"retrain/{name}", directory / FINGERPRINT_FILE,
                      experiment_fingerprint(experiment_for(cfg, name), arch), train_outputs(directory),
                      "--restart retrain")
    if reason is not None:
        raise ConfigChanged(reason)


def retrain(cfg: PipelineConfig, name: str, arch, task, log=lambda line: None, restart: bool = False) -> dict[str, Any]:
    """results.json of `name` (train/eval summaries) plus its measured latency; trains when missing
    (a finished retraining with the same fingerprint is returned as it is)."""
    from ..commands.train import train_experiment

    directory = retrain_dir(cfg, name)
    if not retrain_done(cfg, name):
        log(f"retrain {name}: {cfg.retrain.train.max_updates} updates from scratch")
    train_experiment(experiment_for(cfg, name), task=task, arch=arch, restart=restart)
    results = read_json(directory / RESULTS_FILE, "retraining results")
    results["latency"] = measured_latency(cfg, directory)
    return results


def measured_latency(cfg: PipelineConfig, directory: Path) -> dict[str, float]:
    """Latency of the exported model (batch 1, collect.latency_* protocol), cached."""
    cached = directory / LATENCY_FILE
    if cached.is_file():
        return read_json(cached, "measured latency")
    c = cfg.collect
    result = measure_latency(load_model(directory / "model"), device=c.latency_device, threads=c.latency_threads,
                             warmup=c.latency_warmup, runs=c.latency_runs)
    latency = {"ms_mean": result.ms_mean, "ms_std": result.ms_std, "runs": len(result.runs)}
    write_json(cached, latency)
    return latency
