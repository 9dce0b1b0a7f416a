"""Fused CPU kernels for linear attention (cosFormer and elu+1): NON-CAUSAL and CAUSAL, forward
and backward.

Non-causal (`fused_linear_attention`, csrc/fused_linear.cpp):
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

Causal (`fused_causal_linear_attention`, csrc/fused_causal.cpp), self-attention whose rows sit
at positions offset .. offset + L - 1 (offset: the tokens an initial state already holds):
    out_i = phi(q_i)^T S_i / max(phi(q_i)^T z_i, eps),  [S_i, z_i] = [S0, z0] + sum_{j <= i} phi(k_j) [v_j, 1]^T
-- `functional.causal_linear_attention` on the features, the same clamp and the same (absent)
gradient where it clamps. Rows go in chunks of C = `CAUSAL_CHUNK`; chunk c (rows R) is
    A = (F_q F_k^T) o W,   num = A [V, 1] + P_q S_c,   out = num[:, :d] / max(num[:, d], eps),
    S_{c+1} = S_c + P_k^T [V, 1]                          (S = S_aug: D x (d+1), z its last column)
with P = phi of the chunk's rows only (never an (L, D) tensor) and two things that keep it near
the matmul roofline:
- the scores use F = relu(x) (cosFormer) and W = tril(C) o cos(pi (i - j) / 2M): since
  sin a_i sin a_j + cos a_i cos a_j = cos(a_i - a_j), (F_q F_k^T) o W = P_q P_k^T but costs
  d, not 2d, multiply-adds per score (elu: F = P, W = tril);
- every product is one BLAS call on the chunk's (C x D) blocks (no dispatcher in between).
Backward, chunks in reverse with g_S = dL/dS_{c+1} (starting from the returned state's gradient):
    G = [g_out / c, -(g_out . out) / c]  (0 in the last column where den < eps),  gA = (G [V, 1]^T) o W
    g_F_q = gA F_k,   g_F_k = gA^T F_q,   g_v = A^T G[:, :d] + P_k g_S[:, :d]
    g_P_q = G S_c^T,  g_P_k = [V, 1] g_S^T,   then g_S += P_q^T G   (= dL/dS_c)
then through the features: cosFormer g_x = relu'(x) (g_F + sin a g_P[:d] + cos a g_P[d:]),
elu g_x = min(phi, 1) (g_F + g_P); after chunk 0, g_S is the gradient of the initial state.
Saved: q, k, v, out, den (B, H, L) and the state S_c at every `CAUSAL_EVERY`-th chunk boundary
(B, H, ceil(L / C / every), D, d+1); the backward rebuilds the states inside each such segment
from its checkpoint (one P_k^T [V, 1] per chunk) before running it in reverse -- no feature
tensor and no per-row state. A padded key (key_padding_mask True) gets phi = 0, as on the
PyTorch path (the query rows are still read out).
Tuning (cosFormer, B=1, H=8, N=4096, d=64, fp32, one thread, CPU time on a loaded 2-core Xeon):
fwd+bwd 58 ms at C=64 (C=32: 59-80 ms, C=128: 65-69 ms; skipping the zero upper quarter of
the chunk products measured no faster), causal SDPA 530 ms; every=1 and every=4 take the same
time, every=4 keeps 13 MB less (peak 36 MB against SDPA's 41 MB). Two threads, wall clock, the
same machine at load ~5: 78-96 ms against SDPA's 560-590 ms (6-7x), with OMP_WAIT_POLICY=passive
69 ms against 552 ms (8.0x): the barrier spinning of "Threads" below.

When they are used: `LinearKernel`, for CPU float32/float64 inputs outside `export_mode()`:
every non-causal call, and causal calls of more than one token (with or without a state; a
single decoding step keeps the PyTorch recurrence, measured faster for one row: see kernels.py).
The extension is compiled at first use (about 30 s; extension.py says how and where it is cached). If it cannot be used
(the build fails, no compiler, a CUDA tensor, another dtype) the PyTorch path runs instead, with
one warning (`FusedFallbackWarning`) per process saying why. MIXNAS_FUSED=0 disables it
(always the PyTorch path, no warning), and so does an active TorchDispatchMode (FlopCounterMode:
the FLOP counts of the cost model's tests stay exact).

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

from .extension import CppExtension, FusedFallbackWarning, enabled, ready, reference_path, tensor_reason

__all__ = ["fused_linear_attention", "fused_causal_linear_attention", "load_extension", "unavailable_reason",
           "enabled", "reference_path", "FusedFallbackWarning", "BLOCK", "CAUSAL_CHUNK", "CAUSAL_EVERY"]

EXT = CppExtension("mixnas_fused_linear", "fused_linear.cpp", "fused_causal.cpp")
BLOCK = 512  # rows per block: a (512, 128) fp32 feature block is 256 KB, well inside L2
CAUSAL_CHUNK = 64  # causal: rows per chunk (the fastest measured; "Tuning" above)
CAUSAL_EVERY = 4  # causal: a state checkpoint every 4 chunks ("Tuning" above)
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
    if not ready("fused linear attention", unavailable_reason, q, k, v):
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


def fused_causal_linear_attention(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, kind: str,
                                  m: int, eps: float, offset: int = 0, kv0: Tensor | None = None,
                                  z0: Tensor | None = None, chunk: int = CAUSAL_CHUNK, every: int = CAUSAL_EVERY
                                  ) -> tuple[Tensor, Tensor, Tensor] | None:
    """Causal self-attention of `kind` from raw q, k, v (B, H, L, d) at positions offset ..
    offset + L - 1, continuing the sums (kv0 (B, H, D, dv), z0 (B, H, D)) when given. Returns
    (out, kv, z) as `functional.causal_linear_attention` on the features does (kv, z: the final
    sums, views of one (B, H, D, dv + 1) tensor), or None when the fused path is disabled or
    unavailable (the caller then runs the PyTorch path). cosFormer: offset + L - 1 < m (checked
    by the caller). Gradients reach q, k, v and kv0, z0."""
    if not ready("fused linear attention", unavailable_reason, q, k, v):
        return None
    mask = None if key_padding_mask is None else key_padding_mask.contiguous()
    s0 = None if kv0 is None else torch.cat([kv0, z0.unsqueeze(-1)], dim=-1).to(q.dtype)
    out, s = _FusedCausal.apply(q, k, v, s0, mask, KINDS[kind], m, eps, offset, chunk, every)
    dv = v.shape[-1]
    return out, s[..., :dv], s[..., dv]


class _FusedCausal(torch.autograd.Function):
    """Returns (out, S_final (B, H, D, dv + 1)); kv and z are views of S_final."""

    @staticmethod
    def forward(ctx, q, k, v, s0, mask, kind: int, m: int, eps: float, offset: int, chunk: int, every: int):
        out, s, den, ckpt = torch.ops.mixnas_fused.causal_forward(q, k, v, s0, mask, kind, m, eps, offset,
                                                                  chunk, every)
        ctx.save_for_backward(q, k, v, out, den, ckpt)
        ctx.set_materialize_grads(False)
        ctx.args = (mask, kind, m, eps, offset, chunk, every)
        return out, s

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out, g_s):
        q, k, v, out, den, ckpt = ctx.saved_tensors
        mask, kind, m, eps, offset, chunk, every = ctx.args
        if g_out is None:  # only the final state was used
            g_out = out.new_zeros(()).expand_as(out)
        g_q, g_k, g_v, g_s0 = torch.ops.mixnas_fused.causal_backward(
            q, k, v, mask, out, den, ckpt, g_out, g_s, kind, m, eps, offset, chunk, every)
        return g_q, g_k, g_v, (g_s0 if ctx.needs_input_grad[3] else None), None, None, None, None, None, None, None
