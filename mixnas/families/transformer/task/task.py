"""Translation as a task: data, model config, label-smoothed loss, validation loss, beam + BLEU."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ....progress import Tracker
from ....tasks.common import TrainingTask, eval_mode, sum_stats
from ....train.losses import label_smoothed_cross_entropy
from ..config import TransformerConfig
from ..model import length_rule_m, uses_length_m
from .batching import TranslationBatch
from .beam import BeamConfig, translate
from .bleu import corpus_bleu, tokenized_bleu
from .data import TranslationData, TranslationDataConfig
from .tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass
class TranslationTaskConfig:
    dir: str = ""  # directory of {split}.{lang} files, e.g. ../shared/data/multi30k
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = 8000
    model_type: str = "unigram"  # SentencePiece model: unigram or bpe
    character_coverage: float = 1.0  # SentencePiece's; lower it for languages with large alphabets
    spm_max_lines: int | None = None  # train SentencePiece on the first N lines of each side (None: all)
    max_tokens: int = 4096  # token budget of a training batch
    eval_max_tokens: int = 8192
    max_positions: int = 256  # longer training pairs are dropped (counted in the log)
    label_smoothing: float = 0.1
    cache_dir: str | None = None
    beam: BeamConfig = field(default_factory=BeamConfig)

    def validate(self) -> None:
        if not self.dir:
            raise ValueError("data.dir is required for translation (e.g. data.dir=../shared/data/multi30k)")


class TranslationTask:
    kind = "translation"

    def __init__(self, config: TranslationTaskConfig):
        config.validate()
        self.config = config
        self.data = TranslationData(TranslationDataConfig(
            data_dir=config.dir, src_lang=config.src_lang, tgt_lang=config.tgt_lang,
            vocab_size=config.vocab_size, model_type=config.model_type,
            character_coverage=config.character_coverage, spm_max_lines=config.spm_max_lines,
            cache_dir=config.cache_dir))
        self.vocab_size = self.data.tokenizer.vocab_size

    def model_config(self, overrides: dict[str, Any] | None = None) -> TransformerConfig:
        values = {"src_vocab": self.vocab_size, "tgt_vocab": self.vocab_size, "pad_id": PAD_ID,
                  "bos_id": BOS_ID, "eos_id": EOS_ID, **(overrides or {})}
        for key in ("src_vocab", "tgt_vocab"):
            if values[key] != self.vocab_size:
                raise ValueError(f"model.config.{key}={values[key]} differs from the SentencePiece vocabulary "
                                 f"({self.vocab_size}); remove it or set data.vocab_size")
        return TransformerConfig.from_dict(values)

    def batches(self, split: str, *, train: bool, seed: int = 0):
        c = self.config
        return self.data.batches(split, c.max_tokens if train else c.eval_max_tokens,
                                 max_positions=c.max_positions if train else None, shuffle=train, seed=seed)

    def loss(self, model: nn.Module, batch: TranslationBatch) -> tuple[torch.Tensor, dict[str, Any]]:
        kw = {}
        if uses_length_m(model.config):  # cosformer's M from the same rule beam search uses
            beam = self.config.beam
            kw["m"] = length_rule_m(batch.src, PAD_ID, batch.prev_output_tokens.shape[1],
                                    beam.max_len_a, beam.max_len_b)
        logits = model(batch.src, batch.prev_output_tokens, **kw)
        loss, nll = label_smoothed_cross_entropy(logits, batch.target, self.config.label_smoothing,
                                                 ignore_index=PAD_ID, reduction="sum")
        return loss, {"sample_size": batch.n_tokens, "nll": nll.detach()}

    @staticmethod
    def reduce(sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("sample_size", 1.0), 1.0)
        return {"loss": sums["loss"] / n, "nll": sums.get("nll", 0.0) / n}

    def validation_loss(self, model: nn.Module, split: str = "val", max_batches: int | None = None) -> dict[str, float]:
        """Label-smoothed loss and NLL per target token (the search's translation score)."""
        return self.reduce(sum_stats(model, self.batches(split, train=False), self.loss, max_batches))

    def score_metrics(self, model: nn.Module, limit: int | None = None) -> dict[str, float]:
        """What a search scores a sub-network by: the validation loss on the first `limit` batches."""
        return self.validation_loss(model, "val", max_batches=limit)

    @staticmethod
    def distill_mask(batch: TranslationBatch) -> torch.Tensor:
        """Target positions that are not padding: the ones distillation compares."""
        return batch.target.ne(PAD_ID)

    def evaluate(self, model: nn.Module, split: str = "test", limit: int | None = None,
                 beam: BeamConfig | None = None) -> dict[str, Any]:
        """Validation loss, then beam search and BLEU (sacreBLEU detokenized, and tokenized with
        compound splitting as HAT reports) on `split` (its first `limit` sentences if given)."""
        beam = beam or self.config.beam
        result: dict[str, Any] = self.validation_loss(model, split)
        refs = self.data.references(split)
        hyps: dict[int, str] = {}
        device = next(model.parameters()).device
        total = len(refs) if limit is None else min(limit, len(refs))
        # Beam search over a test set takes minutes on a CPU: say how far it is.
        with eval_mode(model), Tracker(f"translating {split} (beam {beam.beam})", total) as progress:
            for batch in self.batches(split, train=False):
                keep = batch.ids if limit is None else batch.ids[batch.ids < limit]
                if len(keep) == 0:
                    continue
                rows = torch.isin(batch.ids, keep)
                src = batch.src[rows]
                src = src[:, : int((src != PAD_ID).sum(1).max())].to(device)
                for idx, tokens in zip(batch.ids[rows].tolist(), translate(model, src, beam)):
                    hyps[idx] = self.data.tokenizer.decode(tokens)
                progress.advance(len(keep))
        order = sorted(hyps)
        hyp_text, ref_text = [hyps[i] for i in order], [refs[i] for i in order]
        bleu, tok = corpus_bleu(hyp_text, ref_text), tokenized_bleu(hyp_text, ref_text)
        result.update(bleu=bleu.score, bleu_signature=bleu.signature, tok_bleu=tok.score,
                      sentences=len(order), examples=list(zip(hyp_text[:3], ref_text[:3])))
        return result

    def training_task(self, model: nn.Module, seed: int, *, validate_split: str | None = "val",
                      before_step: Callable[[nn.Module, int], None] | None = None) -> TrainingTask:
        validate = (lambda m: self.validation_loss(m, validate_split)) if validate_split else None
        return TrainingTask(model, self.batches("train", train=True, seed=seed), self.loss,
                            validate_fn=validate, reduce_fn=self.reduce, before_step=before_step)

    def score_key(self) -> tuple[str, bool]:
        return "loss", False
