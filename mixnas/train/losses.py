"""Label-smoothed cross-entropy with fairseq's definition.

With smoothing `eps` over a vocabulary of `V` classes, the loss of one token with target `t` is

    loss = (1 - eps) * nll + (eps / V) * sum_c (-log p_c),    nll = -log p_t,

i.e. cross-entropy against the target distribution q_t = 1 - eps + eps/V, q_c = eps/V (c != t).
This is fairseq's `label_smoothed_nll_loss` as used by HAT (fairseq 0.8/0.9, `eps_i = eps / V`),
and it equals `F.cross_entropy(..., label_smoothing=eps)` (the tests check both). Newer fairseq
releases spread eps over the V - 1 wrong classes instead (q_t = 1 - eps, q_c = eps/(V-1));
`uniform_over_others=True` selects that variant. For V in the thousands the two differ by
about eps/V per token.

Both the smoothed loss and the plain negative log-likelihood (for perplexity) are returned,
summed over non-padding tokens by default, so the trainer can normalise by the token count
gathered over micro-batches and ranks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label_smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, epsilon: float = 0.1,
                                 ignore_index: int | None = None, reduction: str = "sum",
                                 uniform_over_others: bool = False
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """`logits` (..., V) and integer `target` (...): returns `(loss, nll_loss)`.

    Positions whose target equals `ignore_index` (the padding index) contribute zero.
    `reduction`: "sum" (default), "mean" (over non-ignored positions) or "none" (per position).
    Log-probabilities are computed in float32 even under bf16 autocast.
    """
    if logits.shape[:-1] != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be target {tuple(target.shape)} "
                         f"plus a class axis")
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    if reduction not in ("sum", "mean", "none"):
        raise ValueError(f"reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    vocab = logits.size(-1)
    lprobs = F.log_softmax(logits.float(), dim=-1)
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target.ne(ignore_index)
    safe_target = target.masked_fill(~keep, 0)  # ignore_index may lie outside [0, V)
    nll = -lprobs.gather(-1, safe_target.unsqueeze(-1)).squeeze(-1)
    smooth = -lprobs.sum(-1)
    if uniform_over_others:
        eps_i = epsilon / (vocab - 1)
        loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    else:
        loss = (1.0 - epsilon) * nll + (epsilon / vocab) * smooth
    loss = loss.masked_fill(~keep, 0.0)
    nll = nll.masked_fill(~keep, 0.0)
    if reduction == "none":
        return loss, nll
    loss, nll = loss.sum(), nll.sum()
    if reduction == "mean":
        count = keep.sum().clamp(min=1)
        loss, nll = loss / count, nll / count
    return loss, nll
