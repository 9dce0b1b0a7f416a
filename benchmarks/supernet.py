"""Supernet overhead benchmark (issue 3): one training step of a sampled sub-network inside the
supernet versus the same sub-network extracted as a standalone model.

    python benchmarks/supernet.py [--archs N] [--repeats R] [--threads T] [--json PATH]

For each CPU-scale preset space (multi30k_small, digits_vit, fashion_mnist_vit) N
architectures are sampled (seeded). A step is zero_grad + forward + cross-entropy + backward
(no optimizer update: its cost depends on the optimizer, not on slicing), in train mode with
the config's dropout. The two models are timed alternately (supernet, standalone,
supernet, ...) after warm-up so that load on the shared machine hits both alike; the figure
per model is the median of R steps, and the ratio is supernet_ms / standalone_ms.
Target: median ratio <= 1.2.

Inputs: translation batch of 32 sentences, source and target length 20, vocabulary 8000;
digits 8x8 grey images, patch 2, batch 64; Fashion-MNIST 28x28 grey, patch 4, batch 64.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.supernet import SupernetTransformer
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.supernet import SupernetViT
from mixnas.space.search_space import SearchSpace

TARGET = 1.2


def translation_case(space):
    vocab, batch, length = 8000, 32, 20
    supernet = SupernetTransformer.from_space(space, TransformerConfig(vocab, vocab, dropout=0.1))
    g = torch.Generator().manual_seed(0)
    src = torch.randint(3, vocab, (batch, length), generator=g)
    src[: batch // 2, length // 2:] = 0  # half the batch is padded
    prev = torch.randint(3, vocab, (batch, length), generator=g)
    target = torch.randint(3, vocab, (batch, length), generator=g)

    def loss(model):
        return F.cross_entropy(model(src, prev).reshape(-1, vocab), target.reshape(-1))
    return supernet, loss


def vit_case(space, image_size, patch_size):
    batch = 64
    supernet = SupernetViT.from_space(space, ViTConfig(image_size=image_size, patch_size=patch_size,
                                                       in_channels=1, num_classes=10))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, image_size, image_size, generator=g)
    labels = torch.randint(0, 10, (batch,), generator=g)

    def loss(model):
        return F.cross_entropy(model(images), labels)
    return supernet, loss


CASES = {
    "multi30k_small": translation_case,
    "digits_vit": lambda space: vit_case(space, 8, 2),
    "fashion_mnist_vit": lambda space: vit_case(space, 28, 4),
}


def step_ms(model, loss) -> float:
    start = time.perf_counter()
    model.zero_grad(set_to_none=True)
    loss(model).backward()
    return (time.perf_counter() - start) * 1e3


def alternate(first, second, repeats: int, warmup: int = 3) -> tuple[float, float]:
    """Median ms of first() and second() (each times one step and returns its ms), called in
    turn after `warmup` untimed rounds, so load on a shared machine hits both alike."""
    for _ in range(warmup):
        first()
        second()
    a, b = [], []
    for _ in range(repeats):
        a.append(first())
        b.append(second())
    return statistics.median(a), statistics.median(b)


def measure(supernet, model, loss, repeats: int, warmup: int = 3) -> tuple[float, float]:
    return alternate(lambda: step_ms(supernet, loss), lambda: step_ms(model, loss), repeats, warmup)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=4, help="architectures sampled per space (default 4)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per model and architecture")
    parser.add_argument("--spaces", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared, oversubscribed machine two "
                             "spinning OpenMP threads make single steps vary by 10x)")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.archs < 1 or args.repeats < 1:
        parser.error("--archs and --repeats must be positive")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    results = []
    print(f"{'space':<18} {'arch':>4} {'supernet_ms':>12} {'standalone_ms':>14} {'ratio':>6}")
    for name in args.spaces:
        space = SearchSpace.load(name)
        supernet, loss = CASES[name](space)
        supernet.train()
        rng = random.Random(args.seed)
        for arch_id in range(args.archs):
            arch = space.sample(rng)
            supernet.set_arch(arch)
            model = supernet.extract(arch).train()
            sup_ms, std_ms = measure(supernet, model, loss, args.repeats)
            row = {"space": name, "arch_id": arch_id, "supernet_ms": round(sup_ms, 3),
                   "standalone_ms": round(std_ms, 3), "ratio": round(sup_ms / std_ms, 4),
                   "arch": arch.to_dict()}
            results.append(row)
            print(f"{name:<18} {arch_id:>4} {sup_ms:>12.2f} {std_ms:>14.2f} {row['ratio']:>6.3f}", flush=True)

    median_ratio = statistics.median(r["ratio"] for r in results)
    print(f"median ratio {median_ratio:.3f} (target <= {TARGET}): {'met' if median_ratio <= TARGET else 'NOT met'}")
    if args.json:
        report = {"results": results, "median_ratio": round(median_ratio, 4), "target": TARGET,
                  "target_met": median_ratio <= TARGET, "threads": args.threads, "repeats": args.repeats,
                  "torch": torch.__version__, "platform": platform.platform(), "cpus": os.cpu_count()}
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
