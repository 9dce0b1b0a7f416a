"""Attention kernels: modules that map projected q, k, v (B, H, L, d) to outputs, with state.

Two families share all the bookkeeping of masks, positions and decoding state:
- `KVCacheKernel`: a kind that needs every past key (softmax, relative); state = KVCache.
  A subclass implements `attend`.
- `LinearKernel`: a kind with a feature map phi, so attention is phi(q) (sum phi(k)^T v);
  state = LinearState of constant size. A subclass implements `features`.

Calling convention of every kernel:
    out, state = kernel(q, k, v, causal=..., key_padding_mask=..., state=..., return_state=...)
- causal self-attention: Lq == Lk; with `state` the new tokens continue where the state ends.
- non-causal (self or cross): `return_state=True` returns a *static* state that caches the
  keys (cross-attention memory); later calls pass it with k = v = None.
- `m=` (optional int): the length M of positional kinds whose M is given per call (cosformer
  with `m_rule="length"`); every other kind, and cosformer with a fixed M, ignore it. A
  decoding state remembers the M it was started with.

The linear kinds run fused C++ kernels on CPU float32/float64 inputs (`fused.py`; MIXNAS_FUSED=0
turns them off): every non-causal call, and causal calls of more than one token (a prompt, a
training sequence, a prefill that continues a state); single decoding steps, and every other
case, take the feature-tensor path below.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .functional import (allowed_mask, causal_linear_attention, check_qkv, linear_attention,
                         linear_readout)
from .extension import applicable
from .fused import fused_causal_linear_attention, fused_linear_attention
from .state import KVCache, LinearState, advance


class AttentionKernel(nn.Module):
    """Base of all kinds. `head_dim` is the largest head size it will see (parameters of
    positional kinds are sized by it and front-sliced for smaller heads)."""

    def __init__(self, head_dim: int, dropout: float = 0.0):
        super().__init__()
        self.head_dim = head_dim
        self.dropout = dropout

    def forward(self, q: Tensor, k: Tensor | None, v: Tensor | None, *, causal: bool = False,
                key_padding_mask: Tensor | None = None, state=None, return_state: bool = False,
                m: int | None = None):
        if state is not None and state.static:
            return self._from_static(q, state)  # a static state fixed its M when it was made
        if k is None or v is None:
            raise ValueError("key and value are required unless a static (cross-attention) state is given")
        check_qkv(q, k, v, key_padding_mask)
        if q.shape[-1] > self.head_dim:
            raise ValueError(f"head_dim {q.shape[-1]} exceeds the kernel's head_dim={self.head_dim}")
        if state is not None and not causal:
            raise ValueError("a growing decoding state needs causal=True (non-causal state is static)")
        if causal and q.shape[2] != k.shape[2]:
            raise ValueError(f"causal self-attention needs equal query and key lengths, "
                             f"got {q.shape[2]} and {k.shape[2]}")
        return self._compute(q, k, v, causal, key_padding_mask, state, return_state, m)


class KVCacheKernel(AttentionKernel):
    """Kinds that attend to every past key explicitly. Subclasses implement `attend`."""

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, q_offset: int) -> Tensor:
        raise NotImplementedError

    def attend_keys(self, q: Tensor, k: Tensor, v: Tensor, causal: bool, q_offset: int,
                    key_padding_mask: Tensor | None) -> Tensor:
        """Attention over all keys given the mask's structure; by default the dense bool mask is
        built and `attend` runs. A kind with a kernel that needs no dense (Lq, Lk) mask (the
        fused relative kernel) overrides this."""
        mask = allowed_mask(q.shape[2], k.shape[2], causal=causal, q_offset=q_offset,
                            key_padding_mask=key_padding_mask, device=q.device)
        return self.attend(q, k, v, mask, q_offset)

    def _compute(self, q, k, v, causal, key_padding_mask, state, return_state, m=None):
        lq = q.shape[2]  # (m: no kind of this family has a length M)
        q_offset = 0
        if state is not None:
            q_offset = state.offset
            key_padding_mask = _cat_masks(state.key_padding_mask, key_padding_mask,
                                          state.k.shape[2], k.shape[2], k.shape[0], k.device)
            k = torch.cat([state.k, k], dim=2)
            v = torch.cat([state.v, v], dim=2)
        out = self.attend_keys(q, k, v, causal, q_offset, key_padding_mask)
        new_state = None
        if return_state or state is not None:
            new_state = KVCache(k, v, key_padding_mask, q_offset + lq, static=not causal)
        return out, new_state

    def _from_static(self, q, state: KVCache):
        out = self.attend_keys(q, state.k, state.v, False, state.offset, state.key_padding_mask)
        return out, advance(state, q.shape[2])


def _cat_masks(old: Tensor | None, new: Tensor | None, n_old: int, n_new: int, batch: int,
               device: torch.device) -> Tensor | None:
    if old is None and new is None:
        return None
    if old is None:
        old = torch.zeros(batch, n_old, dtype=torch.bool, device=device)
    if new is None:
        new = torch.zeros(batch, n_new, dtype=torch.bool, device=device)
    return torch.cat([old, new], dim=1)


class LinearKernel(AttentionKernel):
    """Kinds of the form phi(q) (sum phi(k)^T v) / (phi(q) . sum phi(k)). Subclasses implement
    `features(x, positions)`; positions are absolute (query offset included).

    A kind whose feature map depends on a length M chosen per call (cosformer's length rule)
    overrides `resolve_m` (the call's M, kept in the decoding state) and `feature_map`
    (the features for that M); the defaults ignore M.
    """

    # The feature map's name in the fused CPU kernels (fused.py), None: the kind has none there.
    # A subclass that changes `features` must reset it.
    fused_kind: str | None = None
    # The shortest sequence (non-causal: max(Lq, Lk); causal: L) for which the fused kernels run:
    # below it the PyTorch path is faster, because the kernel's fixed cost per (batch, head)
    # pair outweighs short sequences' work. Each kind sets its own, measured (see its file).
    fused_min_length: tuple[int, int] = (1, 2)  # (non-causal, causal); causal needs >= 2

    def __init__(self, head_dim: int, dropout: float = 0.0, eps: float = 1e-6, chunk: int = 64):
        super().__init__(head_dim, dropout)
        self.eps = eps
        self.chunk = chunk

    def features(self, x: Tensor, positions: Tensor) -> Tensor:
        raise NotImplementedError

    def resolve_m(self, lq: int, lk: int, *, causal: bool, state: LinearState | None, m: int | None,
                  return_state: bool) -> int | None:
        """The M of this call (None: the kind has none). Called without a static state."""
        return None

    def feature_map(self, x: Tensor, positions: Tensor, m: int | None) -> Tensor:
        """`features` for the call's M (`resolve_m`); kinds without an M ignore it."""
        return self.features(x, positions)

    def fused_m(self, lq: int, lk: int, m: int | None) -> int:
        """The M the fused kernel gets for a call whose last position is max(lq, lk) - 1
        (checked here; a causal call passes offset + L for both); kinds without an M: 0."""
        return 0

    def _positions(self, start: int, n: int, device) -> Tensor:
        return torch.arange(start, start + n, device=device)

    def _compute(self, q, k, v, causal, key_padding_mask, state, return_state, m=None):
        lq, lk = q.shape[2], k.shape[2]
        q_offset = state.offset if state is not None else 0
        m = self.resolve_m(lq, lk, causal=causal, state=state, m=m, return_state=return_state)
        fused = None  # stays None where the fused kernels are disabled or unavailable
        full_min, causal_min = self.fused_min_length
        # applicable() first: while exporting, a length test would put a guard on the traced length.
        fusable = self.fused_kind is not None and applicable()
        if fusable and not causal and max(lq, lk) >= full_min:
            fused = fused_linear_attention(q, k, v, key_padding_mask, self.fused_kind,
                                           self.fused_m(lq, lk, m), self.eps)
        elif fusable and causal and lq >= max(2, causal_min):
            # A single decoding step keeps the PyTorch recurrence: measured faster there (B=1,
            # H=8, d=64: ~105 us vs ~170 us for the kernel call with its state copies).
            end = q_offset + lq  # self-attention: queries and keys at q_offset .. end - 1
            kv0, z0 = (state.kv, state.z) if state is not None else (None, None)
            fused = fused_causal_linear_attention(q, k, v, key_padding_mask, self.fused_kind,
                                                  self.fused_m(end, end, m), self.eps, q_offset, kv0, z0)
        if fused is not None:
            out, kv, z = fused
        else:
            out, kv, z = self._from_features(q, k, v, causal, key_padding_mask, state, q_offset, m)
        new_state = None
        if return_state or state is not None:
            new_state = LinearState(kv, z, q_offset + lq, static=not causal, m=m)
        return out, new_state

    def _from_features(self, q, k, v, causal, key_padding_mask, state, q_offset, m):
        """The PyTorch path: feature tensors, then the (chunked causal) linear attention."""
        qf = self.feature_map(q, self._positions(q_offset, q.shape[2], q.device), m)
        # Self-attention keys share the queries' positions; cross-attention keys start at 0.
        kf = self.feature_map(k, self._positions(q_offset if causal else 0, k.shape[2], k.device), m)
        if key_padding_mask is not None:  # padded keys contribute nothing to any sum
            kf = kf.masked_fill(key_padding_mask[:, None, :, None], 0.0)
        if causal:
            kv0, z0 = (state.kv, state.z) if state is not None else (None, None)
            return causal_linear_attention(qf, kf, v, self.eps, self.chunk, kv0, z0)
        return linear_attention(qf, kf, v, self.eps)

    def _from_static(self, q, state: LinearState):
        qf = self.feature_map(q, self._positions(state.offset, q.shape[2], q.device), state.m)
        return linear_readout(qf, state.kv, state.z, self.eps), advance(state, q.shape[2])
