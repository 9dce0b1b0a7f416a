"""`mixnas cost MODEL_DIR`: parameters, FLOPs and (optionally) measured latency of a model.

MODEL_DIR is an exported model (arch.yaml + model.pt, see mixnas/models/io.py).
"""
from __future__ import annotations

import argparse
from typing import Any

from mixnas.families import family_of
from mixnas.fileio import write_json
from mixnas.models import load_model
from mixnas.models.io import model_directory

from .latency import CLOCKS, DEFAULT_RUNTIME, DEFAULT_STAT, RUNTIMES, STATS, describe_protocol, measure_latency
from .params import count_params


def cost_report(arch, config, *, latency: bool = False, model=None, options: dict[str, int] | None = None,
                **latency_kwargs: Any) -> dict[str, Any]:
    """Everything `mixnas cost` prints, as a dict: params, then the family's FLOPs entries at
    `options` (its `cost_options`: lengths, beam...). Latency is measured on `model`, or on a
    freshly built one (weights do not change it), with the same options."""
    family = family_of(arch)
    options = dict(options or {})
    report: dict[str, Any] = {
        "params": count_params(arch, config),
        "params_without_embeddings": count_params(arch, config, include_embeddings=False),
        **family.cost_report(arch, config, **options),
    }
    if latency:
        built = model if model is not None else family.build_model(arch, config)
        result = measure_latency(built, **latency_kwargs, **options)
        # latency_ms: the protocol's statistic; latency_std_ms: spread of the trimmed runs
        report.update(latency_ms=result.ms, latency_std_ms=result.ms_std, latency_protocol=result.protocol)
    return report


def parse_options(items: list[str], aliases: dict[str, int | None]) -> dict[str, int]:
    """`--option name=value` items (integers) plus the named flags that were given."""
    options = {k: v for k, v in aliases.items() if v is not None}
    for item in items:
        key, sep, raw = item.partition("=")
        try:
            value = int(raw)
        except ValueError:
            value = None
        if not sep or not key or value is None:
            raise ValueError(f"--option {item!r} must look like name=integer, e.g. --option src_len=50")
        options[key] = value
    return options


def scaled(count: int) -> str:
    """A count with three significant digits and a unit: 41,234 -> '41.2k', 3.09e9 -> '3.09G'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(count) >= size:
            return f"{count / size:.3g}{unit}"
    return str(count)


def run(args: argparse.Namespace) -> int:
    model = load_model(model_directory(args.model))  # a model directory or the run directory holding it
    arch, config = model.arch, model.config
    options = parse_options(args.option, {"src_len": args.src_len, "tgt_len": args.tgt_len, "beam": args.beam})
    settings = dict(latency=args.latency, model=model, device=args.device, threads=args.threads, clock=args.clock,
                    stat=args.stat, warmup=args.warmup, runs=args.runs, runtime=args.runtime)
    if args.lengths:
        family = family_of(arch)
        reports = {str(n): cost_report(arch, config, options=family.at_length(options, n), **settings)
                   for n in parse_lengths(args.lengths)}
        print_length_table(reports)
        result: dict[str, Any] = {"by_length": reports}
    else:
        result = cost_report(arch, config, options=options, **settings)
        for key, value in result.items():
            if key != "latency_protocol":
                print(f"{key:34s} {shown(key, value)}")
    protocol = result.get("latency_protocol") or next(iter(result.get("by_length", {}).values()), {}).get("latency_protocol")
    if protocol:
        print(f"{'latency measured as':34s} {describe_protocol(protocol)}")
    if args.json:
        write_json(args.json, result)
    return 0


def shown(key: str, value: Any) -> str:
    """Exact counts with thousands separators and a short form; bytes with B."""
    if key.startswith("params") or "flops" in key:
        return f"{value:,} ({scaled(value)})"
    if key.endswith("_bytes"):
        return f"{value:,} ({scaled(value)}B)"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def parse_lengths(text: str) -> list[int]:
    """'256,1024,4096' -> [256, 1024, 4096]."""
    try:
        lengths = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        lengths = []
    if not lengths or min(lengths) < 1:
        raise ValueError(f"--lengths {text!r} must be positive integers separated by commas, e.g. 256,1024,4096")
    return lengths


LENGTH_COLUMNS = ("flops", "decode_flops", "decode_state_bytes", "latency_ms")


def print_length_table(reports: dict[str, dict[str, Any]]) -> None:
    """One row per length: forward FLOPs, decoding FLOPs, decoding-state bytes, latency."""
    columns = [c for c in LENGTH_COLUMNS if any(c in r for r in reports.values())]
    print(f"{'length':>8s} " + " ".join(f"{c:>20s}" for c in columns))
    for length, report in reports.items():
        cells = [(f"{report[c]:.3f}" if c == "latency_ms" else f"{report[c]:,}") if c in report else "-"
                 for c in columns]
        print(f"{length:>8s} " + " ".join(f"{cell:>20s}" for cell in cells))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cost", help="parameters, FLOPs and latency of an exported model",
                              description=__doc__.splitlines()[0])
    p.add_argument("model", help="directory of an exported model (arch.yaml + model.pt), or the training run "
                                 "directory holding it in model/")
    p.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                   help="a cost option of the model's family (sequence lengths, beam...; translation: src_len, "
                        "tgt_len, beam, default 30/30/4); repeatable")
    p.add_argument("--src-len", type=int, default=None, help="translation: source length (= --option src_len=N)")
    p.add_argument("--tgt-len", type=int, default=None, help="translation: target length / decoder steps")
    p.add_argument("--beam", type=int, default=None, help="translation: beam of the decoding FLOPs and latency")
    p.add_argument("--lengths", default=None, metavar="N,N,...",
                   help="a table over sequence lengths, e.g. 256,1024,4096: FLOPs, decoding FLOPs and the decoding "
                        "state's bytes (KV caches grow with the length, linear-attention sums do not) at each "
                        "(language models: seq_len; translation: src_len = tgt_len)")
    p.add_argument("--latency", action="store_true", help="also measure latency (batch 1, HAT's inputs; see --clock, --stat)")
    p.add_argument("--device", default="cpu", help="latency device, e.g. cpu or cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads while measuring latency (default 1; oncpu and cpu clocks need 1)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default=None,
                   help="oncpu: elapsed time minus the measuring thread's waits for a CPU (Linux); cpu: the "
                        "thread's CPU time; both leave out the time other processes hold the cores and need "
                        "--threads 1 and a CPU device. wall: elapsed time (HAT's). Default: oncpu on Linux CPUs, "
                        "else cpu; wall on CUDA")
    p.add_argument("--stat", choices=STATS, default=DEFAULT_STAT,
                   help=f"statistic of the timed runs: min, median or trimmed_mean (HAT: 10%% dropped at each "
                        f"end); default {DEFAULT_STAT}")
    p.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME,
                   help="what runs the latency workload: pytorch (default, the model's modules) or onnxruntime "
                        "(its ONNX export in ONNX Runtime on the CPU, --threads intra-op threads; needs "
                        "pip install onnx onnxscript onnxruntime)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--json", help="also write the report to this JSON file")
    p.set_defaults(func=run)
