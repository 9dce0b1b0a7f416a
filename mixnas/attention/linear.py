"""linear: elu(x) + 1 feature maps (Katharopoulos et al. 2020), no positional re-weighting."""
from __future__ import annotations

from .functional import elu_features
from .kernels import LinearKernel
from .registry import AttentionSpec, register


class EluLinearKernel(LinearKernel):
    fused_kind = "linear"  # the fused CPU kernels compute elu(x) + 1 themselves
    # Only from 4096 tokens (non-causal) and 1024 (causal): the PyTorch path's elu features are
    # cheap (D = d), so the kernels win late. Measured, 1 thread, fwd+bwd, PyTorch path time /
    # fused time: non-causal L = 32-128: 0.22-0.74, B=1 H=8 d=64 L = 1024: 0.95, L = 4096: 1.07;
    # causal L = 17-32: 0.33-0.81, L = 128-512: 0.96-1.05, L = 1024: 1.07-1.15, L = 4096: 1.24.
    fused_min_length = (4096, 1024)

    def features(self, x, positions):
        return elu_features(x)


register(AttentionSpec("linear", EluLinearKernel, linear_complexity=True,
                       summary="(elu(q)+1)(elu(k)+1)^T v, linearised (Katharopoulos et al. 2020)",
                       options={"eps": 1e-6, "chunk": 64}))
