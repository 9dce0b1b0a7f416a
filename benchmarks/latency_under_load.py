"""Latency under load: does measured latency (and a predictor fitted on it) survive a shared machine?

    python benchmarks/latency_under_load.py [--archs 40] [--runs R] [--warmup W] [--predictor mlp|gbdt]
                                            [--load-threads 2 8] [--image-size N] [--json PATH]

Setting: the first `--archs` architectures that `mixnas collect` draws for the digits pipeline
(`fixed_archs(space, seed, N, "collect")` of mixnas/families/vit/configs/pipelines/digits.yaml, tiny ViTs
on 8x8 images), each built with `build_model` and measured with `mixnas.cost.measure_latency`
(batch 1, one intra-op thread, the preset's collect.latency_runs / latency_warmup unless given).
Those runs take ~0.6 ms, shorter than a scheduler slice; `--image-size 48` builds the same
architectures for 48x48 inputs (~6 ms runs, interrupted in every run under load).

Phases over the same models:
- quiet: nothing started by this script runs beside the measurement (other users of the
  machine may; the 1-minute load average before each phase is recorded);
- loaded, once per `--load-threads` value (default 2 and 8): a second process runs a torch
  matmul loop (512 x 512 fp32) on that many threads for the whole phase; it stops itself after
  `--load-seconds` at the latest and is killed when the phase ends. 2 threads occupy both cores
  of a 2-core machine; 8 oversubscribe them, so the measuring thread is preempted in most runs.
In each phase every model is measured once per clock of mixnas.cost.latency ("oncpu": elapsed
time minus the measuring thread's waits for a CPU, "cpu": its CPU time, "wall": elapsed time),
the clocks one after the other per model; every statistic ("min", "median", "trimmed_mean") is
computed from the same timed runs.

Per load x clock x statistic the table reports:
- loaded / quiet: the median over architectures of (loaded latency / quiet latency), with the
  10th-90th percentile range: 1.00 means the number does not move when the machine is shared.
- MAPE quiet: held-out MAPE of a latency predictor fitted on quiet latencies and tested on quiet
  latencies of held-out architectures (the predictor's own error).
- MAPE loaded: the same predictors (fitted on quiet latencies) tested on the LOADED latencies of
  the held-out architectures: what happens when the collection, or the check of a prediction,
  runs on a shared machine.
The predictor is the pipeline's (`build_predictor(kind, {"log_target": True}, ...)` on
`space.encode(arch)`, as mixnas/pipeline/predict.py fits it); with few architectures every one is
held out once (5-fold cross-validation, seeded). Target: MAPE loaded <= 10% with the default
protocol (the `default` rows). The JSON records the machine (cores, a 1-thread 2048^3 fp32 matmul
in GFLOP/s, quiet and under load), every timed run, and the table.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from mixnas.fileio import write_json

from mixnas.cost.machine import matmul_gflops
from mixnas.cost.latency import CLOCKS, DEFAULT_STAT, STATS, default_clock, latency_statistic, measure_latency
from mixnas.models import build_model
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.scoring import build_task, fixed_archs, load_space
from mixnas.predictors import build_predictor, regression_metrics

TARGET_MAPE = 10.0
FOLDS = 5
# The load: a matmul loop on N threads that ends by itself after T seconds (argv: N T).
LOAD_CODE = """
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a = torch.randn(512, 512)
end = time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < end:
    a @ a
"""


class Load:
    """A busy-loop subprocess for the duration of a `with` block (killed on exit)."""

    def __init__(self, threads: int, seconds: float):
        self.threads, self.seconds, self.proc = threads, seconds, None

    def __enter__(self):
        env = dict(os.environ, OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        self.proc = subprocess.Popen([sys.executable, "-c", LOAD_CODE, str(self.threads), str(self.seconds)],
                                     stdout=subprocess.PIPE, text=True, env=env)
        if self.proc.stdout.readline().strip() != "ready":
            self.__exit__()
            raise RuntimeError("the load process did not start")
        time.sleep(0.5)  # let it reach full speed
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
            self.proc.stdout.close()
        return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def measure_phase(models, clocks, runs: int, warmup: int) -> dict[str, list[list[float]]]:
    """{clock: [timed runs of each model]}; the clocks alternate per model, so both see the same conditions."""
    out = {clock: [] for clock in clocks}
    for model in models:
        for clock in clocks:
            result = measure_latency(model, threads=1, clock=clock, warmup=warmup, runs=runs)
            out[clock].append(list(result.runs))
    return out


def folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(part) for part in np.array_split(order, k)]


def predictor_mapes(kind: str, names, X: np.ndarray, quiet: np.ndarray, loaded: np.ndarray,
                    seed: int) -> tuple[float, float]:
    """(MAPE on quiet, MAPE on loaded) of held-out archs, predictors fitted on quiet latencies."""
    predicted = np.empty(len(X))
    for test in folds(len(X), min(FOLDS, len(X)), seed):
        train = np.setdiff1d(np.arange(len(X)), test)
        predictor = build_predictor(kind, {"log_target": True}, feature_names=names, seed=seed)
        predictor.fit(X[train], quiet[train])
        predicted[test] = predictor.predict(X[test])
    return regression_metrics(quiet, predicted)["mape"], regression_metrics(loaded, predicted)["mape"]


def summary_rows(space, archs, quiet, loaded, load_threads: int, kind: str, seed: int) -> list[dict]:
    names = list(space.feature_names())
    X = np.array([space.encode(a) for a in archs], dtype=np.float64)
    default = (default_clock("cpu"), DEFAULT_STAT)
    rows = []
    for clock in quiet:
        for stat in STATS:
            q = np.array([latency_statistic(r, stat) for r in quiet[clock]])
            ld = np.array([latency_statistic(r, stat) for r in loaded[clock]])
            ratios = ld / q
            mape_quiet, mape_loaded = predictor_mapes(kind, names, X, q, ld, seed)
            rows.append({"load_threads": load_threads, "clock": clock, "stat": stat, "default": (clock, stat) == default,
                         "quiet_ms_median": round(float(np.median(q)), 4),
                         "loaded_ms_median": round(float(np.median(ld)), 4),
                         "ratio_median": round(float(np.median(ratios)), 3),
                         "ratio_p10": round(float(np.percentile(ratios, 10)), 3),
                         "ratio_p90": round(float(np.percentile(ratios, 90)), 3),
                         "mape_quiet": round(mape_quiet, 2), "mape_loaded": round(mape_loaded, 2),
                         "pass": bool(mape_loaded <= TARGET_MAPE)})
    return rows


def print_table(rows: list[dict], kind: str) -> None:
    print(f"\n{'load':>4} {'clock':>5} {'stat':>12} {'quiet ms':>9} {'loaded ms':>9} {'loaded/quiet [p10, p90]':>25} "
          f"{'MAPE quiet':>10} {'MAPE loaded':>11}   ({kind} predictor fitted on quiet latencies; load: threads "
          f"of the busy process)")
    for r in rows:
        mark = "  <- default" if r["default"] else ""
        print(f"{r['load_threads']:>4} {r['clock']:>5} {r['stat']:>12} {r['quiet_ms_median']:>9.3f} {r['loaded_ms_median']:>9.3f} "
              f"{r['ratio_median']:>8.2f} [{r['ratio_p10']:.2f}, {r['ratio_p90']:.2f}]      "
              f"{r['mape_quiet']:>9.1f}% {r['mape_loaded']:>10.1f}%{mark}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="digits", help="pipeline preset whose space and collect protocol are used")
    parser.add_argument("--archs", type=int, default=40, help="architectures measured (default 40)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default: the preset's)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs (default: the preset's)")
    parser.add_argument("--predictor", choices=("gbdt", "mlp"), default=None,
                        help="latency predictor (default: the preset's predictor.latency, HAT's MLP for digits)")
    parser.add_argument("--load-threads", type=int, nargs="+", default=[2, 8],
                        help="threads of the load process, one loaded phase per value (default 2 8)")
    parser.add_argument("--load-seconds", type=float, default=600.0,
                        help="the load process stops by itself after this long at the latest (default 600)")
    parser.add_argument("--seed", type=int, default=None, help="arch stream and fold seed (default: the preset's)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="build the models for this input size instead of the data's (longer runs)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    args.load_threads = list(dict.fromkeys(args.load_threads))
    if args.archs < FOLDS or min(args.load_threads) < 1:
        parser.error(f"--archs must be >= {FOLDS} and --load-threads >= 1")
    cfg = load_pipeline_config(args.preset)
    runs = args.runs or cfg.collect.latency_runs
    warmup = cfg.collect.latency_warmup if args.warmup is None else args.warmup
    seed = cfg.seed if args.seed is None else args.seed
    kind = args.predictor or cfg.predictor.latency
    torch.set_num_threads(1)
    task, space = build_task(cfg), load_space(cfg)
    model_config = task.model_config(cfg.model.config)
    if args.image_size:
        model_config = type(model_config).from_dict({**model_config.to_dict(), "image_size": args.image_size})
    archs = fixed_archs(space, seed, args.archs, "collect")
    torch.manual_seed(seed)
    models = [build_model(arch, model_config) for arch in archs]
    clocks = sorted(CLOCKS)

    machine = {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
               "matmul_gflops_1thread": round(matmul_gflops(2048), 1), "load_avg_1m_before_quiet": round(os.getloadavg()[0], 2)}
    print(f"{machine['cores']} cores; fp32 matmul 2048^3 on 1 thread: {machine['matmul_gflops_1thread']} GFLOP/s; "
          f"{len(archs)} {args.preset} archs ({model_config.image_size}x{model_config.image_size} inputs), {runs} timed "
          f"runs after {warmup} warm-up, 1 thread")
    start = time.perf_counter()
    quiet = measure_phase(models, clocks, runs, warmup)
    machine["quiet_seconds"] = round(time.perf_counter() - start, 1)
    print(f"quiet phase: {machine['quiet_seconds']} s")
    loaded, rows = {}, []
    for threads in args.load_threads:
        info = machine.setdefault("loaded", {}).setdefault(str(threads), {})
        info["load_avg_1m_before"] = round(os.getloadavg()[0], 2)
        with Load(threads, args.load_seconds) as load:
            info["matmul_gflops_1thread"] = round(matmul_gflops(2048), 1)
            start = time.perf_counter()
            loaded[threads] = measure_phase(models, clocks, runs, warmup)
            info["seconds"] = round(time.perf_counter() - start, 1)
            if not load.running():
                raise RuntimeError("the load process ended before the loaded phase did; raise --load-seconds")
        info["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
        print(f"loaded phase, {threads}-thread matmul loop beside: {info['seconds']} s (1-thread matmul under this "
              f"load: {info['matmul_gflops_1thread']} GFLOP/s; 1-min load average {info['load_avg_1m_after']})")
        rows += summary_rows(space, archs, quiet, loaded[threads], threads, kind, seed)
    print_table(rows, kind)
    print()
    for default in (r for r in rows if r["default"]):
        verdict = "PASS" if default["pass"] else "MISS"
        print(f"{verdict}: default protocol ({default['clock']} clock, {default['stat']}) beside a "
              f"{default['load_threads']}-thread load: MAPE {default['mape_loaded']:.1f}% (target <= {TARGET_MAPE:g}%), "
              f"loaded/quiet {default['ratio_median']:.2f}")
    if args.json:
        settings = {"preset": args.preset, "archs": len(archs), "image_size": model_config.image_size,
                    "runs": runs, "warmup": warmup, "threads": 1,
                    "predictor": kind, "folds": FOLDS, "seed": seed, "load_threads": args.load_threads}
        phases = [("quiet", quiet)] + [(f"loaded{t}", loaded[t]) for t in args.load_threads]
        measurements = [{"arch": a.to_dict(), **{f"{phase}_{clock}_runs_ms": [round(t, 5) for t in runs_[clock][i]]
                                                 for phase, runs_ in phases for clock in clocks}}
                        for i, a in enumerate(archs)]
        write_json(args.json, {"machine": machine, "settings": settings, "table": rows, "target_mape": TARGET_MAPE,
                       "measurements": measurements}, allow_nan=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
