"""One token of causal self-attention on plain tensors, for exported decoding programs.

An exported decoding step (mixnas/families/transformer/export.py, mixnas/families/lm/export.py)
takes and returns the attention states as graph inputs and outputs, not as `KVCache` /
`LinearState` objects: two tensors per layer,

    softmax-like kinds (KVCacheKernel): past keys, past values   (B, H, P, d), P = tokens seen
    linear kinds (LinearKernel):        kv = sum phi(k)^T v (B, H, D, d), z = sum phi(k) (B, H, D)

and `causal_step` computes what the kernel's own incremental path computes from them: the new
token's query against the cache grown by its key and value, or the readout of the sums grown
by phi(k) v^T (D = 2d for cosFormer's cos/sin features, else d). cosFormer's M comes in as a
tensor or an int (`kernel_m`).
"""
from __future__ import annotations

import torch
from torch import Tensor

from .cosformer import CosformerKernel
from .functional import linear_readout
from .kernels import KVCacheKernel, LinearKernel
from .multihead import merge_heads, split_heads
from .state import KVCache, LinearState


def kernel_m(kernel, m, lk, causal: bool):
    """The M of a call (as CosformerKernel.resolve_m with `m` given), or None for other kinds."""
    if not isinstance(kernel, CosformerKernel):
        return None
    if kernel.m_rule == "fixed":
        return kernel.max_len
    return m if causal else m.clamp_min(lk)


def check_kind(attn, models: str) -> None:
    """A one-line ValueError for a kind whose state is neither a KV cache nor linear sums."""
    if not isinstance(attn.kernel, (KVCacheKernel, LinearKernel)):
        raise ValueError(f"export does not support attention kind {attn.kind!r} in {models}")


def causal_step(attn, x: Tensor, state: tuple[Tensor, Tensor], position: Tensor, m) -> tuple[Tensor, tuple]:
    """Self-attention output (B, 1, E) of one new token x (B, 1, E) at `position` (a 0-d int64
    tensor) continuing `state`, and the new state (see the module docstring)."""
    kernel = attn.kernel
    q = split_heads(attn.q_proj(x), attn.num_heads)
    k = split_heads(attn.k_proj(x), attn.num_heads)
    v = split_heads(attn.v_proj(x), attn.num_heads)
    if isinstance(kernel, KVCacheKernel):
        keys, values = torch.cat([state[0], k], dim=2), torch.cat([state[1], v], dim=2)
        out = kernel.attend(q, keys, values, None, position)  # the last query sees every key
        new = (keys, values)
    else:
        mm = kernel_m(kernel, m, None, causal=True)
        pos = position.reshape(1)
        qf, kf = kernel.feature_map(q, pos, mm), kernel.feature_map(k, pos, mm)
        kv = state[0] + kf.transpose(-1, -2) @ v
        z = state[1] + kf[:, :, 0]
        out, new = linear_readout(qf, kv, z, kernel.eps), (kv, z)
    return attn.out_proj(merge_heads(out)), new


def _empty_state(attn, batch: int, past: int) -> list[Tensor]:
    p = attn.out_proj.weight
    h, d = attn.num_heads, attn.qkv_dim // attn.num_heads
    if isinstance(attn.kernel, KVCacheKernel):
        return [p.new_zeros(batch, h, past, d), p.new_zeros(batch, h, past, d)]
    dim = 2 * d if isinstance(attn.kernel, CosformerKernel) else d
    return [p.new_zeros(batch, h, dim, d), p.new_zeros(batch, h, dim)]


def empty_states(attns, batch: int, past: int = 0) -> list[Tensor]:
    """The states of the self-attentions `attns` (one per decoding layer, in order) before the
    first token: two tensors each, an empty KV cache (length `past`, 0 by default) or zero sums."""
    return [t for attn in attns for t in _empty_state(attn, batch, past)]


def state_names(attns) -> tuple[list[str], list[str]]:
    """(input names, output names) of the layers' state tensors, two per layer i."""
    ins, outs = [], []
    for i, attn in enumerate(attns):
        if isinstance(attn.kernel, KVCacheKernel):
            ins += [f"past_key_{i}", f"past_value_{i}"]
            outs += [f"present_key_{i}", f"present_value_{i}"]
        else:
            ins += [f"state_kv_{i}", f"state_z_{i}"]
            outs += [f"new_state_kv_{i}", f"new_state_z_{i}"]
    return ins, outs


def state_tensors(state: KVCache | LinearState) -> list[Tensor]:
    """The two tensors of a PyTorch decoding state, in the exported programs' order."""
    if isinstance(state, KVCache):
        if state.key_padding_mask is not None and bool(state.key_padding_mask.any()):
            raise ValueError("a KV cache with padded keys has no exported form (the step takes every key)")
        return [state.k, state.v]
    return [state.kv, state.z]


def dynamic_state_shapes(attns, batch, past) -> list[dict]:
    """torch.export dynamic shapes of the layers' state tensors: batch, and a KV cache's length."""
    return [{0: batch, 2: past} if isinstance(a.kernel, KVCacheKernel) else {0: batch} for a in attns for _ in (0, 1)]
