"""Predictor fitting (pipeline step 4): from the collected table to a performance predictor
and a latency predictor, each saved with its held-out quality.

Both read `run_dir/collect.csv` and use the `feat:*` columns, which are `space.encode(arch)`:
depth, widths, and each layer slot's attention kind one-hot, so the predictors see which
layer uses which attention. The performance predictor (`predictor.score`, LightGBM gbdt with
RankNAS's settings by default) fits the inherited score; the latency predictor
(`predictor.latency`, HAT's MLP by default) fits log(latency_ms), so relative errors count
equally. Each is fitted on a seeded split (`predictor.test_fraction` held out) and saved to
`run_dir/predictors/{score,latency}/` with `metrics.json` (held-out Kendall tau, RMSE, MAPE).
The latency predictor is skipped when the collection measured no latency. Each kind's
hyper-parameters come from `predictor.score_options` / `predictor.latency_options` (empty: its
defaults).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..predictors import build_predictor, fit_predictor, load_predictor
from .collect import load_collected
from .config import PipelineConfig

FEATURE_PREFIX = "feat:"


def predictors_dir(cfg: PipelineConfig) -> Path:
    return Path(cfg.run_dir) / "predictors"


def collect_path(cfg: PipelineConfig) -> Path:
    return Path(cfg.run_dir) / "collect.csv"


def feature_table(rows: list[dict[str, Any]]) -> tuple[list[str], np.ndarray]:
    """(feature names without the prefix, matrix) of the collected rows."""
    columns = [k for k in rows[0] if k.startswith(FEATURE_PREFIX)]
    X = np.array([[row[c] for c in columns] for row in rows], dtype=np.float64)
    return [c[len(FEATURE_PREFIX):] for c in columns], X


def fit_predictors(cfg: PipelineConfig, csv_path: str | Path | None = None) -> dict[str, Any]:
    """Fit and save the predictors of `cfg`; returns {"score": metrics, "latency": metrics or None}."""
    path = Path(csv_path) if csv_path is not None else collect_path(cfg)
    if not path.is_file():
        raise ValueError(f"no collected table at {path}; run `mixnas collect --config ...` first")
    rows = load_collected(path)
    if len(rows) < 10:
        raise ValueError(f"{path} has {len(rows)} architectures; a predictor with a held-out split needs at least "
                         f"10 (raise collect.num_archs and run `mixnas collect` again)")
    names, X = feature_table(rows)
    out = predictors_dir(cfg)
    seed, fraction = cfg.seed, cfg.predictor.test_fraction
    score = _build(cfg, "score", names)
    results: dict[str, Any] = {"score": fit_predictor(score, X, [r["score"] for r in rows], test_fraction=fraction,
                                                      seed=seed, directory=out / "score"),
                               "latency": None}
    latencies = [r["latency_ms"] for r in rows]
    if all(v is not None for v in latencies):
        latency = _build(cfg, "latency", names)
        results["latency"] = fit_predictor(latency, X, latencies, test_fraction=fraction, seed=seed,
                                           directory=out / "latency")
    return results


def _build(cfg: PipelineConfig, which: str, names: list[str]):
    return build_predictor(getattr(cfg.predictor, which), cfg.predictor.options(which), feature_names=names,
                           seed=cfg.seed, where=f"predictor.{which}_options")


def load_fitted(cfg: PipelineConfig, which: str):
    """The saved `score` or `latency` predictor of this run."""
    directory = predictors_dir(cfg) / which
    if not (directory / "metrics.json").is_file():
        hint = " (it needs collect.latency: true)" if which == "latency" else ""
        raise ValueError(f"no fitted {which} predictor in {directory}{hint}; run `mixnas fit-predictor --config ...` first")
    return load_predictor(directory)


def describe(name: str, metrics: dict[str, Any] | None) -> str:
    """One line of held-out quality, e.g. 'score predictor (gbdt): tau 0.81, RMSE 0.012, MAPE 1.4% on 40 held out'."""
    if metrics is None:
        return f"{name} predictor: not fitted (no measured latency)"
    h = metrics["held_out"]
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    return (f"{name} predictor ({metrics['kind']}): Kendall tau {fmt(h['kendall_tau'], '.3f')}, "
            f"RMSE {fmt(h['rmse'], '.4g')}, MAPE {fmt(h['mape'], '.2f')}% on {h['n']} held-out architectures")
