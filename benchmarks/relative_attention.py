"""Relative attention benchmark (issue 11): the fused CPU kernel against the PyTorch path and softmax SDPA.

    python benchmarks/relative_attention.py [--lengths 256 1024 4096] [--json PATH] [--repeats R]
                                            [--threads T] [--clock wall|oncpu|cpu]

Setting (as benchmarks/attention.py, whose input, timing and peak-memory helpers this imports):
B=1, H=8, head dim 64, fp32, torch.set_num_threads(2), the relative kind with its default
K = 16 (33 buckets), non-causal and causal self-attention. Variants:
- `fused`: `RelativeKernel` on its fused C++ kernel (mixnas/attention/fused_relative.py);
- `pytorch`: the same kernel under `reference_path()` (dense (B, H, N, N) scores, gather, scatter);
  skipped (recorded with `ms: null` and the reason) where its estimate from the previous length
  exceeds ~30 s per call or ~8 GB (time x^2, memory x^2);
- `sdpa`: the softmax kind (PyTorch's fused scaled_dot_product_attention; `is_causal` when causal).
`fwd`: forward on inputs without grad; `fwd_bwd`: forward on inputs that require grad, then
backward of the output's sum. `ms` / `min_ms`: median / fastest of R timed calls after a warm-up
(fewer when a call takes seconds); `peak_mb`: the peak of tensor bytes allocated during one pass
(torch profiler memory events; inputs not counted, their gradients counted). See attention.py.

`targets` in the JSON: fused fwd+bwd <= 2x softmax SDPA fwd+bwd at N=256 and N=1024 (non-causal
and causal), decided on medians (`measured_from_min`: the same from minima); and the memory
growth: the fused fwd+bwd peak against N, with the exponent of its growth between the shortest
and the longest length (O(N d + N buckets) memory: ~1), next to the PyTorch path's (~2).

On a machine shared with other jobs the 2-thread wall times include time lost waiting for a
core (every parallel region waits for its slower thread, and libgomp's threads spin while they
wait: OMP_WAIT_POLICY=passive helps); `--threads 1 --clock oncpu` leaves that out.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import attention as bench  # noqa: E402  (benchmarks/attention.py: inputs, timings_ms, peak_mb)

from mixnas.attention import build_kernel, fused_relative  # noqa: E402
from mixnas.cost.latency import CLOCKS, check_clock  # noqa: E402
from mixnas.fileio import write_json  # noqa: E402

VARIANTS = ("fused", "pytorch", "sdpa")
SPEED_GOAL, SPEED_LENGTHS = 2.0, (256, 1024)


def attention_fn(variant: str, causal: bool):
    """(q, k, v) -> out for one variant."""
    if variant == "sdpa":
        return bench.attention_fn("softmax", causal)
    kernel = build_kernel("relative", bench.HEAD_DIM)
    if variant == "fused":
        return lambda q, k, v: kernel(q, k, v, causal=causal)[0]

    def pytorch(q, k, v):
        with fused_relative.reference_path():
            return kernel(q, k, v, causal=causal)[0]
    return pytorch


def skip_reason(previous: dict | None, n: int) -> str | None:
    """The PyTorch path's (N, N) tensors: time and memory grow as N^2 from the previous length."""
    if previous is None:
        return None
    if previous["ms"] is None:
        return previous["skipped"]
    scale = (n / previous["n"]) ** 2
    if previous["ms"] / 1e3 * scale > bench.MAX_CALL_S:
        return f"estimated {previous['ms'] / 1e3 * scale:.0f} s per call > {bench.MAX_CALL_S:.0f} s"
    if previous["peak_mb"] * scale > bench.MAX_PEAK_MB:
        return f"estimated peak {previous['peak_mb'] * scale / 1024:.1f} GB > {bench.MAX_PEAK_MB / 1024:.0f} GB"
    return None


def measure(lengths: list[int], repeats: int) -> list[dict]:
    rows, last = [], {}
    print(f"{'variant':>8} {'mode':>6} {'N':>6} {'pass':>8} {'median ms':>11} {'min ms':>10} {'peak MB':>9}")
    for causal in (False, True):
        for variant in VARIANTS:
            fn = attention_fn(variant, causal)
            for n in sorted(lengths):
                for pass_name in ("fwd", "fwd_bwd"):
                    row = {"variant": variant, "causal": causal, "n": n, "pass": pass_name}
                    reason = skip_reason(last.get((variant, causal, pass_name)), n) if variant == "pytorch" else None
                    if reason:
                        row.update(ms=None, min_ms=None, peak_mb=None, skipped=reason)
                        print(f"{variant:>8} {'causal' if causal else 'full':>6} {n:>6} {pass_name:>8}   skipped: {reason}")
                    else:
                        qkv = bench.inputs(n, grad=pass_name == "fwd_bwd")
                        call = lambda: bench.run_pass(fn, qkv, pass_name)  # noqa: E731
                        peak = bench.peak_mb(call)
                        single_s = bench.timings_ms(call, 1)[0] / 1e3
                        ms, min_ms = bench.timings_ms(call, max(1, min(repeats, int(10 / max(single_s, 1e-4)))))
                        row.update(ms=round(ms, 3), min_ms=round(min_ms, 3), peak_mb=round(peak, 2))
                        print(f"{variant:>8} {'causal' if causal else 'full':>6} {n:>6} {pass_name:>8} {ms:>11.2f} "
                              f"{min_ms:>10.2f} {peak:>9.1f}", flush=True)
                    rows.append(row)
                    last[(variant, causal, pass_name)] = row
    return rows


def evaluate(rows: list[dict], lengths: list[int]) -> dict:
    get = {(r["variant"], r["causal"], r["n"], r["pass"]): r for r in rows if r["ms"] is not None}
    targets = []
    for causal in (False, True):
        for n in SPEED_LENGTHS:
            mine, sdpa = get.get(("fused", causal, n, "fwd_bwd")), get.get(("sdpa", causal, n, "fwd_bwd"))
            measured = None if not (mine and sdpa) else round(mine["ms"] / sdpa["ms"], 3)
            from_min = None if not (mine and sdpa) else round(mine["min_ms"] / sdpa["min_ms"], 3)
            targets.append({"target": f"relative fused fwd+bwd / softmax SDPA fwd+bwd, N={n}, "
                                      f"{'causal' if causal else 'non-causal'}",
                            "goal": f"<= {SPEED_GOAL}", "measured": measured, "measured_from_min": from_min,
                            "pass": None if measured is None else measured <= SPEED_GOAL})
    lo, hi = min(lengths), max(lengths)
    memory = {}
    for variant in VARIANTS:
        for causal in (False, True):
            peaks = {n: get[(variant, causal, n, "fwd_bwd")]["peak_mb"] for n in sorted(lengths)
                     if (variant, causal, n, "fwd_bwd") in get}
            exponent = (round(math.log(peaks[hi] / peaks[lo]) / math.log(hi / lo), 3)
                        if lo in peaks and hi in peaks and hi > lo and peaks[lo] > 0 else None)
            memory[f"{variant}/{'causal' if causal else 'full'}"] = {"peak_mb_by_n": peaks, "growth_exponent": exponent}
    for causal in (False, True):
        exponent = memory[f"fused/{'causal' if causal else 'full'}"]["growth_exponent"]
        targets.append({"target": f"relative fused fwd+bwd peak memory growth exponent N={lo} -> {hi}, "
                                  f"{'causal' if causal else 'non-causal'} (O(N d + N buckets): 1)",
                        "goal": "<= 1.1", "measured": exponent, "measured_from_min": None,
                        "pass": None if exponent is None else exponent <= 1.1})
    return {"targets": targets, "memory": memory}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (issue 11: 2)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="as in benchmarks/attention.py")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1 or min(args.lengths) < 1:
        parser.error("--repeats, --threads and --lengths must be >= 1")
    try:
        check_clock(args.clock, args.threads)
    except ValueError as e:
        parser.error(str(e))
    bench.clock = CLOCKS[args.clock]  # the clock of bench.timings_ms
    torch.set_num_threads(args.threads)
    reason = fused_relative.load_extension()
    if reason is not None:
        print(f"fused relative extension unavailable: {reason} (the `fused` rows run the PyTorch path)")
    machine = {"threads": args.threads, "clock": args.clock, "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    print(f"B={bench.BATCH} H={bench.HEADS} d={bench.HEAD_DIM} fp32, K=16, {args.threads} thread(s), {args.clock} clock; "
          f"1-min load average {machine['load_avg_1m']}")
    rows = measure(args.lengths, args.repeats)
    result = evaluate(rows, args.lengths)
    print(f"\npeak MB of fwd+bwd by N (growth exponent {min(args.lengths)} -> {max(args.lengths)}):")
    for key, entry in result["memory"].items():
        print(f"  {key:>15}: " + ", ".join(f"{n}: {mb}" for n, mb in entry["peak_mb_by_n"].items())
              + f"  (exponent {entry['growth_exponent']})")
    print(f"\ntargets (pass/miss on medians; load average now {os.getloadavg()[0]:.2f}):")
    for t in result["targets"]:
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t["pass"]]
        print(f"  {verdict} {t['target']}: {t['measured']} (from minima: {t['measured_from_min']}; goal {t['goal']})")
    if args.json:
        write_json(args.json, {"machine": machine, "rows": rows, "memory": result["memory"],
                               "targets": result["targets"], "extension_error": reason}, allow_nan=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
