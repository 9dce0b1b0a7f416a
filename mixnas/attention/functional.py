"""Functional attention kernels on (batch, heads, length, head_dim) tensors.

These are the computations; `kernels.py` and the per-kind files wrap them with parameters and
decoding state. Masks follow PyTorch's convention: a key padding mask is a bool tensor of
shape (B, Lk) with True at padded positions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from .mode import exporting


def check_qkv(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> None:
    """Raise a one-line ValueError naming the problem, before torch fails deep inside."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (batch, heads, length, head_dim), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"query, key and value must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[:2] != k.shape[:2] or k.shape[:3] != v.shape[:3]:
        raise ValueError(f"batch/heads/length mismatch: query {tuple(q.shape)}, key {tuple(k.shape)}, "
                         f"value {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"query and key head_dim differ: {q.shape[-1]} vs {k.shape[-1]}")
    if key_padding_mask is not None:
        if key_padding_mask.dtype != torch.bool:
            raise ValueError(f"key_padding_mask must be bool (True = padded), got {key_padding_mask.dtype}")
        if tuple(key_padding_mask.shape) != (k.shape[0], k.shape[2]):
            raise ValueError(f"key_padding_mask must have shape (batch, key_length) = "
                             f"{(k.shape[0], k.shape[2])}, got {tuple(key_padding_mask.shape)}")


def allowed_mask(lq: int, lk: int, *, causal: bool, q_offset: int, key_padding_mask: Tensor | None,
                 device: torch.device) -> Tensor | None:
    """Bool mask (B or 1, 1, Lq, Lk), True where query i may attend key j; None if all allowed.

    Query i sits at absolute position q_offset + i, key j at position j, so a causal query
    sees keys j <= q_offset + i (this is what makes cached decoding equal the full forward).
    """
    mask = None
    if causal:
        qpos = torch.arange(lq, device=device) + q_offset
        mask = (torch.arange(lk, device=device)[None, :] <= qpos[:, None])[None, None]
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, :]
        mask = keep if mask is None else mask & keep
    return mask


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float = 0.0,
                      bias: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + bias) v via PyTorch's fused kernel. Query rows whose keys are
    all masked return zeros (not NaN), as the linear kinds do."""
    attn_mask = mask
    if bias is not None:
        attn_mask = bias if mask is None else bias.masked_fill(~mask, float("-inf"))
    if mask is not None:
        # A row with no visible key would be NaN; give it one dummy key and zero it afterwards.
        empty = ~mask.any(-1, keepdim=True)
        if exporting() or bool(empty.any()):  # exporting: always take this (traceable) path
            fix = torch.zeros_like(mask)
            fix[..., :1] = True
            if bias is None:
                attn_mask = mask | (empty & fix)
            else:
                attn_mask = attn_mask.masked_fill(empty & fix, 0.0)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
            return out.masked_fill(empty, 0.0)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)


# --------------------------------------------------------------------------- linear attention
def linear_attention(qf: Tensor, kf: Tensor, v: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """Non-causal: O_i = qf_i (sum_j kf_j^T v_j) / max(qf_i . sum_j kf_j, eps).

    qf, kf: (B, H, L, D) feature-mapped queries/keys (padded keys already zeroed); v: (B, H, Lk, d).
    O(L D d) time, O(D d) state. Returns (out, kv, z) so cross-attention can cache kv and z.
    """
    if exporting():
        return _linear_attention_plain(qf, kf, v, eps)
    return _LinearAttention.apply(qf, kf, v, eps)


def _linear_attention_plain(qf: Tensor, kf: Tensor, v: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """`_LinearAttention.forward` in plain, out-of-place operations (export mode)."""
    kv = kf.transpose(-1, -2) @ v
    z = kf.sum(-2)
    return linear_readout(qf, kv, z, eps), kv, z


class _LinearAttention(torch.autograd.Function):
    """Non-causal linear attention with a hand-written backward.

    Autograd through the plain formula spends most of its time in elementwise passes over
    (L, D) tensors (division backward, gradient accumulation of qf and kf used twice); here
    every (L, *) tensor of the backward is produced by one matmul plus at most one fused
    update. Gradients of the returned kv and z (cached cross-attention state) are supported.
    """

    @staticmethod
    def forward(ctx, qf: Tensor, kf: Tensor, v: Tensor, eps: float):
        kv = kf.transpose(-1, -2) @ v  # (B, H, D, d)
        z = kf.sum(-2)  # (B, H, D)
        den = qf @ z.unsqueeze(-1)  # (B, H, L, 1)
        inv = den.clamp_min(eps).reciprocal_()
        out = (qf @ kv).mul_(inv)
        ctx.save_for_backward(qf, kf, v, kv, z, out, inv, den >= eps)
        return out, kv, z

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out: Tensor, g_kv: Tensor, g_z: Tensor):
        # Autograd materialises unused output gradients as zeros, so none of them is None.
        qf, kf, v, kv, z, out, inv, unclamped = ctx.saved_tensors
        g_qf = g_kf = g_v = None
        g_num = g_out * inv  # (B, H, L, d)
        # out = num / den  =>  d out / d den = -out / den; no gradient where den was clamped.
        g_den = -(g_out * out).sum(-1, keepdim=True) * inv * unclamped  # (B, H, L, 1)
        g_kv = g_kv + qf.transpose(-1, -2) @ g_num  # (B, H, D, d)
        g_z = g_z + (qf.transpose(-1, -2) @ g_den).squeeze(-1)  # (B, H, D)
        if ctx.needs_input_grad[0]:
            g_qf = (g_num @ kv.transpose(-1, -2)).addcmul_(g_den, z.unsqueeze(-2))
        if ctx.needs_input_grad[1]:
            g_kf = (v @ g_kv.transpose(-1, -2)).add_(g_z.unsqueeze(-2))
        if ctx.needs_input_grad[2]:
            g_v = kf @ g_kv
        return g_qf, g_kf, g_v, None


def linear_readout(qf: Tensor, kv: Tensor, z: Tensor, eps: float) -> Tensor:
    """Queries against accumulated sums: qf (B,H,L,D), kv (B,H,D,d), z (B,H,D)."""
    num = qf @ kv
    den = (qf @ z.unsqueeze(-1)).clamp_min(eps)
    return num / den


def causal_linear_attention(qf: Tensor, kf: Tensor, v: Tensor, eps: float, chunk: int = 64,
                            kv0: Tensor | None = None, z0: Tensor | None = None
                            ) -> tuple[Tensor, Tensor, Tensor]:
    """Causal linear attention, chunked: exact masked product inside each chunk of `chunk`
    positions plus the prefix sums of the chunks before it (and of an initial state kv0, z0).

    Memory is O(L D + L chunk + (L / chunk) D d) per head, never the (L, D, d) cumulative-sum
    tensor of the reference code.
    Returns (out, kv_final, z_final): the final sums continue decoding from here.
    """
    b, h, n, dim = qf.shape
    d = v.shape[-1]
    if kv0 is None:
        kv0 = qf.new_zeros(b, h, dim, d)
        z0 = qf.new_zeros(b, h, dim)
    if exporting():
        return _causal_linear_attention_plain(qf, kf, v, eps, chunk, kv0, z0)
    if n == 1:  # one decoding step: the recurrence itself
        kv = kv0 + kf.transpose(-1, -2) @ v
        z = z0 + kf[:, :, 0]
        return linear_readout(qf, kv, z, eps), kv, z
    c = min(chunk, n)
    pad = (-n) % c
    if pad:  # zero keys/values/queries contribute nothing and are cut off below
        qf, kf, v = (F.pad(t, (0, 0, 0, pad)) for t in (qf, kf, v))
    nc = (n + pad) // c
    qc = qf.reshape(b, h, nc, c, dim)
    kc = kf.reshape(b, h, nc, c, dim)
    vc = v.reshape(b, h, nc, c, d)
    out, kv, z = _CausalLinearAttention.apply(qc, kc, vc, kv0, z0, eps)
    return out.reshape(b, h, nc * c, d)[:, :, :n], kv, z


def _causal_linear_attention_plain(qf: Tensor, kf: Tensor, v: Tensor, eps: float, chunk: int,
                                   kv0: Tensor, z0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The causal form for export: the exact masked product tril(qf kf^T) over the whole
    sequence plus the initial sums, in out-of-place operations with no length-dependent Python
    (the chunked form pads and loops over a number of chunks that depends on the length, which a
    program with a dynamic length cannot express). O(L^2) per head, as softmax attention;
    `chunk` is unused."""
    n = qf.shape[2]
    pos = torch.arange(n, device=qf.device)
    tril = pos[None, :] <= pos[:, None]  # (L, L): key j visible to query i
    scores = (qf @ kf.transpose(-1, -2)).masked_fill(~tril, 0.0)  # (B, H, L, L)
    num = qf @ kv0 + scores @ v
    den = (qf @ z0.unsqueeze(-1) + scores.sum(-1, keepdim=True)).clamp_min(eps)
    return num / den, kv0 + kf.transpose(-1, -2) @ v, z0 + kf.sum(-2)


def _exclusive_scan_(buf: Tensor, start: Tensor) -> Tensor:
    """In place along dim 2: buf[:, :, i] <- start + sum_{j < i} buf[:, :, j]; returns the total.
    (A loop over the few chunks: torch.cumsum along a middle dimension is several times
    slower on CPU, and the exclusive form needs no concatenation.)"""
    running = start
    for i in range(buf.shape[2]):
        total = running + buf[:, :, i]
        buf[:, :, i].copy_(running)
        running = total
    return running


def _reverse_exclusive_scan_(buf: Tensor, start: Tensor) -> Tensor:
    """In place: buf[:, :, j] <- start + sum_{i > j} buf[:, :, i]; returns start + sum of all."""
    running = start
    for j in range(buf.shape[2] - 1, -1, -1):
        total = running + buf[:, :, j]
        buf[:, :, j].copy_(running)
        running = total
    return running


class _CausalLinearAttention(torch.autograd.Function):
    """The chunked causal form on (B, H, C, c, *) chunks, with a hand-written backward.

    Chunk i: num = tril(q_i k_i^T) v_i + q_i KV_i,  den = tril(q_i k_i^T) 1 + q_i Z_i, where
    KV_i, Z_i are the sums over the chunks before i (plus the initial state). Saved for the
    backward: the (c, c) chunk scores, KV_i and Z_i, i.e. O(L c + (L / c) D d) per head.
    """

    @staticmethod
    def forward(ctx, qc, kc, vc, kv0, z0, eps: float):
        c = qc.shape[-2]
        tril = torch.ones(c, c, dtype=torch.bool, device=qc.device).tril()
        scores = (qc @ kc.transpose(-1, -2)).masked_fill_(~tril, 0.0)  # (B, H, C, c, c)
        kv_prev = kc.transpose(-1, -2) @ vc  # per-chunk sums (B, H, C, D, d) ...
        z_prev = kc.sum(-2)  # (B, H, C, D)
        kv_final = _exclusive_scan_(kv_prev, kv0)  # ... turned into the sums before each chunk
        z_final = _exclusive_scan_(z_prev, z0)
        den = (qc @ z_prev.unsqueeze(-1)).add_(scores.sum(-1, keepdim=True))  # (B, H, C, c, 1)
        inv = den.clamp_min(eps).reciprocal_()
        out = (qc @ kv_prev).add_(scores @ vc).mul_(inv)
        ctx.save_for_backward(qc, kc, vc, scores, kv_prev, z_prev, out, inv, den >= eps, tril)
        return out, kv_final, z_final

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_kv_final, g_z_final):
        qc, kc, vc, scores, kv_prev, z_prev, out, inv, unclamped, tril = ctx.saved_tensors
        g_num = g_out * inv
        g_den = (g_out * out).sum(-1, keepdim=True).mul_(inv).mul_(unclamped).neg_()  # (B, H, C, c, 1)
        # Inside each chunk: num += scores v, den += scores 1.
        g_scores = (g_num @ vc.transpose(-1, -2)).add_(g_den).masked_fill_(~tril, 0.0)
        g_q = (g_scores @ kc).add_(g_num @ kv_prev.transpose(-1, -2)).addcmul_(g_den, z_prev.unsqueeze(-2))
        g_k = g_scores.transpose(-1, -2) @ qc
        g_v = scores.transpose(-1, -2) @ g_num
        # Across chunks: num += q KV_prev, den += q Z_prev; chunk j's sums reach every later chunk.
        g_kv = qc.transpose(-1, -2) @ g_num  # (B, H, C, D, d)
        g_z = (qc.transpose(-1, -2) @ g_den).squeeze(-1)  # (B, H, C, D)
        g_kv0 = _reverse_exclusive_scan_(g_kv, g_kv_final)
        g_z0 = _reverse_exclusive_scan_(g_z, g_z_final)
        g_k.add_(vc @ g_kv.transpose(-1, -2)).add_(g_z.unsqueeze(-2))
        g_v.add_(kc @ g_kv)
        return g_q, g_k, g_v, g_kv0, g_z0, None


def causal_linear_attention_cumsum(qf: Tensor, kf: Tensor, v: Tensor, eps: float) -> Tensor:
    """The reference code's causal form: materialises the (L, D, d) prefix sums per head.
    Kept only as the benchmark baseline; slow and memory-hungry by construction."""
    kv = torch.cumsum(kf.unsqueeze(-1) * v.unsqueeze(-2), dim=2)  # (B, H, L, D, d)
    z = torch.cumsum(kf, dim=2)
    num = (qf.unsqueeze(-2) @ kv).squeeze(-2)
    den = (qf * z).sum(-1, keepdim=True).clamp_min(eps)
    return num / den


# --------------------------------------------------------------------------- feature maps
def cosformer_features(x: Tensor, positions: Tensor, max_len: int, m_rule: str = "fixed") -> Tensor:
    """cosFormer re-weighting: [relu(x) sin(pi i / 2M), relu(x) cos(pi i / 2M)] with M = max_len.

    Then phi(q_i) . phi(k_j) = relu(q_i).relu(k_j) cos(pi (i - j) / 2M), the paper's weight.
    x: (B, H, L, d); positions: (L,) absolute positions, each < M; returns (B, H, L, 2d).
    `m_rule` only words the error: "fixed" (M is the option max_len) or "length" (M given per call).
    """
    if not exporting() and positions.numel():
        check_cosformer_position(int(positions.max()), max_len, m_rule)
    angle = (math.pi / (2 * max_len)) * positions.to(x.dtype)
    trig = torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).unsqueeze(-1)  # (L, 2, 1)
    # One broadcast multiply writes both halves: (B, H, L, 2, d) -> (B, H, L, 2d), no cat.
    return (torch.relu(x).unsqueeze(-2) * trig).flatten(-2)


def check_cosformer_position(position: int, max_len: int, m_rule: str = "fixed") -> None:
    """cosFormer's weights stay positive only for positions < M: raise a one-line error if not."""
    if position < max_len:
        return
    if m_rule == "length":
        raise ValueError(f"cosformer position {position} is beyond M={max_len} "
                         f"(m_rule='length': positions must be < M); pass a larger m")
    raise ValueError(f"cosformer position {position} is beyond max_len={max_len}; "
                     f"build the attention with a larger max_len")


def elu_features(x: Tensor) -> Tensor:
    """Katharopoulos et al. (2020): phi(x) = elu(x) + 1, positive everywhere."""
    return F.elu(x) + 1.0
