"""Incremental-decoding state objects.

A state is what an attention kernel remembers between decoding calls. Kernels never mutate a
state: each call returns a new one, so beam search can keep, reorder or drop states freely.
`offset` counts the query positions consumed so far; positional kinds (cosformer, relative)
use it so that step t sees exactly the positions the full forward gives token t. A
`LinearState` also keeps the M of cosformer's re-weighting, so every later step uses the M
the decoding started with.
`static=True` marks cross-attention memory: the keys are fixed (the encoder output) and are
not appended to, only `offset` advances.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from torch import Tensor


@dataclass(frozen=True)
class KVCache:
    """Keys and values seen so far (softmax and relative kinds): (B, H, T, d) each."""

    k: Tensor
    v: Tensor
    key_padding_mask: Tensor | None  # (B, T) bool, True = padded
    offset: int
    static: bool = False

    def reorder(self, index: Tensor) -> "KVCache":
        """Select batch rows (beam search); `index` is a 1-D LongTensor."""
        mask = None if self.key_padding_mask is None else self.key_padding_mask.index_select(0, index)
        return replace(self, k=self.k.index_select(0, index), v=self.v.index_select(0, index),
                       key_padding_mask=mask)


@dataclass(frozen=True)
class LinearState:
    """Running sums of a linear-attention kind: kv = sum_j phi(k_j)^T v_j (B, H, D, d) and
    z = sum_j phi(k_j) (B, H, D). Constant size whatever the number of tokens seen."""

    kv: Tensor
    z: Tensor
    offset: int
    static: bool = False
    m: int | None = None  # the length M the feature map used (cosformer); fixed for the whole decoding

    def reorder(self, index: Tensor) -> "LinearState":
        return replace(self, kv=self.kv.index_select(0, index), z=self.z.index_select(0, index))


def advance(state: KVCache | LinearState, steps: int) -> KVCache | LinearState:
    """A static (cross-attention) state after `steps` more query positions."""
    return replace(state, offset=state.offset + steps)


__all__ = ["KVCache", "LinearState", "advance"]
