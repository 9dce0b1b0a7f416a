"""Character-level text (Tiny Shakespeare) for language modelling: splits, windows, batches.

A text file is read whole; its vocabulary is the sorted set of its distinct characters (65
for Tiny Shakespeare) and every character becomes its index. Splits are contiguous, in file
order (nanoGPT's split when test_fraction is 0: first 90% train, last 10% val):

    train = the first (1 - val_fraction - test_fraction) of the characters
    val   = the next val_fraction
    test  = the last test_fraction (only when test_fraction > 0)

Training batch: `batch_size` windows of context + 1 characters starting at uniformly random
offsets of the train split; inputs = window[:-1], targets = window[1:] (the next character at
every position).

Sequence-length warm-up (`warmup_context`, `warmup_batches`; off by default): the first
`warmup_batches` training batches use shorter windows, doubling in equal stages from
`warmup_context` up to context / 2, then every batch has full windows:

    length(b) = warmup_context * 2 ** floor(b * k / warmup_batches)   for b < warmup_batches
    length(b) = context                                               afterwards,
    k = log2(context / warmup_context) stages,  windows per batch = batch_size * context / length(b)

so every batch holds the same batch_size * context characters, and a short window is placed at
a random position offset in 0 .. context - length (one per batch, `LMBatch.offset`: its first
character sits at that row of the model's position table). b counts batches (= updates with
one process and update_freq 1).

Why: at context 2048 a fresh attention layer averages over thousands of keys and each learned
position is seen batch_size times per update, so the local statistics a character model needs
first are learned slowly (all rows of a first shakespeare-long run sat at the 2.50 nats plateau
for 400 updates of 2 x 2048 characters; 16 x 256 reached 2.29). Why the offsets: windows at
position 0 train only the first rows of the position table (a 4 x 64 model's validation loss at
2048 rose from 2.59 to 3.26 while its short-window training loss fell from 2.47 to 2.23). The
warm-up alone did not get narrow models off the plateau; relative-position attention did (the
shakespeare-long preset says how much).

Evaluation: the split cut into consecutive non-overlapping windows (every
character but the first is predicted once), the first `limit` windows when a limit is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from ...dataconf import ConfigError
from ...train.batches import EpochBatches

SHAKESPEARE_HINT = "e.g. data.dir=../shared/data/tinyshakespeare"


@dataclass
class LMDataConfig:
    dir: str = ""                   # folder holding `file`
    file: str = "input.txt"
    context: int = 64               # characters the model sees (= model.config.context)
    batch_size: int = 12            # training windows per batch
    eval_batch_size: int = 64       # evaluation windows per batch
    val_fraction: float = 0.1
    test_fraction: float = 0.0
    batches_per_epoch: int = 1000   # training batches per (random-window) epoch
    warmup_context: int = 0         # shortest training window of the warm-up (0: no warm-up)
    warmup_batches: int = 0         # batches before full-context windows (see the module docstring)

    def validate(self) -> None:
        if not self.dir:
            raise ConfigError(f"data.dir is required for language-modeling ({SHAKESPEARE_HINT})")
        for key in ("context", "batch_size", "eval_batch_size", "batches_per_epoch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")
        if not 0 <= self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must be in [0, 1), got {self.test_fraction}")
        self.window_schedule()  # checks the warm-up
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"data.val_fraction + data.test_fraction must leave characters to train on, "
                             f"got {self.val_fraction} + {self.test_fraction}")

    def window_schedule(self) -> "WindowSchedule":
        return WindowSchedule(self.context, self.warmup_context, self.warmup_batches)

    def split_names(self) -> list[str]:
        return ["train", "val", "test"] if self.test_fraction > 0 else ["train", "val"]


@dataclass(frozen=True)
class WindowSchedule:
    """Training window length per batch index: the warm-up of the module docstring."""

    context: int
    warmup_context: int = 0
    warmup_batches: int = 0

    def __post_init__(self):
        start, batches = self.warmup_context, self.warmup_batches
        for key, value in (("warmup_context", start), ("warmup_batches", batches)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"data.{key} must be an integer >= 0, got {value!r}")
        if (start == 0) != (batches == 0):
            raise ConfigError(f"data.warmup_context and data.warmup_batches go together (got {start} and "
                              f"{batches}); set both, or both to 0 for no warm-up")
        if start and not (start < self.context and self.context % start == 0
                          and (self.context // start) & (self.context // start - 1) == 0):
            raise ConfigError(f"data.warmup_context={start} must be data.context={self.context} divided by a "
                              f"power of two (e.g. {max(self.context // 8, 1)}), so the windows double up to it")

    @property
    def stages(self) -> int:
        return (self.context // self.warmup_context).bit_length() - 1 if self.warmup_context else 0

    def length(self, batch: int) -> int:
        """Window length of training batch `batch` (0-based, counted over epochs)."""
        if batch >= self.warmup_batches:
            return self.context
        return self.warmup_context * 2 ** (batch * self.stages // self.warmup_batches)


@dataclass(frozen=True)
class CharCorpus:
    vocab: str                      # characters in id order
    splits: dict[str, torch.Tensor]  # name -> (N,) int64 ids


def load_corpus(config: LMDataConfig) -> CharCorpus:
    path = Path(config.dir) / config.file
    if not path.is_file():
        raise ValueError(f"{path} does not exist; set data.dir to the folder of {config.file} ({SHAKESPEARE_HINT})")
    text = path.read_text(encoding="utf-8")
    vocab = "".join(sorted(set(text)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    n = len(ids)
    n_train = int(n * (1 - config.val_fraction - config.test_fraction))
    n_val = n - n_train if config.test_fraction == 0 else int(n * config.val_fraction)
    splits = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val]}
    if config.test_fraction > 0:
        splits["test"] = ids[n_train + n_val:]
    for name, split in splits.items():
        if len(split) < config.context + 1:
            raise ValueError(f"the {name} split of {path} has {len(split)} characters, fewer than "
                             f"data.context + 1 = {config.context + 1}; use a longer text or a smaller context")
    return CharCorpus(vocab, splits)


class LMBatch(NamedTuple):
    """inputs (B, T) and targets (B, T) int64: targets[:, t] is the character after inputs[:, t];
    `offset`: the position of inputs[:, 0] in the model's position table (0 but for warm-up windows)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    offset: int = 0

    def to(self, device) -> "LMBatch":
        return LMBatch(self.inputs.to(device), self.targets.to(device), self.offset)


def windows(data: torch.Tensor, starts: torch.Tensor, length: int, offset: int = 0) -> LMBatch:
    """The batch of windows data[s : s + length + 1] for every start s, at position `offset`."""
    chunk = data[starts[:, None] + torch.arange(length + 1)]
    return LMBatch(chunk[:, :-1], chunk[:, 1:], offset)


class RandomWindows(EpochBatches):
    """Training batches for the trainer (mixnas.train.protocol's BatchIterator, via
    EpochBatches): epoch e holds `batches_per_epoch` batches of window starts drawn from a
    generator seeded by (seed, e) alone, so the state is (epoch, position), resume is exact and
    sharding gives rank r the batches r, r + world, ... (the same count on every rank). Batch b
    of the run (counted over epochs) has windows of schedule.length(b) characters."""

    def __init__(self, data: torch.Tensor, context: int, batch_size: int, batches_per_epoch: int, seed: int = 0,
                 schedule: WindowSchedule | None = None):
        if len(data) < context + 1:
            raise ValueError(f"{len(data)} characters cannot hold a window of context + 1 = {context + 1}")
        schedule = schedule or WindowSchedule(context)
        if schedule.context != context:
            raise ValueError(f"the window schedule is for context {schedule.context}, not {context}")
        self.data, self.context, self.seed = data, context, seed

        def plan(epoch: int) -> list[tuple[int, torch.Tensor, int]]:
            generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
            first = (epoch - 1) * batches_per_epoch
            lengths = [schedule.length(first + i) for i in range(batches_per_epoch)]
            if all(length == context for length in lengths):  # one draw: the starts of runs without warm-up
                starts = torch.randint(0, len(data) - context, (batches_per_epoch, batch_size), generator=generator)
                return [(context, s, 0) for s in starts]
            items = []
            for length in lengths:
                starts = torch.randint(0, len(data) - length, (batch_size * context // length,), generator=generator)
                offset = int(torch.randint(0, context - length + 1, (1,), generator=generator))
                items.append((length, starts, offset))
            return items

        super().__init__(plan, lambda item: windows(self.data, item[1], item[0], item[2]))


def eval_batches(data: torch.Tensor, context: int, batch_size: int, limit: int | None = None):
    """Consecutive non-overlapping windows of `data` (the first `limit`), `batch_size` at a time."""
    count = (len(data) - 1) // context
    if limit is not None:
        count = min(count, limit)
    starts = torch.arange(count) * context
    for i in range(0, count, batch_size):
        yield windows(data, starts[i:i + batch_size], context)
