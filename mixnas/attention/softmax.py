"""softmax: scaled dot-product attention through PyTorch's fused kernel."""
from __future__ import annotations

from .functional import softmax_attention
from .kernels import KVCacheKernel
from .registry import AttentionSpec, register


class SoftmaxKernel(KVCacheKernel):
    def attend(self, q, k, v, mask, q_offset):
        return softmax_attention(q, k, v, mask, self.dropout if self.training else 0.0)


register(AttentionSpec("softmax", SoftmaxKernel, linear_complexity=False,
                       summary="softmax(q k^T / sqrt(d)) v (Vaswani et al. 2017)"))
