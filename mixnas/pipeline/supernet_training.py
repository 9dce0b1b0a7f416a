"""Supernet training (pipeline step 1): one weight-sharing network for the whole search space.

Each update trains the sub-network `sample_arch(space, seed, step)`, a pure function of the
seed and the update number, so a resumed run (and every DDP rank) trains the same sequence
of sub-networks. Only the active slice of the weights gets gradients; the others keep
`grad=None`, which Adam skips and the trainer's manual all-reduce handles.

Sandwich rule (`supernet.sandwich: true`): each update also trains the largest and the
smallest sub-network. The three losses are computed on the same micro-batch inside one
`loss` call and summed, with sample_size = 3 x batch, so the update follows the MEAN of the
three sub-networks' mean losses (BigNAS sums instead; under Adam that differs only by a
constant factor the optimiser normalises away) and the logged loss/accuracy are means over
the three. The three graphs are alive together: about 3x the activation memory of one.

In-place distillation (`supernet.distill: true`, needs the sandwich rule), as in BigNAS and
OFA: the largest sub-network learns the labels; the smallest and the random one learn its
detached output distribution, their loss the KL divergence to it summed over examples
(classification: the class distribution) or non-padding target tokens (translation: each
token's vocabulary distribution), at temperature 1. The logged loss then mixes the largest's
cross-entropy with the others' KL; the logged accuracy stays label-based.

RankNAS early stop (`supernet.early_stop_tau > 0`): every validation scores a fixed list of
`early_stop_archs` architectures (drawn once from a seed-named stream) with inherited weights
on the first `score_limit` validation examples, and stops training when the Kendall tau
between this ranking and the previous validation's exceeds the threshold. The previous
scores live in the task's extra_state, stored in checkpoints, so a resumed run compares
against the same list. Validations happen every `train.validate_every` updates and/or at each
epoch's end (`train.validate_every_epoch`, RankNAS's choice).

Outputs in `run_dir/supernet/`: the trainer's checkpoints and logs, `supernet.pt` (the final
state_dict, loadable with weights_only=True), `space.yaml` and `pipeline.yaml`.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from ..fileio import atomic_write_text, write_json
from ..tasks.common import TrainingTask
from ..train import Trainer
from ..train.checkpoint import atomic_torch_save
from .config import PipelineConfig
from .scoring import (SPACE_FILE, SUPERNET_FILE, build_supernet, build_task, fixed_archs, kendall_tau,
                      load_space, sample_arch, score)


@dataclass
class SupernetTrainingTask(TrainingTask):
    """A TrainingTask whose loss trains the sub-networks `archs_for_step(step)` on each batch."""
    archs_for_step: Callable[[int], list] = field(default=lambda step: [])
    losses_since_ranking: int = 0  # in this process; 0 at a validation = nothing new to rank
    # In-place distillation: batch -> bool mask of the positions that count (None: all); the
    # first sub-network of a step learns the labels, the others its detached outputs.
    distill_mask: Callable[[Any], Tensor | None] | None = None

    def loss(self, model: nn.Module, batch: Any, step: int):
        self.losses_since_ranking += 1
        total, stats, teacher = None, {}, None
        for arch in self.archs_for_step(step):
            model.set_arch(arch)
            if self.distill_mask is None:
                loss, part = self.loss_fn(model, batch)
            else:
                with model_outputs(model) as outputs:
                    loss, part = self.loss_fn(model, batch)  # its stats (accuracy, ...) stay label-based
                if teacher is None:
                    teacher = outputs[-1].detach()
                else:
                    loss = distillation_loss(outputs[-1], teacher, self.distill_mask(batch))
            total = loss if total is None else total + loss
            for key, value in part.items():
                stats[key] = stats.get(key, 0) + value
        return total, stats


@contextmanager
def model_outputs(model: nn.Module) -> Iterator[list[Tensor]]:
    """The outputs (logits) of every top-level call of `model` inside the block."""
    outputs: list[Tensor] = []
    handle = model.register_forward_hook(lambda module, args, output: outputs.append(output))
    try:
        yield outputs
    finally:
        handle.remove()


def distillation_loss(student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> Tensor:
    """KL(teacher || student) of the class distributions over the last axis, summed over the
    examples (classification) or the positions where `mask` holds (translation: target tokens),
    like the tasks' summed cross-entropy; in float32 even under bf16 autocast."""
    log_student = F.log_softmax(student.float(), dim=-1)
    log_teacher = F.log_softmax(teacher.float(), dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    if mask is not None:
        kl = kl.masked_fill(~mask, 0.0)
    return kl.sum()


def supernet_training_task(cfg: PipelineConfig, task, space, supernet: nn.Module) -> SupernetTrainingTask:
    seed, sn = cfg.seed, cfg.supernet
    if sn.sandwich:
        largest, smallest = space.largest(), space.smallest()
        archs_for_step = lambda step: [largest, smallest, sample_arch(space, seed, step)]  # noqa: E731
    else:
        archs_for_step = lambda step: [sample_arch(space, seed, step)]  # noqa: E731
    base = task.training_task(supernet, seed, validate_split=None)
    distill_mask = None
    if sn.distill:  # config validation guarantees the sandwich rule: the largest comes first
        distill_mask = task.distill_mask
    train_task = SupernetTrainingTask(supernet, base.train_batches, base.loss_fn, reduce_fn=base.reduce_fn,
                                      archs_for_step=archs_for_step, distill_mask=distill_mask)
    ranked = fixed_archs(space, seed, sn.early_stop_archs, "early-stop") if sn.early_stop_tau else []
    largest_arch = space.largest()

    def validate(model: nn.Module) -> dict[str, Any]:
        model.set_arch(largest_arch)
        metrics: dict[str, Any] = {f"largest_{k}": v for k, v in score(task, model, sn.score_limit).items()}
        state = train_task.extra_state
        if ranked and state.get("rank_scores") and not train_task.losses_since_ranking:
            # A resumed, already finished run validates once more without having trained:
            # the weights are those of the last ranking, so it is not a new data point.
            metrics["rank_tau"] = state["rank_taus"][-1]
        elif ranked:
            train_task.losses_since_ranking = 0
            scores = []
            for arch in ranked:
                model.set_arch(arch)
                scores.append(score(task, model, sn.score_limit)["score"])
            previous = state.get("rank_scores")
            tau = kendall_tau(previous, scores) if previous else None
            state["rank_scores"] = scores
            state["rank_taus"] = [*state.get("rank_taus", []), tau]
            metrics["rank_tau"] = tau
            if tau is not None and tau > sn.early_stop_tau:
                metrics["stop"] = True
        return metrics

    train_task.validate_fn = validate
    return train_task


def train_supernet(cfg: PipelineConfig) -> dict[str, Any]:
    """Train (or resume) the supernet of `cfg`; on the main process write supernet.pt and
    space.yaml. Returns the trainer's summary plus the early-stop record."""
    task = build_task(cfg)
    space = load_space(cfg)
    supernet = build_supernet(cfg, task, space)
    out = cfg.supernet_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "pipeline.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    train_task = supernet_training_task(cfg, task, space, supernet)
    with Trainer(train_task, cfg.supernet.train) as trainer:
        summary = trainer.train()
        is_main, stopped = trainer.dist.is_main, trainer.stopped_by_task
    summary.update(stopped_early=stopped, rank_taus=train_task.extra_state.get("rank_taus", []),
                   supernet=str(out / SUPERNET_FILE))
    if is_main:
        atomic_torch_save({k: v.detach().cpu() for k, v in supernet.state_dict().items()}, out / SUPERNET_FILE)
        space.save(out / SPACE_FILE)
        write_json(out / "summary.json", summary, allow_nan=True)
    return summary

