"""Label-smoothed cross-entropy against the target-distribution formula written out by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from mixnas.train import label_smoothed_cross_entropy

PAD = 1


def _by_hand(logits, target, eps, pad, others_only):
    """-sum_c q_c log p_c per position, q the smoothed target distribution; pads give 0."""
    total_loss = total_nll = 0.0
    vocab = logits.shape[-1]
    for row, t in zip(logits.tolist(), target.tolist()):
        if t == pad:
            continue
        log_z = math.log(sum(math.exp(v) for v in row))
        logp = [v - log_z for v in row]
        for c in range(vocab):
            if others_only:
                q = 1 - eps if c == t else eps / (vocab - 1)
            else:
                q = (1 - eps + eps / vocab) if c == t else eps / vocab
            total_loss -= q * logp[c]
        total_nll -= logp[t]
    return total_loss, total_nll


@pytest.mark.parametrize("others_only", [False, True])
def test_matches_hand_formula_with_padding(others_only):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64)
    target = torch.randint(0, 7, (2, 5), generator=gen)
    target[0, 3:] = PAD
    loss, nll = label_smoothed_cross_entropy(logits, target, 0.1, ignore_index=PAD,
                                             uniform_over_others=others_only)
    want_loss, want_nll = _by_hand(logits.reshape(-1, 7), target.reshape(-1), 0.1, PAD, others_only)
    assert loss.item() == pytest.approx(want_loss, rel=1e-6)
    assert nll.item() == pytest.approx(want_nll, rel=1e-6)


def test_default_equals_torch_label_smoothing_and_mean_reduction():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(12, 9, generator=gen)
    target = torch.randint(0, 9, (12,), generator=gen)
    target[[2, 5]] = PAD
    loss, _ = label_smoothed_cross_entropy(logits, target, 0.1, ignore_index=PAD)
    torch_sum = F.cross_entropy(logits, target, ignore_index=PAD, label_smoothing=0.1, reduction="sum")
    assert torch.allclose(loss, torch_sum, atol=1e-5)
    mean, _ = label_smoothed_cross_entropy(logits, target, 0.1, ignore_index=PAD, reduction="mean")
    assert torch.allclose(mean, loss / (target != PAD).sum())
    per_token, _ = label_smoothed_cross_entropy(logits, target, 0.1, ignore_index=PAD, reduction="none")
    assert per_token.shape == (12,) and per_token[2] == 0 and torch.allclose(per_token.sum(), loss)


def test_no_smoothing_is_plain_cross_entropy_and_bf16_logits_work():
    logits = torch.randn(6, 5).bfloat16()
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    loss, nll = label_smoothed_cross_entropy(logits, target, 0.0)
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, F.cross_entropy(logits.float(), target, reduction="sum"))
    assert torch.equal(loss, nll)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="class axis"):
        label_smoothed_cross_entropy(torch.zeros(3, 4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothed_cross_entropy(torch.zeros(3, 4), torch.zeros(3, dtype=torch.long), 1.5)
