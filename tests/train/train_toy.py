"""A tiny classification task driven by the trainer, used in-process and as a subprocess
(plain `python`, or `torchrun` for the data-parallel test).

It touches everything that exact resume must restore: dropout (torch RNG), a shuffled
resumable batch iterator, and a collate function drawing noise from torch, numpy and python
`random`. With --switch-heads, update u uses only head u % 2, so the other head's weights get
no gradient (the supernet situation).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from mixnas.train import EpochBatches, TrainConfig, Trainer, seed_everything

NUM_EXAMPLES, FEATURES, CLASSES = 96, 8, 4


class ToyModel(torch.nn.Module):
    def __init__(self, dropout: float):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(),
                                        torch.nn.Dropout(dropout))
        self.heads = torch.nn.ModuleList([torch.nn.Linear(16, CLASSES) for _ in range(2)])

    def forward(self, x: torch.Tensor, head: int = 0) -> torch.Tensor:
        return self.heads[head](self.body(x))


class ToyTask:
    def __init__(self, dropout=0.0, batch_size=8, noise=0.0, switch_heads=False, sleep=0.0,
                 nan_at_call=0, bad_grad_at_call=0):
        data = torch.Generator().manual_seed(1234)
        self.x = torch.randn(NUM_EXAMPLES, FEATURES, generator=data)
        self.y = (self.x @ torch.randn(FEATURES, CLASSES, generator=data)).argmax(-1)
        self.model = ToyModel(dropout)
        self.noise, self.switch_heads, self.sleep = noise, switch_heads, sleep
        self.nan_at_call, self.bad_grad_at_call, self.calls = nan_at_call, bad_grad_at_call, 0
        self.logits_dtypes = set()
        self.train_batches = EpochBatches.over_examples(NUM_EXAMPLES, batch_size, seed=7,
                                                        collate=self.collate)

    def collate(self, indices: list[int]):
        x = self.x[indices]
        if self.noise:
            scale = self.noise * (1 + float(np.random.rand())) * (1 + random.random())
            x = x + scale * torch.randn_like(x)
        return {"x": x, "y": self.y[indices]}

    def loss(self, model, batch, step):
        if self.sleep:
            time.sleep(self.sleep)
        self.calls += 1
        logits = model(batch["x"], head=step % 2 if self.switch_heads else 0)
        self.logits_dtypes.add(logits.dtype)
        loss = F.cross_entropy(logits.float(), batch["y"], reduction="sum")
        if self.calls == self.nan_at_call:
            loss = loss * float("nan")
        if self.calls == self.bad_grad_at_call:  # finite value, NaN gradient (d sqrt(x)/dx at 0)
            loss = loss + (model.heads[0].bias[0] * 0).sqrt()
        correct = (logits.argmax(-1) == batch["y"]).sum()
        return loss, {"sample_size": len(batch["y"]), "correct": correct}

    def reduce_metrics(self, sums):
        return {"loss": sums["loss"] / sums["sample_size"], "accuracy": sums["correct"] / sums["sample_size"]}

    def validate(self, model):
        torch.randn(3)  # consumes RNG on purpose: the trainer must isolate it
        logits = model(self.x)
        return {"accuracy": float((logits.argmax(-1) == self.y).float().mean())}


def run(save_dir, *, max_updates=30, update_freq=1, batch_size=8, dropout=0.0, noise=0.0,
        switch_heads=False, sleep=0.0, checkpoint_every=4, keep_last=0, seed=3, nan_at_call=0,
        bad_grad_at_call=0, task_class=None, **overrides):
    """Train the toy task; returns the trainer's summary (plus the task under "task")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # identical arithmetic in every process
    try:
        seed_everything(seed)
        task = (task_class or ToyTask)(dropout=dropout, batch_size=batch_size, noise=noise,
                                       switch_heads=switch_heads, sleep=sleep, nan_at_call=nan_at_call,
                                       bad_grad_at_call=bad_grad_at_call)
        options = dict(save_dir=str(save_dir), seed=seed, lr=0.01, warmup_updates=5,
                       max_updates=max_updates, update_freq=update_freq, clip_norm=1.0,
                       checkpoint_every=checkpoint_every, keep_last=keep_last, log_every=1,
                       validate_every=10, progress=False, tensorboard=False, device="cpu")
        options.update(overrides)
        with Trainer(task, TrainConfig(**options)) as trainer:
            return {**trainer.train(), "task": task}
    finally:
        torch.set_num_threads(threads)


def main(argv=None) -> int:
    """`train_toy.py RUNS`: RUNS is a JSON list of [save_dir, run() options], trained in turn.
    Under torchrun the process group is created once here, so the runs share it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", help='JSON list of [save_dir, {"option": value}] pairs')
    args = parser.parse_args(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        torch.distributed.init_process_group("gloo")
    try:
        for save_dir, options in json.loads(args.runs):
            summary = run(save_dir, **options)
            print(json.dumps({"save_dir": save_dir, "step": summary["step"]}))
    finally:
        if distributed:
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
