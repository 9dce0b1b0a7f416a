"""linear: elu(x) + 1 feature maps (Katharopoulos et al. 2020), no positional re-weighting."""
from __future__ import annotations

from .functional import elu_features
from .kernels import LinearKernel
from .registry import AttentionSpec, register


class EluLinearKernel(LinearKernel):
    fused_kind = "linear"  # the fused non-causal CPU kernel computes elu(x) + 1 itself

    def features(self, x, positions):
        return elu_features(x)


register(AttentionSpec("linear", EluLinearKernel, linear_complexity=True,
                       summary="(elu(q)+1)(elu(k)+1)^T v, linearised (Katharopoulos et al. 2020)",
                       options={"eps": 1e-6, "chunk": 64}))
