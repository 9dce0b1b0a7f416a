"""The glue between a task (data + loss + metric) and the trainer's protocol.

`TrainingTask` is what `mixnas.train.Trainer` drives. `before_step(model, step)` runs before
every update's loss; the supernet uses it to activate the sub-network seeded by the update
number, a fixed architecture leaves it None.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn


@dataclass
class TrainingTask:
    model: nn.Module
    train_batches: Any  # a mixnas.train.protocol.BatchIterator
    loss_fn: Callable[[nn.Module, Any], tuple[Tensor, dict[str, Any]]]
    validate_fn: Callable[[nn.Module], dict[str, float]] | None = None
    reduce_fn: Callable[[dict[str, float]], dict[str, float]] | None = None
    before_step: Callable[[nn.Module, int], None] | None = None
    extra_state: dict[str, Any] = field(default_factory=dict)

    def loss(self, model: nn.Module, batch: Any, step: int) -> tuple[Tensor, dict[str, Any]]:
        if self.before_step is not None:
            self.before_step(model, step)
        return self.loss_fn(model, batch)

    def validate(self, model: nn.Module) -> dict[str, float]:
        return self.validate_fn(model) if self.validate_fn is not None else {}

    def reduce_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        if self.reduce_fn is not None:
            return self.reduce_fn(sums)
        return {"loss": sums["loss"] / max(sums.get("sample_size", 1.0), 1.0)}

    def state_dict(self) -> dict[str, Any]:
        return dict(self.extra_state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.extra_state.update(state)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode and no grad, restoring the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def sum_stats(model: nn.Module, batches: Iterable[Any],
              loss_fn: Callable[[nn.Module, Any], tuple[Tensor, dict[str, Any]]],
              max_batches: int | None = None) -> dict[str, float]:
    """Sum of the loss and every stat of `loss_fn` over `batches` (eval mode, no grad): the
    input of a task's `reduce`, as the trainer sums them over a logging interval."""
    sums: dict[str, float] = {"loss": 0.0}
    device = next(model.parameters()).device
    with eval_mode(model):
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            loss, stats = loss_fn(model, batch.to(device))
            sums["loss"] += float(loss)
            for key, value in stats.items():
                sums[key] = sums.get(key, 0.0) + float(value)
    return sums
