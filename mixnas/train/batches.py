"""`EpochBatches`: a resumable, shardable batch iterator for the trainer.

An epoch's batch list comes from `plan(epoch)`, a pure function of the epoch (and whatever seed
it closes over), so the iterator's whole state is two integers, (epoch, position), and a killed
run resumes on the very next batch. `collate` turns a planned item (say, a list of example
indices) into the batch the task's loss consumes; it runs lazily, one batch at a time, and may use
the global RNG (random augmentation), whose state the trainer checkpoints.

Sharding over `world` ranks gives rank r the planned batches r, r + world, r + 2 world, ...,
cut to the same count on every rank (at most world - 1 batches of an epoch are left out), so
one update on `world` ranks sees the same batches as `world` consecutive micro-batches of a
single process (update_freq = world).
"""
from __future__ import annotations

from typing import Any, Callable, Generic, Sequence, TypeVar

import torch

T = TypeVar("T")


class EpochBatches(Generic[T]):
    def __init__(self, plan: Callable[[int], Sequence[T]], collate: Callable[[T], Any] | None = None):
        self.plan = plan
        self.collate = collate
        self.rank, self.world = 0, 1
        self.epoch, self.position = 1, 0
        self._items: Sequence[T] | None = None

    @classmethod
    def over_batches(cls, batches: Sequence[T], seed: int, shuffle: bool = True,
                     collate: Callable[[T], Any] | None = None) -> "EpochBatches[T]":
        """A fixed list of batches (e.g. token-budget buckets) in a new order each epoch."""
        batches = list(batches)
        if not batches:
            raise ValueError("no batches to iterate over: the training data is empty")

        def plan(epoch: int) -> list[T]:
            if not shuffle:
                return batches
            order = torch.randperm(len(batches), generator=_generator(seed, epoch)).tolist()
            return [batches[i] for i in order]

        return cls(plan, collate)

    @classmethod
    def over_examples(cls, num_examples: int, batch_size: int, seed: int, shuffle: bool = True,
                      drop_last: bool = False, collate: Callable[[list[int]], Any] | None = None
                      ) -> "EpochBatches[list[int]]":
        """Examples 0..num_examples-1 in a new order each epoch, cut into index batches."""
        if num_examples <= 0 or batch_size <= 0:
            raise ValueError(f"need num_examples > 0 and batch_size > 0, got {num_examples}, {batch_size}")
        if drop_last and num_examples < batch_size:
            raise ValueError(f"drop_last with {num_examples} examples < batch_size {batch_size} "
                             f"leaves no batch; lower batch_size")

        def plan(epoch: int) -> list[list[int]]:
            if shuffle:
                order = torch.randperm(num_examples, generator=_generator(seed, epoch)).tolist()
            else:
                order = list(range(num_examples))
            stop = num_examples - num_examples % batch_size if drop_last else num_examples
            return [order[i:i + batch_size] for i in range(0, stop, batch_size)]

        return cls(plan, collate)

    # --- BatchIterator protocol -------------------------------------------------------------
    def shard(self, rank: int, world: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is outside world size {world}")
        self.rank, self.world = rank, world
        self._items = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = epoch, 0
        self._items = None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_epoch(int(state["epoch"]))
        self.position = int(state["position"])

    def __iter__(self) -> "EpochBatches[T]":
        return self

    def __next__(self) -> Any:
        items = self._shard_items()
        if self.position >= len(items):
            raise StopIteration
        item = items[self.position]
        self.position += 1
        return self.collate(item) if self.collate is not None else item

    def __len__(self) -> int:
        return len(self._shard_items())

    def _shard_items(self) -> Sequence[T]:
        if self._items is None:
            planned = list(self.plan(self.epoch))
            per_rank = len(planned) // self.world
            if per_rank == 0:
                raise ValueError(f"epoch {self.epoch} has {len(planned)} batches, fewer than the "
                                 f"{self.world} ranks; use smaller batches or fewer processes")
            self._items = planned[self.rank::self.world][:per_rank]
        return self._items


def _generator(seed: int, epoch: int) -> torch.Generator:
    # One stream per (seed, epoch), independent of the global RNG and of the rank.
    return torch.Generator().manual_seed(seed * 100_003 + epoch)
