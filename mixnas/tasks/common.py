"""The glue between a task (data + loss + metric) and the trainer's protocol.

`TrainingTask` is what `mixnas.train.Trainer` drives. `before_step(model, step)` runs before
every update's loss; the supernet uses it to activate the sub-network seeded by the update
number, a fixed architecture leaves it None.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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


def eval_mode(model: nn.Module):
    """Context: eval mode and no grad, restoring the previous mode afterwards."""

    class _Ctx:
        def __enter__(self):
            self.was_training = model.training
            model.eval()
            self.no_grad = torch.no_grad()
            self.no_grad.__enter__()

        def __exit__(self, *exc):
            self.no_grad.__exit__(*exc)
            model.train(self.was_training)

    return _Ctx()
