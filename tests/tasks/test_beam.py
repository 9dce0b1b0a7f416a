"""Beam search: against exhaustive search, greedy full-forward decoding, and length penalty rules."""
import itertools
import math

import pytest
import torch

from mixnas.models import Transformer, TransformerConfig
from mixnas.space import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.tasks.translation.beam import BeamConfig, beam_search, translate

PAD, BOS, EOS = 0, 1, 2


def tiny_model(kind="softmax", vocab=7, seed=0):
    torch.manual_seed(seed)
    arch = TransformerArch(16, 16, (EncoderLayerArch(32, 2, kind),),
                           (DecoderLayerArch(32, 2, kind, 2, kind, 1),) * 2, qkv_dim=16)
    model = Transformer(arch, TransformerConfig(src_vocab=vocab, tgt_vocab=vocab, dropout=0.0))
    with torch.no_grad():  # sharpen the distributions so hypotheses differ clearly
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def sequence_log_prob(model, src, tokens):
    """log p(tokens + EOS | src) by one teacher-forced full forward (no incremental states)."""
    prev = torch.tensor([[BOS] + tokens])
    target = torch.tensor(tokens + [EOS])
    with torch.no_grad():
        lp = torch.log_softmax(model(src, prev)[0].float(), -1)
    return lp[torch.arange(len(target)), target].sum().item()


@pytest.mark.parametrize("kind", ["softmax", "cosformer"])
def test_wide_beam_finds_exhaustive_optimum(kind):
    model = tiny_model(kind)
    src = torch.tensor([[4, 5, 3, EOS]])
    cfg = BeamConfig(beam=64, lenpen=0.6, max_len_a=0.0, max_len_b=3)
    best = beam_search(model, src, cfg)[0][0]
    # Exhaustive: every sequence of up to 2 content tokens, then EOS (max length 3 incl. EOS).
    words = [3, 4, 5, 6]
    candidates = [list(c) for n in range(0, 3) for c in itertools.product(words, repeat=n)]
    scored = [(sequence_log_prob(model, src, c) / (len(c) + 1) ** 0.6, c) for c in candidates]
    score, tokens = max(scored)
    assert best.tokens == tokens
    assert best.score == pytest.approx(score, abs=1e-4)
    assert best.log_prob == pytest.approx(sequence_log_prob(model, src, tokens), abs=1e-4)


@pytest.mark.parametrize("kind", ["softmax", "cosformer", "linear", "relative"])
def test_beam_one_equals_greedy_full_forward(kind):
    model = tiny_model(kind, vocab=9, seed=1)
    src = torch.tensor([[4, 5, 6, 7, EOS], [8, 3, EOS, PAD, PAD]])
    cfg = BeamConfig(beam=1, max_len_a=1.0, max_len_b=2)
    out = translate(model, src, cfg)
    for b in range(2):
        row = src[b : b + 1, : int((src[b] != PAD).sum())]
        tokens, max_len = [], int(row.shape[1] * 1.0 + 2)
        for _ in range(max_len - 1):  # greedy on full forwards, BOS/PAD excluded as beam search does
            with torch.no_grad():
                logits = model(row, torch.tensor([[BOS] + tokens]))[0, -1]
            logits[[PAD, BOS]] = -math.inf
            nxt = int(logits.argmax())
            if nxt == EOS:
                break
            tokens.append(nxt)
        assert out[b] == tokens, f"sentence {b}"


def test_length_penalty_changes_the_choice():
    """With lenpen 0 scores are raw sums (short wins); a large lenpen favours longer outputs."""
    model = tiny_model("softmax", seed=3)
    src = torch.tensor([[4, 5, 3, 6, EOS]])
    short = beam_search(model, src, BeamConfig(beam=8, lenpen=0.0, max_len_b=6, max_len_a=0))[0]
    long = beam_search(model, src, BeamConfig(beam=8, lenpen=3.0, max_len_b=6, max_len_a=0))[0]
    for hyps, pen in ((short, 0.0), (long, 3.0)):
        for h in hyps:  # every score is its log prob normalised by (len + EOS) ** lenpen
            assert h.score == pytest.approx(h.log_prob / (len(h.tokens) + 1) ** pen, rel=1e-5)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert len(long[0].tokens) >= len(short[0].tokens)


def test_max_length_forces_eos_and_batch_rows_are_independent():
    model = tiny_model("cosformer", seed=2)
    a = torch.tensor([[4, 5, 6, EOS]])
    b = torch.tensor([[6, 3, EOS, PAD]])
    cfg = BeamConfig(beam=3, max_len_a=0.5, max_len_b=1)
    both = beam_search(model, torch.cat([a, b]), cfg)
    alone = [beam_search(model, a, cfg)[0], beam_search(model, b[:, :3], cfg)[0]]
    for got, want in zip(both, alone):
        assert [h.tokens for h in got] == [h.tokens for h in want]
        assert len(got) == 3
    assert all(len(h.tokens) + 1 <= int(4 * 0.5 + 1) for h in both[0])


def test_bad_input():
    model = tiny_model()
    with pytest.raises(ValueError, match="src_tokens must have shape"):
        beam_search(model, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="beam must be >= 1"):
        beam_search(model, torch.tensor([[4, EOS]]), BeamConfig(beam=0))
