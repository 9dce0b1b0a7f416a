"""pareto.png of a run: what the search saw beside what retraining found.

Left: the collected architectures' inherited (weight-sharing) validation scores against FLOPs
or latency, coloured by the fraction of cosFormer layers, with the NSGA-II front when it was
computed. Right: every report row's retrained test score (mean over seeds, bar = ± std)
against the same cost. Both panels draw the cost constraint, so a reader sees which rows
were eligible and whether inherited and retrained scores agree.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..rundir import write_if_changed
from .collect import load_collected
from .config import PipelineConfig
from .predict import collect_path
from .search_step import cosformer_fraction


def plot_pareto(cfg: PipelineConfig, score_name: str, test_metric: str, rows: list[dict[str, Any]],
                search: dict[str, Any], path: Path) -> None:
    """score_name: the inherited validation score's name; test_metric: the rows' retrained metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_latency = cfg.search.pareto_x == "latency"
    limit = cfg.search.constraints.latency_ms if by_latency else cfg.search.constraints.flops
    x_label = "latency (ms; left predicted/collected, right measured)" if by_latency else "FLOPs without embeddings"
    collected = load_collected(collect_path(cfg))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))

    points = left.scatter([r["latency_ms"] if by_latency else r["flops_no_emb"] for r in collected],
                          [r["score"] for r in collected], s=10, alpha=0.6, cmap="viridis", vmin=0, vmax=1,
                          c=[cosformer_fraction(r["arch"]) for r in collected], label="collected (inherited)")
    fig.colorbar(points, ax=left, label="fraction of cosFormer attention layers")
    front = (search.get("nsga2") or {}).get("front") if isinstance(search.get("nsga2"), dict) else search.get("nsga2")
    if front:
        front = sorted(front, key=lambda e: e[cfg.search.pareto_x])
        left.plot([e[cfg.search.pareto_x] for e in front], [e["predicted_score"] for e in front], "r-", lw=1,
                  label="NSGA-II front (predicted)")
    left.set_ylabel(f"validation {score_name} (inherited weights)")
    left.set_title("what the search saw")

    metric = f"test_{test_metric}"
    for r in rows:
        x = r["latency_ms"] if by_latency else r["flops"]
        searched = r["kind"] == "searched"
        right.errorbar([x], [r[metric]], yerr=[r[f"{metric}_std"]], fmt="*" if searched else "s", ms=10 if searched else 7,
                       capsize=3, color="tab:blue" if searched else "tab:gray")
        right.annotate(r["name"], (x, r[metric]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    right.set_ylabel(f"{cfg.retrain.split} {test_metric} after retraining (mean ± std over seeds)")
    right.set_title("what retraining found (stars: searched, squares: baselines)")

    for ax in (left, right):
        if limit is not None:
            ax.axvline(limit, color="red", ls="--", lw=1, label=f"constraint {limit:g}")
        ax.set_xlabel(x_label)
        ax.margins(x=0.15)
        if ax.get_legend_handles_labels()[0]:  # no constraint on this axis: nothing labelled on the right
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png", metadata={"Software": None})  # no version stamp: same plot, same bytes
    write_if_changed(path, buffer.getvalue())
    plt.close(fig)


def plot_by_length(rows: list[dict[str, Any]], path: Path) -> None:
    """by_length.png: every row's measured latency (left) and decoding-state memory (right)
    against the sequence length, log-log: a softmax layer's cache grows with the context, a
    linear layer's state does not. Rows without `latency_by_length` are left out."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("latency_by_length")]
    if not rows:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for r in rows:
        style = "-*" if r["kind"] == "searched" else "--s"
        for ax, key in ((left, "latency_by_length"), (right, "memory_by_length")):
            series = r.get(key) or {}
            if series:
                ax.plot([int(n) for n in series], list(series.values()), style, label=r["name"], ms=5)
    left.set_ylabel("latency (ms, measured)")
    right.set_ylabel("decoding state per sequence (bytes, fp32)")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length / context position")
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png", metadata={"Software": None})
    write_if_changed(path, buffer.getvalue())
    plt.close(fig)
