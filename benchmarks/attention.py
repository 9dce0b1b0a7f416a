"""Attention kernel benchmark (issue 2): time, peak memory, decoding and achieved GFLOP/s.

    python benchmarks/attention.py [--lengths 256 1024 4096 8192] [--json PATH] [--repeats R]
    python benchmarks/attention.py --fused-compare [--json PATH]   # issue 11, see fused_comparison

Setting: B=1, H=8, head dim 64, fp32, torch.set_num_threads(2) (--threads), every registered kind,
non-causal and causal self-attention, plus the baseline kind `cosformer_cumsum_reference`
(causal cosFormer through the (N, 2d, d) cumulative-sum form of the reference code).

- The linear kinds' rows (non-causal and causal) use the fused C++ kernels when they build
  (issue 11; MIXNAS_FUSED=0: the PyTorch feature path); `--fused-compare` measures both side by side.
- `fwd`: the kernel's forward on inputs that do not require grad (inference forward).
- `fwd_bwd`: forward on inputs that require grad, then backward of the output's sum.
- `ms`: median wall time over R timed calls after one warm-up call (fewer calls when one
  call takes seconds); `min_ms`: the fastest of them. On a machine shared with other jobs
  both include time lost waiting for a core (with 2 threads, every parallel region waits
  for the slower thread); `--threads 1 --clock oncpu` (wall time minus the thread's waits for
  a CPU) or `--clock cpu` (the thread's CPU time), mixnas.cost.latency's clocks, leave that out
  and give usable ratios under load (not the issue's protocol).
- `peak_mb`: torch has no peak-memory counter on CPU, so the pass is re-run once under
  `torch.profiler.profile(profile_memory=True)`. The profiler records every allocation and
  free of the CPU allocator as a `[memory]` event with a signed byte count; sorted by time, a
  running sum of those events is the memory held by tensors created during the pass, and its
  maximum is the peak. The inputs q, k, v (allocated before the pass) are not counted; the
  gradients of q, k, v written by backward are. This counts tensor bytes only (not allocator
  slack or the Python heap), the same way for every kind.
- Combinations that would take more than ~30 s per call or more than ~8 GB are skipped and
  recorded with `ms: null` and a `skipped` reason. The estimate extrapolates the previous
  length's measurement by the length ratio x: time by x^2 for softmax and relative, x for the
  linear forms and the reference; memory by x^2 for relative's explicit (N, N) scores, x
  otherwise. The first length uses an analytic bound.
- Decode: one MultiheadAttention (E=512, H=8) causal self-attention step, given the state
  after `position` tokens; median over many steps (the state is immutable, so each step
  starts from the same one).
- Matmul GFLOP/s: a 2048 x 2048 fp32 matmul (2 n^3 flops). Cosformer's achieved GFLOP/s: the
  analytic flop count of its non-causal forward (see `cosformer_forward_flops`) / its time.

The `targets` section of the JSON evaluates each target of issue 2 on the ratios of this run:
`measured` from medians (decides pass), `measured_from_min` from minima.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys

import torch

from mixnas.fileio import write_json
from torch.profiler import ProfilerActivity, profile

from mixnas.attention import build_kernel, get_spec, kinds
from mixnas.attention.functional import causal_linear_attention_cumsum, cosformer_features
from mixnas.cost.latency import CLOCKS, check_clock

BATCH, HEADS, HEAD_DIM = 1, 8, 64
clock = CLOCKS["wall"]  # nanosecond counter, set by --clock
REFERENCE = "cosformer_cumsum_reference"
MAX_CALL_S, MAX_PEAK_MB = 30.0, 8192.0
COSFORMER_MAX_LEN = 8192  # M must exceed the longest position benchmarked


# --------------------------------------------------------------------------- what is run
def attention_fn(kind: str, causal: bool):
    """A function (q, k, v) -> out for one kind and mode."""
    if kind == REFERENCE:
        kernel = build_kernel("cosformer", HEAD_DIM, max_len=COSFORMER_MAX_LEN)

        def reference(q, k, v):
            pos = torch.arange(q.shape[2])
            qf, kf = cosformer_features(q, pos, kernel.max_len), cosformer_features(k, pos, kernel.max_len)
            return causal_linear_attention_cumsum(qf, kf, v, kernel.eps)
        return reference
    opts = {"max_len": COSFORMER_MAX_LEN} if kind == "cosformer" else {}
    kernel = build_kernel(kind, HEAD_DIM, **opts)
    return lambda q, k, v: kernel(q, k, v, causal=causal)[0]


def inputs(n: int, grad: bool):
    gen = torch.Generator().manual_seed(n)
    return [torch.randn(BATCH, HEADS, n, HEAD_DIM, generator=gen).requires_grad_(grad) for _ in range(3)]


def run_pass(fn, qkv, pass_name: str):
    if pass_name == "fwd":
        with torch.no_grad():
            fn(*qkv)
        return
    for t in qkv:
        t.grad = None
    fn(*qkv).sum().backward()


# --------------------------------------------------------------------------- measurement
def timings_ms(call, repeats: int) -> tuple[float, float]:
    """(median, minimum) ms on `clock` of `repeats` calls after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = clock()
        call()
        times.append((clock() - start) / 1e6)
    return statistics.median(times), min(times)


def peak_mb(call) -> float:
    """Peak bytes held by tensors allocated during `call` (running sum of profiler memory events)."""
    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak / 2**20


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ backend prints a line on stderr at every start and stop; hide them."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quadratic_memory(kind: str) -> bool:
    """An explicit (N, N) score matrix (relative); softmax's fused kernel keeps memory O(N)."""
    return kind not in (REFERENCE, "softmax") and not get_spec(kind).linear_complexity


def analytic_peak_mb(kind: str, n: int) -> float:
    """Upper-bound guess used only when no smaller length was measured first."""
    if kind == REFERENCE:  # a few (B, H, N, 2d, d) tensors
        return 4 * BATCH * HEADS * n * 2 * HEAD_DIM * HEAD_DIM * 4 / 2**20
    if quadratic_memory(kind):  # a few (B, H, N, N) tensors
        return 6 * BATCH * HEADS * n * n * 4 / 2**20
    return 64 * BATCH * HEADS * n * HEAD_DIM * 4 / 2**20


def skip_reason(kind: str, n: int, previous: dict | None) -> str | None:
    if previous is not None and previous.get("ms") is not None:
        scale = n / previous["n"]
        time_exp = 1 if (kind == REFERENCE or get_spec(kind).linear_complexity) else 2
        est_s = previous["ms"] / 1e3 * scale ** time_exp
        est_mb = previous["peak_mb"] * scale ** (2 if quadratic_memory(kind) else 1)
    elif previous is not None:  # a smaller length was already skipped
        return previous["skipped"]
    else:
        est_s, est_mb = 0.0, analytic_peak_mb(kind, n)
    if est_s > MAX_CALL_S:
        return f"estimated {est_s:.0f} s per call > {MAX_CALL_S:.0f} s"
    if est_mb > MAX_PEAK_MB:
        return f"estimated peak {est_mb / 1024:.1f} GB > {MAX_PEAK_MB / 1024:.0f} GB"
    return None


def kernel_results(lengths: list[int], repeats: int) -> list[dict]:
    combos = [(kind, causal) for kind in kinds() for causal in (False, True)] + [(REFERENCE, True)]
    results, last = [], {}
    for kind, causal in combos:
        fn = attention_fn(kind, causal)
        for n in sorted(lengths):
            for pass_name in ("fwd", "fwd_bwd"):
                row = {"kind": kind, "causal": causal, "n": n, "pass": pass_name}
                reason = skip_reason(kind, n, last.get((kind, causal, pass_name)))
                if reason:
                    row.update(ms=None, min_ms=None, peak_mb=None, skipped=reason)
                else:
                    qkv = inputs(n, grad=pass_name == "fwd_bwd")
                    call = lambda: run_pass(fn, qkv, pass_name)  # noqa: E731
                    row["peak_mb"] = round(peak_mb(call), 2)  # also serves as the warm-up
                    single_s = timings_ms(call, 1)[0] / 1e3
                    ms, min_ms = timings_ms(call, max(1, min(repeats, int(20 / max(single_s, 1e-4)))))
                    row.update(ms=round(ms, 3), min_ms=round(min_ms, 3))
                    del qkv
                last[(kind, causal, pass_name)] = row
                results.append(row)
                print(format_row(row), flush=True)
    return results


def format_row(row: dict) -> str:
    mode = "causal" if row["causal"] else "full"
    if row["ms"] is None:
        return f"{row['kind']:>28} {mode:>6} {row['n']:>6} {row['pass']:>8}   skipped: {row['skipped']}"
    return (f"{row['kind']:>28} {mode:>6} {row['n']:>6} {row['pass']:>8} {row['ms']:>11.2f} ms "
            f"{row['min_ms']:>11.2f} ms {row['peak_mb']:>10.1f} MB")


def decode_results(positions=(10, 100, 1000), steps: int = 200) -> list[dict]:
    out = []
    torch.manual_seed(0)
    for kind in ("cosformer", "softmax"):
        attn = build_mha(kind).eval()
        for position in positions:
            with torch.no_grad():
                _, state = attn(torch.randn(1, position, 512), causal=True, return_state=True)
                x = torch.randn(1, 1, 512)
                ms, min_ms = timings_ms(lambda: attn(x, causal=True, state=state), steps)
            out.append({"kind": kind, "position": position, "ms": round(ms, 4), "min_ms": round(min_ms, 4)})
            print(f"{'decode ' + kind:>28} position {position:>5} {ms:>9.4f} ms/step (min {min_ms:.4f})", flush=True)
    return out


def build_mha(kind: str):
    from mixnas.attention import MultiheadAttention
    return MultiheadAttention(512, 8, kind)


def cosformer_forward_flops(n: int) -> float:
    """Multiply-adds x 2 of the non-causal forward: phi(k)^T v (N x 2d x d), phi(q) (kv)
    (N x 2d x d), phi(q) . z (N x 2d), sum of phi(k) (N x 2d); feature maps not counted."""
    feat = 2 * HEAD_DIM
    per_head = 2 * n * feat * HEAD_DIM * 2 + 2 * n * feat + n * feat
    return BATCH * HEADS * per_head


# --------------------------------------------------------------------------- targets of issue 2
def find(results, kind, causal, n, pass_name):
    for row in results:
        if (row["kind"], row["causal"], row["n"], row["pass"]) == (kind, causal, n, pass_name):
            return row if row["ms"] is not None else None
    return None


def evaluate_targets(results, decode, machine, stat: str) -> list[dict]:
    """Each target of issue 2 on one statistic: "ms" (median, the issue's protocol) or
    "min_ms" (fastest run, less sensitive to other processes on a shared machine)."""
    def ratio(a, b, key):
        return None if a is None or b is None else a[key] / b[key]

    def row(kind, causal, n, pass_name="fwd_bwd"):
        return find(results, kind, causal, n, pass_name)

    small, big = row("cosformer", False, 1024), row("cosformer", False, 8192)
    exponent = None if small is None or big is None else math.log(big[stat] / small[stat]) / math.log(8)
    steps = {(d["kind"], d["position"]): d[stat] for d in decode}
    decode_ratio = (steps[("cosformer", 1000)] / steps[("cosformer", 10)]
                    if ("cosformer", 1000) in steps and ("cosformer", 10) in steps else None)
    fwd = row("cosformer", False, 8192, "fwd")
    matmul = machine["matmul_gflops" if stat == "ms" else "matmul_gflops_best"]
    share = None if fwd is None else cosformer_forward_flops(8192) / (fwd[stat] / 1e3) / 1e9 / matmul
    full, causal = (row("cosformer", False, 4096), row("softmax", False, 4096)), row("cosformer", True, 4096)
    return [
        ("non-causal fwd+bwd N=4096: softmax time / cosformer time", ratio(full[1], full[0], stat), ">=", 10),
        ("non-causal fwd+bwd N=4096: cosformer peak / softmax peak", ratio(full[0], full[1], "peak_mb"), "<=", 0.125),
        ("non-causal cosformer fwd+bwd time exponent N=1024 -> 8192", exponent, "<=", 1.15),
        ("causal fwd+bwd N=4096: cumsum reference time / cosformer time",
         ratio(row(REFERENCE, True, 4096), causal, stat), ">=", 5),
        ("causal fwd+bwd N=4096: cosformer peak / cumsum reference peak",
         ratio(causal, row(REFERENCE, True, 4096), "peak_mb"), "<=", 0.1),
        ("causal fwd+bwd N=4096: softmax time / cosformer time", ratio(row("softmax", True, 4096), causal, stat),
         ">=", 4),
        ("cosformer decode step: position 1000 / position 10", decode_ratio, "<=", 1.2),
        ("non-causal cosformer fwd N=8192: achieved / matmul GFLOP/s", share, ">=", 0.4),
    ]


def target_table(results, decode, machine) -> list[dict]:
    table = []
    by_median, by_min = evaluate_targets(results, decode, machine, "ms"), evaluate_targets(results, decode, machine, "min_ms")
    for (name, measured, op, goal), (_, measured_min, _, _) in zip(by_median, by_min):
        ok = None if measured is None else (measured >= goal if op == ">=" else measured <= goal)
        table.append({"target": name, "goal": f"{op} {goal}", "measured": _round(measured),
                      "measured_from_min": _round(measured_min), "pass": ok})
    return table


def _round(x):
    return None if x is None else round(x, 3)


# --------------------------------------------------------------------------- issue 11: fused kernel
def fused_comparison(lengths: list[int], repeats: int, machine: dict) -> dict:
    """cosFormer through the fused C++ kernels ("fused") and the PyTorch feature path ("pytorch",
    MIXNAS_FUSED=0), non-causal and causal, fwd and fwd_bwd at each length, side by side, plus
    softmax (fused SDPA, `is_causal=True` when causal) at 4096 for the time and memory ratios;
    the same protocol as the main table. `targets`: issue 11's goals on this run's ratios."""
    from mixnas.attention import fused
    reason = fused.load_extension()
    if reason is not None:
        print(f"fused extension unavailable: {reason}")
    rows, saved = [], os.environ.get("MIXNAS_FUSED")
    variants = [("fused", "cosformer", "1"), ("pytorch", "cosformer", "0"), ("sdpa", "softmax", "1")]
    for causal in (False, True):
        for n in sorted(lengths):
            for variant, kind, setting in variants:
                if variant == "sdpa" and n != 4096:
                    continue
                fn = attention_fn(kind, causal)
                for pass_name in ("fwd", "fwd_bwd"):
                    qkv = inputs(n, grad=pass_name == "fwd_bwd")
                    os.environ["MIXNAS_FUSED"] = setting  # read at every call by mixnas.attention.fused
                    call = lambda: run_pass(fn, qkv, pass_name)  # noqa: E731
                    peak = peak_mb(call)
                    single_s = timings_ms(call, 1)[0] / 1e3
                    ms, min_ms = timings_ms(call, max(1, min(repeats, int(10 / max(single_s, 1e-4)))))
                    row = {"variant": variant, "causal": causal, "n": n, "pass": pass_name, "ms": round(ms, 3),
                           "min_ms": round(min_ms, 3), "peak_mb": round(peak, 2)}
                    rows.append(row)
                    print(f"{variant:>8} {'causal' if causal else 'full':>6} {n:>6} {pass_name:>8} {ms:>10.2f} ms "
                          f"{min_ms:>10.2f} ms {peak:>9.1f} MB", flush=True)
    os.environ.pop("MIXNAS_FUSED") if saved is None else os.environ.update(MIXNAS_FUSED=saved)
    get = {(r["variant"], r["causal"], r["n"], r["pass"]): r for r in rows}
    summary = {}
    for variant in ("fused", "pytorch"):
        for stat in ("ms", "min_ms"):
            small, big = get.get((variant, False, 1024, "fwd_bwd")), get.get((variant, False, 8192, "fwd_bwd"))
            fwd = get.get((variant, False, 8192, "fwd"))
            matmul = machine["matmul_gflops" if stat == "ms" else "matmul_gflops_best"]
            entry = {"time_exponent_1024_8192": None if not (small and big) else
                     _round(math.log(big[stat] / small[stat]) / math.log(8)),
                     "fwd_8192_share_of_matmul": None if not fwd else
                     _round(cosformer_forward_flops(8192) / (fwd[stat] / 1e3) / 1e9 / matmul)}
            for causal, mode in ((False, "full"), (True, "causal")):
                mine, sdpa = get.get((variant, causal, 4096, "fwd_bwd")), get.get(("sdpa", causal, 4096, "fwd_bwd"))
                both = mine is not None and sdpa is not None
                entry[f"{mode}_sdpa_time_over_mine_4096"] = _round(sdpa[stat] / mine[stat]) if both else None
                entry[f"{mode}_peak_4096_vs_sdpa"] = _round(mine["peak_mb"] / sdpa["peak_mb"]) if both else None
            summary[f"{variant}/{stat}"] = entry
    print("\nissue 11 goals: non-causal exponent <= 1.10, fwd share of matmul >= 0.40; fwd+bwd at N=4096: "
          "causal SDPA time / causal cosFormer >= 8, peak vs SDPA <= 1.25")
    for key, values in summary.items():
        print(f"  {key:>16}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    targets = []
    for name, key, op, goal in [
            ("causal cosFormer fwd+bwd >= 8x causal SDPA at N=4096", "causal_sdpa_time_over_mine_4096", ">=", 8),
            ("cosFormer fwd+bwd peak memory <= 1.25x fused SDPA at N=4096, non-causal", "full_peak_4096_vs_sdpa",
             "<=", 1.25),
            ("cosFormer fwd+bwd peak memory <= 1.25x fused SDPA at N=4096, causal", "causal_peak_4096_vs_sdpa",
             "<=", 1.25)]:
        measured, from_min = summary["fused/ms"][key], summary["fused/min_ms"][key]
        ok = None if measured is None else (measured >= goal if op == ">=" else measured <= goal)
        targets.append({"target": name, "goal": f"{op} {goal}", "measured": measured, "measured_from_min": from_min,
                        "pass": ok})
        print(f"  {dict([(True, 'PASS'), (False, 'MISS'), (None, 'n/a ')])[ok]} {name}: {measured} "
              f"(from minima: {from_min})")
    return {"rows": rows, "summary": summary, "targets": targets, "extension_error": reason}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", help="default 256 1024 4096 8192 "
                        "(--fused-compare: 1024 2048 4096 8192)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (issue 2: 2)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall: elapsed time (issue 2). oncpu / cpu (need --threads 1): elapsed time minus "
                             "the thread's waits for a CPU / its CPU time, for a machine shared with other jobs")
    parser.add_argument("--fused-compare", action="store_true",
                        help="issue 11: only fused vs PyTorch cosFormer, non-causal and causal (default lengths 1024..8192)")
    args = parser.parse_args(argv)
    if args.lengths is None:
        args.lengths = [1024, 2048, 4096, 8192] if args.fused_compare else [256, 1024, 4096, 8192]
    if any(n < 1 or n > COSFORMER_MAX_LEN for n in args.lengths):
        parser.error(f"--lengths must lie in [1, {COSFORMER_MAX_LEN}]")
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    try:
        check_clock(args.clock, args.threads)
    except ValueError as e:
        parser.error(str(e))
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    matmul_ms, matmul_best_ms = timings_ms(lambda: a @ b, 10)
    machine = {"threads": args.threads, "clock": args.clock, "matmul_gflops": round(2 * 2048**3 / matmul_ms / 1e6, 1),
               "matmul_gflops_best": round(2 * 2048**3 / matmul_best_ms / 1e6, 1), "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(f"fp32 matmul 2048^3 on {args.threads} thread(s), {args.clock} clock: {machine['matmul_gflops']} GFLOP/s (median), "
          f"{machine['matmul_gflops_best']} (best); 1-min load average {machine['load_avg_1m']}")
    if args.fused_compare:
        comparison = fused_comparison(args.lengths, args.repeats, machine)
        if args.json:
            write_json(args.json, {"machine": machine, "fused_compare": comparison, "targets": comparison["targets"]},
                       allow_nan=True)
            print(f"wrote {args.json}")
        return 0
    print(f"{'kind':>28} {'mode':>6} {'N':>6} {'pass':>8} {'median':>14} {'min':>14} {'peak':>13}")
    results = kernel_results(args.lengths, args.repeats)
    decode = decode_results()
    achieved = []
    for n in sorted(args.lengths)[-1:]:
        fwd = find(results, "cosformer", False, n, "fwd")
        if fwd is not None:
            flops = cosformer_forward_flops(n)
            achieved.append({"kind": "cosformer", "causal": False, "n": n, "pass": "fwd",
                             "gflops": round(flops / fwd["ms"] / 1e6, 1), "gflops_best": round(flops / fwd["min_ms"] / 1e6, 1)})
            print(f"cosformer non-causal forward N={n}: {achieved[-1]['gflops']} GFLOP/s (median), "
                  f"{achieved[-1]['gflops_best']} (best)")
    targets = target_table(results, decode, machine)
    print(f"\ntargets of issue 2 (pass/miss on medians; load average now {os.getloadavg()[0]:.2f}):")
    for t in targets:
        verdict = {True: "PASS", False: "MISS", None: "n/a "}[t["pass"]]
        print(f"  {verdict} {t['target']}: {t['measured']} (from minima: {t['measured_from_min']}; goal {t['goal']})")
    if args.json:
        write_json(args.json, {"machine": machine, "results": results, "decode": decode, "achieved_gflops": achieved,
                       "targets": targets}, allow_nan=True)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
