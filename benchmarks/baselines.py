"""Hand-designed baselines trained from scratch within a fixed CPU budget.

    python benchmarks/baselines.py [--minutes M] [--json PATH] [--only multi30k|fashion-mnist|digits]

- multi30k: the small softmax Transformer (configs/archs/transformer_multi30k_softmax.yaml) on
  Multi30k En-De from ../shared/data/multi30k, `M` minutes of training, then the test set with
  beam 4 / length penalty 0.6 on the average of the last checkpoints: sacreBLEU (detokenized)
  and tokenized BLEU with compound splitting. For scale: small Transformers trained to
  convergence on a GPU reach about 35 BLEU on this test set.
- fashion-mnist: the ViT baseline (configs/archs/vit_fashion_mnist_softmax.yaml), `M` minutes,
  test top-1 accuracy (needs the dataset-fashion-mnist IDX files; skipped when absent).
- digits: the ViT baseline on scikit-learn digits (always available).
Throughput is training tokens (target tokens) or images per second of training wall time.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixnas.commands.train import train_experiment
from mixnas.experiment import load_experiment

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def run(name: str, preset: str, minutes: float, overrides: list[str], workdir: Path) -> dict:
    exp = load_experiment(preset, [f"train.save_dir={workdir / name}", f"train.max_time={minutes * 60}",
                                   "train.max_updates=0", "train.lr_scheduler=inverse_sqrt",
                                   "train.progress=false", "train.tensorboard=false", *overrides])
    start = time.monotonic()
    results = train_experiment(exp)
    wall = time.monotonic() - start
    records = [json.loads(line) for line in (workdir / name / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    samples = sum(r["sample_size"] for r in train)
    elapsed = train[-1]["elapsed"] if train else float("nan")
    ev = results["eval"]
    row = {"name": name, "updates": results["train"]["step"], "train_seconds": round(elapsed, 1),
           "wall_seconds": round(wall, 1), "samples_per_second": round(samples / elapsed, 1)}
    for key in ("bleu", "tok_bleu", "accuracy", "loss", "nll"):
        if key in ev:
            row[key] = round(float(ev[key]), 4)
    if "bleu_signature" in ev:
        row["bleu_signature"] = ev["bleu_signature"]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per baseline")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--only", choices=["multi30k", "fashion-mnist", "digits"], action="append")
    ap.add_argument("--workdir", help="keep the runs here (default: a temporary directory)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    wanted = args.only or ["multi30k", "fashion-mnist", "digits"]
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        if "multi30k" in wanted:
            if (SHARED / "multi30k" / "train.en").is_file():
                rows.append(run("multi30k", "multi30k_transformer", args.minutes,
                                [f"data.dir={SHARED / 'multi30k'}", "train.warmup_updates=400",
                                 "train.checkpoint_every=100", "eval.average_last=5"], workdir))
            else:
                skipped["multi30k"] = f"no Multi30k at {SHARED / 'multi30k'}"
        if "fashion-mnist" in wanted:
            if Path("/usr/share/datasets/fashion-mnist").is_dir():
                rows.append(run("fashion-mnist", "fashion_mnist_vit", args.minutes,
                                ["train.warmup_updates=200", "train.checkpoint_every=500"], workdir))
            else:
                skipped["fashion-mnist"] = "apt-get install dataset-fashion-mnist"
        if "digits" in wanted:
            rows.append(run("digits", "digits_vit", min(args.minutes, 3.0),
                            ["train.warmup_updates=50", "train.checkpoint_every=200"], workdir))
    print(f"{'baseline':<14}{'updates':>8}{'train s':>9}{'samples/s':>11}{'BLEU':>7}{'tokBLEU':>8}{'acc':>8}")
    for r in rows:
        print(f"{r['name']:<14}{r['updates']:>8}{r['train_seconds']:>9}{r['samples_per_second']:>11}"
              f"{r.get('bleu', float('nan')):>7.2f}{r.get('tok_bleu', float('nan')):>8.2f}{r.get('accuracy', float('nan')):>8.4f}")
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    if args.json:
        Path(args.json).write_text(json.dumps({"minutes": args.minutes, "results": rows, "skipped": skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
