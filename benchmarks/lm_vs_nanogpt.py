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
validates and checkpoints nothing during the timed window.

On a shared machine the load moves between those subprocess runs, so the script also times the
two models' training steps in one process (forward, cross-entropy, backward, gradient clipping,
AdamW; same batch), alternating blocks of 20 steps for `--blocks` blocks each: the fairest
ratio of the two, without the trainers' data loading and logging; each with its trainer's own
optimizer construction (mixnas.train.trainer.build_optimizer, nanoGPT's configure_optimizers). The JSON records the machine.
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
import time
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


def step_seconds(nanogpt: Path, blocks: int, steps: int = 20) -> tuple[float, float]:
    """Median seconds per training step of (mixnas LM, nanoGPT GPT), alternating blocks."""
    import torch
    import torch.nn.functional as F
    from mixnas.families.lm.arch import LMArch, LMLayerArch
    from mixnas.families.lm.config import LMConfig
    from mixnas.families.lm.model import LM
    sys.path.insert(0, str(nanogpt))
    from model import GPT, GPTConfig  # nanoGPT's model.py, from the given checkout

    torch.set_num_threads(1)
    torch.manual_seed(0)
    vocab = "".join(chr(33 + i) for i in range(65))  # 65 symbols, as Tiny Shakespeare's
    ours = LM(LMArch(128, (LMLayerArch(512, 4, "softmax"),) * 4, 32), LMConfig(vocab=vocab, context=64))
    theirs = GPT(GPTConfig(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False))
    x, y = torch.randint(0, 65, (12, 64)), torch.randint(0, 65, (12, 64))

    from mixnas.train import TrainConfig
    from mixnas.train.trainer import build_optimizer
    optimizers = {  # each trainer's own optimizer construction (nanoGPT's on CPU: no fused kernel)
        "mixnas": build_optimizer(ours, TrainConfig(optimizer="adamw", lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1,
                                                    max_updates=1)),
        "nanogpt": theirs.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu"),
    }

    def trainer(model, logits_of, opt):
        def step():
            loss = F.cross_entropy(logits_of(model).reshape(-1, 65), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return step

    fns = {"mixnas": trainer(ours, lambda m: m(x), optimizers["mixnas"]),
           "nanogpt": trainer(theirs, lambda m: m(x, y)[0], optimizers["nanogpt"])}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        for _ in range(5):
            fn()
    for _ in range(blocks):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[name].append((time.perf_counter() - start) / steps)
    return statistics.median(times["mixnas"]), statistics.median(times["nanogpt"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nanogpt", required=True, help="a karpathy/nanoGPT checkout with data/shakespeare_char prepared")
    p.add_argument("--data", default="../shared/data/tinyshakespeare")
    p.add_argument("--updates", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--blocks", type=int, default=10, help="alternating 20-step blocks of the in-process timing")
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
    print(f"trainers end to end, median speed ratio (>= 1: mixnas at least as fast): {ratio:.2f}")
    ours, theirs = step_seconds(nanogpt, args.blocks)
    step = {"mixnas_ms_per_step": ours * 1000, "nanogpt_ms_per_step": theirs * 1000, "speed_ratio": theirs / ours}
    print(f"training step in one process: mixnas {ours * 1000:.1f} ms, nanoGPT {theirs * 1000:.1f} ms, "
          f"speed ratio {theirs / ours:.2f}")
    write_json(args.json, {"machine": machine_info(), "updates": args.updates, "rows": rows,
                           "median_speed_ratio": ratio, "in_process_step": step})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
