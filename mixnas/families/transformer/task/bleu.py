"""BLEU as the field reports it, in both of its common forms.

* `corpus_bleu`: sacreBLEU on detokenized text (default 13a tokenization, exp smoothing):
  the comparable, signature-carrying score.
* `tokenized_bleu`: the score HAT and the paper report for WMT En-De, following the
  tensor2tensor `get_ende_bleu.sh` convention: tokenize hypotheses and references, split
  hyphenated compounds ("a-b" -> "a ##AT##-##AT## b"), then BLEU on those tokens without further
  tokenization (what multi-bleu.perl computes). We tokenize with sacreBLEU's 13a tokenizer
  (Moses-like; it keeps "a-b" together, so the compound split applies).

The compound split reproduces the original sed/perl substitution `s/(\\S)-(\\S)/\\1 ##AT##-##AT## \\2/g`
exactly, including its quirk that matches do not overlap: "a-b-c" becomes
"a ##AT##-##AT## b-c" (the second hyphen's left neighbour was consumed by the first match).
Matching the convention bit for bit keeps our numbers comparable with the published ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import sacrebleu
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
from sacrebleu.tokenizers.tokenizer_intl import TokenizerV14International

_COMPOUND = re.compile(r"(\S)-(\S)")
_TOKENIZERS = {"13a": Tokenizer13a, "intl": TokenizerV14International}


@dataclass(frozen=True)
class BleuResult:
    score: float  # 0..100
    signature: str  # sacreBLEU signature (for tokenized BLEU: the tokenize='none' one, plus a note)
    precisions: tuple[float, ...]  # 1..4-gram precisions in percent
    brevity_penalty: float
    hyp_len: int
    ref_len: int

    def __str__(self) -> str:
        return f"BLEU = {self.score:.2f} ({self.signature})"


def _check(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if isinstance(hyps, str) or isinstance(refs, str):
        raise ValueError("hyps and refs must be lists of sentences, not single strings")
    if len(hyps) != len(refs):
        raise ValueError(f"got {len(hyps)} hypotheses but {len(refs)} references; pass one reference per hypothesis")
    if not hyps:
        raise ValueError("BLEU needs at least one hypothesis/reference pair")


def _result(metric: sacrebleu.BLEU, hyps: list[str], refs: list[str], note: str = "") -> BleuResult:
    score = metric.corpus_score(hyps, [refs])
    return BleuResult(
        score=score.score,
        signature=str(metric.get_signature()) + note,
        precisions=tuple(score.precisions),
        brevity_penalty=score.bp,
        hyp_len=score.sys_len,
        ref_len=score.ref_len,
    )


def corpus_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a") -> BleuResult:
    """sacreBLEU on detokenized hypotheses against one detokenized reference each."""
    _check(hyps, refs)
    return _result(sacrebleu.BLEU(tokenize=tokenize), list(hyps), list(refs))


def split_compounds(text: str) -> str:
    """tensor2tensor/HAT compound splitting: "a-b" -> "a ##AT##-##AT## b" (non-overlapping)."""
    return _COMPOUND.sub(r"\1 ##AT##-##AT## \2", text)


@lru_cache(maxsize=None)
def _tokenizer(name: str):
    if name not in _TOKENIZERS:
        raise ValueError(f"tokenize={name!r} is not supported for tokenized BLEU; use one of {sorted(_TOKENIZERS)}")
    return _TOKENIZERS[name]()


def tokenize_for_bleu(text: str, tokenize: str = "13a") -> str:
    """Tokenize with sacreBLEU's tokenizer, then split hyphenated compounds."""
    return split_compounds(_tokenizer(tokenize)(text.strip()))


def tokenized_bleu(hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a") -> BleuResult:
    """Paper/HAT-style BLEU: tokenize, split compounds, then BLEU with tokenize='none'."""
    _check(hyps, refs)
    hyp_tokens = [tokenize_for_bleu(h, tokenize) for h in hyps]
    ref_tokens = [tokenize_for_bleu(r, tokenize) for r in refs]
    note = f"|pre-tok:{tokenize}+compound-split"
    # force=True: the text is tokenized on purpose, so sacreBLEU's "forgot to detokenize" warning is moot.
    return _result(sacrebleu.BLEU(tokenize="none", force=True), hyp_tokens, ref_tokens, note)
