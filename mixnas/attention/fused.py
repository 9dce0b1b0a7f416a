"""Fused CPU kernel for NON-CAUSAL linear attention (cosFormer and elu+1), forward and backward.

    out_i = phi(q_i)^T S / max(phi(q_i)^T z, eps),   S = sum_j phi(k_j) v_j^T (D x d),  z = sum_j phi(k_j)

with the feature map computed inside the kernel from q and k:
- "linear": phi(x) = elu(x) + 1 (D = d);
- "cosformer": phi(x_i) = [relu(x_i) sin(a_i), relu(x_i) cos(a_i)], a_i = pi i / 2M (D = 2d), so
  phi(q_i) . phi(k_j) = relu(q_i) . relu(k_j) cos(pi (i - j) / 2M); queries and keys both start
  at position 0 (non-causal self- or cross-attention).
Padded keys (key_padding_mask True) get phi = 0: they add nothing to S or z.

Why a kernel: the PyTorch path (`functional.linear_attention` on feature tensors) materialises
phi(q) and phi(k), (B, H, L, D) each (for cosFormer D = 2d: twice the size of q), keeps them for
the backward, and spends much of its time in elementwise passes over them. Here (csrc/
fused_linear.cpp) every (batch, head) slice is processed in blocks of `BLOCK` rows; a block's
features live in a (BLOCK, D) scratch buffer, and the backward recomputes them from q and k.
The denominator rides along as an extra value column: S_aug = sum_j phi(k_j) [v_j, 1]^T is one
matmul per block whose last column is z, and phi(q_i)^T S_aug gives numerator and denominator
together. Saved for the backward: q, k, v (the inputs), S_aug (B, H, D, d+1; stored transposed),
the output and the unclamped denominator (B, H, L) -- no feature tensor.

Backward (c_i = max(den_i, eps); no gradient through den where it was clamped):
    G_i = [g_out_i / c_i,  -(g_out_i . out_i) / c_i]        (d + 1)
    g_phi(q_i) = S_aug G_i,   g_S_aug = sum_i phi(q_i) G_i^T (+ the gradient of the returned kv, z)
    g_phi(k_j) = g_S_aug [v_j, 1],   g_v_j = g_S_aug[:, :d]^T phi(k_j)
then through phi: elu: d phi/dx = min(phi, 1); cosFormer: relu'(x) (sin a g[:d] + cos a g[d:]).

When it is used: `LinearKernel`'s non-causal path, for CPU float32/float64 inputs outside
`export_mode()`. The extension is compiled at first use (about 15 s; extension.py says how and
where it is cached). If it cannot be used (the build fails, no compiler, a CUDA tensor, another
dtype) the PyTorch path runs instead, with one warning (`FusedFallbackWarning`) per process
saying why. MIXNAS_FUSED=0 disables it (always the PyTorch path, no warning).

Threads: the (batch, head) pairs run in one parallel region when there are at least as many
pairs as threads and at least 2^22 multiply-adds in all; smaller calls run serially. Known
issue (open): on a machine whose cores were busy with other processes (load 3 on 2 cores), runs
with 2 OpenMP threads spent most of their time spinning in libgomp's barrier at the end of that
region (N=1024: ~260 ms instead of ~4 ms per forward): a thread that finishes its share spins
while the other waits for a core. OMP_WAIT_POLICY=passive removes it; one intra-op thread (the
CPU pipeline presets' setting) never enters the region.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .extension import CppExtension, FusedFallbackWarning, enabled, notice, reference_path, tensor_reason
from .mode import exporting

__all__ = ["fused_linear_attention", "load_extension", "unavailable_reason", "enabled", "reference_path",
           "FusedFallbackWarning", "BLOCK"]

EXT = CppExtension("mixnas_fused_linear", "fused_linear.cpp")
BLOCK = 512  # rows per block: a (512, 128) fp32 feature block is 256 KB, well inside L2
KINDS = {"linear": 0, "cosformer": 1}  # feature-map codes of the C++ kernel


def load_extension() -> str | None:
    """Build (first call) or load the C++ extension; None on success, else the reason it failed."""
    return EXT.load()


def unavailable_reason(*tensors: Tensor) -> str | None:
    """Why the fused kernel cannot run on these tensors (None: it can)."""
    return tensor_reason(*tensors) or load_extension()


def fused_linear_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, kind: str,
                           m: int, eps: float, block: int = BLOCK) -> tuple[Tensor, Tensor, Tensor] | None:
    """Non-causal linear attention of `kind` ("linear" or "cosformer" with M = m) from raw q, k, v
    (B, H, L, d). Returns (out, kv, z) as `functional.linear_attention` on the features does, or
    None when the fused path is disabled or unavailable (the caller then runs the PyTorch path;
    the first unavailability per process warns). Positions must be < m (checked by the caller)."""
    if exporting() or not enabled():
        return None
    reason = unavailable_reason(q, k, v)
    if reason is not None:
        notice("fused linear attention", reason)
        return None
    mask = None if key_padding_mask is None else key_padding_mask.contiguous()
    out, s_aug_t = _FusedLinear.apply(q, k, v, mask, KINDS[kind], m, eps, block)
    dv = v.shape[-1]  # S_aug^T is (B, H, dv + 1, D): kv = its first dv rows, transposed; z = the last
    return out, s_aug_t[..., :dv, :].transpose(-1, -2), s_aug_t[..., dv, :]


class _FusedLinear(torch.autograd.Function):
    """Returns (out, S_aug^T); kv and z are views of it, so their gradients arrive together."""

    @staticmethod
    def forward(ctx, q, k, v, mask, kind: int, m: int, eps: float, block: int):
        out, s_aug, den = torch.ops.mixnas_fused.linear_forward(q, k, v, mask, kind, m, eps, block)
        ctx.save_for_backward(q, k, v, out, s_aug, den)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None
        ctx.args = (mask, kind, m, eps, block)
        return out, s_aug

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_s):
        q, k, v, out, s_aug, den = ctx.saved_tensors
        mask, kind, m, eps, block = ctx.args
        if g_out is None:  # only kv / z were used: a zero gradient that allocates nothing
            g_out = out.new_zeros(()).expand_as(out)
        g_q, g_k, g_v = torch.ops.mixnas_fused.linear_backward(
            q, k, v, mask, out, s_aug, den, g_out, g_s, kind, m, eps, block)
        return g_q, g_k, g_v, None, None, None, None, None
