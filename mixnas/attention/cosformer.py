"""cosformer: ReLU feature maps with cos re-weighting (Qin et al., ICLR 2022).

The rule for M, shared by training and decoding: M = `max_len`, a fixed option of the kind
(default 1024), for every mode (non-causal, causal, cross). A length-dependent M would make a
decoded prefix see different weights from the full forward; a fixed M makes step t of decoding
use exactly the weights of the full causal forward. Positions must stay below max_len.
"""
from __future__ import annotations

from .functional import cosformer_features
from .kernels import LinearKernel
from .registry import AttentionSpec, register


class CosformerKernel(LinearKernel):
    def __init__(self, head_dim: int, dropout: float = 0.0, eps: float = 1e-6, chunk: int = 64,
                 max_len: int = 1024):
        super().__init__(head_dim, dropout, eps, chunk)
        self.max_len = max_len

    def features(self, x, positions):
        return cosformer_features(x, positions, self.max_len)


register(AttentionSpec("cosformer", CosformerKernel, linear_complexity=True,
                       summary="relu(q) relu(k)^T cos(pi (i - j) / 2M), linearised (Qin et al. 2022)",
                       options={"eps": 1e-6, "chunk": 64, "max_len": 1024}))
