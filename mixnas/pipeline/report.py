"""The run's report (pipeline step 7): results.json, report.md and pareto.png in run_dir.

One row per retrained architecture (the searched mixed, all-softmax and all-cosFormer ones
and the baselines): attention kind per layer, score on the retraining's eval split, params
and FLOPs (analytic, without embeddings), latency measured on the retrained model, and the
predicted and inherited scores where the architecture lies in the search space. Then the
evidence a reader needs to trust the numbers: predictor held-out quality, the supernet's
ranking stability, the constraints, and the commands that reproduce the run.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..cost.latency import describe_protocol
from ..families import family_for_task, family_of
from ..fileio import read_json
from ..rundir import write_if_changed
from .config import PipelineConfig
from .predict import describe, predictors_dir
from .scoring import kendall_tau
from .plots import plot_by_length, plot_pareto
from .search_step import KIND_LETTERS, attention_code, cosformer_fraction
from .verdict import mean_std, verdict_lines



def build_rows(cfg: PipelineConfig, searcher, targets: list[tuple[str, Any]],
               retrained: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    metric = family_for_task(cfg.task).test_metric
    rows = []
    for name, arch in targets:
        try:
            searcher.space.validate(arch)
            scores = searcher.describe(arch)
        except ValueError:  # a baseline outside the space: no prediction, no inherited weights
            scores = {"predicted_score": None, "inherited_score": None, "predicted_latency_ms": None}
        results = retrained[name]
        per_seed = [float(r["eval"][metric]) for _, r in sorted(results["seeds"].items())]
        mean, std = mean_std(per_seed)
        kind = next((k for k in ("baseline", "fixed") if name.startswith(f"{k}-")), "searched")
        rows.append({"name": name, "kind": kind,
                     "arch": arch.to_dict(), "attention": attention_code(arch),
                     "cosformer_fraction": cosformer_fraction(arch),
                     f"test_{metric}": mean, f"test_{metric}_std": std, "test_scores": per_seed,
                     "seeds": sorted(results["seeds"]), "flops": searcher.flops(arch),
                     "params": searcher.params(arch), "latency_ms": results["latency"]["ms"],
                     "latency_std_ms": results["latency"]["ms_std"], "latency_protocol": results["latency"]["protocol"],
                     "predicted_score": scores["predicted_score"],
                     "inherited_score": scores["inherited_score"],
                     "predicted_latency_ms": scores["predicted_latency_ms"],
                     "decode_state_bytes": searcher.decode_state_bytes(arch),
                     **by_length(cfg, searcher, arch, results["latency"])})
    return rows


def by_length(cfg: PipelineConfig, searcher, arch, latency: dict[str, Any]) -> dict[str, Any]:
    """latency_by_length (measured) and memory_by_length (decoding-state bytes, analytic) at
    retrain.lengths, keyed by the length as a string; nothing when no lengths are set."""
    if not cfg.retrain.lengths:
        return {}
    memory = {}
    if family_of(arch).decodes:
        memory = {str(n): searcher.decode_state_bytes(arch, n) for n in cfg.retrain.lengths}
    return {"latency_by_length": latency.get("by_length", {}), "memory_by_length": memory}


def write_report(cfg: PipelineConfig, searcher, rows: list[dict[str, Any]], search: dict[str, Any],
                 timings: dict[str, float], rank_check: dict[str, Any] | None = None) -> dict[str, Any]:
    run_dir = Path(cfg.run_dir)
    family = family_for_task(cfg.task)
    metric = family.test_metric
    predictors = {k: _read_optional(predictors_dir(cfg) / k / "metrics.json") for k in ("score", "latency")}
    supernet = _read_optional(cfg.supernet_dir / "summary.json") or {}
    in_space = [r for r in rows if r["predicted_score"] is not None]
    results = {
        "task": cfg.task, "test_metric": metric, "test_higher_is_better": family.test_higher_is_better,
        "split": cfg.retrain.split, "rows": rows,
        "predictors": predictors,
        "supernet": {"updates": supernet.get("step"), "stopped_early": supernet.get("stopped_early"),
                     "rank_taus": supernet.get("rank_taus", [])},
        "tau_predicted_vs_retrained": kendall_tau([r["predicted_score"] for r in in_space],
                                                  [r[f"test_{metric}"] for r in in_space]) if len(in_space) > 2 else None,
        "n_in_space": len(in_space),
        "constraints": search["constraints"], "cost_options": cfg.cost_options(), "objective": search["objective"],
        "higher_is_better": search["higher_is_better"],
        "search_errors": {k: v["error"] for k, v in search["searches"].items() if "error" in v},
        "rank_check": _rank_check_summary(rank_check),
        "machines": _read_optional(run_dir / "machines.json") or [],
        "latency_protocol": describe_protocol(rows[0]["latency_protocol"]) if rows else "",
        "random_control": search.get("random_control"),
        "step_seconds": timings, "config": cfg.to_dict(),
    }
    # Written only where the content changed: a finished run rerun with the same config
    # changes no file (the rows are read back from the cached retraining results).
    write_if_changed(run_dir / "results.json", (json.dumps(results, indent=1, default=str) + "\n").encode())
    write_if_changed(run_dir / "report.md", render_markdown(cfg, results).encode())
    plot_pareto(cfg, searcher.task.score_key()[0], metric, rows, search, run_dir / "pareto.png")
    plot_by_length(rows, run_dir / "by_length.png")
    return results


def _rank_check_summary(check: dict[str, Any] | None) -> dict[str, Any] | None:
    keys = ("n", "tau", "spearman", "ci95", "spearman_ci95", "tau_loss", "retrain_updates", "metric")
    return None if check is None else {k: check.get(k) for k in keys}


def render_markdown(cfg: PipelineConfig, results: dict[str, Any]) -> str:
    metric, rows = results["test_metric"], results["rows"]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    legend = ", ".join(f"{letter} = {kind}" for kind, letter in KIND_LETTERS.items())
    seeds = len(rows[0]["test_scores"]) if rows else 0
    lines = [f"# mixnas run: {Path(cfg.run_dir).name}", "",
             f"Task: {cfg.task} ({cfg.data.get('name') or cfg.data.get('dir', '')}), search space "
             f"`{cfg.supernet.space}`, seed {cfg.seed}. Searched architectures and baselines, each retrained "
             f"from scratch for {cfg.retrain.train.max_updates} updates with {seeds} seed(s) and scored on the "
             f"`{results['split']}` split.", "", *verdict_lines(results, rows, cfg.supernet.early_stop_tau),
             "## Rows", "",
             f"| name | attention per layer | {results['split']} {metric} (mean ± std) | per seed | params | FLOPs | "
             f"latency ms (measured) | predicted score | inherited score |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['attention']} | {r[f'test_{metric}']:.4g} ± {r[f'test_{metric}_std']:.2g} | "
                     f"{', '.join(f'{v:.4g}' for v in r['test_scores'])} | {r['params']:,} | "
                     f"{r['flops']:,} | {r['latency_ms']:.3f} ± {r['latency_std_ms']:.3f} | "
                     f"{fmt(r['predicted_score'], '.4g')} | {fmt(r['inherited_score'], '.4g')} |")
    lines += ["", f"Attention per layer: {legend}; for a Transformer `enc ... | dec self:cross ...`. "
              "Params and FLOPs exclude embeddings and the output layer (HAT's convention; ViT: without patch "
              f"embedding and classifier), FLOPs for one example{_at(results['cost_options'])}. Latency (measured on each row's first-seed "
              f"model): {results['latency_protocol']} (± the std of the kept runs). Predicted and inherited "
              "scores are validation scores (the search's fitness); '-' for a baseline outside the space.", ""]
    lines += _by_length_lines(rows)
    for name, error in results["search_errors"].items():
        lines.append(f"Search {name} found nothing: {error}")
    tau = results["tau_predicted_vs_retrained"]
    sn = results["supernet"]
    taus = ", ".join(fmt(t, ".3f") for t in sn["rank_taus"]) or "none (early stop disabled)"
    lines += ["## Evidence", "",
              f"- {describe('score', results['predictors']['score'])}",
              f"- {describe('latency', results['predictors']['latency'])}",
              f"- Kendall tau, predicted score vs retrained {metric} over the {results['n_in_space']} rows in the space: "
              f"{fmt(tau, '.3f')}",
              f"- Supernet: {sn['updates']} updates{' (RankNAS early stop)' if sn['stopped_early'] else ''}; "
              f"Kendall tau between consecutive validations' rankings: {taus}",
              f"- Search: {results['objective']} {'maximised' if results['higher_is_better'] else 'minimised'}",
              f"- Constraints: {_constraints_text(results['constraints'])}", "",
              "## Reproduce", "", "```",
              f"mixnas run --config {Path(cfg.run_dir) / 'pipeline.yaml'}",
              "# or step by step:",
              *(f"mixnas {step} --config {Path(cfg.run_dir) / 'pipeline.yaml'}"
                for step in ("train-supernet", "collect", "fit-predictor", "search --resume")),
              *(f"mixnas evaluate --checkpoint {Path(cfg.run_dir) / 'retrain' / r['name'] / f'seed-{seed}' / 'model'}"
                for r in rows for seed in r["seeds"][:1]),
              "```", "", "Step wall times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["step_seconds"].items()),
              *(f"- machine of {', '.join(m['steps'])}: {m['cpu_count']} cores ({m['cpu_model']}), torch {m['torch']}, "
                f"1-thread matmul {m['matmul_gflops_1_thread']} GFLOP/s, load {m['load_avg_1m']} at {m['date']}"
                for m in results["machines"]), ""]
    return "\n".join(lines)


def _at(options: dict[str, int]) -> str:
    return " at " + ", ".join(f"{k} {v}" for k, v in options.items()) if options else ""


def _by_length_lines(rows: list[dict[str, Any]]) -> list[str]:
    """A table of latency and decoding memory per row at retrain.lengths (by_length.png)."""
    lengths = next((list(r["latency_by_length"]) for r in rows if r.get("latency_by_length")), [])
    if not lengths:
        return []
    lines = ["## Latency and decoding memory by length", "",
             "| name | " + " | ".join(f"ms @{n}" for n in lengths) + " | " + " | ".join(f"MB @{n}" for n in lengths) + " |",
             "|---|" + "---|" * (2 * len(lengths))]
    for r in rows:
        ms = [f"{r['latency_by_length'].get(n, float('nan')):.3f}" for n in lengths]
        mb = [f"{r['memory_by_length'][n] / 1e6:.3f}" if n in r.get("memory_by_length", {}) else "-" for n in lengths]
        lines.append(f"| {r['name']} | " + " | ".join(ms) + " | " + " | ".join(mb) + " |")
    return lines + ["", "Latency measured as above at each length (a language model: one decoding step at that "
                        "context position); memory: the fp32 decoding state of one sequence (by_length.png).", ""]


def _constraints_text(limits: dict[str, float]) -> str:
    units = {"latency_ms": "predicted latency <= {:g} ms", "flops": "FLOPs (no embeddings) <= {:,.0f}",
             "params": "params (no embeddings) <= {:,.0f}",
             "decode_state_bytes": "decoding state <= {:,.0f} bytes"}
    return "; ".join(units[k].format(v) for k, v in limits.items()) or "none"


def _read_optional(path: Path) -> Any:
    return read_json(path, path.name) if path.is_file() else None
