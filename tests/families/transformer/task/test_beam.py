"""Beam search: against exhaustive search, greedy full-forward decoding, and length penalty rules."""
import itertools
import math

import pytest
import torch

from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.model import Transformer, length_rule_m
from mixnas.families.transformer.task.beam import BeamConfig, beam_search, translate

PAD, BOS, EOS = 0, 1, 2


LENGTH = {"cosformer": {"m_rule": "length"}}  # cosformer's M from the batch's lengths


def tiny_model(kind="softmax", vocab=7, seed=0, attention_options=None):
    torch.manual_seed(seed)
    arch = TransformerArch(16, 16, (EncoderLayerArch(32, 2, kind),),
                           (DecoderLayerArch(32, 2, kind, 2, kind, 1),) * 2, qkv_dim=16)
    model = Transformer(arch, TransformerConfig(src_vocab=vocab, tgt_vocab=vocab, dropout=0.0,
                                                attention_options=attention_options or {"cosformer": {"m_rule": "fixed"}}))
    with torch.no_grad():  # sharpen the distributions so hypotheses differ clearly
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def sequence_log_prob(model, src, tokens, m=None):
    """log p(tokens + EOS | src) by one teacher-forced full forward (no incremental states)."""
    prev = torch.tensor([[BOS] + tokens])
    target = torch.tensor(tokens + [EOS])
    with torch.no_grad():
        lp = torch.log_softmax(model(src, prev, m=m)[0].float(), -1)
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


@pytest.mark.parametrize("a,b", [(0.5, 2), (1.0, 1)])
def test_length_rule_wide_beam_equals_training_rule_forward(a, b):
    """Beam search with cosformer's length rule finds the exhaustive optimum, and its scores
    are the teacher-forced log probabilities under the M training uses (the task's rule with
    the target length): training and decoding see the same M, exactly."""
    model = tiny_model("cosformer", attention_options=LENGTH)
    src = torch.tensor([[4, 5, 3, EOS]])
    cfg = BeamConfig(beam=64, lenpen=0.6, max_len_a=a, max_len_b=b)
    max_len = int(4 * a + b)
    hyps = beam_search(model, src, cfg)[0]
    words = [3, 4, 5, 6]
    candidates = [list(c) for n in range(0, max_len) for c in itertools.product(words, repeat=n)]
    train_m = [length_rule_m(src, PAD, len(c) + 1, a, b) for c in candidates]
    assert set(train_m) == {length_rule_m(src, PAD, 0, a, b)}  # every target fits: one M
    scored = [(sequence_log_prob(model, src, c, m) / (len(c) + 1) ** 0.6, c) for c, m in zip(candidates, train_m)]
    score, tokens = max(scored)
    assert hyps[0].tokens == tokens and hyps[0].score == pytest.approx(score, abs=1e-4)
    for h in hyps[:10]:
        m = length_rule_m(src, PAD, len(h.tokens) + 1, a, b)
        assert h.log_prob == pytest.approx(sequence_log_prob(model, src, h.tokens, m), abs=1e-4)


def test_length_rule_beam_one_equals_greedy_full_forward_and_reaches_max_len():
    model = tiny_model("cosformer", vocab=9, seed=1, attention_options=LENGTH)
    src = torch.tensor([[4, 5, 6, 7, EOS], [8, 3, EOS, PAD, PAD]])
    cfg = BeamConfig(beam=1, max_len_a=1.0, max_len_b=2)
    m = length_rule_m(src, PAD, 0, 1.0, 2)  # one M for the batch: max(5, int(1.0 * 5 + 2)) = 7
    assert m == 7
    out = translate(model, src, cfg)
    for b in range(2):
        row = src[b : b + 1, : int((src[b] != PAD).sum())]
        tokens, max_len = [], int(row.shape[1] * 1.0 + 2)
        for _ in range(max_len - 1):
            with torch.no_grad():
                logits = model(row, torch.tensor([[BOS] + tokens]), m=m)[0, -1]
            logits[[PAD, BOS]] = -math.inf
            nxt = int(logits.argmax())
            if nxt == EOS:
                break
            tokens.append(nxt)
        assert out[b] == tokens, f"sentence {b}"
    # every hypothesis may run to the maximum length (forced EOS at position max_len - 1 < M)
    long = beam_search(model, src, BeamConfig(beam=3, lenpen=5.0, max_len_a=1.0, max_len_b=2))
    assert max(len(h.tokens) + 1 for h in long[0]) <= 7


def test_translation_loss_and_beam_use_the_same_m(monkeypatch):
    """TranslationTask.loss gives the model M from its beam settings and the target length;
    beam search gives encode M from the same settings."""
    from mixnas.families.transformer.task.batching import TranslationBatch
    from mixnas.families.transformer.task.task import TranslationTask, TranslationTaskConfig

    model = tiny_model("cosformer", vocab=9, seed=2, attention_options=LENGTH)
    beam = BeamConfig(beam=2, max_len_a=1.0, max_len_b=3)
    task = object.__new__(TranslationTask)  # the loss needs no data
    task.config = TranslationTaskConfig(dir="unused", beam=beam, label_smoothing=0.0)
    src = torch.tensor([[4, 5, 6, 7, 8, 3, EOS], [8, 3, EOS, PAD, PAD, PAD, PAD]])
    prev = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, PAD, PAD]])
    target = torch.tensor([[4, 5, 6, EOS], [7, EOS, PAD, PAD]])
    batch = TranslationBatch(torch.arange(2), src, torch.tensor([7, 3]), prev, target, 6)
    seen = []
    forward = model.forward
    monkeypatch.setattr(model, "forward", lambda s, p, m=None: seen.append(m) or forward(s, p, m=m))
    loss, _ = task.loss(model, batch)
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda s, m=None: seen.append(m) or encode(s, m=m))
    beam_search(model, src, beam)
    # int(1.0 * 7 + 3) = 10 from the task's beam settings (the model's defaults would give 18)
    assert seen == [length_rule_m(src, PAD, 4, 1.0, 3), length_rule_m(src, PAD, 0, 1.0, 3)] == [10, 10]
    assert torch.isfinite(loss)
