"""relative: softmax attention with learned, clipped relative-position representations
(Shaw, Uszkoreit and Vaswani 2018), the third attention type of the paper's search space.

    e_ij = q_i . (k_j + aK[clip(j - i)]) / sqrt(d),   out_i = sum_j a_ij (v_j + aV[clip(j - i)])

with clip to [-K, K]. aK and aV are shared by all heads and sized for the largest head; a
smaller head uses their first columns (so a supernet can slice them).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .kernels import KVCacheKernel
from .registry import AttentionSpec, register


class RelativeKernel(KVCacheKernel):
    def __init__(self, head_dim: int, dropout: float = 0.0, max_relative_position: int = 16):
        super().__init__(head_dim, dropout)
        self.max_relative_position = max_relative_position
        n = 2 * max_relative_position + 1
        self.rel_k = nn.Parameter(torch.randn(n, head_dim) * 0.02)
        self.rel_v = nn.Parameter(torch.randn(n, head_dim) * 0.02)

    def relative_index(self, lq: int, lk: int, q_offset: int, device) -> torch.Tensor:
        """(Lq, Lk) indices into rel_k / rel_v: clip(j - i) + K."""
        qpos = torch.arange(lq, device=device) + q_offset
        kpos = torch.arange(lk, device=device)
        k = self.max_relative_position
        return (kpos[None, :] - qpos[:, None]).clamp(-k, k) + k

    def attend(self, q, k, v, mask, q_offset):
        b, h, lq, d = q.shape
        idx = self.relative_index(lq, k.shape[2], q_offset, q.device)
        rel_k, rel_v = self.rel_k[:, :d].to(q.dtype), self.rel_v[:, :d].to(q.dtype)
        idx_b = idx.expand(b, h, lq, -1)
        scores = q @ k.transpose(-1, -2) + torch.gather(q @ rel_k.t(), -1, idx_b)
        scores = scores / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if mask is not None:  # rows with no visible key: zeros, not NaN
            probs = probs.masked_fill(~mask.any(-1, keepdim=True), 0.0)
        if self.training and self.dropout > 0:
            probs = torch.dropout(probs, self.dropout, True)
        # Sum the probabilities per relative bucket, then one small matmul with aV.
        buckets = probs.new_zeros(b, h, lq, rel_v.shape[0]).scatter_add_(-1, idx_b, probs)
        return probs @ v + buckets @ rel_v


register(AttentionSpec("relative", RelativeKernel, linear_complexity=False,
                       summary="softmax with clipped relative-position keys and values (Shaw et al. 2018)",
                       options={"max_relative_position": 16}))
