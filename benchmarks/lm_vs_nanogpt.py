"""Training speed of the `shakespeare_char` baseline against nanoGPT's, side by side.

    python benchmarks/lm_vs_nanogpt.py --nanogpt DIR [--data ../shared/data/tinyshakespeare]
                                       [--updates 300] [--rounds 2] [--json PATH]

DIR is a checkout of karpathy/nanoGPT (not shipped here) with data/shakespeare_char/ prepared
(its prepare.py; put input.txt there first to skip the download). Both trainers run the
nanoGPT CPU configuration (4 layers x 128, 4 heads, context 64, batch 12, AdamW, no dropout,
no compile) on one intra-op thread, as subprocesses, alternately `--rounds` times, so both see
the same machine load. Per-update time is taken from each trainer's own log (mixnas: the
`elapsed` of metrics.jsonl between update 100 and the last log; nanoGPT: the median of its
per-iteration times after iteration 100); tokens/s = 12 x 64 / seconds per update. Our trainer
validates and checkpoints nothing during the timed window. The JSON records the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mixnas.cost.machine import machine_info
from mixnas.fileio import write_json

TOKENS_PER_UPDATE = 12 * 64
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mixnas_seconds(data: str, updates: int, run: Path) -> float:
    subprocess.run([sys.executable, "-m", "mixnas.cli", "train", "--config", "shakespeare_char", f"data.dir={data}",
                    f"train.save_dir={run}", f"train.max_updates={updates}", "train.log_every=50",
                    "train.validate_every=0", "train.checkpoint_every=0", "train.progress=false",
                    "train.tensorboard=false", "eval.limit=1"],
                   check=True, env=ENV, capture_output=True)
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logs if r["kind"] == "train" and r["step"] >= 100]
    return (train[-1]["elapsed"] - train[0]["elapsed"]) / (train[-1]["step"] - train[0]["step"])


def nanogpt_seconds(nanogpt: Path, updates: int, out: Path) -> float:
    args = ["config/train_shakespeare_char.py", "--device=cpu", "--compile=False", "--log_interval=1",
            "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            f"--max_iters={updates}", f"--lr_decay_iters={updates}", "--dropout=0.0", "--eval_interval=100000",
            "--eval_iters=1", f"--out_dir={out}"]
    code = ("import sys, torch; torch.set_num_threads(1); sys.argv = ['train.py'] + sys.argv[1:]; "
            "exec(open('train.py').read())")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=nanogpt, check=True, env=ENV,
                         capture_output=True, text=True).stdout
    times = [float(ms) for it, ms in re.findall(r"iter (\d+): loss [\d.]+, time ([\d.]+)ms", out) if int(it) >= 100]
    return statistics.median(times) / 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", required=True, help="a karpathy/nanoGPT checkout with data/shakespeare_char prepared")
    p.add_argument("--data", default="../shared/data/tinyshakespeare")
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", default="lm_vs_nanogpt.json")
    args = p.parse_args(argv)
    nanogpt = Path(args.nanogpt)
    if not (nanogpt / "train.py").is_file() or not (nanogpt / "data/shakespeare_char/train.bin").is_file():
        p.error(f"{nanogpt} is not a nanoGPT checkout with data/shakespeare_char prepared")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # a fresh directory each round: a finished `mixnas train` run is reused, not retrained
            ours = mixnas_seconds(args.data, args.updates, Path(tmp) / f"mixnas-{r}")
            theirs = nanogpt_seconds(nanogpt, args.updates, Path(tmp) / f"nanogpt-{r}")
            rows.append({"round": r, "mixnas_ms_per_update": ours * 1000, "nanogpt_ms_per_update": theirs * 1000,
                         "mixnas_tokens_per_s": TOKENS_PER_UPDATE / ours, "nanogpt_tokens_per_s": TOKENS_PER_UPDATE / theirs,
                         "speed_ratio": theirs / ours})
            print(f"round {r}: mixnas {ours * 1000:.1f} ms/update ({TOKENS_PER_UPDATE / ours:,.0f} tok/s), "
                  f"nanoGPT {theirs * 1000:.1f} ms/update ({TOKENS_PER_UPDATE / theirs:,.0f} tok/s), "
                  f"mixnas speed / nanoGPT speed {theirs / ours:.2f}")
    ratio = statistics.median(r["speed_ratio"] for r in rows)
    print(f"median speed ratio (>= 1: mixnas at least as fast): {ratio:.2f}")
    write_json(args.json, {"machine": machine_info(), "updates": args.updates, "rows": rows, "median_speed_ratio": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
