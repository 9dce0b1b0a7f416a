"""What the trainer drives: a task (model + resumable batches + loss) — the whole contract.

A task is any object with these members (duck typing; `TrainTask` states it for type checkers):

    model: torch.nn.Module
        Moved to the training device by the trainer before the optimizer is built.
    train_batches: BatchIterator
        Resumable, shardable batch iterator (below). `EpochBatches` is a ready implementation.
    loss(model, batch, step) -> (loss, stats)
        `batch` is what `train_batches` yielded, with tensors (also inside dicts, lists,
        tuples) moved to the device. `step` is the number of updates completed so far
        (0 for the first update, equal for all micro-batches of one update and on every rank),
        so a supernet task can seed its sub-network choice with it.
        `loss` is a scalar tensor, the SUM of per-sample losses of the batch, and
        `stats["sample_size"]` the number of samples (tokens, images) it sums over. The
        trainer adds up losses and sample sizes over the micro-batches of an update and over
        ranks, and divides the gradient by the total: the update follows the mean loss per
        sample of the whole global batch, whatever the split (fairseq's convention). A task
        whose loss is already a mean returns `sample_size=1` and gets the mean over batches.
        Other stats entries are numbers (or 0-dim tensors) that are summed the same way and
        logged; every rank must return the same keys.
    validate(model) -> dict[str, float]                                      (optional)
        Called on rank 0 in eval mode under `torch.no_grad()`, every `validate_every`
        updates, at each epoch's end with `validate_every_epoch`, and at the end; the RNG
        streams are saved before and restored after, so validation never changes training.
        The result is broadcast to all ranks. A truthy "stop" entry ends training (RankNAS
        early stopping), and a resumed run stays stopped. Metrics go to the logs under
        kind "valid".
    reduce_metrics(sums: dict[str, float]) -> dict[str, float]                 (optional)
        Turns summed stats (including "loss" and "sample_size") over a logging interval
        into the numbers to log, e.g. nll per token or accuracy. Default: mean loss per sample.
    state_dict() -> dict / load_state_dict(state)                            (optional)
        Extra task state kept in checkpoints (plain types and tensors only), e.g. the
        architecture or an early-stopping history.

BatchIterator contract (all positions are in batches of the current shard):

    set_epoch(epoch)      start epoch `epoch` (1-based) at its first batch; the order must
                          be a pure function of (seed, epoch), never of the global RNG
    __next__()            next batch of the epoch, StopIteration at its end
    state_dict()          {"epoch": int, "position": int, ...}, plain types
    load_state_dict(s)    continue exactly where `state_dict()` was taken
    shard(rank, world)    from now on yield only this rank's batches; every rank must get
                          the same number of batches per epoch (the trainer reduces once
                          per update and would otherwise deadlock)
    __len__()             (optional) batches per epoch, for the progress bar
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import torch


@runtime_checkable
class BatchIterator(Protocol):
    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __next__(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def shard(self, rank: int, world: int) -> None: ...


@runtime_checkable
class TrainTask(Protocol):
    model: torch.nn.Module
    train_batches: BatchIterator

    def loss(self, model: torch.nn.Module, batch: Any, step: int
             ) -> tuple[torch.Tensor, dict[str, Any]]: ...


def check_task(task: Any) -> None:
    """Raise a one-line ValueError naming what a task object lacks."""
    missing = [name for name in ("model", "train_batches", "loss") if not hasattr(task, name)]
    if missing:
        raise ValueError(f"{type(task).__name__} is not a training task: it lacks {missing} "
                         f"(see mixnas.train.protocol)")
    if not isinstance(task.model, torch.nn.Module):
        raise ValueError(f"task.model must be a torch.nn.Module, got {type(task.model).__name__}")
    if not isinstance(task.train_batches, BatchIterator):
        raise ValueError(f"task.train_batches ({type(task.train_batches).__name__}) must provide "
                         f"set_epoch, __next__, state_dict, load_state_dict and shard")
