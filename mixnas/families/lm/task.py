"""Character-level language modelling as a task: data, model config, loss and bits per character.

Loss: cross-entropy of the next character, summed over positions (sample_size = number of
predicted characters); metrics: "loss" (nats per character), "bpc" = loss / ln 2. A search
minimises the validation loss.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...tasks.common import TrainingTask, sum_stats
from .config import LMConfig
from .data import LMBatch, LMDataConfig, RandomWindows, eval_batches, load_corpus


class LanguageModelingTask:
    kind = "language-modeling"

    def __init__(self, config: LMDataConfig):
        self.config = config
        self.corpus = load_corpus(config)
        self.vocab = self.corpus.vocab

    def model_config(self, overrides: dict[str, Any] | None = None) -> LMConfig:
        """LMConfig with the vocabulary of the data and context = data.context."""
        overrides = dict(overrides or {})
        if "vocab" in overrides and overrides["vocab"] != self.vocab:
            raise ValueError(f"model.config.vocab does not match the {len(self.vocab)} characters of the data; "
                             f"remove it (the data sets it)")
        if "context" in overrides and overrides["context"] != self.config.context:
            raise ValueError(f"model.config.context={overrides['context']} does not match "
                             f"data.context={self.config.context}; set data.context instead")
        return LMConfig.from_dict({**overrides, "vocab": self.vocab, "context": self.config.context})

    def train_batches(self, seed: int) -> RandomWindows:
        c = self.config
        return RandomWindows(self.corpus.splits["train"], c.context, c.batch_size, c.batches_per_epoch, seed,
                             c.window_schedule())

    @staticmethod
    def loss(model: nn.Module, batch: LMBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        logits = model(batch.inputs, batch.offset)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch.targets.reshape(-1),
                               reduction="sum")
        return loss, {"sample_size": batch.targets.numel()}

    @staticmethod
    def reduce(sums: dict[str, float]) -> dict[str, float]:
        loss = sums["loss"] / max(sums.get("sample_size", 1.0), 1.0)
        return {"loss": loss, "bpc": loss / math.log(2)}

    def evaluate(self, model: nn.Module, split: str = "val", limit: int | None = None) -> dict[str, float]:
        """Mean cross-entropy (nats per character) and bits per character on `split`, over its
        non-overlapping context windows (the first `limit` windows if given)."""
        if split not in self.corpus.splits:
            raise ValueError(f"split {split!r} is not in this data ({', '.join(self.corpus.splits)})")
        batches = eval_batches(self.corpus.splits[split], self.config.context, self.config.eval_batch_size, limit)
        sums = sum_stats(model, batches, self.loss)
        return {**self.reduce(sums), "characters": int(sums.get("sample_size", 0))}

    def score_metrics(self, model: nn.Module, limit: int | None = None) -> dict[str, float]:
        """What a search scores a sub-network by: loss and bpc on the first `limit` val windows."""
        return self.evaluate(model, "val", limit)

    def score_key(self) -> tuple[str, bool]:
        return "loss", False

    @staticmethod
    def distill_mask(batch) -> None:
        """Every position predicts a character: all count in distillation."""
        return None

    def training_task(self, model: nn.Module, seed: int, *, validate_split: str | None = "val",
                      before_step: Callable[[nn.Module, int], None] | None = None) -> TrainingTask:
        validate = (lambda m: self.evaluate(m, validate_split)) if validate_split else None
        return TrainingTask(model, self.train_batches(seed), self.loss, validate_fn=validate,
                            reduce_fn=self.reduce, before_step=before_step)
