"""Long-context prefill and decode speed and memory: softmax vs linear vs hybrid LMs, side by side.

    python benchmarks/long_context.py [--lengths 256 512 1024 2048 4096] [--models [NAME ...]]
                                      [--arch FILE ...] [--decode-batch 8] [--prefill-runs 5]
                                      [--decode-runs 20] [--no-memory] [--quick] [--json PATH]

Why: the case for linear attention, and for hybrids that keep a few softmax layers, is the long
context: a softmax layer's prefill grows as L^2 and its KV cache (what every decoding step
reads) as L, while a linear layer's running sums stay constant. FLOP counts (`mixnas cost`)
say so on paper; this measures, in one run on one machine, how much of it a CPU shows, per
model and per context length L, for the shapes the search would produce.

Models: a CPU-sized "shakespeare-long" decoder (6 layers, embed 256, 4 heads of 64, FFN 1024,
a 65-character vocabulary, context max(--lengths) + 1 so that the step at position L fits),
random seeded weights (speed does not depend on the values), one row per attention pattern:
all-softmax, all-cosformer, all-linear; fixed-1in2 and fixed-1in4: softmax in every k-th layer
counting from 1 (layers k, 2k, ...: 2, 4, 6 and 4), the others `linear` (Katharopoulos et al.'s
elu + 1 features, the linear layer softmax/linear hybrids usually start from; not cosformer); and
first-last-softmax (softmax in layers 1 and 6, linear between). `--arch FILE` adds an
architecture from an arch YAML (a preset name or an exported model's arch.yaml, as
`model.arch` accepts), named after the file, e.g. a searched hybrid. `--quick`: all-softmax
and all-linear at 2 layers, width 32, lengths 16 32, 2-3 runs (seconds; the smoke test's).

Per length L (every model measured at one length before the next, so machine noise hits all
models alike), per model:
- prefill: one causal forward `model(tokens)` of a batch-1 prompt of L tokens under
  torch.inference_mode; ms and tokens/s = L / time.
- decode: one incremental step `model.step(token, states, L)` at position L, the state of
  the L previous tokens built once, untimed (states are immutable, so timing the same step
  repeatedly is valid), at batch 1 and at --decode-batch (the batch-1 state repeated along the
  batch); ms per step and tokens/s = batch / time.
- state: bytes of one sequence's decoding state, analytic (`cost_report(...)[
  "decode_state_bytes"]` at seq_len=L, fp32); the benchmark asserts it equals the bytes of
  the state tensors it built (a correctness guard for the cost model).
- prefill peak MB: measured in a child process per (model, L) (this script re-run with
  --peak-child): it builds the model, runs one warm-up forward at a SHORT length (16 tokens,
  so libraries and buffers are loaded), reads its resident set (VmRSS of /proc/self/status),
  runs the L-token prefill and reports its resident high-water mark (VmHWM, KiB) minus that
  RSS. Just before, the mark is lowered to the current RSS (/proc/self/clear_refs), else a
  transient peak of the imports would hide a smaller prefill peak (high_water_mark_reset in
  the JSON). Not getrusage's ru_maxrss, the same mark otherwise: Linux carries the parent's
  RSS at fork into the child's ru_maxrss across exec, so a child of a large benchmark process
  would read the parent's size. RSS-based and approximate: it counts every page touched
  (allocator slack, thread stacks), not tensor bytes; a few MB of noise are normal.
  --no-memory skips it.
Timing follows mixnas.cost.latency: ONE intra-op thread (torch.set_num_threads(1)), the
"oncpu" clock (wall time minus the thread's waits for a CPU; "cpu" where Linux schedstat is not
kept), the minimum of --prefill-runs / --decode-runs timed runs after 1 / 2 warm-ups.
Tables: one per metric (rows = models, columns = lengths), then ratios to all-softmax (else the
first row) at the longest length. The JSON holds the machine (mixnas.cost.machine), settings,
protocol and every number per model per length, timed runs included.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from mixnas.cost import count_params
from mixnas.cost.latency import CLOCK_DESCRIPTIONS, check_clock, default_clock, time_ms
from mixnas.cost.machine import machine_info
from mixnas.experiment import resolve_arch
from mixnas.families import family_of
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.config import LMConfig
from mixnas.families.lm.model import LM
from mixnas.fileio import write_json
from mixnas.space import arch_from_dict

VOCAB = string.ascii_letters + string.digits + " .,"  # 65 distinct characters, as Tiny Shakespeare's
SHAPE = {"depth": 6, "embed_dim": 256, "heads": 4, "head_dim": 64, "ffn_dim": 1024}
QUICK_SHAPE = {"depth": 2, "embed_dim": 32, "heads": 2, "head_dim": 16, "ffn_dim": 64}
PATTERNS = ("all-softmax", "all-cosformer", "all-linear", "fixed-1in2", "fixed-1in4", "first-last-softmax")
QUICK_PATTERNS = ("all-softmax", "all-linear")
PREFILL_WARMUP, DECODE_WARMUP, PEAK_WARMUP_LEN = 1, 2, 16
REFERENCE = "all-softmax"


def pattern_kinds(pattern: str, depth: int) -> list[str]:
    """Attention kind of each layer (1-based i): fixed-1ink puts softmax at layers k, 2k, ..."""
    if pattern.startswith("all-"):
        return [pattern[4:]] * depth
    if pattern.startswith("fixed-1in"):
        k = int(pattern[len("fixed-1in"):])
        return ["softmax" if i % k == 0 else "linear" for i in range(1, depth + 1)]
    if pattern == "first-last-softmax":
        return ["softmax" if i in (1, depth) else "linear" for i in range(1, depth + 1)]
    raise ValueError(f"unknown pattern {pattern!r}")


def pattern_arch(pattern: str, shape: dict) -> LMArch:
    layers = tuple(LMLayerArch(shape["ffn_dim"], shape["heads"], kind)
                   for kind in pattern_kinds(pattern, shape["depth"]))
    return LMArch(shape["embed_dim"], layers, head_dim=shape["head_dim"])


def file_arch(path: str) -> tuple[str, LMArch]:
    arch = resolve_arch(path)
    if not isinstance(arch, LMArch):
        raise SystemExit(f"--arch {path}: expected a language-model (lm) architecture, got {type(arch).__name__}")
    return Path(path).stem, arch


def state_nbytes(states) -> int:
    """Bytes of every tensor the per-layer decoding states hold."""
    return sum(v.nbytes for st in states.layers for v in vars(st).values() if isinstance(v, torch.Tensor))


def repeat_batch(states, batch: int):
    """The batch-1 states repeated `batch` times along the batch dimension (every tensor field)."""
    def rep(st):
        return dataclasses.replace(st, **{k: v.repeat(batch, *[1] * (v.dim() - 1))
                                          for k, v in vars(st).items() if isinstance(v, torch.Tensor)})
    return dataclasses.replace(states, layers=tuple(rep(st) for st in states.layers))


def min_ms(fn, clock: str, warmup: int, runs: int) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    times = [time_ms(fn, clock) for _ in range(runs)]
    return min(times), [round(t, 4) for t in times]


def status_kib(field: str) -> int:
    """A KiB field of /proc/self/status: VmRSS (resident now), VmHWM (resident high-water mark)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_child(spec: dict) -> dict:
    """In a fresh process: resident high-water mark of one prefill over the RSS just before it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = LM(arch_from_dict(spec["arch"]), LMConfig.from_dict(spec["config"])).eval()
    with torch.inference_mode():
        model(torch.zeros(1, min(PEAK_WARMUP_LEN, spec["length"]), dtype=torch.long))
        tokens = torch.randint(0, model.config.vocab_size, (1, spec["length"]))
        reset = reset_high_water_mark()
        before = status_kib("VmRSS")
        model(tokens)
        peak = status_kib("VmHWM")
    return {"rss_before_kib": before, "hwm_kib": peak, "peak_mb": max(0, peak - before) / 1024,
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "high_water_mark_reset": reset}


def reset_high_water_mark() -> bool:
    """Lower the resident high-water mark (VmHWM) to the current RSS
    (Linux >= 4.0: write 5 to /proc/self/clear_refs), so that a transient peak of the imports
    cannot hide the prefill's; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak(arch: LMArch, config: LMConfig, length: int) -> dict:
    spec = json.dumps({"arch": arch.to_dict(), "config": config.to_dict(), "length": length})
    out = subprocess.run([sys.executable, __file__, "--peak-child", spec], capture_output=True, text=True,
                         check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"peak-memory child failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(model: LM, arch: LMArch, length: int, args, clock: str) -> dict:
    """Every number of one model at one context length (see the module docstring)."""
    family, config = family_of(arch), model.config
    gen = torch.Generator().manual_seed(length)
    tokens = torch.randint(0, config.vocab_size, (1, length + 1), generator=gen)
    prompt, last = tokens[:, :length], tokens[:, length:]
    row = {}
    with torch.inference_mode():
        ms, runs = min_ms(lambda: model(prompt), clock, PREFILL_WARMUP, args.prefill_runs)
        row.update(prefill_ms=round(ms, 4), prefill_tokens_per_s=round(length / ms * 1e3, 2), prefill_runs_ms=runs)
        _, states = model.step(prompt, None, 0)
        measured = state_nbytes(states)
        analytic = family.cost_report(arch, config, seq_len=length)["decode_state_bytes"]
        assert measured == analytic, f"state bytes {measured} != analytic {analytic} at L={length}"
        row.update(state_bytes=analytic, state_mb=round(analytic / 2**20, 4), decode={})
        for batch in sorted({1, args.decode_batch}):
            st, tok = repeat_batch(states, batch), last.repeat(batch, 1)
            ms, runs = min_ms(lambda: model.step(tok, st, length), clock, DECODE_WARMUP, args.decode_runs)
            row["decode"][str(batch)] = {"ms": round(ms, 4), "tokens_per_s": round(batch / ms * 1e3, 2),
                                         "runs_ms": runs}
    if not args.no_memory:
        peak = measure_peak(arch, config, length)
        row.update(prefill_peak_mb=round(peak["peak_mb"], 2), prefill_peak=peak)
    return row


def metrics(decode_batch: int, memory: bool) -> list[tuple[str, str, Callable]]:
    """(key, title, value of a result row) of each printed table."""
    out = [("prefill_tokens_per_s", "prefill tokens/s (batch 1)", lambda r: r["prefill_tokens_per_s"]),
           ("decode_tokens_per_s_b1", "decode tokens/s, batch 1", lambda r: r["decode"]["1"]["tokens_per_s"])]
    if decode_batch != 1:
        out.append(("decode_tokens_per_s_b", f"decode tokens/s, batch {decode_batch}",
                    lambda r: r["decode"][str(decode_batch)]["tokens_per_s"]))
    out.append(("state_mb", "decoding state MB per sequence", lambda r: r["state_mb"]))
    if memory:
        out.append(("prefill_peak_mb", "prefill peak MB (RSS, approximate)", lambda r: r["prefill_peak_mb"]))
    return out


def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def print_tables(results: dict, lengths: list[int], table_metrics) -> dict:
    """One table per metric; then each model's value / the reference's at the longest length."""
    names = list(results)
    width = max(len(n) for n in names + ["model"])
    for _, title, value in table_metrics:
        print(f"\n{title}\n{'model':<{width}}" + "".join(f"{f'L={n}':>11}" for n in lengths))
        for name in names:
            print(f"{name:<{width}}" + "".join(f"{fmt(value(results[name][str(n)])):>11}" for n in lengths))
    ref, longest = (REFERENCE if REFERENCE in results else names[0]), str(lengths[-1])
    ratios = {}
    for name in names:
        ratios[name] = {}
        for key, _, value in table_metrics:
            base = value(results[ref][longest])
            ratios[name][key] = round(value(results[name][longest]) / base, 4) if base else None
    keys = [k for k, _, _ in table_metrics]
    print(f"\nratio to {ref} at L={longest} (tokens/s: above 1 is faster; MB: below 1 is smaller)")
    print(f"{'model':<{width}}" + "".join(f"{k:>24}" for k in keys))
    for name in names:
        print(f"{name:<{width}}" + "".join(f"{'-' if ratios[name][k] is None else f'{ratios[name][k]:.3g}':>24}"
                                           for k in keys))
    return {"reference": ref, "length": int(longest), "values": ratios}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", help="context lengths (default 256 512 1024 2048 4096)")
    parser.add_argument("--models", nargs="*", choices=PATTERNS,
                        help="attention patterns (default: all six; `--models` alone: none, only the --arch models)")
    parser.add_argument("--arch", action="append", default=[], help="add an LM arch YAML / preset (repeatable)")
    parser.add_argument("--decode-batch", type=int, default=8, help="the second decode batch (default 8)")
    parser.add_argument("--prefill-runs", type=int, help="timed prefill runs (default 5; --quick 2)")
    parser.add_argument("--decode-runs", type=int, help="timed decode steps (default 20; --quick 3)")
    parser.add_argument("--no-memory", action="store_true", help="skip the prefill peak-memory children")
    parser.add_argument("--quick", action="store_true", help="two tiny models, lengths 16 32, few runs (seconds)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--peak-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        print(json.dumps(peak_child(json.loads(args.peak_child))))
        return 0
    lengths = sorted(set(args.lengths or ([16, 32] if args.quick else [256, 512, 1024, 2048, 4096])))
    args.prefill_runs = args.prefill_runs or (2 if args.quick else 5)
    args.decode_runs = args.decode_runs or (3 if args.quick else 20)
    if min(lengths) < 1 or min(args.decode_batch, args.prefill_runs, args.decode_runs) < 1:
        parser.error("--lengths, --decode-batch and the run counts must be >= 1")
    shape = QUICK_SHAPE if args.quick else SHAPE
    patterns = args.models if args.models is not None else (QUICK_PATTERNS if args.quick else PATTERNS)
    archs = [(p, pattern_arch(p, shape)) for p in patterns] + [file_arch(path) for path in args.arch]
    if not archs:
        parser.error("no models: name patterns with --models or add architectures with --arch")
    if len({name for name, _ in archs}) != len(archs):
        parser.error("two models share a name (--arch files are named after their stem)")
    torch.set_num_threads(1)
    clock = default_clock("cpu")
    check_clock(clock, 1, "cpu")
    config = LMConfig(vocab=VOCAB, context=lengths[-1] + 1)
    machine = machine_info()
    print(f"{machine['cpu_count']} cores ({machine['cpu_model']}); 1-thread fp32 matmul: "
          f"{machine['matmul_gflops_1_thread']} GFLOP/s; torch {machine['torch']}; clock {clock}")
    models = {}
    for index, (name, arch) in enumerate(archs):
        torch.manual_seed(index)
        models[name] = LM(arch, config).eval()
    results, start = {name: {} for name in models}, time.monotonic()
    for length in lengths:  # interleaved: every model at one length before the next length
        for name, arch in archs:
            row = measure(models[name], arch, length, args, clock)
            results[name][str(length)] = row
            print(f"L={length:<6} {name:<20} prefill {row['prefill_ms']:9.2f} ms  decode "
                  + "  ".join(f"b{b} {d['ms']:.3f} ms" for b, d in row["decode"].items())
                  + (f"  peak {row['prefill_peak_mb']:.1f} MB" if "prefill_peak_mb" in row else ""), flush=True)
    ratios = print_tables(results, lengths, metrics(args.decode_batch, not args.no_memory))
    seconds = round(time.monotonic() - start, 1)
    print(f"{len(archs)} models x {len(lengths)} lengths in {seconds} s")
    if args.json:
        protocol = {"threads": 1, "clock": clock, "clock_description": CLOCK_DESCRIPTIONS[clock], "stat": "min",
                    "prefill": {"workload": "model(tokens), batch 1, L tokens, inference_mode",
                                "warmup": PREFILL_WARMUP, "runs": args.prefill_runs},
                    "decode": {"workload": "model.step(token, states of L tokens, position L)",
                               "batches": sorted({1, args.decode_batch}), "warmup": DECODE_WARMUP,
                               "runs": args.decode_runs},
                    "state": "analytic fp32 decode_state_bytes at seq_len=L, asserted equal to the built tensors",
                    "prefill_peak": None if args.no_memory else
                    f"child process: VmHWM - VmRSS before the prefill, after a {PEAK_WARMUP_LEN}-token warm-up "
                    f"(RSS-based, approximate)",
                    "order": "per length, every model"}
        write_json(args.json, {
            "machine": machine,
            "settings": {"lengths": lengths, "decode_batch": args.decode_batch, "prefill_runs": args.prefill_runs,
                         "decode_runs": args.decode_runs, "quick": args.quick, "memory": not args.no_memory,
                         "shape": shape, "config": config.to_dict(), "seconds": seconds},
            "protocol": protocol,
            "models": {name: {"arch": arch.to_dict(), "attention": [x.attention for x in arch.layers],
                              "params": count_params(arch, config)} for name, arch in archs},
            "results": results, "ratios": ratios})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
