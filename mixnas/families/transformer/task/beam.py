"""Beam search on the incremental decoding states of the attention library (fairseq's rules).

A hypothesis ends when it emits EOS; its final score is sum(log p) / length ** lenpen, where
length counts the EOS (fairseq's length penalty: lenpen > 1 favours longer, < 1 shorter
outputs). A sentence is done when `beam` hypotheses have finished; at max length every live
hypothesis is forced to end with EOS. Max length is a * src_len + b (source length without
padding). The model must provide `encode`, `decode(tokens, enc, states, return_states=True)`,
`reorder_states` and `reorder_encoder_out`, and a `config` with pad/bos/eos ids.

cosFormer with m_rule="length": M must be known before the first step, so the search passes
`m = length_rule_m(src, pad, 0, max_len_a, max_len_b)` to `encode` (greater than every position
it decodes); training with the same max_len_a / max_len_b gets the same M
(`TranslationTask.loss`), so the decoded steps equal the teacher-forced forward exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..model import (DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B, length_rule_m, max_output_lengths,
                                   uses_length_m)


@dataclass(frozen=True)
class BeamConfig:
    beam: int = 4
    lenpen: float = 0.6
    max_len_a: float = DEFAULT_MAX_LEN_A
    max_len_b: int = DEFAULT_MAX_LEN_B


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS, with the final EOS removed
    score: float  # length-normalised log probability
    log_prob: float  # sum of token log probabilities (EOS included)


@torch.no_grad()
def beam_search(model, src_tokens: Tensor, cfg: BeamConfig = BeamConfig()) -> list[list[Hypothesis]]:
    """Decode a batch of source sentences; returns, per sentence, its finished hypotheses
    sorted best first (at most `beam`)."""
    if src_tokens.dim() != 2:
        raise ValueError(f"src_tokens must have shape (batch, length), got {tuple(src_tokens.shape)}")
    if cfg.beam < 1:
        raise ValueError(f"beam must be >= 1, got {cfg.beam}")
    pad, bos, eos = model.config.pad_id, model.config.bos_id, model.config.eos_id
    bsz, k = src_tokens.shape[0], cfg.beam
    src_len = (src_tokens != pad).sum(1)
    max_len = max_output_lengths(src_len, cfg.max_len_a, cfg.max_len_b)  # (B,)
    encode_kw = {}
    if uses_length_m(model.config):  # cosformer's M, fixed for the whole search (see above)
        encode_kw["m"] = length_rule_m(src_tokens, pad, 0, cfg.max_len_a, cfg.max_len_b)

    # Every sentence is expanded to k beams: row b*k + j is beam j of sentence b.
    expand = torch.arange(bsz, device=src_tokens.device).repeat_interleave(k)
    enc = model.reorder_encoder_out(model.encode(src_tokens, **encode_kw), expand)
    tokens = torch.full((bsz * k, 1), bos, dtype=torch.long, device=src_tokens.device)
    cum = torch.zeros(bsz, k, device=src_tokens.device)
    cum[:, 1:] = float("-inf")  # at step 0 all beams are the same: keep only beam 0 alive
    finished: list[list[Hypothesis]] = [[] for _ in range(bsz)]
    done = torch.zeros(bsz, dtype=torch.bool)
    states = None

    for step in range(int(max_len.max())):
        logits, states = model.decode(tokens[:, -1:], enc, states=states, return_states=True)
        lprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B*k, V)
        lprobs[:, pad] = float("-inf")
        lprobs[:, bos] = float("-inf")
        at_max = (step + 1 >= max_len).repeat_interleave(k)
        if bool(at_max.any()):  # out of length: only EOS may follow
            forced = torch.full_like(lprobs, float("-inf"))
            forced[:, eos] = lprobs[:, eos]
            lprobs = torch.where(at_max[:, None], forced, lprobs)
        vocab = lprobs.shape[-1]
        scores = (cum.view(-1, 1) + lprobs).view(bsz, k * vocab)
        # 2k candidates guarantee k that do not end in EOS (as fairseq does).
        top_scores, top_idx = scores.topk(min(2 * k, k * vocab), dim=1)
        top_beam, top_tok = top_idx // vocab, top_idx % vocab

        next_rows, next_tok, next_cum = [], [], []
        for b in range(bsz):
            rows, toks, cums = [], [], []
            for rank, (s, j, t) in enumerate(zip(top_scores[b].tolist(), top_beam[b].tolist(),
                                                 top_tok[b].tolist())):
                if s == float("-inf"):
                    break
                row = b * k + j
                if t == eos:  # as fairseq: an EOS ends a hypothesis only from the top k candidates
                    if rank < k and not done[b] and len(finished[b]) < k:
                        length = step + 1  # tokens so far (EOS included), BOS excluded
                        hyp = tokens[row, 1:].tolist()
                        finished[b].append(Hypothesis(hyp, s / length ** cfg.lenpen, s))
                    continue
                if len(rows) < k:
                    rows.append(row), toks.append(t), cums.append(s)
            if len(finished[b]) >= k:
                done[b] = True
            while len(rows) < k:  # dead beams: keep shapes, never selected again
                rows.append(b * k), toks.append(eos), cums.append(float("-inf"))
            next_rows += rows
            next_tok += toks
            next_cum += cums
        if bool(done.all()):
            break
        index = torch.tensor(next_rows, device=tokens.device)
        tokens = torch.cat([tokens.index_select(0, index),
                            torch.tensor(next_tok, device=tokens.device)[:, None]], dim=1)
        cum = torch.tensor(next_cum, device=tokens.device).view(bsz, k)
        states = model.reorder_states(states, index)

    return [sorted(h, key=lambda x: x.score, reverse=True) for h in finished]


def translate(model, src_tokens: Tensor, cfg: BeamConfig = BeamConfig()) -> list[list[int]]:
    """Best hypothesis per sentence (token ids without BOS/EOS)."""
    return [hyps[0].tokens if hyps else [] for hyps in beam_search(model, src_tokens, cfg)]
