"""Search benchmark (issue 5, item 9): predictor quality and the wall time of the searches.

    python benchmarks/search.py [--json PATH] [--space hat_wmt14] [--samples 2000] [--seed 0]

The ground truth is SYNTHETIC (no supernet is trained here), but deterministic per
architecture and not trivially learnable:
- score (higher is better, "BLEU-like"): 4 log(non-embedding params in M) + attention-kind
  terms (softmax better than cosFormer, weighted towards top encoder layers, decoder self- and
  cross-attention) + a bonus for attending to more encoder layers + a saturating decoder-depth
  term + Gaussian noise (sd 0.15) seeded by the architecture.
- latency (ms) at source and target length L: the analytic incremental-decoding FLOPs of
  `mixnas.cost.count_decode_flops` (beam 1, HAT's protocol) at an assumed 50 GFLOP/s, plus a
  fixed 0.04 ms per layer and decoding step (kernel-launch-like overhead, which makes depth cost
  more than FLOPs say), times 3% log-normal noise seeded by (architecture, L). Samples use
  L in {15, 30, 60}; the predictor sees L as a feature (`ctx:src_len`), the search uses L = 30.

Steps: sample `--samples` architectures, fit the performance predictor (LightGBM, RankNAS
settings) and the latency predictor (HAT's MLP) on a seeded 80/20 split and report held-out
Kendall tau / RMSE / MAPE; run the default evolutionary search (30 generations, population
125) on predicted score under predicted latency and analytic params limits and time it; run
NSGA-II (population 100, 30 generations) on predicted score vs predicted latency and time it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
import zlib

import numpy as np
import torch

from mixnas.cost import count_decode_flops, count_params
from mixnas.families.transformer.config import TransformerConfig
from mixnas.predictors import GBDTPredictor, MLPPredictor, featurize, fit_predictor
from mixnas.search import Constraint, EvolutionConfig, PredictorObjective, evolution_search, nsga2_search
from mixnas.space.search_space import SearchSpace

LENGTHS, SEARCH_LENGTH = (15, 30, 60), 30
EFFECTIVE_FLOPS, LAYER_STEP_MS, LATENCY_NOISE, SCORE_NOISE = 50e9, 0.04, 0.03, 0.15
COST_CONFIG = TransformerConfig(src_vocab=32000, tgt_vocab=32000)  # vocabulary only affects embeddings


# ---------------------------------------------------------------- synthetic ground truth
def _arch_seed(arch, *extra) -> int:
    return zlib.crc32(json.dumps([arch.to_dict(), *extra], sort_keys=True).encode())


def params_m(arch) -> float:
    return count_params(arch, COST_CONFIG, include_embeddings=False) / 1e6


def true_score(arch) -> float:
    n_enc, n_dec = len(arch.encoder_layers), len(arch.decoder_layers)
    soft = lambda kind: 1.0 if kind == "softmax" else 0.0  # noqa: E731
    attention = (sum(0.4 * (i + 1) / n_enc * soft(layer.attention) for i, layer in enumerate(arch.encoder_layers))
                 + sum(0.3 * soft(layer.attention) + 0.5 * soft(layer.cross_attention)
                       + 0.2 * (layer.cross_layers - 1) for layer in arch.decoder_layers))
    depth = 0.6 * min(n_dec, 4) - 0.2 * max(0, n_dec - 4)
    noise = np.random.default_rng(_arch_seed(arch)).normal(0.0, SCORE_NOISE)
    return 4.0 * math.log(params_m(arch)) + attention + depth + float(noise)


def true_latency_ms(arch, length: int) -> float:
    flops = count_decode_flops(arch, COST_CONFIG, src_len=length, tgt_len=length, beam=1, include_embeddings=False)
    layer_steps = len(arch.encoder_layers) + length * len(arch.decoder_layers)
    noise = np.random.default_rng(_arch_seed(arch, length)).lognormal(0.0, LATENCY_NOISE)
    return float((flops / EFFECTIVE_FLOPS * 1e3 + LAYER_STEP_MS * layer_steps) * noise)


# ---------------------------------------------------------------- steps
def fit_predictors(space, archs, lengths, seed):
    """The score predictor, and both latency predictors (HAT's MLP and trees, each on log
    latency); the search uses the latency predictor with the lower held-out MAPE."""
    scores = np.array([true_score(a) for a in archs])
    latencies = np.array([true_latency_ms(a, n) for a, n in zip(archs, lengths)])
    X_perf, X_lat = featurize(space, archs), featurize(space, archs, {"src_len": lengths})
    lat_names = space.feature_names() + ["ctx:src_len"]
    fitted = {}
    for name, predictor, X, y in (("score_gbdt", GBDTPredictor(space.feature_names(), seed=seed), X_perf, scores),
                                  ("latency_mlp", MLPPredictor(lat_names, seed=seed, log_target=True), X_lat, latencies),
                                  ("latency_gbdt", GBDTPredictor(lat_names, seed=seed, log_target=True), X_lat, latencies)):
        t = time.perf_counter()
        metrics = fit_predictor(predictor, X, y, seed=seed)
        fitted[name] = (predictor, {**metrics, "fit_seconds": round(time.perf_counter() - t, 3)})
    return fitted, latencies


def run(space_name: str, samples: int, seed: int) -> dict:
    torch.set_num_threads(2)
    space = SearchSpace.load(space_name)
    if space.kind != "transformer":
        raise SystemExit(f"benchmarks/search.py needs a translation space (latency is decoding), got {space_name!r}")
    rng = random.Random(seed)
    archs = [space.sample(rng) for _ in range(samples)]
    lengths = [rng.choice(LENGTHS) for _ in archs]
    t = time.perf_counter()
    fitted, latencies = fit_predictors(space, archs, lengths, seed)
    truth_seconds = time.perf_counter() - t - sum(m["fit_seconds"] for _, m in fitted.values())
    perf, perf_m = fitted["score_gbdt"]
    lat_name = min(("latency_mlp", "latency_gbdt"), key=lambda k: fitted[k][1]["held_out"]["mape"])
    lat, lat_m = fitted[lat_name]

    # Limits: the 40th percentile of latency at L = 30 and the median params of the samples.
    at_search_length = np.array([x for x, n in zip(latencies, lengths) if n == SEARCH_LENGTH])
    latency_limit = float(np.quantile(at_search_length, 0.4))
    params_limit = float(np.median([params_m(a) for a in archs]))
    score = PredictorObjective("predicted_score", perf, space)
    latency = Constraint.from_predictor("predicted_latency_ms", latency_limit, lat, space, {"src_len": SEARCH_LENGTH})
    params = Constraint.from_callable("params_m", params_limit, params_m)

    t = time.perf_counter()
    evo = evolution_search(space, score, [latency, params], EvolutionConfig(seed=seed))
    evolution_seconds = time.perf_counter() - t

    latency_objective = PredictorObjective("predicted_latency_ms", lat, space, context={"src_len": SEARCH_LENGTH},
                                           higher_is_better=False)
    t = time.perf_counter()
    front = nsga2_search(space, [score, latency_objective], [params], population=100, generations=30, seed=seed)
    nsga2_seconds = time.perf_counter() - t

    # How good is the searched architecture under the (synthetic) truth? Compare with the best
    # of the random samples that truly meet both limits at L = 30.
    feasible_random = [true_score(a) for a, n, x in zip(archs, lengths, latencies)
                       if n == SEARCH_LENGTH and x <= latency_limit and params_m(a) <= params_limit]
    best = evo.best
    return {
        "evolution_seconds": round(evolution_seconds, 3),
        "nsga2_seconds": round(nsga2_seconds, 3),
        "perf_predictor_tau": perf_m["held_out"]["kendall_tau"],
        "latency_predictor_mape": lat_m["held_out"]["mape"],
        "details": {
            "ground_truth": "SYNTHETIC: see benchmarks/search.py docstring (score from analytic params and "
                            "attention kinds + noise; latency from analytic decoding FLOPs at 50 GFLOP/s + "
                            "0.04 ms per layer-step, 3% noise)",
            "space": space_name, "samples": samples, "seed": seed, "ground_truth_seconds": round(truth_seconds, 3),
            "perf_predictor": perf_m,
            "latency_predictor_used": lat_name,
            "latency_predictors": {k: m for k, (_, m) in fitted.items() if k.startswith("latency")},
            "evolution": {"config": EvolutionConfig(seed=seed).identity() | {"generations": 30},
                          "limits": {"predicted_latency_ms": latency_limit, "params_m": params_limit},
                          "best_predicted_score": evo.best_score, "best_true_score": true_score(best),
                          "best_true_latency_ms": true_latency_ms(best, SEARCH_LENGTH),
                          # > 0: the search exploited the latency predictor's optimistic errors
                          "best_true_latency_over_limit_pct": 100 * (true_latency_ms(best, SEARCH_LENGTH)
                                                                     / latency_limit - 1),
                          "best_params_m": params_m(best), "best_constraint_values": evo.constraint_values,
                          "best_true_score_of_feasible_random_samples": max(feasible_random, default=None),
                          "feasible_random_samples": len(feasible_random),
                          "best_arch": best.to_dict(), "history_best": [h["best"] for h in evo.history]},
            "nsga2": {"population": 100, "generations": 30, "front_size": len(front),
                      "front": [values for _, values in front]},
            "machine": {"platform": platform.platform(), "python": sys.version.split()[0], "torch": torch.__version__,
                        "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        },
    }


def print_table(r: dict) -> None:
    d = r["details"]
    e = d["evolution"]
    print(f"search benchmark on {d['space']} ({d['samples']} samples, seed {d['seed']}); ground truth is SYNTHETIC")
    print(f"{'predictor (held-out)':<30}{'tau':>8}{'RMSE':>10}{'MAPE %':>10}{'fit s':>8}")
    rows = [("score, LightGBM", d["perf_predictor"])] + [
        (f"latency ms, {k.split('_')[1].upper()}{' (used)' if k == d['latency_predictor_used'] else ''}", m)
        for k, m in d["latency_predictors"].items()]
    for label, m in rows:
        h = m["held_out"]
        print(f"{label:<30}{h['kendall_tau']:>8.3f}{h['rmse']:>10.3f}{h['mape']:>10.2f}{m['fit_seconds']:>8.2f}")
    print(f"{'search':<40}{'seconds':>10}   result")
    print(f"{'evolution 30 gen x 125 (target <= 30 s)':<40}{r['evolution_seconds']:>10.2f}   "
          f"best true score {e['best_true_score']:.3f} (best feasible random sample "
          f"{e['best_true_score_of_feasible_random_samples']:.3f}); true latency {e['best_true_latency_ms']:.2f} ms, "
          f"limit {e['limits']['predicted_latency_ms']:.2f} ms on the prediction")
    print(f"{'NSGA-II 30 gen x 100':<40}{r['nsga2_seconds']:>10.2f}   Pareto front of {d['nsga2']['front_size']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="hat_wmt14", help="a translation search-space preset or YAML path")
    parser.add_argument("--samples", type=int, default=2000, help="architectures to fit the predictors on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.samples < 50:
        parser.error("--samples must be at least 50")
    result = run(args.space, args.samples, args.seed)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
