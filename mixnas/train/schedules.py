"""Learning-rate schedules as multiplicative factors for `torch.optim.lr_scheduler.LambdaLR`.

Each builder returns `factor(update) -> float`; the learning rate used for update `u`
(0-based: the first update is 0) is `lr * factor(u)`. LambdaLR evaluates `factor(0)` when it is
built and `factor(u)` after the u-th `scheduler.step()`, which the trainer calls once after every
optimizer step, so this matches fairseq, whose `step_update(num_updates)` sets the rate for the
next update from the number of updates done so far.

The factors are closures (plain functions), so `LambdaLR.state_dict()` stores no callable and the
scheduler state loads with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import math
from typing import Callable

Schedule = Callable[[int], float]


def _warmup_factor(update: int, warmup_updates: int, init_factor: float) -> float:
    """Linear ramp from `init_factor` at update 0 to 1 at update `warmup_updates`."""
    return init_factor + (1.0 - init_factor) * update / warmup_updates


def inverse_sqrt(warmup_updates: int, init_factor: float = 0.0) -> Schedule:
    """fairseq's `inverse_sqrt`: linear warm-up from `lr * init_factor` (fairseq's
    `warmup_init_lr / lr`) to `lr` over `warmup_updates`, then `lr * sqrt(warmup / update)`.
    The two pieces meet at `update == warmup_updates`, where the factor is exactly 1."""
    if warmup_updates < 0:
        raise ValueError(f"warmup_updates must be >= 0, got {warmup_updates}")

    def factor(update: int) -> float:
        if update < warmup_updates:
            return _warmup_factor(update, warmup_updates, init_factor)
        return math.sqrt(warmup_updates / update) if update > 0 else 1.0

    return factor


def cosine(warmup_updates: int, total_updates: int, init_factor: float = 0.0,
           min_factor: float = 0.0) -> Schedule:
    """Linear warm-up as above, then a half cosine from 1 down to `min_factor` at
    `total_updates`; the factor stays at `min_factor` afterwards."""
    if total_updates <= warmup_updates:
        raise ValueError(f"the cosine schedule needs total_updates ({total_updates}) > "
                         f"warmup_updates ({warmup_updates}); set max_updates")

    def factor(update: int) -> float:
        if update < warmup_updates:
            return _warmup_factor(update, warmup_updates, init_factor)
        progress = min(1.0, (update - warmup_updates) / (total_updates - warmup_updates))
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def constant(warmup_updates: int = 0, init_factor: float = 0.0) -> Schedule:
    """Linear warm-up, then a constant rate."""

    def factor(update: int) -> float:
        if update < warmup_updates:
            return _warmup_factor(update, warmup_updates, init_factor)
        return 1.0

    return factor
