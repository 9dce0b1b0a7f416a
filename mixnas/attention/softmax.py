"""softmax: scaled dot-product attention through PyTorch's fused kernel."""
from __future__ import annotations

import torch.nn.functional as F

from .functional import softmax_attention
from .kernels import KVCacheKernel
from .registry import AttentionSpec, register
from .state import KVCache


class SoftmaxKernel(KVCacheKernel):
    def attend(self, q, k, v, mask, q_offset):
        return softmax_attention(q, k, v, mask, self._dropout_p())

    def _compute(self, q, k, v, causal, key_padding_mask, state, return_state, m=None):
        if causal and state is None and key_padding_mask is None:
            # Plain causal self-attention from position 0: let the fused kernel apply the
            # triangle itself (it skips the masked blocks; about 2x faster on CPU than an
            # explicit (L, L) mask, and no (L, L) mask in memory).
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self._dropout_p(), is_causal=True)
            return out, (KVCache(k, v, None, q.shape[2]) if return_state else None)
        return super()._compute(q, k, v, causal, key_padding_mask, state, return_state, m)

    def _dropout_p(self) -> float:
        return self.dropout if self.training else 0.0


register(AttentionSpec("softmax", SoftmaxKernel, linear_complexity=False,
                       summary="softmax(q k^T / sqrt(d)) v (Vaswani et al. 2017)"))
