"""`mixnas run`: the whole pipeline into one run directory, plus `mixnas fit-predictor` and
`mixnas search`.

    mixnas run [--preset digits | --config PATH] [key=value ...]
    mixnas fit-predictor --config CFG [key=value ...]
    mixnas search --config CFG [--resume] [key=value ...]

Steps, in order: train-supernet -> collect -> fit-predictor -> search -> retrain (searched
mixed / all-softmax / all-cosFormer architectures and the baselines) -> report. A step whose
final artifact exists is reused (supernet.pt + summary.json; a collect.csv with num_archs
rows; the predictors' metrics.json for that many rows; search/result.json made with the same
search settings; each retrain/<name>/results.json); an unfinished one resumes by itself
(trainer checkpoints, the chunked CSV, per-generation search state), so a killed run is
continued by running the same command again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from ..cost.machine import machine_info
from ..fileio import disk_usage, read_json, write_json
from ..progress import Progress
from ..rundir import write_if_changed
from .config import PipelineConfig, load_pipeline_config
from .predict import collect_path, describe, fit_predictors, predictors_dir
from .retrain import retrain_done
from .steps import STEPS, add_restart_flag, check_feasible, guard, guard_step, locked_run_dir, preflight, restart_allowed

DEFAULT_PRESET = "digits"


def apply_threads(cfg: PipelineConfig) -> None:
    # Tiny models on a shared CPU: one thread measured ~30x faster than contended defaults.
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)


def _supernet_done(cfg: PipelineConfig) -> bool:
    return (cfg.supernet_dir / "supernet.pt").is_file() and (cfg.supernet_dir / "summary.json").is_file()


def _collect_done(cfg: PipelineConfig) -> bool:
    from .collect import read_rows
    path = collect_path(cfg)
    return path.is_file() and len(read_rows(path)) == cfg.collect.num_archs


def _predictors_done(cfg: PipelineConfig) -> bool:
    kinds = ("score", "latency") if cfg.collect.latency else ("score",)
    for kind in kinds:
        path = predictors_dir(cfg) / kind / "metrics.json"
        if not path.is_file():
            return False
        metrics = read_json(path, "predictor metrics")
        if metrics["n_train"] + metrics["n_test"] != cfg.collect.num_archs:
            return False  # fitted on a shorter collection: refit
    return True


def _rank_check_done(cfg: PipelineConfig) -> bool:
    return (Path(cfg.run_dir) / "rank_check" / f"u{cfg.rank_check.updates}" / "rank_check.json").is_file()


def run_pipeline(cfg: PipelineConfig, log: Callable[[str], None] = print, restart: str | None = None) -> dict[str, Any]:
    """Run every step of `cfg` into cfg.run_dir, reusing finished steps; returns results.json.

    run_dir is locked for the whole run, and every step's fingerprint is checked before
    anything is written (see steps.py): a changed config is refused unless `restart` names
    that step or an earlier one; a finished run rerun with the same config rewrites no file."""
    with locked_run_dir(cfg):
        return _run_locked(cfg, log, restart)


def _run_locked(cfg: PipelineConfig, log: Callable[[str], None], restart: str | None) -> dict[str, Any]:
    from .collect import collect
    from .rank_check import run_rank_check
    from .report import build_rows, write_report
    from .retrain import baseline_archs, check_retrain, retrain, train_in_parallel
    from .scoring import build_task, load_space
    from .patterns import pattern_archs
    from .search_step import Searcher, load_search_result, run_search, searched_archs
    from .supernet_training import train_supernet

    apply_threads(cfg)
    run_dir = Path(cfg.run_dir)
    preflight(cfg, restart)
    baselines = baseline_archs(cfg)  # resolve presets now, not after an hour of training
    retrain_restart = restart_allowed(restart, "retrain")
    for name, arch in baselines:
        check_retrain(cfg, name, arch, retrain_restart)
    if cfg.search.constraints.flops is not None or cfg.search.constraints.params is not None:
        check_feasible(cfg, load_space(cfg), build_task(cfg).model_config(cfg.model.config))
    write_if_changed(run_dir / "pipeline.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
    timings_path = run_dir / "step_seconds.json"  # of the invocation that did each step's work
    timings: dict[str, float] = read_json(timings_path, "step timings") if timings_path.is_file() else {}

    machines_path = run_dir / "machines.json"  # one record per invocation that did work

    def record_machine(step_name: str) -> None:
        machines = read_json(machines_path, "machine records") if machines_path.is_file() else []
        if not machines or machines[-1].get("pid") != os.getpid():
            machines.append({"pid": os.getpid(), "steps": [], **machine_info()})
        machines[-1]["steps"].append(step_name)
        write_json(machines_path, machines)

    def step(name: str, done: Callable[[], bool], work: Callable[[], Any]) -> None:
        outcome = guard(cfg, name, restart)
        finished = done()
        log(f"[{name}] {'reused' if finished else 'running'}{' (restarted)' if outcome == 'restarted' else ''}")
        if not finished:
            record_machine(name)
            start = time.perf_counter()
            work()
            timings[name] = time.perf_counter() - start
            write_json(timings_path, timings)

    step("train-supernet", lambda: _supernet_done(cfg), lambda: train_supernet(cfg))
    collected = Progress("  collected", cfg.collect.num_archs)
    step("collect", lambda: _collect_done(cfg),
         lambda: collect(cfg, cfg.supernet_dir, collect_path(cfg),
                         progress=lambda done, total: log(collected(done, total))))

    def fit() -> None:
        for name, metrics in fit_predictors(cfg).items():
            log(f"  {describe(name, metrics)}")

    step("fit-predictor", lambda: _predictors_done(cfg), fit)
    step("search", lambda: load_search_result(cfg) is not None, lambda: run_search(cfg, resume=True, log=log))
    search = load_search_result(cfg)

    searcher = Searcher(cfg, need_supernet=True)
    searched = [(name, arch) for name, arch, _ in searched_archs(search)]
    fixed = pattern_archs(cfg.retrain.fixed_patterns, cfg.retrain.fixed_other, searched[0][1],  # searched-mixed's
                          cfg.retrain.fixed_main)
    targets = searched + fixed + baselines
    for name, arch in targets:  # every retraining checked before any of them trains
        check_retrain(cfg, name, arch, retrain_restart)
    done = all(retrain_done(cfg, name) for name, _ in targets)
    log(f"[retrain] {'reused' if done else 'running'}")
    if not done:
        record_machine("retrain")
    start = time.perf_counter()
    train_in_parallel(cfg, targets, retrain_restart, log=log)  # no-op with retrain.workers: 1
    retrained = {name: retrain(cfg, name, arch, searcher.task, log=log, restart=retrain_restart)
                 for name, arch in targets}
    if not done:
        timings["retrain"] = time.perf_counter() - start
        write_json(timings_path, timings)
    check = None
    if cfg.rank_check.enabled:
        step("rank-check", lambda: _rank_check_done(cfg), lambda: run_rank_check(cfg))
        check = run_rank_check(cfg)  # a finished check is read back, not retrained
    rows = build_rows(cfg, searcher, targets, retrained)
    results = write_report(cfg, searcher, rows, search, timings, rank_check=check)
    log(f"report in {run_dir / 'report.md'} (the run directory holds {disk_usage(run_dir)})")
    return results


# ---------------------------------------------------------------- commands
def _cmd_fit_predictor(args) -> int:
    cfg = load_pipeline_config(args.config, args.overrides)
    apply_threads(cfg)
    with locked_run_dir(cfg):
        guard_step(cfg, "fit-predictor", args.restart)
        fitted = fit_predictors(cfg)
    for name, metrics in fitted.items():
        print(describe(name, metrics))
    print(f"predictors in {predictors_dir(cfg)}")
    return 0


def _cmd_search(args) -> int:
    from .search_step import result_path, run_search
    cfg = load_pipeline_config(args.config, args.overrides)
    apply_threads(cfg)
    with locked_run_dir(cfg):
        guard_step(cfg, "search", args.restart)
        result = run_search(cfg, resume=args.resume, log=lambda line: print(line, flush=True))
    for name, search in result["searches"].items():
        if search["top"]:
            best = search["top"][0]
            print(f"{name}: {best['attention']}  predicted {best['predicted_score']:.4g}, "
                  f"inherited {best['inherited_score']:.4g}, FLOPs {best['flops']:,}, params {best['params']:,}")
    print(f"result in {result_path(cfg)}")
    return 0


def _cmd_run(args) -> int:
    cfg = load_pipeline_config(args.config or args.preset or DEFAULT_PRESET, args.overrides)
    run_pipeline(cfg, log=lambda line: print(line, flush=True), restart=args.restart)
    return 0


def _overrides(p) -> None:
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. search.constraints.flops=2e6")


def add_fit_predictor_parser(sub) -> None:
    p = sub.add_parser("fit-predictor", help="fit the score and latency predictors on run_dir/collect.csv")
    p.add_argument("--config", required=True, help="pipeline YAML or preset name (a family's configs/pipelines)")
    add_restart_flag(p, "fit-predictor")
    _overrides(p)
    p.set_defaults(func=_cmd_fit_predictor)


def add_search_parser(sub) -> None:
    p = sub.add_parser("search", help="constrained evolutionary search (mixed, all-softmax, all-cosFormer)")
    p.add_argument("--config", required=True, help="pipeline YAML or preset name (a family's configs/pipelines)")
    p.add_argument("--resume", action="store_true", help="continue the saved search state in run_dir/search")
    add_restart_flag(p, "search")
    _overrides(p)
    p.set_defaults(func=_cmd_search)


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline into run_dir, then report.md, pareto.png, results.json")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--preset", help=f"pipeline preset (a family's configs/pipelines; default {DEFAULT_PRESET})")
    group.add_argument("--config", help="pipeline YAML path")
    p.add_argument("--restart", metavar="STEP", choices=STEPS, default=None,
                   help=f"start STEP and every later step whose config changed over ({', '.join(STEPS)}); "
                        f"without it a run_dir made with another config is refused")
    _overrides(p)
    p.set_defaults(func=_cmd_run)
