"""Known, deterministic objectives and costs on a real preset space for the search tests
(also imported by the SIGKILL subprocess, so it must not depend on pytest)."""
from __future__ import annotations

import time

import numpy as np

from mixnas.search.objectives import CallableObjective, Constraint, Objective
from mixnas.space.search_space import SearchSpace

SPACE = "multi30k_small"


def load_space():
    return SearchSpace.load(SPACE)


def feature_weights(space, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=len(space.feature_names()))


def linear_score(space, seed: int = 0, delay: float = 0.0) -> CallableObjective:
    """score = encode(arch) . w: a known function whose optimum the search should approach."""
    w = feature_weights(space, seed)

    def score(archs):
        if delay:
            time.sleep(delay)  # lets the SIGKILL test catch the run between generations
        return np.stack([space.encode(a) for a in archs]) @ w

    return CallableObjective("linear_score", score, batched=True)


def width_cost(arch) -> float:
    """A parameter-count-like proxy: embed x ffn summed over layers (monotone in every width)."""
    enc = sum(layer.ffn_dim for layer in arch.encoder_layers) * arch.encoder_embed_dim
    dec = sum(layer.ffn_dim for layer in arch.decoder_layers) * arch.decoder_embed_dim
    return float(enc + dec)


def width_constraint(limit: float) -> Constraint:
    return Constraint.from_callable("width", limit, width_cost)


def big_score(space) -> CallableObjective:
    """Rewards width, so that a width limit is active and the search has to respect it."""
    w = feature_weights(space, seed=1)
    return CallableObjective("big_score", lambda a: width_cost(a) / 1e5 + float(space.encode(a) @ w) * 0.1)


class Interrupted(Exception):
    """Raised by `Recording` at its `fail_at`-th call: a kill in the middle of a search."""


class Recording(Objective):
    """Wraps an objective: keeps every batch it was asked to score (to count evaluations and
    check what was evaluated) and raises `Interrupted` at call number `fail_at` (1-based)."""

    def __init__(self, inner: Objective, fail_at: int | None = None):
        self.inner, self.name, self.higher_is_better = inner, inner.name, inner.higher_is_better
        self.fail_at, self.calls = fail_at, []

    def evaluate(self, archs):
        if self.fail_at is not None and len(self.calls) + 1 == self.fail_at:
            raise Interrupted(f"interrupted at call {self.fail_at}")
        self.calls.append(list(archs))
        return self.inner(archs)

    @property
    def archs(self) -> list:
        return [a for batch in self.calls for a in batch]


def tiny_vit_space() -> SearchSpace:
    """Four architectures: two layers, each softmax or cosFormer."""
    return SearchSpace.from_dict({"type": "vit", "name": "tiny", "head_dim": 16, "embed_dim": [32], "layers": [2],
                                  "ffn_dim": [64], "heads": [1], "attention": ["softmax", "cosformer"]})
