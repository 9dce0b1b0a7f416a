"""Multi-head attention of any registered kind: projections + kernel.

Inputs are batch-first (B, L, E). Self-attention: `attn(x)`. Cross-attention:
`attn(x, memory, key_padding_mask=src_mask)`. Incremental decoding:
    out, st = attn(x_t, causal=True, state=st, return_state=True)      # self
    out, st = attn(x_t, memory, state=st, return_state=True)            # cross (memory cached)
`m=` passes the per-call length M to the kernel (cosformer with m_rule="length"; ignored by
every other kind).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .registry import build_kernel


def split_heads(x: Tensor, heads: int) -> Tensor:
    b, n, e = x.shape
    return x.view(b, n, heads, e // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    b, h, n, d = x.shape
    return x.transpose(1, 2).reshape(b, n, h * d)


class MultiheadAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, kind: str = "softmax", *,
                 kv_dim: int | None = None, qkv_dim: int | None = None, bias: bool = True,
                 **kind_options: Any):
        super().__init__()
        qkv_dim = qkv_dim or embed_dim
        if qkv_dim % num_heads:
            raise ValueError(f"qkv_dim={qkv_dim} is not divisible by num_heads={num_heads}")
        kv_dim = kv_dim or embed_dim
        self.embed_dim, self.num_heads, self.qkv_dim, self.kind = embed_dim, num_heads, qkv_dim, kind
        self.q_proj = nn.Linear(embed_dim, qkv_dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, qkv_dim, bias=bias)
        self.v_proj = nn.Linear(kv_dim, qkv_dim, bias=bias)
        self.out_proj = nn.Linear(qkv_dim, embed_dim, bias=bias)
        self.kernel = build_kernel(kind, qkv_dim // num_heads, **kind_options)

    def forward(self, x: Tensor, memory: Tensor | None = None, *, causal: bool = False,
                key_padding_mask: Tensor | None = None, state=None, return_state: bool = False,
                m: int | None = None):
        if x.dim() != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"input must have shape (batch, length, {self.embed_dim}), got {tuple(x.shape)}")
        q = split_heads(self.q_proj(x), self.num_heads)
        k = v = None
        if state is None or not state.static:
            src = x if memory is None else memory
            k = split_heads(self.k_proj(src), self.num_heads)
            v = split_heads(self.v_proj(src), self.num_heads)
        out, state = self.kernel(q, k, v, causal=causal, key_padding_mask=key_padding_mask,
                                 state=state, return_state=return_state, m=m)
        return self.out_proj(merge_heads(out)), state
