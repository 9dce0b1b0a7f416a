"""Independent quadratic references for every attention kind, written from the formulas.

Each reference builds the full (Lq, Lk) weight matrix explicitly, applies the causal and key
padding masks, normalises each row and multiplies by the values. Nothing here calls the
package's kernels or its mask helpers; only the kernel's *parameters* (relative aK/aV) and
options (eps, max_len, K) are read from it.

Positions: query row i sits at absolute position q_offset + i, key j at position j (keys of a
decoded prefix start at 0). A causal query sees keys j <= q_offset + i.

cosformer's M (`cosformer_m`), written from the documented rules: m_rule "fixed" uses the
option max_len; m_rule "length" uses the call's `m` (causal) or max(m, Lk) (non-causal), and
without `m` the call's own length: L (causal) or max(Lq, Lk) (non-causal).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def visible(lq: int, lk: int, causal: bool, key_padding_mask: Tensor | None, q_offset: int,
            batch: int) -> Tensor:
    """(B, 1, Lq, Lk) float 0/1: which key each query may use."""
    allow = torch.ones(batch, 1, lq, lk, dtype=torch.float64)
    if causal:
        query_pos = torch.arange(lq)[:, None] + q_offset
        allow = allow * (torch.arange(lk)[None, :] <= query_pos).to(torch.float64)
    if key_padding_mask is not None:
        allow = allow * (~key_padding_mask).to(torch.float64)[:, None, None, :]
    return allow


def softmax_weights(scores: Tensor, allow: Tensor) -> Tensor:
    """exp(scores) over the visible keys, normalised per row; rows with no visible key are 0."""
    seen = allow.to(torch.bool).expand_as(scores)
    row_max = scores.masked_fill(~seen, float("-inf")).amax(-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
    w = torch.exp(scores - row_max) * seen.to(scores.dtype)
    return w / w.sum(-1, keepdim=True).clamp_min(1e-300)


def linear_weights(raw: Tensor, allow: Tensor, eps: float) -> Tensor:
    """Non-negative weights over visible keys, divided by max(row sum, eps)."""
    w = raw * allow.to(raw.dtype)
    return w / w.sum(-1, keepdim=True).clamp_min(eps)


def cosformer_m(kernel, lq: int, lk: int, causal: bool, m: int | None) -> int:
    """M of cosformer's cos(pi (i - j) / 2M) for one call, from the documented rule."""
    if getattr(kernel, "m_rule", "fixed") == "fixed":
        return kernel.max_len
    if m is not None:
        return m if causal else max(m, lk)
    return lq if causal else max(lq, lk)


def reference_attention(kind: str, kernel, q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False,
                        key_padding_mask: Tensor | None = None, q_offset: int = 0,
                        m: int | None = None) -> Tensor:
    """`m`: cosformer's per-call M (length rule); with q_offset > 0 (a decoded prefix) give it,
    since the call's own length is then not the length the rule means."""
    b, h, lq, d = q.shape
    lk = k.shape[2]
    allow = visible(lq, lk, causal, key_padding_mask, q_offset, b)
    qpos = torch.arange(lq, dtype=torch.float64) + q_offset
    kpos = torch.arange(lk, dtype=torch.float64)
    if kind == "softmax":
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(d)
        return softmax_weights(scores, allow) @ v
    if kind == "relative":
        big_k = kernel.max_relative_position
        rel = (kpos[None, :] - qpos[:, None]).clamp(-big_k, big_k).long() + big_k  # (Lq, Lk)
        a_k = kernel.rel_k[:, :d].to(q.dtype)[rel]  # (Lq, Lk, d): aK for every pair
        a_v = kernel.rel_v[:, :d].to(q.dtype)[rel]
        scores = (torch.einsum("bhid,bhjd->bhij", q, k) + torch.einsum("bhid,ijd->bhij", q, a_k)) / math.sqrt(d)
        w = softmax_weights(scores, allow)
        return w @ v + torch.einsum("bhij,ijd->bhid", w, a_v)
    if kind == "cosformer":
        big_m = cosformer_m(kernel, lq, lk, causal, m)
        assert qpos.max() < big_m and kpos.max() < big_m, "reference: positions must be < M"
        reweight = torch.cos(math.pi * (qpos[:, None] - kpos[None, :]) / (2 * big_m)).to(q.dtype)
        raw = torch.einsum("bhid,bhjd->bhij", torch.relu(q), torch.relu(k)) * reweight
        return linear_weights(raw, allow, kernel.eps) @ v
    if kind == "linear":
        phi_q = torch.nn.functional.elu(q) + 1
        phi_k = torch.nn.functional.elu(k) + 1
        raw = torch.einsum("bhid,bhjd->bhij", phi_q, phi_k)
        return linear_weights(raw, allow, kernel.eps) @ v
    raise KeyError(f"no reference for attention kind {kind!r}; add one to {__file__}")


# --------------------------------------------------------------------------- shared test inputs
# Options that make the positional parts matter at test lengths: cosformer's cos re-weighting
# spans a large angle (M close to the length), relative positions are clipped (K < length).
TEST_OPTIONS = {"cosformer": {"max_len": 160, "chunk": 16}, "linear": {"chunk": 16},
                "relative": {"max_relative_position": 4}}


def options_for(kind: str) -> dict:
    return dict(TEST_OPTIONS.get(kind, {}))


def random_qkv(batch: int, heads: int, lq: int, lk: int, dim: int, *, dtype=torch.float64,
               seed: int = 0, away_from_zero: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Random q (B,H,Lq,d), k and v (B,H,Lk,d). `away_from_zero` keeps |x| >= 0.2 so relu is
    differentiable at every input (for gradcheck)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for length in (lq, lk, lk):
        x = torch.randn(batch, heads, length, dim, generator=gen, dtype=dtype)
        if away_from_zero:
            x = torch.sign(x) * (0.2 + x.abs())
        out.append(x)
    return out[0], out[1], out[2]


def random_padding(batch: int, length: int, seed: int = 0, fully_padded_row: int | None = None) -> Tensor:
    """Bool (B, L), True = padded, about 30% padded; optionally one batch row entirely padded."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, length, generator=gen) < 0.3
    if fully_padded_row is not None:
        mask[fully_padded_row] = True
    return mask
