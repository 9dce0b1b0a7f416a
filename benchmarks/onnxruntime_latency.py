"""PyTorch vs ONNX Runtime latency of the same models, side by side, in one run.

    python benchmarks/onnxruntime_latency.py [--models digits multi30k shakespeare-long] [--runs R]
                                             [--warmup W] [--src-len N --tgt-len N --beam N]
                                             [--seq-len N] [--quick] [--json PATH]

Why: a searched model is deployed as an exported graph, but the latencies that the predictors
learn are measured in PyTorch. If ONNX Runtime speeds attention kinds up by different factors,
the search optimises for the wrong runtime; this table shows the factor per model.

Models (`--models`):
- digits: every row of docs/results/digits/results.json (the searched architectures and the
  hand-designed baselines of the committed digits run; the digits pipeline's baseline presets
  when that file is missing), with the digits pipeline's model config (8x8 images).
- multi30k: the same from docs/results/multi30k/results.json (else the pipeline's baselines
  transformer_multi30k_softmax / _cosformer), with its model config and a data.vocab_size
  vocabulary (8,000), on HAT's workload (source length 30, 30 decoder steps on beam 4; see
  --src-len, --tgt-len, --beam).
- shakespeare-long: the same from docs/results/shakespeare-long/results.json (else its baselines
  gpt_long_softmax / gpt_long_linear), a 65-character vocabulary and context 2048, on its
  workload: one decoding step at position --seq-len - 1 (default 2048) from the state of the
  tokens before it (a KV cache of 2,047 keys per softmax layer; constant sums per linear one).
Weights are random (seeded): latency depends on the shapes, not on the values, so no training
or data is needed. `--quick` measures three tiny models on short sequences instead (seconds:
the smoke test's scale).

Each model is measured with `mixnas.cost.measure_latency` in both runtimes back to back (the
order alternating from model to model, so that neither runtime always runs on a warmer or
quieter machine), with the same protocol: 1 intra-op thread, the default clock (oncpu on Linux:
elapsed time minus the measuring thread's waits for a CPU), the minimum of --runs timed runs
after --warmup. ONNX Runtime runs the model's ONNX export (mixnas/export.py) on
CPUExecutionProvider with one intra-op thread, which runs every operator on the measuring thread.
ratio = ONNX Runtime ms / PyTorch ms (below 1: ONNX Runtime is faster). The JSON records the
machine (mixnas.cost.machine), the protocols and every timed run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from mixnas.cost import count_params, measure_latency
from mixnas.cost.machine import machine_info
from mixnas.experiment import resolve_arch
from mixnas.families import family_of
from mixnas.fileio import write_json
from mixnas.models import build_model
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.search_step import attention_code
from mixnas.space import arch_from_dict

REPO = Path(__file__).resolve().parents[1]
DIGITS_RESULTS = REPO / "docs" / "results" / "digits" / "results.json"
RUNTIMES = ("pytorch", "onnxruntime")
SUITES = ("digits", "multi30k", "shakespeare-long")


def committed_rows(preset: str) -> list[dict] | None:
    """The rows (searched architectures and baselines) of docs/results/<preset>/results.json."""
    path = REPO / "docs" / "results" / preset / "results.json"
    return json.loads(path.read_text())["rows"] if path.is_file() else None


def suite_models(preset: str, config) -> list[tuple[str, object, object]]:
    """(name, arch, config) of the committed run's rows; the pipeline's baseline presets when the
    run is not committed."""
    rows = committed_rows(preset)
    if rows is not None:
        return [(f"{preset}/{r['name']}", arch_from_dict(r["arch"]), config) for r in rows]
    cfg = load_pipeline_config(preset, ["data.dir=unused"] if preset == "multi30k" else [])
    return [(f"{preset}/{name}", resolve_arch(name), config) for name in cfg.baselines]


def digits_models() -> list[tuple[str, object, object]]:
    """The digits run's rows with the digits pipeline's model config (8x8 images)."""
    from mixnas.pipeline.scoring import build_task
    cfg = load_pipeline_config("digits")
    return suite_models("digits", build_task(cfg).model_config(cfg.model.config))


def multi30k_models() -> list[tuple[str, object, object]]:
    """The Multi30k run's rows with its model config and a data.vocab_size vocabulary (no data read)."""
    from mixnas.families.transformer.config import TransformerConfig
    from mixnas.families.transformer.task.tokenizer import BOS_ID, EOS_ID, PAD_ID
    cfg = load_pipeline_config("multi30k", ["data.dir=unused"])
    vocab = int(cfg.data.get("vocab_size", 8000))
    config = TransformerConfig.from_dict({"src_vocab": vocab, "tgt_vocab": vocab, "pad_id": PAD_ID, "bos_id": BOS_ID,
                                          "eos_id": EOS_ID, **cfg.model.config})
    return suite_models("multi30k", config)


def shakespeare_long_models() -> list[tuple[str, object, object]]:
    """The long-context LM run's rows: 65 characters (ids only: no text is read), context 2048."""
    from mixnas.families.lm.config import LMConfig
    return suite_models("shakespeare-long", LMConfig(vocab_size=65, context=2048))


def quick_models() -> list[tuple[str, object, object]]:
    """Three tiny models (a mixed ViT, a mixed translation Transformer, a mixed LM): the smoke test's."""
    from mixnas.families.lm.arch import LMArch, LMLayerArch
    from mixnas.families.lm.config import LMConfig
    from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
    from mixnas.families.transformer.config import TransformerConfig
    from mixnas.families.vit.arch import ViTArch, ViTLayerArch
    from mixnas.families.vit.config import ViTConfig
    vit = ViTArch(16, (ViTLayerArch(24, 2, "softmax"), ViTLayerArch(16, 2, "cosformer")), head_dim=8)
    mt = TransformerArch(16, 16, (EncoderLayerArch(20, 2, "softmax"),),
                         (DecoderLayerArch(24, 2, "cosformer", 2, "softmax", 1),), qkv_dim=16)
    return [("quick/vit", vit, ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=3)),
            ("quick/transformer", mt, TransformerConfig(20, 20)),
            ("quick/lm", LMArch(16, (LMLayerArch(20, 2, "softmax"), LMLayerArch(20, 2, "linear")), head_dim=8),
             LMConfig(vocab_size=20, context=8))]


def measure_pair(model, index: int, runs: int, warmup: int, options: dict[str, int]) -> dict[str, dict]:
    """{runtime: {"ms", "runs_ms", "protocol"}}, both runtimes back to back, order alternating with `index`."""
    order = RUNTIMES if index % 2 == 0 else RUNTIMES[::-1]
    out = {}
    for runtime in order:
        result = measure_latency(model, runtime=runtime, threads=1, warmup=warmup, runs=runs, **options)
        out[runtime] = {"ms": result.ms, "runs_ms": [round(t, 5) for t in result.runs], "protocol": result.protocol}
    return out


def print_table(rows: list[dict]) -> None:
    width = max(len(r["model"]) for r in rows)
    kinds = max(len(r["attention"]) for r in rows)
    print(f"\n{'model':<{width}}  {'attention':<{kinds}}  {'params':>9}  {'PyTorch ms':>10}  {'ORT ms':>8}  {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<{width}}  {r['attention']:<{kinds}}  {r['params']:>9,}  {r['pytorch_ms']:>10.3f}  "
              f"{r['onnxruntime_ms']:>8.3f}  {r['ratio']:>6.2f}")
    print("ratio = ONNX Runtime ms / PyTorch ms (min of the timed runs, 1 thread, the same clock)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=SUITES, default=list(SUITES),
                        help="model suites to measure (default: all)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per measurement (default 20; --quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 5; --quick 1)")
    parser.add_argument("--src-len", type=int, default=None, help="translation source length (default 30; --quick 4)")
    parser.add_argument("--tgt-len", type=int, default=None, help="translation decoder steps (default 30; --quick 3)")
    parser.add_argument("--beam", type=int, default=None, help="translation beam (default 4; --quick 2)")
    parser.add_argument("--seq-len", type=int, default=None,
                        help="language models: the decoding step at position seq_len - 1 (default 2048; --quick 6)")
    parser.add_argument("--quick", action="store_true", help="three tiny models, short sequences, few runs (seconds)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    small = {"runs": 3, "warmup": 1, "src_len": 4, "tgt_len": 3, "beam": 2, "seq_len": 6}
    default = {"runs": 20, "warmup": 5, "src_len": 30, "tgt_len": 30, "beam": 4, "seq_len": 2048}
    settings = {k: getattr(args, k) if getattr(args, k) is not None else (small if args.quick else default)[k]
                for k in default}
    if settings["warmup"] < 0 or min(v for k, v in settings.items() if k != "warmup") < 1:
        parser.error("--runs, --src-len, --tgt-len, --beam and --seq-len must be >= 1, --warmup >= 0")
    torch.set_num_threads(1)
    machine = machine_info()
    print(f"{machine['cpu_count']} cores ({machine['cpu_model']}); 1-thread fp32 matmul: "
          f"{machine['matmul_gflops_1_thread']} GFLOP/s; torch {machine['torch']}")
    models = quick_models() if args.quick else [m for suite in args.models for m in
                                                 {"digits": digits_models, "multi30k": multi30k_models,
                                                  "shakespeare-long": shakespeare_long_models}[suite]()]
    rows, start = [], time.monotonic()
    for index, (name, arch, config) in enumerate(models):
        torch.manual_seed(index)
        model = build_model(arch, config).eval()
        family = family_of(arch)
        options = {k: settings[k] for k in family.cost_options if k in settings}
        measured = measure_pair(model, index, settings["runs"], settings["warmup"], options)
        pt, ort = measured["pytorch"]["ms"], measured["onnxruntime"]["ms"]
        rows.append({"model": name, "arch": arch.to_dict(), "attention": attention_code(arch),
                     "params": count_params(arch, config), "options": options, "pytorch_ms": round(pt, 5),
                     "onnxruntime_ms": round(ort, 5), "ratio": round(ort / pt, 4), "measurements": measured})
        print(f"{name}: PyTorch {pt:.3f} ms, ONNX Runtime {ort:.3f} ms")
    print_table(rows)
    seconds = round(time.monotonic() - start, 1)
    print(f"{len(rows)} models in {seconds} s")
    if args.json:
        write_json(args.json, {"machine": machine, "settings": {**settings, "threads": 1, "quick": args.quick,
                                                                "models": args.models, "seconds": seconds},
                               "rows": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
