"""Multi-query associative recall (MQAR, Zoology: Arora et al. 2023): seeded synthetic examples.

Vocabulary of V token ids, cut in three:
    0                 the blank (filler) token
    1 .. V/2 - 1      keys      (V//2 - 1 of them)
    V/2 .. V - 1      values    (V - V//2 of them)

One example is a sequence of seq_len tokens (the model's context), P = num_pairs, Q = num_queries:

    position  0   1   2   3  ...  2P-2 2P-1 | 2P ......................... seq_len-1
    input     k1  v1  k2  v2 ...  kP   vP   | blanks, with Q query keys k_j at Q positions
    target    -100 everywhere, except at a query position p holding key k_j: target v_j

Keys of one example are distinct (P drawn without replacement), and so are its values (as in
Zoology), so every key names exactly one value. The Q queried keys are Q distinct keys of the
pairs in random order (Q <= P; Zoology queries every key once, Q = P: the default). The model
reads the key at p and must output its value there (a causal model has seen the pairs, so
the answer is recall, nothing else): exactly Q targets per example, the loss and accuracy
count those positions only.

Query positions: Q distinct positions drawn uniformly at random over the 2P..seq_len-1
remainder (sorted). Zoology draws the gaps from a power law (most queries soon after the
pairs, like recency in text) and fills the rest with blanks or random tokens; uniform
positions make every key-to-query distance equally likely, so accuracy measures recall over
the whole context, not mostly over short distances, and blank fillers keep the only keys in
the remainder the queried ones (a random filler key would be an unanswered query).

Splits: each split is a fixed pool of examples drawn from its own generator, seeded by
(seed, split), so the pools are reproducible and independent; two pools share an example only
if every key, value and query position coincides (probability < 1e-30 at the presets' sizes).
Training batches: the fixed train pool (Zoology: a fixed training set too), shuffled anew each
epoch by `EpochBatches.over_examples`; evaluation: a split's examples in order.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...dataconf import ConfigError
from ...train.batches import EpochBatches
from ..lm.data import LMBatch

SPLITS = ("train", "val", "test")
IGNORE = -100  # the target of a position that is not a query (F.cross_entropy's ignore_index)


@dataclass
class MQARDataConfig:
    vocab_size: int = 64        # V token ids: blank, V//2 - 1 keys, V - V//2 values
    seq_len: int = 64           # tokens per example (= model.config.context)
    num_pairs: int = 8          # key-value pairs at the start of each example
    num_queries: int = 0        # queried keys per example (0: num_pairs, each key once)
    train_examples: int = 20_000  # the fixed training pool
    val_examples: int = 500
    test_examples: int = 1000
    batch_size: int = 64        # training examples per batch
    eval_batch_size: int = 256  # evaluation examples per batch
    seed: int = 0               # of the example pools (the training seed shuffles them)

    def validate(self) -> None:
        for key in ("vocab_size", "seq_len", "num_pairs", "train_examples", "val_examples", "test_examples",
                    "batch_size", "eval_batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
        if isinstance(self.num_queries, bool) or not isinstance(self.num_queries, int) or self.num_queries < 0:
            raise ConfigError(f"data.num_queries must be an integer >= 0 (0: num_pairs), got {self.num_queries!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"data.seed must be an integer >= 0, got {self.seed!r}")
        if self.train_examples < self.batch_size:
            raise ConfigError(f"data.train_examples={self.train_examples} is fewer than data.batch_size="
                              f"{self.batch_size}: no full training batch")
        if self.queries > self.num_pairs:
            raise ConfigError(f"data.num_queries={self.num_queries} exceeds data.num_pairs={self.num_pairs}: "
                              f"each query asks a distinct key of the pairs")
        if self.num_pairs > self.vocab_size // 2 - 1:
            raise ConfigError(f"data.vocab_size={self.vocab_size} has {max(self.vocab_size // 2 - 1, 0)} keys, fewer "
                              f"than data.num_pairs={self.num_pairs}; use vocab_size >= {2 * self.num_pairs + 2}")
        if 2 * self.num_pairs + self.queries > self.seq_len:
            raise ConfigError(f"data.seq_len={self.seq_len} cannot hold {self.num_pairs} pairs and {self.queries} "
                              f"queries: need seq_len >= 2 * num_pairs + num_queries = "
                              f"{2 * self.num_pairs + self.queries}")

    @property
    def queries(self) -> int:
        return self.num_queries or self.num_pairs

    def examples(self, split: str) -> int:
        return getattr(self, f"{split}_examples")


def _distinct(generator: torch.Generator, n: int, choices: int, k: int) -> torch.Tensor:
    """(n, k) int64: k distinct integers of 0..choices-1 per row, in random order."""
    return torch.rand(n, choices, generator=generator).argsort(dim=1)[:, :k]


def generate(config: MQARDataConfig, split: str) -> LMBatch:
    """The whole pool of `split`: inputs and targets (N, seq_len) int64, laid out as the module
    docstring says. Pure function of (config, split)."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not in this data ({', '.join(SPLITS)})")
    c, n = config, config.examples(split)
    p, q, half = c.num_pairs, c.queries, c.vocab_size // 2
    generator = torch.Generator().manual_seed(c.seed * len(SPLITS) + SPLITS.index(split))
    keys = 1 + _distinct(generator, n, half - 1, p)
    values = half + _distinct(generator, n, c.vocab_size - half, p)
    asked = _distinct(generator, n, p, q)                                  # which pairs are queried
    where = 2 * p + _distinct(generator, n, c.seq_len - 2 * p, q).sort(dim=1).values
    inputs = torch.zeros(n, c.seq_len, dtype=torch.int64)
    inputs[:, 0:2 * p:2], inputs[:, 1:2 * p:2] = keys, values
    inputs.scatter_(1, where, keys.gather(1, asked))
    targets = torch.full_like(inputs, IGNORE).scatter_(1, where, values.gather(1, asked))
    return LMBatch(inputs, targets)


def train_batches(pool: LMBatch, batch_size: int, seed: int) -> EpochBatches:
    """Batches of the fixed training pool, reshuffled each epoch (resumable, shardable)."""
    def collate(indices: list[int]) -> LMBatch:
        index = torch.tensor(indices)
        return LMBatch(pool.inputs[index], pool.targets[index])

    return EpochBatches.over_examples(len(pool.inputs), batch_size, seed, drop_last=True, collate=collate)


def eval_batches(pool: LMBatch, batch_size: int, limit: int | None = None):
    """The first `limit` examples of a pool (all without a limit), `batch_size` at a time."""
    count = len(pool.inputs) if limit is None else min(limit, len(pool.inputs))
    for i in range(0, count, batch_size):
        stop = min(i + batch_size, count)
        yield LMBatch(pool.inputs[i:stop], pool.targets[i:stop])
