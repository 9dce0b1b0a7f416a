"""Fused CPU kernel for relative-position attention (Shaw et al. 2018), forward and backward.

    s_ij = (q_i . k_j + q_i . aK[r_ij]) / sqrt(d),   r_ij = clip(j - p_i, -K, K) + K,  p_i = q_offset + i
    P_ij = softmax_j(s_ij) over the visible keys,    out_i = sum_j P_ij (v_j + aV[r_ij])

Visible: not padded (key_padding_mask True = padded) and, causal, j <= p_i. A row with no
visible key returns zeros. aK, aV: the kind's rel_k / rel_v, front-sliced to the head size d.

Why a kernel: the PyTorch path (`RelativeKernel.attend`) materialises the (B, H, Lq, Lk) scores,
their gather of q aK^T and the scatter of the probabilities per bucket: 2.2 GB at N=4096 and
5-10x slower than softmax SDPA. Here (csrc/fused_relative.cpp) it is flash attention: per
(batch, head) the queries are cut in blocks and each block walks the key blocks with an online
softmax (running max m_i and sum l_i; a larger maximum rescales what was summed by
exp(m_old - m_new)). The relative term comes from the small table qr_i = q_i aK^T / sqrt(d)
(2K+1 values per query) indexed by the bucket; outside the band |j - p_i| < K the bucket is 0
or 2K, one constant per row, so only blocks near the diagonal need per-element indices. The
value side sums the probability mass per bucket, mass_i (2K+1), and adds mass_i aV at the end:

    out_i = (sum_j e_ij v_j + mass_i aV) / l_i,   e_ij = exp(s_ij - m_i),  lse_i = m_i + log l_i

Saved for the backward: q / sqrt(d), k, v, qr, out, lse (B, H, Lq) and the normalised masses
(B, H, Lq, 2K+1): O(B H L (d + 2K+1)), never (Lq, Lk). The backward recomputes the scores per
block, P_ij = exp(s_ij - lse_i), then (flash-attention backward with the relative terms)

    dP_ij = dO_i . v_j + dor_i[r_ij],   dor_i = dO_i aV^T,      D_i = sum_j P_ij dP_ij = dO_i . out_i
    dS_ij = P_ij (dP_ij - D_i),         dsr_i[r] = sum_{j: r_ij = r} dS_ij
    g_q_i = (sum_j dS_ij k_j + dsr_i aK) / sqrt(d),             g_k_j = sum_i dS_ij q_i / sqrt(d)
    g_v_j = sum_i P_ij dO_i,            g_aK = sum_{b,h,i} dsr_i^T q_i / sqrt(d),   g_aV = sum_{b,h,i} mass_i^T dO_i

(g_aK, g_aV reach rel_k, rel_v through the front slice: the unused columns get zero.)

When it is used: `RelativeKernel` on CPU float32/float64 inputs outside `export_mode()` and
`reference_path()`, unless the kind is training with dropout > 0 (dropout on the probabilities
is not in the kernel: that call runs the PyTorch path, silently). The extension is compiled at
first use (extension.py says how and where it is cached). If it cannot be used (the build fails,
a CUDA tensor, another dtype) the PyTorch path runs instead, with one `FusedFallbackWarning`
per process saying why. MIXNAS_FUSED=0 disables it (always the PyTorch path, no warning).

Threads: the forward runs (batch, head, query block) units in one parallel region; the backward
runs (batch, head) pairs, and when there are fewer pairs than threads each pair's key blocks are
dealt to several units with their own partial g_q (summed at the end). Calls under 2^22
multiply-adds run serially (a parallel region's barrier costs more than their work). On a
machine whose cores are busy with other processes, 2-thread runs lose much of their time in
libgomp's spinning barrier (as fused.py notes); OMP_WAIT_POLICY=passive avoids it. The exponentials are a vectorised polynomial in the C++ file, not ATen's exp (MKL's
takes a slow path on -inf and on underflow, which masked blocks are full of).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import extension
from .extension import CppExtension, FusedFallbackWarning, enabled, reference_path, tensor_reason

__all__ = ["fused_relative_attention", "ready", "load_extension", "unavailable_reason", "enabled", "reference_path",
           "FusedFallbackWarning", "BLOCK_Q", "BLOCK_K"]

EXT = CppExtension("mixnas_fused_relative", "fused_relative.cpp")
# Query x key block: a (128, 256) fp32 score block (128 KB) plus its dP twin stay in L2, and the
# (128 x 64) by (64 x 256) products are large enough for MKL to run near peak (by measurement,
# benchmarks/relative_attention.py).
BLOCK_Q, BLOCK_K = 128, 256


def load_extension() -> str | None:
    """Build (first call) or load the C++ extension; None on success, else the reason it failed."""
    return EXT.load()


def unavailable_reason(*tensors: Tensor) -> str | None:
    """Why the fused kernel cannot run on these tensors (None: it can)."""
    return tensor_reason(*tensors) or load_extension()


def ready(*tensors: Tensor) -> bool:
    """Whether the fused path runs on these tensors (`extension.ready`)."""
    return extension.ready("fused relative attention", unavailable_reason, *tensors)


def fused_relative_attention(q: Tensor, k: Tensor, v: Tensor, rel_k: Tensor, rel_v: Tensor, *, causal: bool,
                             q_offset: int, key_padding_mask: Tensor | None,
                             block_q: int | None = None, block_k: int | None = None) -> Tensor | None:
    """Relative attention of q (B, H, Lq, d) over k, v (B, H, Lk, d) with the tables rel_k, rel_v
    (2K+1, >= d; front-sliced here). Returns the output (B, H, Lq, d), or None when the fused
    path is disabled or unavailable (the caller then runs the PyTorch path; the first
    unavailability per process warns). Blocks: BLOCK_Q x BLOCK_K unless given."""
    if not ready(q, k, v):
        return None
    d = q.shape[-1]
    return _FusedRelative.apply(q, k, v, rel_k[:, :d].to(q.dtype), rel_v[:, :d].to(q.dtype),
                                padding_bias(key_padding_mask, q.dtype), bool(causal), int(q_offset),
                                block_q or BLOCK_Q, block_k or BLOCK_K)


def padding_bias(key_padding_mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """(B, Lk) additive 0 / -inf per key (True = padded): the kernel's form of the padding mask."""
    if key_padding_mask is None:
        return None
    return torch.zeros(key_padding_mask.shape, dtype=dtype).masked_fill_(key_padding_mask, float("-inf"))


class _FusedRelative(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, a_k, a_v, kpad, causal: bool, q_offset: int, block_q: int, block_k: int):
        rel = (a_k.shape[0] - 1) // 2
        qs = q * (1.0 / math.sqrt(q.shape[-1]))
        qr = qs @ a_k.t()  # (B, H, Lq, 2K+1): the relative logits of every bucket
        acc, mass, lse = torch.ops.mixnas_fused_relative.forward(qs, k, v, qr, kpad, causal, q_offset, rel,
                                                                 block_q, block_k)
        out = acc.add_(mass @ a_v)
        ctx.save_for_backward(qs, k, v, a_k, a_v, kpad, qr, out, mass, lse)
        ctx.args = (causal, q_offset, rel, block_q, block_k)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        qs, k, v, a_k, a_v, kpad, qr, out, mass, lse = ctx.saved_tensors
        causal, q_offset, rel, block_q, block_k = ctx.args
        g_out = g_out.contiguous()  # out.sum() sends an expanded (stride 0) gradient
        dor = g_out @ a_v.t()  # (B, H, Lq, 2K+1)
        delta = (g_out * out).sum(-1)  # D_i = dO_i . out_i
        g_qs, g_k, g_v, dsr = torch.ops.mixnas_fused_relative.backward(
            qs, k, v, qr, kpad, lse, g_out, dor, delta, causal, q_offset, rel, block_q, block_k)
        scale = 1.0 / math.sqrt(qs.shape[-1])
        g_q = g_qs.add_(dsr @ a_k).mul_(scale)
        nb, d = a_k.shape
        g_ak = dsr.reshape(-1, nb).t() @ qs.reshape(-1, d)  # summed over batch, heads and queries
        g_av = mass.reshape(-1, nb).t() @ g_out.reshape(-1, d)
        return g_q, g_k, g_v, g_ak, g_av, None, None, None, None, None
