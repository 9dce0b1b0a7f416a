"""Image classification as a task: data splits, model config, loss and top-1 accuracy."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ....tasks.common import TrainingTask, sum_stats
from ..config import ViTConfig
from .batching import ImageBatches, count_correct, default_augment, NO_AUGMENT
from .data import load_image_splits


@dataclass
class ClassificationDataConfig:
    name: str = "digits"  # digits | fashion-mnist | cifar10
    dir: str | None = None  # files of fashion-mnist / cifar10 (digits ships with scikit-learn)
    batch_size: int = 128
    eval_batch_size: int = 512
    augment: bool = True  # the dataset's default augmentation (see vision/batching.py)
    val_fraction: float = 0.1


class ClassificationTask:
    kind = "classification"

    def __init__(self, config: ClassificationDataConfig):
        self.config = config
        self.splits = load_image_splits(config.name, config.dir, config.val_fraction)
        train = self.splits["train"]
        self.image_size, self.channels, self.num_classes = train.image_size, train.channels, train.num_classes

    def model_config(self, overrides: dict[str, Any] | None = None) -> ViTConfig:
        """ViTConfig with image size, channels and classes taken from the data."""
        values = {"image_size": self.image_size, "in_channels": self.channels,
                  "num_classes": self.num_classes, **(overrides or {})}
        for key in ("image_size", "in_channels", "num_classes"):
            if values[key] != getattr(self, {"in_channels": "channels"}.get(key, key)):
                raise ValueError(f"model.config.{key}={values[key]} does not match the {self.config.name} "
                                 f"data ({getattr(self, {'in_channels': 'channels'}.get(key, key))}); remove it")
        return ViTConfig.from_dict(values)

    def batches(self, split: str, *, train: bool, seed: int = 0, limit: int | None = None) -> ImageBatches:
        dataset = self.splits[split]
        if limit is not None and limit < len(dataset):
            dataset = _head(dataset, limit)
        augment = default_augment(self.config.name) if (train and self.config.augment) else NO_AUGMENT
        size = self.config.batch_size if train else self.config.eval_batch_size
        return ImageBatches(dataset, size, shuffle=train, seed=seed, augment=augment)

    @staticmethod
    def loss(model: nn.Module, batch) -> tuple[torch.Tensor, dict[str, Any]]:
        logits = model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.labels, reduction="sum")
        return loss, {"sample_size": len(batch.labels), "correct": count_correct(logits, batch.labels)}

    @staticmethod
    def reduce(sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("sample_size", 1.0), 1.0)
        return {"loss": sums["loss"] / n, "accuracy": sums.get("correct", 0.0) / n}

    def evaluate(self, model: nn.Module, split: str = "val", limit: int | None = None) -> dict[str, float]:
        """Mean cross-entropy and top-1 accuracy on `split` (first `limit` examples if given)."""
        return self.reduce(sum_stats(model, self.batches(split, train=False, limit=limit), self.loss))

    def score_metrics(self, model: nn.Module, limit: int | None = None) -> dict[str, float]:
        """What a search scores a sub-network by: loss and accuracy on the first `limit` val images."""
        return self.evaluate(model, "val", limit)

    @staticmethod
    def distill_mask(batch) -> None:
        """Every image counts in distillation."""
        return None

    def training_task(self, model: nn.Module, seed: int, *, validate_split: str | None = "val",
                      before_step: Callable[[nn.Module, int], None] | None = None) -> TrainingTask:
        validate = (lambda m: self.evaluate(m, validate_split)) if validate_split else None
        return TrainingTask(model, self.batches("train", train=True, seed=seed), self.loss,
                            validate_fn=validate, reduce_fn=self.reduce, before_step=before_step)

    def score_key(self) -> tuple[str, bool]:
        """The validation metric a search maximises: (name, higher_is_better)."""
        return "accuracy", True


def _head(dataset, n: int):
    from dataclasses import replace
    return replace(dataset, images=dataset.images[:n], labels=dataset.labels[:n])
