"""Rank ablation: which supernet settings make inherited scores rank architectures like training from scratch?

    python benchmarks/rank_ablation.py [--preset digits] [--k 12] [--updates U] [--variants base,sandwich,...]
                                       [--seeds 1,2] [--workdir DIR] [--json PATH] [key=value ...]

K architectures are chosen once, as `mixnas rank-check` chooses them (`stratified_archs` over
the preset's seed and search constraints), and each is trained from scratch once for U updates
(default: the preset's retrain.train.max_updates, the budget of the real retraining) with
rank_check's own trainer settings (`_retrain_config`: the supernet's optimiser, no validation).
That reference is scored on the validation subset the inherited scores use (collect.score_limit)
and on the test split, and cached in the work dir, so every variant and every rerun compares
against the same numbers. The test split only measures the ranking; nothing is tuned on it.

Each variant (a list of `key=value` overrides on top of the preset and the command line's) trains
its own supernet (`train_supernet`, in WORKDIR/<variant>-s<seed>-<config digest>/, reused when
finished), scores the K architectures with inherited weights as rank_check does, and reports
Kendall tau / Spearman rho with 95% paired-bootstrap intervals (`rank_statistics`) of the search
metric and of the loss against the reference. Variants that change the data or the scored subset
(data.*, collect.score_limit) get their own reference, trained and scored on that data: e.g.
more-val-data moves 20% of the examples from train to val, so the first reference's models
have seen part of the new val split. `--seeds` repeats each variant over supernet seeds (the
architectures and the reference keep the preset's seed); the table then shows mean±std.

Two rows put the numbers in scale: `ceiling` trains the K archs from scratch again with seed+1
and ranks them by that (no supernet can be expected to agree with one from-scratch run better
than a second from-scratch run does), `proxy` ranks them by FLOPs (what a supernet must beat).
The mixnas sources are fingerprinted (others edit the same tree); a warning says when cached
parts or the run itself span different code.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import mixnas
from mixnas.cost.machine import machine_info, matmul_gflops
from mixnas.dataconf import to_dict
from mixnas.fileio import read_json, write_json
from mixnas.models import build_model
from mixnas.pipeline import load_pipeline_config, load_supernet, score, train_supernet
from mixnas.pipeline.rank_check import BOOTSTRAP_RESAMPLES, _retrain_config, rank_statistics, stratified_archs
from mixnas.pipeline.scoring import build_task, load_space
from mixnas.rundir import TRAIN_NON_RESULT, digest, flatten, without
from mixnas.train import Trainer

VARIANTS = {
    "base": [],
    "longer-3000": ["supernet.train.max_updates=3000"],
    "longer-6000": ["supernet.train.max_updates=6000"],
    "sandwich": ["supernet.sandwich=true"],
    "sandwich+distill": ["supernet.sandwich=true", "supernet.distill=true"],
    "shared-projections": ["supernet.share_projections=true"],
    # digits: val grows from 180 to 539 examples (the whole split is scored), train shrinks to 898.
    "more-val-data": ["data.val_fraction=0.3", "collect.score_limit=null", "supernet.score_limit=null"],
    # Under the cosine schedule the tau between consecutive rankings only climbs as the LR
    # vanishes: on digits 0.9 (the preset) and 0.8 first pass at update 1500, the last validation,
    # a no-op; 0.5, checked every 100 updates, stops at 1300.
    "early-stop-fires": ["supernet.early_stop_tau=0.5", "supernet.train.validate_every=100"],
}
# Overrides that change what the reference is trained or scored on; the others only touch the supernet.
REFERENCE_KEYS = ("data.", "collect.score_limit=")
QUIET = ["supernet.train.progress=false", "supernet.train.tensorboard=false"]  # change no result
PAIRS = [(metric, split) for split in ("val", "test") for metric in ("score", "loss")]


def code_fingerprint() -> str:
    """Digest of the mixnas sources and presets in use. Others edit the same tree: a cached result
    or a run that spans an edit may compare numbers made by different code, which is reported."""
    root, h = Path(mixnas.__file__).parent, hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml")):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()[:12]


def split_scores(task, model, split: str, limit) -> dict[str, float]:
    """{"score", "loss"}: on val exactly rank_check's `score` (first `limit` examples); else the whole split."""
    if split == "val":
        metrics = score(task, model, limit)
    elif task.kind == "translation":
        metrics = task.validation_loss(model, split)
    else:
        metrics = task.evaluate(model, split)
    return {"score": float(metrics[task.score_key()[0]]), "loss": float(metrics["loss"])}


def reference(cfg, archs, updates: int, workdir: Path, log) -> list[dict]:
    """Each arch trained from scratch once (rank_check's seeding and trainer settings), scored on
    val and test; cached per arch in WORKDIR/reference-<digest>.json, so an interrupted run resumes."""
    settings = without(flatten(to_dict(_retrain_config(cfg, Path("."), updates))), "save_dir", *TRAIN_NON_RESULT)
    key = {"data": cfg.data, "model": cfg.model.config, "seed": cfg.seed, "updates": updates, "train": settings,
           "score_limit": cfg.collect.score_limit, "archs": [arch.to_dict() for arch in archs]}
    name = f"reference-{digest(key)}"
    path = workdir / f"{name}.json"
    rows = read_json(path, "reference cache")["rows"] if path.is_file() else []
    task = build_task(cfg)
    model_config = task.model_config(cfg.model.config)
    for index in range(len(rows), len(archs)):
        start = time.monotonic()
        torch.manual_seed(cfg.seed)  # as rank_check: the arch's initial weights depend on the seed only
        model = build_model(archs[index], model_config)
        with Trainer(task.training_task(model, cfg.seed, validate_split=None),
                     _retrain_config(cfg, workdir / name / f"arch_{index}", updates)) as trainer:
            trainer.train()
        rows.append({split: split_scores(task, model, split, cfg.collect.score_limit) for split in ("val", "test")}
                    | {"seconds": round(time.monotonic() - start, 1), "code": code_fingerprint()})
        write_json(path, {"key": key, "rows": rows})
        log(f"reference {index + 1}/{len(archs)}: val {rows[-1]['val']['score']:.4f}, "
            f"test {rows[-1]['test']['score']:.4f} ({rows[-1]['seconds']} s)")
    return rows


def run_variant(preset: str, overrides: list[str], seed: int, archs, workdir: Path, name: str, log) -> dict:
    """Train (or reuse) the variant's supernet and score the archs with inherited weights on val."""
    cfg = load_pipeline_config(preset, [*overrides, *QUIET, f"seed={seed}"]).to_dict()
    # The dir names what the supernet's weights depend on (not e.g. collect's latency settings).
    trained = {"task": cfg["task"], "data": cfg["data"], "model": cfg["model"], "seed": seed,
               "supernet": without(flatten(cfg["supernet"]), "save_dir", *TRAIN_NON_RESULT)}
    identity = digest(trained)[:8]
    run_dir = workdir / f"{name}-s{seed}-{identity}"
    cfg = load_pipeline_config(preset, [*overrides, *QUIET, f"seed={seed}", f"run_dir={run_dir}"])
    done = run_dir / "ablation.json"
    if done.is_file():  # written after training finished: the weights are complete
        record = read_json(done, "variant record")
    else:
        start = time.monotonic()
        summary = train_supernet(cfg)
        record = {"updates": summary["step"], "stopped_early": summary["stopped_early"],
                  "rank_taus": summary["rank_taus"], "seconds": round(time.monotonic() - start, 1),
                  "code": code_fingerprint()}
        write_json(done, record, allow_nan=True)
    task, _, supernet = load_supernet(cfg, cfg.supernet_dir)
    inherited = []
    for arch in archs:
        supernet.set_arch(arch)
        inherited.append(split_scores(task, supernet, "val", cfg.collect.score_limit))
    # A stop at the last validation (update == max_updates) changes nothing: only an earlier one counts.
    early = record["stopped_early"] and record["updates"] < cfg.supernet.train.max_updates
    log(f"{name} seed {seed}: {record['updates']} updates in {record['seconds']} s" + (" (early stop)" if early else ""))
    return {**record, "stopped_before_end": early, "seed": seed, "dir": str(run_dir), "inherited": inherited}


def statistics_of(inherited: list[dict], ref: list[dict], seed: int) -> dict:
    """tau / spearman / CIs of inherited val scores against the reference's val and test scores."""
    k = len(ref)
    indices = np.random.default_rng(seed).integers(0, k, size=(BOOTSTRAP_RESAMPLES, k))  # shared resamples
    return {f"{metric}_{split}": rank_statistics([r[metric] for r in inherited], [r[split][metric] for r in ref],
                                                 indices=indices)
            for metric, split in PAIRS}


def fmt(values: list, ci=None) -> str:
    """One seed: the value and its CI; several: mean±std over seeds (None: a constant list)."""
    if any(v is None for v in values):
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.2f}" + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")
    return f"{statistics.mean(values):.2f}±{statistics.stdev(values):.2f}"


def table(results: list[dict], metric: str) -> list[str]:
    lines = [f"| variant | supernet updates | supernet s | mean inherited {metric} | tau {metric} val | tau loss val "
             f"| tau {metric} test [95% CI] | tau loss test [95% CI] | rho {metric} test | rho loss test |",
             "|---" * 10 + "|"]
    for r in results:
        runs = r["runs"]
        col = lambda key, stat: [run["stats"][key][stat] for run in runs]  # noqa: E731
        ci = lambda key: runs[0]["stats"][key]["tau_ci95"] if len(runs) == 1 else None  # noqa: E731
        updates = "/".join(f"{run['updates'] or '-'}" + ("ES" if run.get("stopped_before_end") else "") for run in runs)
        seconds = "/".join(f"{run['seconds']:.0f}" for run in runs)
        scores = [x["score"] for run in runs for x in run["inherited"]]
        mean_inherited = f"{statistics.mean(scores):.3f}" if runs[0]["updates"] else "-"  # FLOPs are no score
        lines.append(f"| {r['variant']} | {updates} | {seconds} | {mean_inherited} | {fmt(col('score_val', 'tau'))} "
                     f"| {fmt(col('loss_val', 'tau'))} | {fmt(col('score_test', 'tau'), ci('score_test'))} "
                     f"| {fmt(col('loss_test', 'tau'), ci('loss_test'))} | {fmt(col('score_test', 'spearman'))} "
                     f"| {fmt(col('loss_test', 'spearman'))} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits", help="pipeline preset or YAML (a family's configs/pipelines)")
    parser.add_argument("--k", type=int, default=12, help="architectures, stratified as rank-check does")
    parser.add_argument("--updates", type=int, help="from-scratch updates (default retrain.train.max_updates)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", help="comma-separated supernet seeds (default: the preset's seed)")
    parser.add_argument("--workdir", default="/tmp/mixnas-rank-ablation", help="supernets and the cached reference")
    parser.add_argument("--no-ceiling", dest="ceiling", action="store_false",
                        help="skip the noise ceiling (the reference trained again with seed+1, compared with the first)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run, as the CLI takes them")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or args.k < 2:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}" if unknown else "--k must be >= 2")
    wall, code = time.monotonic(), code_fingerprint()
    log = lambda message: print(message, flush=True)  # noqa: E731
    workdir = Path(args.workdir)
    base = load_pipeline_config(args.preset, args.overrides)
    if base.threads is not None:
        torch.set_num_threads(base.threads)  # as `mixnas run`: tiny models, one thread
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [base.seed]
    updates = args.updates or base.retrain.train.max_updates
    machine = {**machine_info(), "threads": torch.get_num_threads()}  # cores, torch, 1-thread matmul GFLOP/s

    # The architectures: once, from the preset's seed, as rank_check selects them.
    task = build_task(base)
    model_config = task.model_config(base.model.config)
    limits = {name: value for name, value in (("flops", base.search.constraints.flops),
                                              ("params", base.search.constraints.params)) if value is not None}
    space = load_space(base)
    archs, profiles, _ = stratified_archs(space, model_config, base.seed, args.k, limits)
    metric = task.score_key()[0]

    results, references = [], {}
    for name in variants:
        ref_overrides = [o for o in VARIANTS[name] if o.startswith(REFERENCE_KEYS)]
        ref_cfg = load_pipeline_config(args.preset, [*args.overrides, *ref_overrides])
        tag = ",".join(ref_overrides) or "preset"
        if tag not in references:
            references[tag] = reference(ref_cfg, archs, updates, workdir, log)
        runs = []
        for seed in seeds:
            run = run_variant(args.preset, [*args.overrides, *VARIANTS[name]], seed, archs, workdir, name, log)
            run["stats"] = statistics_of(run["inherited"], references[tag], base.seed)
            runs.append(run)
        results.append({"variant": name, "overrides": VARIANTS[name], "reference": tag, "runs": runs})

    if args.ceiling:
        # Two from-scratch trainings (seeds s and s+1) of the same archs disagree too: their tau is
        # the most any inherited score can be expected to reach against one of them.
        other = reference(load_pipeline_config(args.preset, [*args.overrides, f"seed={base.seed + 1}"]),
                          archs, updates, workdir, log)
        references[f"seed={base.seed + 1}"] = other
        run = {"updates": updates, "stopped_early": False, "seconds": sum(r["seconds"] for r in other),
               "seed": base.seed + 1, "inherited": [r["val"] for r in other], "code": code}
        run["stats"] = statistics_of(run["inherited"], reference(base, archs, updates, workdir, log), base.seed)
        results.append({"variant": f"ceiling: from scratch, seed {base.seed + 1}", "overrides": [f"seed={base.seed + 1}"],
                        "reference": "preset", "runs": [run]})
    # The free proxy: on a FLOPs-spread set bigger models may simply train better; a supernet earns
    # its cost only where it ranks better than FLOPs alone.
    sign = 1 if task.score_key()[1] else -1
    run = {"updates": 0, "stopped_early": False, "seconds": 0.0, "seed": base.seed, "code": code,
           "inherited": [{"score": sign * p["flops"], "loss": -p["flops"]} for p in profiles]}
    run["stats"] = statistics_of(run["inherited"], reference(base, archs, updates, workdir, log), base.seed)
    results.append({"variant": "proxy: FLOPs, no supernet", "overrides": [], "reference": "preset", "runs": [run]})

    # Others share the cores: the reading at the end shows whether the machine got slower meanwhile.
    machine.update(matmul_gflops_1_thread_end=round(matmul_gflops(), 1), load_avg_1m_end=round(os.getloadavg()[0], 2))
    wall = round(time.monotonic() - wall, 1)
    codes = {code, code_fingerprint()} | {r.get("code", "unrecorded") for rows in references.values() for r in rows} | {
        run.get("code", "unrecorded") for r in results for run in r["runs"]}
    ref = references.get("preset") or next(iter(references.values()))
    print(f"\n{args.preset}: K={args.k} architectures, each trained from scratch for {updates} updates; "
          f"supernet seeds {seeds}; wall {wall} s")
    print(f"machine: {machine}")
    if len(codes) > 1:
        print(f"WARNING: the mixnas sources changed during this run or since its cached parts were made "
              f"(fingerprints {sorted(codes)}); rows may not be comparable: rerun with a fresh --workdir")
    print("reference (first): " + "; ".join(f"{p['attention']} {p['flops'] / 1e6:.2f}M -> test {r['test']['score']:.3f}"
                                            for p, r in zip(profiles, ref)))
    print()
    print("\n".join(table(results, metric)))
    print("\ntau: Kendall tau-b of inherited val scores vs from-scratch scores on val (the inherited scores' subset) "
          "and on test; [95% paired-bootstrap CI]; rho: Spearman. ES: RankNAS early stop fired before max_updates. ceiling: a second "
          "from-scratch training's val scores in place of the inherited ones; proxy: the architectures' FLOPs. "
          "The test split only "
          "measures the ranking; no setting was tuned on it.")
    if args.json:
        write_json(args.json, {"preset": args.preset, "overrides": args.overrides, "k": args.k, "updates": updates,
                               "seeds": seeds, "wall_seconds": wall, "machine": machine, "code": sorted(codes),
                               "metric": metric,
                               "archs": [{"arch": a.to_dict(), **p} for a, p in zip(archs, profiles)],
                               "references": references, "variants": results}, allow_nan=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
