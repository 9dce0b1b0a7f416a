"""cosformer: ReLU feature maps with cos re-weighting (Qin et al., ICLR 2022).

    out_i = sum_j relu(q_i).relu(k_j) cos(pi (i - j) / 2M) v_j / sum_j relu(q_i).relu(k_j) cos(pi (i - j) / 2M)

Positions are 0-based (query i at q_offset + i, key j at j) and must be < M, so |i - j| <= M - 1
and every weight stays positive (the paper's positions 1..L with M = L give the same
differences). Two rules for M, option `m_rule`:

- "fixed" (default): M = `max_len` (default 1024) in every mode; the `m` of a call is ignored.
  Training and step-by-step decoding trivially use the same weights. At short lengths the
  re-weighting is ~1 (cos(pi/2 * 30/1024) = 0.998): nearly plain ReLU linear attention.
- "length" (the official cosFormer code: M = the current sequence length): M is given per call.
  * `m` given: causal self-attention uses M = m; non-causal attention (self or cross) uses
    M = max(m, key length), so its cached keys always fit (a cross-attention over several
    concatenated encoder layers has more keys than the batch's M).
  * `m` not given: M = the call's own (padded) length: L for causal self-attention and
    max(Lq, Lk) for non-causal attention (encoder / ViT self-attention: M = L; cross-attention:
    the paper's max(tgt_len, src_len)).
  * Decoding: M must be known before the first step, so a call that starts a decoding state
    (`return_state=True`) needs `m`; the state keeps M and every later call uses it (a causal
    call that passes a different `m` is an error). The step-by-step outputs then equal the full
    causal forward with the same `m`. How a translation model chooses M so that training and
    beam search agree: `mixnas.families.transformer.model.length_rule_m`.
"""
from __future__ import annotations

from .functional import check_cosformer_position, cosformer_features
from .kernels import LinearKernel
from .registry import AttentionSpec, register

M_RULES = ("fixed", "length")


class CosformerKernel(LinearKernel):
    def __init__(self, head_dim: int, dropout: float = 0.0, eps: float = 1e-6, chunk: int = 64,
                 max_len: int = 1024, m_rule: str = "fixed"):
        super().__init__(head_dim, dropout, eps, chunk)
        if m_rule not in M_RULES:
            raise ValueError(f"cosformer option m_rule must be 'fixed' or 'length', got {m_rule!r}")
        if not _positive_int(max_len):
            raise ValueError(f"cosformer option max_len must be a positive integer, got {max_len!r}")
        self.max_len = max_len
        self.m_rule = m_rule

    def features(self, x, positions, m: int | None = None):
        """Features with M = m, or the fixed max_len when m is None."""
        return cosformer_features(x, positions, self.max_len if m is None else m)

    def resolve_m(self, lq, lk, *, causal, state, m, return_state):
        if self.m_rule == "fixed":
            return self.max_len
        if m is not None and not _positive_int(m):
            raise ValueError(f"cosformer m must be a positive integer, got {m!r}")
        if state is not None:  # a growing (causal) state: M is the one decoding started with
            if m is not None and m != state.m:
                raise ValueError(f"cosformer m={m} differs from M={state.m} the decoding state was "
                                 f"started with; M must stay the same for the whole sequence")
            return state.m
        if m is not None:
            return m if causal else max(m, lk)
        if return_state:
            raise ValueError("cosformer with m_rule='length' needs M before decoding starts: pass m= "
                             "(greater than every position the decoding will reach) to the first call")
        return lq if causal else max(lq, lk)

    def feature_map(self, x, positions, m):
        return cosformer_features(x, positions, m, self.m_rule)

    fused_kind = "cosformer"
    # Fused kernels from 64 tokens (non-causal) and 20 (causal). Measured, 1 thread, fwd+bwd,
    # PyTorch path time / fused time: non-causal B x H = 256 pairs, L = 20 / 50: 0.79 / 0.72,
    # L = 64 (d 64): 1.43, L = 128: 1.12-1.32, B=1 H=8 L = 1024 / 4096: 1.63 / 2.36; causal
    # L = 17 (d 16): 0.71, L = 20 (d 64): 1.30, L >= 50: 1.3-2.8.
    fused_min_length = (64, 20)

    def fused_m(self, lq, lk, m):
        check_cosformer_position(max(lq, lk) - 1, m, self.m_rule)
        return m


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


register(AttentionSpec("cosformer", CosformerKernel, linear_complexity=True,
                       summary="relu(q) relu(k)^T cos(pi (i - j) / 2M), linearised (Qin et al. 2022)",
                       options={"eps": 1e-6, "chunk": 64, "max_len": 1024, "m_rule": "fixed"}))
