"""BLEU wiring: sacreBLEU equivalence, hand-computed scores, and HAT-style compound splitting."""

import math

import pytest
import sacrebleu

from mixnas.families.transformer.task import corpus_bleu, split_compounds, tokenized_bleu
from mixnas.families.transformer.task.bleu import tokenize_for_bleu


def test_corpus_bleu_equals_sacrebleu():
    hyps = ["The cat sat on the mat.", "A man, in a red shirt, is running!", "Zwei Hunde spielen im Schnee."]
    refs = ["The cat sat on a mat.", "A man in a red shirt runs!", "Zwei Hunde spielen im Schnee."]
    ours = corpus_bleu(hyps, refs)
    reference = sacrebleu.corpus_bleu(hyps, [refs])
    assert ours.score == pytest.approx(reference.score, abs=1e-12)
    assert ours.precisions == pytest.approx(tuple(reference.precisions))
    assert "tok:13a" in ours.signature and "smooth:exp" in ours.signature
    assert ours.hyp_len == reference.sys_len and ours.ref_len == reference.ref_len
    intl = corpus_bleu(hyps, refs, tokenize="intl")
    assert intl.score == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="intl").score)


def test_corpus_level_counts_by_hand():
    # n-gram matches are pooled over sentences: p1 = 5/6, p2 = 3/4, p3 = 2/2, p4 = 1/1, no brevity penalty.
    result = corpus_bleu(["a b c d", "x y"], ["a b c d", "x z"])
    assert result.score == pytest.approx(100 * (5 / 6 * 3 / 4 * 1 * 1) ** 0.25)
    assert result.brevity_penalty == pytest.approx(1.0)


def test_brevity_penalty_by_hand():
    # all precisions 1; hypothesis 4 tokens against 6: BP = exp(1 - 6/4)
    for bleu in (corpus_bleu, tokenized_bleu):
        result = bleu(["a b c d"], ["a b c d e f"])
        assert result.score == pytest.approx(100 * math.exp(1 - 6 / 4))


def test_compound_splitting_convention():
    assert split_compounds("a well-known man") == "a well ##AT##-##AT## known man"
    # Non-overlapping matches, exactly like the original sed/perl rule s/(\S)-(\S)/.../g.
    assert split_compounds("a-b-c") == "a ##AT##-##AT## b-c"
    assert split_compounds("a-b c-d") == "a ##AT##-##AT## b c ##AT##-##AT## d"
    assert split_compounds("a - b -c d-") == "a - b -c d-"  # a hyphen needs non-space on both sides
    # 13a keeps "Auto-Rennen" whole (so it gets split) but already separates a dash after a digit.
    assert tokenize_for_bleu("Ein Auto-Rennen, 2-mal.") == "Ein Auto ##AT##-##AT## Rennen , 2 - mal ."


def test_compound_splitting_changes_the_score_as_computed_by_hand():
    hyp, ref = ["a b c d well-known"], ["a b c d well-made"]
    # Detokenized BLEU: 5 tokens, "well-known" != "well-made": p = 4/5, 3/4, 2/3, 1/2.
    assert corpus_bleu(hyp, ref).score == pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # Tokenized with compound split: "well ##AT##-##AT## known" shares two tokens with the reference:
    # 7 tokens, p = 6/7, 5/6, 4/5, 3/4.
    split = tokenized_bleu(hyp, ref)
    assert split.score == pytest.approx(100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)
    assert split.hyp_len == 7 and "tok:none" in split.signature and "compound-split" in split.signature


def test_tokenized_bleu_equals_sacrebleu_on_pretokenized_text():
    hyps = ["Ein Mann in einem Hemd-Kragen läuft.", "Zwei Kinder, die Fußball spielen."]
    refs = ["Ein Mann mit Hemd-Kragen rennt.", "Zwei Kinder spielen Fußball."]
    expected = sacrebleu.corpus_bleu(
        [split_compounds(sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a()(h)) for h in hyps],
        [[split_compounds(sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a()(r)) for r in refs]],
        tokenize="none",
    )
    assert tokenized_bleu(hyps, refs).score == pytest.approx(expected.score)


def test_bleu_input_errors():
    with pytest.raises(ValueError, match=r"got 2 hypotheses but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"at least one"):
        tokenized_bleu([], [])
    with pytest.raises(ValueError, match=r"lists of sentences, not single strings"):
        corpus_bleu("a b", "a b")
    with pytest.raises(ValueError, match=r"tokenize='zh' is not supported for tokenized BLEU"):
        tokenized_bleu(["a"], ["a"], tokenize="zh")
