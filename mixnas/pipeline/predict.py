"""Predictor fitting (pipeline step 4): from the collected table to a performance predictor
and a latency predictor, each saved with its held-out quality.

Both read `run_dir/collect.csv` and use the `feat:*` columns, which are `space.encode(arch)`:
depth, widths, and each layer slot's attention kind one-hot, so the predictors see which
layer uses which attention. The performance predictor (`predictor.score`, LightGBM gbdt with
RankNAS's settings by default) fits the inherited score; the latency predictor
(`predictor.latency`, HAT's MLP by default) fits log(latency_ms), so relative errors count
equally. Each is fitted on a seeded split (`predictor.test_fraction` held out) and saved to
`run_dir/predictors/{score,latency}/` with `metrics.json` (held-out Kendall tau, RMSE, MAPE).
The latency predictor is skipped when the collection measured no latency. With
collect.latency_lengths it takes log2(length) as a feature (`fit_by_length`) and reports its
held-out error per length, also for each length left out of its training. Each kind's
hyper-parameters come from `predictor.score_options` / `predictor.latency_options` (empty: its
defaults).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import write_json
from ..predictors import (build_predictor, context_names, fit_predictor, held_out_split, load_predictor,
                          regression_metrics)
from ..predictors.base import METRICS_FILE
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
    lengths = cfg.collect.latency_lengths
    if lengths:
        results["latency"] = fit_by_length(lambda: _build(cfg, "latency", [*names, *context_names(
            {LENGTH_FEATURE: 0})]), X, rows, lengths, fraction, seed, out / "latency")
    elif all(v is not None for v in latencies):
        latency = _build(cfg, "latency", names)
        results["latency"] = fit_predictor(latency, X, latencies, test_fraction=fraction, seed=seed,
                                           directory=out / "latency")
    return results


LENGTH_FEATURE = "log2_length"  # the latency predictor's context feature: log2 of the sequence length


def length_table(X: np.ndarray, rows: list[dict[str, Any]], archs: np.ndarray, lengths) -> tuple[np.ndarray, np.ndarray]:
    """(features + log2 length, latency) of architectures `archs` at every length of `lengths`."""
    from .collect import length_column
    blocks = [np.hstack([X[archs], np.full((len(archs), 1), np.log2(n))]) for n in lengths]
    y = [rows[i][length_column(n)] for n in lengths for i in archs]
    if any(v is None for v in y):
        raise ValueError("the collected table lacks latencies at some lengths; run `mixnas collect` again")
    return np.vstack(blocks), np.asarray(y, dtype=np.float64)


def fit_by_length(build, X: np.ndarray, rows: list[dict[str, Any]], lengths: list[int], fraction: float,
                  seed: int, directory: Path) -> dict[str, Any]:
    """The latency predictor with the length as a feature, fitted on the train architectures at
    every length and saved. Held out by architecture: its quality overall and per length
    ("by_length"); held out by length: for each length a predictor fitted on the train
    architectures at the OTHER lengths, scored on the held-out architectures at that length
    ("held_out_length"; the shortest and longest are extrapolations)."""
    train, test = held_out_split(len(rows), fraction, seed)
    predictor = build()
    predictor.fit(*length_table(X, rows, train, lengths))
    held_X, held_y = length_table(X, rows, test, lengths)
    by_length = {str(n): regression_metrics(*_scored(predictor, X, rows, test, [n])) for n in lengths}
    held_out_length = {}
    for n in lengths:
        other = build().fit(*length_table(X, rows, train, [m for m in lengths if m != n]))
        held_out_length[str(n)] = regression_metrics(*_scored(other, X, rows, test, [n]))
    metrics = {"kind": predictor.kind, "split_seed": seed, "test_fraction": fraction, "lengths": list(lengths),
               "n_train": int(len(train)), "n_test": int(len(test)),
               "held_out": regression_metrics(held_y, predictor.predict(held_X)),
               "train": regression_metrics(*_scored(predictor, X, rows, train, lengths)),
               "by_length": by_length, "held_out_length": held_out_length}
    predictor.save(directory)
    write_json(Path(directory) / METRICS_FILE, metrics)
    return metrics


def _scored(predictor, X, rows, archs, lengths) -> tuple[np.ndarray, np.ndarray]:
    features, y = length_table(X, rows, archs, lengths)
    return y, predictor.predict(features)


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
    line = (f"{name} predictor ({metrics['kind']}): Kendall tau {fmt(h['kendall_tau'], '.3f')}, "
            f"RMSE {fmt(h['rmse'], '.4g')}, MAPE {fmt(h['mape'], '.2f')}% on {h['n']} held-out architectures")
    if metrics.get("lengths"):  # the length is a feature: its quality at each length
        per = ", ".join(f"{n}: {fmt(metrics['by_length'][n]['mape'], '.1f')}% / "
                        f"{fmt(metrics['held_out_length'][n]['mape'], '.1f')}%" for n in metrics["by_length"])
        line += (f" x {len(metrics['lengths'])} lengths; MAPE per length, held-out architectures / also held-out "
                 f"length: {per}")
    return line
