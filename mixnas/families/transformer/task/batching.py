"""Token-budget batches with length bucketing (fairseq conventions), resumable and shardable.

Conventions, for a pair with n source and m target subword tokens:
* `src` row: the n tokens then EOS (length n + 1), right-padded with PAD.
* `prev_output_tokens` row: BOS then the m tokens (length m + 1) - the decoder input.
* `target` row: the m tokens then EOS (length m + 1) - what the decoder must predict.
* A pair's size is max(n + 1, m + 1), and a batch costs (number of pairs) x (largest size in the
  batch): the padded token count of the longer side, as fairseq's `max_tokens` counts it.
* `max_positions` drops pairs whose source or target row (with EOS/BOS) is longer; the number
  dropped is `num_dropped`.
* Bucketing: pairs are sorted by source length, then target length, ties broken by a seeded
  permutation; batches are cut greedily from that order once. Each epoch visits the batches in
  an order drawn from (seed, epoch) when `shuffle`, in length order otherwise.
* Iteration, resume and sharding are mixnas.train.batches.EpochBatches': epochs are 1-based,
  the state is (epoch, position), rank r of w gets batches r, r + w, ... of the epoch order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from mixnas.train.batches import EpochBatches
from mixnas.families.transformer.task.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass
class TranslationBatch:
    ids: torch.Tensor  # (B,) example indices in the split, to put outputs back in corpus order
    src: torch.Tensor  # (B, S) int64, right-padded with PAD, each row ends in EOS
    src_lengths: torch.Tensor  # (B,) non-pad source tokens (EOS included)
    prev_output_tokens: torch.Tensor  # (B, T) BOS + target tokens, right-padded
    target: torch.Tensor  # (B, T) target tokens + EOS, right-padded
    n_tokens: int  # non-pad target tokens (the loss normaliser)

    def to(self, device: torch.device | str) -> "TranslationBatch":
        return TranslationBatch(
            self.ids.to(device),
            self.src.to(device),
            self.src_lengths.to(device),
            self.prev_output_tokens.to(device),
            self.target.to(device),
            self.n_tokens,
        )

    def __len__(self) -> int:
        return self.src.shape[0]


def _rows(flat: torch.Tensor, offsets: torch.Tensor, ids: torch.Tensor, *, bos: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows of the sequences `ids` of a flat store: BOS + tokens, or tokens + EOS.

    Returns the (B, max_len + 1) rows and the lengths with the added special token.
    """
    starts, lengths = offsets[ids], offsets[ids + 1] - offsets[ids]
    width = int(lengths.max()) + 1
    positions = torch.arange(width)
    token_pos = positions - 1 if bos else positions  # with BOS first, token j sits at column j + 1
    inside = (token_pos[None, :] >= 0) & (token_pos[None, :] < lengths[:, None])
    gather = (starts[:, None] + token_pos[None, :]).clamp(0, max(len(flat) - 1, 0))
    rows = torch.full((len(ids), width), PAD_ID, dtype=torch.int64)
    if len(flat):
        rows = torch.where(inside, flat[gather].long(), rows)
    special_col = torch.zeros_like(lengths) if bos else lengths
    rows[torch.arange(len(ids)), special_col] = BOS_ID if bos else EOS_ID
    return rows, lengths + 1


def source_rows(token_ids) -> torch.Tensor:
    """(B, S) int64 source rows of sentences encoded without specials, built as `collate` builds
    a batch's `src`: each sentence's tokens then EOS, right-padded with PAD to the longest."""
    lengths = torch.tensor([len(row) for row in token_ids], dtype=torch.int64)
    offsets = torch.zeros(len(token_ids) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    flat = torch.tensor([token for row in token_ids for token in row], dtype=torch.int64)
    return _rows(flat, offsets, torch.arange(len(token_ids)), bos=False)[0]


def collate(split, ids: torch.Tensor) -> TranslationBatch:
    """The TranslationBatch of examples `ids` (int64 tensor) of an EncodedSplit."""
    ids = torch.as_tensor(ids, dtype=torch.int64)
    src, src_lengths = _rows(split.src, split.src_offsets, ids, bos=False)
    target, tgt_lengths = _rows(split.tgt, split.tgt_offsets, ids, bos=False)
    prev_output_tokens, _ = _rows(split.tgt, split.tgt_offsets, ids, bos=True)
    return TranslationBatch(
        ids=ids.clone(),
        src=src,
        src_lengths=src_lengths,
        prev_output_tokens=prev_output_tokens,
        target=target,
        n_tokens=int(tgt_lengths.sum()),
    )


class TokenBatches(EpochBatches):
    """Token-budget batches of an EncodedSplit for the trainer (mixnas.train.protocol's BatchIterator).

    Epochs are 1-based; `set_epoch`, `state_dict`/`load_state_dict` (epoch, position) and
    `shard(rank, world)` behave as EpochBatches documents. `num_dropped` counts the pairs
    removed by `max_positions`; `num_batches` is the unsharded batch count per epoch.
    """

    def __init__(
        self,
        split,
        *,
        max_tokens: int,
        max_positions: int | None = None,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}")
        if max_sentences is not None and max_sentences < 1:
            raise ValueError(f"max_sentences must be positive or None, got {max_sentences}")
        src_len, tgt_len = split.src_lengths + 1, split.tgt_lengths + 1  # with EOS / BOS
        keep = torch.ones(len(split), dtype=torch.bool)
        if max_positions is not None:
            keep = (src_len <= max_positions) & (tgt_len <= max_positions)
        self.num_dropped = int((~keep).sum())
        kept = torch.nonzero(keep).flatten()
        if len(kept) == 0:
            raise ValueError(f"max_positions={max_positions} drops all {len(split)} pairs; raise max_positions")
        sizes = torch.maximum(src_len, tgt_len)
        if int(sizes[kept].max()) > max_tokens:
            raise ValueError(
                f"max_tokens={max_tokens} is smaller than the longest kept pair ({int(sizes[kept].max())} tokens); "
                "raise max_tokens or set max_positions lower"
            )
        order = _length_order(kept, src_len, tgt_len, seed if shuffle else None)
        batches = _cut(order, sizes, max_tokens, max_sentences)
        self.num_batches = len(batches)
        # The per-epoch shuffle of the fixed batch list is EpochBatches' own, seeded by (seed, epoch).
        plan = EpochBatches.over_batches(batches, seed=seed, shuffle=shuffle).plan
        super().__init__(plan, partial(collate, split))


def _length_order(kept: torch.Tensor, src_len: torch.Tensor, tgt_len: torch.Tensor, seed: int | None) -> torch.Tensor:
    """Kept indices sorted by (source length, target length), ties in a seeded random order.

    The first permutation breaks ties reproducibly; the two stable sorts then order by lengths
    (fairseq's ordering). With seed None ties stay in corpus order.
    """
    order = kept
    if seed is not None:
        order = kept[torch.randperm(len(kept), generator=torch.Generator().manual_seed(seed))]
    order = order[torch.sort(tgt_len[order], stable=True).indices]
    return order[torch.sort(src_len[order], stable=True).indices]


def _cut(order: torch.Tensor, sizes: torch.Tensor, max_tokens: int, max_sentences: int | None) -> list[torch.Tensor]:
    """Greedy batches along `order` while (pairs + 1) x (largest size) stays within max_tokens."""
    batches, current, widest = [], [], 0
    for index, size in zip(order.tolist(), sizes[order].tolist()):
        grown = max(widest, size)
        full = max_sentences is not None and len(current) == max_sentences
        if current and (full or (len(current) + 1) * grown > max_tokens):
            batches.append(torch.tensor(current))
            current, grown = [], size
        current.append(index)
        widest = grown
    batches.append(torch.tensor(current))
    return batches
