"""GPT-style decoder-only language model whose layers each use their own attention kind.

    model = LM(arch, config)
    logits = model(tokens)                                   # (B, T) int64 -> (B, T, V), causal
    logits, states = model.step(prompt, None, 0)             # incremental decoding: prime...
    logits, states = model.step(next_tokens, states, T0)     # ...then one token a step
    text_ids = model.generate(prompt, max_new_tokens=200, temperature=0.8, top_k=10)

Block (pre-norm), for x of shape (B, T, E):
    x = x + Dropout(Attn(LN(x)))            causal self-attention of the layer's kind
    x = x + Dropout(W2 GELU(W1 LN(x)))      W1: E -> ffn_dim, W2: ffn_dim -> E
Input  x0 = Dropout(tok[tokens] + pos[0..T-1])   learned tables: tok (V, E), pos (context, E)
Output logits = LN(x_L) tok^T                      tied to the token table, no bias

The forward logic (`LMBase`, `LMBlock`) only calls sub-modules, so the supernet runs the very
same code on elastic modules and an extracted sub-network matches it exactly.

Incremental decoding keeps one attention state per layer: a KV cache growing by one key and
value per token for softmax-like kinds, constant-size running sums (kv: (B, H, D, d),
z: (B, H, D)) for the linear kinds (cosformer, linear). step t's logits equal the full
forward's position t.

cosFormer's length M (`attention_options: {cosformer: {m_rule: length}}`, the default): every
attention call of the model, in training, evaluation and generation alike, passes
M = config.context, the longest sequence the model can see. The re-weighting
cos(pi (i - j) / 2M) is then the same function of (i, j) whatever the call's length, so the
incremental steps equal the full causal forward, and a window of any length up to the context
is scored exactly as its prefix inside a longer window. (With the translation model M comes
from the source via `length_rule_m`; an LM has no source, and its longest sequence is known.)
Kinds without a length M ignore it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attention import MultiheadAttention, exporting
from .arch import LMArch, check_lm_arch
from .config import LMConfig


@dataclass(frozen=True)
class LMStates:
    """One attention state per active layer, and how many positions they have seen."""

    layers: tuple[object, ...]
    offset: int


class LMBlock(nn.Module):
    def __init__(self, attn, attn_norm, fc1, fc2, ffn_norm, dropout: float):
        super().__init__()
        self.attn, self.attn_norm = attn, attn_norm
        self.fc1, self.fc2, self.ffn_norm = fc1, fc2, ffn_norm
        self.dropout = dropout

    def forward(self, x: Tensor, m: int, state=None, return_state: bool = False):
        h, state = self.attn(self.attn_norm(x), causal=True, state=state, return_state=return_state, m=m)
        return self.finish(x, h), state

    def finish(self, x: Tensor, h: Tensor) -> Tensor:
        """The block after its attention: x + h, then the feed-forward branch (an exported
        decoding step computes h itself from plain-tensor states, mixnas/families/lm/export.py)."""
        x = x + F.dropout(h, self.dropout, self.training)
        h = self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))
        return x + F.dropout(h, self.dropout, self.training)


class LMBase(nn.Module):
    """Forward logic shared by `LM` and `SupernetLM`. Subclasses provide the modules
    `embed_tokens`, `embed_positions` (called like nn.Embedding), `final_norm` and the hooks."""

    config: LMConfig

    def blocks_active(self) -> list[LMBlock]:
        raise NotImplementedError

    def token_weight(self) -> Tensor:
        """The (vocab, active width) token table, which is also the output projection."""
        raise NotImplementedError

    # ------------------------------------------------------------ full (teacher-forced) forward
    def forward(self, tokens: Tensor, offset: int = 0) -> Tensor:
        """(B, T) token ids, offset + T <= config.context -> (B, T, vocab) next-token logits
        (causal). `offset`: the position of tokens[:, 0] in the position table (training windows
        shorter than the context placed anywhere, mixnas/families/lm/data.py); attention sees
        only these T tokens."""
        self._check(tokens, offset)
        x = self._embed(tokens, offset)
        for block in self.blocks_active():
            x, _ = block(x, self.config.context)
        return self.output_logits(x)

    def output_logits(self, x: Tensor) -> Tensor:
        return F.linear(self.final_norm(x), self.token_weight())

    def _embed(self, tokens: Tensor, offset: int) -> Tensor:
        positions = torch.arange(offset, offset + tokens.shape[1], device=tokens.device)
        x = self.embed_tokens(tokens) + self.embed_positions(positions)
        return F.dropout(x, self.config.dropout, self.training)

    def _check(self, tokens: Tensor, offset: int) -> None:
        c = self.config
        if tokens.dim() != 2 or tokens.dtype != torch.long or tokens.shape[1] < 1:
            raise ValueError(f"tokens must be a LongTensor of shape (batch, length >= 1), got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        end = offset + tokens.shape[1]
        if end > c.context:
            raise ValueError(f"position {end - 1} is beyond the model's context of {c.context} tokens "
                             f"(positions 0..{c.context - 1}); shorten the input")
        if exporting():  # no check of the ids' values in a traced program (ids out of range fail there)
            return
        if int(tokens.min()) < 0 or int(tokens.max()) >= c.vocab_size:
            raise ValueError(f"tokens hold ids outside the vocabulary [0, {c.vocab_size})")

    # ------------------------------------------------------------ incremental decoding
    def step(self, tokens: Tensor, states: LMStates | None, position: int) -> tuple[Tensor, LMStates]:
        """Logits (B, n, V) of `tokens` (B, n) at positions position..position+n-1, continuing
        the sequence `states` has seen (None: a new sequence, position 0), and the new states."""
        seen = 0 if states is None else states.offset
        if position != seen:
            raise ValueError(f"position {position} does not continue the states, which have seen {seen} tokens")
        self._check(tokens, position)
        x = self._embed(tokens, position)
        layer_states = []
        for i, block in enumerate(self.blocks_active()):
            x, st = block(x, self.config.context, None if states is None else states.layers[i], True)
            layer_states.append(st)
        return self.output_logits(x), LMStates(tuple(layer_states), position + tokens.shape[1])

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """(B, T0 + max_new_tokens): `prompt` (B, T0) followed by sampled tokens, in eval mode.

        Each token is drawn from softmax(logits / temperature) restricted to the `top_k` most
        likely ones (temperature 0: the most likely token). Up to the context the model decodes
        incrementally with its attention states; past it, each token is predicted from the last
        `context` tokens by a full forward (a sliding window, positions restarting at 0)."""
        if temperature < 0 or (top_k is not None and top_k < 1) or max_new_tokens < 0:
            raise ValueError(f"need temperature >= 0, top_k >= 1 and max_new_tokens >= 0, got "
                             f"{temperature}, {top_k} and {max_new_tokens}")
        was_training = self.training
        self.eval()
        try:
            context = self.config.context
            out = prompt
            logits, states = self.step(prompt[:, -context:], None, 0)
            for i in range(max_new_tokens):
                nxt = sample_next(logits[:, -1], temperature, top_k, generator)
                out = torch.cat([out, nxt], dim=1)
                if i == max_new_tokens - 1:
                    break
                if states is not None and states.offset < context:
                    logits, states = self.step(nxt, states, states.offset)
                else:
                    logits, states = self(out[:, -context:]), None
            return out
        finally:
            self.train(was_training)


def sample_next(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
    """(B, V) logits -> (B, 1) sampled ids."""
    if temperature == 0:
        return logits.argmax(-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


def init_lm_weights(model: nn.Module, depth: int) -> None:
    """GPT-2's initialisation: every matrix and table N(0, 0.02), the projections back into the
    residual stream (attention out_proj, fc2) N(0, 0.02 / sqrt(2 depth)), biases 0, norms 1/0.
    Parameters inside attention kernels (positional tables) keep their kind's own init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".kernel." in name or ".kernels." in name:
                continue
            if p.dim() >= 2:
                residual = name.endswith("out_proj.weight") or name.endswith("fc2.weight")
                nn.init.normal_(p, 0.0, 0.02 / (2 * depth) ** 0.5 if residual else 0.02)
            elif name.endswith("bias") and "norm" not in name:
                p.zero_()


class LM(LMBase):
    def __init__(self, arch: LMArch, config: LMConfig):
        super().__init__()
        check_lm_arch(arch)
        self.arch, self.config = arch, config
        e = arch.embed_dim
        self.embed_tokens = nn.Embedding(config.vocab_size, e)
        self.embed_positions = nn.Embedding(config.context, e)
        self.blocks = nn.ModuleList(
            LMBlock(MultiheadAttention(e, x.heads, x.attention, qkv_dim=x.heads * arch.head_dim,
                                       **config.kernel_options(x.attention)),
                    nn.LayerNorm(e), nn.Linear(e, x.ffn_dim), nn.Linear(x.ffn_dim, e), nn.LayerNorm(e),
                    config.dropout)
            for x in arch.layers)
        self.final_norm = nn.LayerNorm(e)
        init_lm_weights(self, len(arch.layers))

    def blocks_active(self):
        return self.blocks

    def token_weight(self) -> Tensor:
        return self.embed_tokens.weight
