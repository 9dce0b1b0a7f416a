"""relative: softmax attention with learned, clipped relative-position representations
(Shaw, Uszkoreit and Vaswani 2018), the third attention type of the paper's search space.

    e_ij = q_i . (k_j + aK[clip(j - i)]) / sqrt(d),   out_i = sum_j a_ij (v_j + aV[clip(j - i)])

with clip to [-K, K]. aK and aV are shared by all heads and sized for the largest head; a
smaller head uses their first columns (so a supernet can slice them).

On CPU float32/float64 the kind runs the fused flash-style kernel of `fused_relative.py`
(O(N d + N (2K+1)) memory, no (Lq, Lk) tensor); `attend` below is the PyTorch path and the
reference: it runs in export mode, under `reference_path()` / MIXNAS_FUSED=0, when training
with dropout > 0, and when the fused kernel is unavailable.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import fused_relative
from .extension import applicable
from .kernels import KVCacheKernel
from .registry import AttentionSpec, register


class RelativeKernel(KVCacheKernel):
    # The fused kernel (fused_relative.py) from 64 keys on; below, the PyTorch path is faster.
    # Measured, 1 thread, fwd+bwd, PyTorch path time / fused time: L = 17 / 20 / 50 (B x H =
    # 128-256 pairs): 0.47 / 0.59 / 0.92, L = 128: 2.35, L = 1024: 7.2.
    fused_min_length = 64

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

    def attend_keys(self, q, k, v, causal, q_offset, key_padding_mask):
        """The fused kernel takes the mask's structure (causal flag, query offset, key padding)
        and never builds the (Lq, Lk) mask. It does not run below `fused_min_length`, with
        dropout active (dropout is only in the PyTorch path), or when it is off or unavailable
        (then `fused_relative_attention` returns None): KVCacheKernel's dense mask and `attend`."""
        out = None
        # applicable() first: while exporting, a length test would put a guard on the traced length.
        if applicable() and max(q.shape[2], k.shape[2]) >= self.fused_min_length \
                and not (self.training and self.dropout > 0):
            out = fused_relative.fused_relative_attention(q, k, v, self.rel_k, self.rel_v, causal=causal,
                                                          q_offset=q_offset, key_padding_mask=key_padding_mask)
        if out is None:
            out = super().attend_keys(q, k, v, causal, q_offset, key_padding_mask)
        return out

    def attend(self, q, k, v, mask, q_offset):
        """The PyTorch path: dense (B, H, Lq, Lk) scores, gather and scatter."""
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
