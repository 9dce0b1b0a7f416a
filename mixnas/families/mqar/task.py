"""MQAR as a task of the decoder-only language models: model config, loss and recall accuracy.

The model is the LM family's (`LM`, token ids in, next-token logits out, causal); only the
targets differ from language modelling: a value at each query position, -100 (ignored)
elsewhere (see data.py). Loss: cross-entropy at the query positions, summed, with sample_size
= the number of queries, so the trainer's mean is nats per query. Metrics: "loss" and
"accuracy" = the fraction of queries whose argmax over the whole vocabulary is the value
(chance is about 1 / (V/2) for a model that has learnt to answer with a value). A search
maximises the validation accuracy.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...tasks.common import TrainingTask, sum_stats
from ..lm.config import LMConfig
from ..lm.data import LMBatch
from .data import IGNORE, MQARDataConfig, eval_batches, generate, train_batches


class MQARTask:
    kind = "mqar"

    def __init__(self, config: MQARDataConfig):
        self.config = config
        self.pools = {split: generate(config, split) for split in ("train", "val", "test")}

    def model_config(self, overrides: dict[str, Any] | None = None) -> LMConfig:
        """LMConfig with vocab_size = data.vocab_size (token ids, no characters) and
        context = data.seq_len; the data owns both."""
        overrides = dict(overrides or {})
        owned = {"vocab_size": self.config.vocab_size, "context": self.config.seq_len}
        for key, data_key in (("vocab_size", "vocab_size"), ("context", "seq_len")):
            if key in overrides and overrides[key] != owned[key]:
                raise ValueError(f"model.config.{key}={overrides[key]!r} does not match data.{data_key}="
                                 f"{owned[key]}; set data.{data_key} instead")
        if overrides.get("vocab"):
            raise ValueError("model.config.vocab: MQAR models read token ids, not characters; remove it")
        return LMConfig.from_dict({**overrides, **owned, "vocab": ""})

    @staticmethod
    def loss(model: nn.Module, batch: LMBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        """Summed cross-entropy at the query positions; stats: queries, correct answers."""
        logits = model(batch.inputs).float()
        asked = batch.targets != IGNORE
        answers = logits[asked]
        loss = F.cross_entropy(answers, batch.targets[asked], reduction="sum")
        correct = (answers.argmax(-1) == batch.targets[asked]).sum()
        return loss, {"sample_size": int(asked.sum()), "correct": int(correct)}

    @staticmethod
    def reduce(sums: dict[str, float]) -> dict[str, float]:
        queries = max(sums.get("sample_size", 1.0), 1.0)
        return {"loss": sums["loss"] / queries, "accuracy": sums.get("correct", 0.0) / queries}

    def evaluate(self, model: nn.Module, split: str = "val", limit: int | None = None) -> dict[str, float]:
        """Loss per query and accuracy on `split` (its first `limit` examples if given)."""
        if split not in self.pools:
            raise ValueError(f"split {split!r} is not in this data ({', '.join(self.pools)})")
        batches = eval_batches(self.pools[split], self.config.eval_batch_size, limit)
        sums = sum_stats(model, batches, self.loss)
        return {**self.reduce(sums), "queries": int(sums.get("sample_size", 0))}

    def score_metrics(self, model: nn.Module, limit: int | None = None) -> dict[str, float]:
        """What a search scores a sub-network by: loss and accuracy on the first `limit` val examples."""
        return self.evaluate(model, "val", limit)

    def score_key(self) -> tuple[str, bool]:
        return "accuracy", True

    @staticmethod
    def distill_mask(batch: LMBatch) -> torch.Tensor:
        """Only the query positions have an answer to distil."""
        return batch.targets != IGNORE

    def training_task(self, model: nn.Module, seed: int, *, validate_split: str | None = "val",
                      before_step: Callable[[nn.Module, int], None] | None = None) -> TrainingTask:
        validate = (lambda m: self.evaluate(m, validate_split)) if validate_split else None
        batches = train_batches(self.pools["train"], self.config.batch_size, seed)
        return TrainingTask(model, batches, self.loss, validate_fn=validate, reduce_fn=self.reduce,
                            before_step=before_step)
