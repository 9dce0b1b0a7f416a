"""Encoder-decoder Transformer whose layers each use their own attention kind (HAT / fairseq style).

The forward logic lives in `EncoderDecoder` and the layer classes, which only *call* their
sub-modules (embeddings, attention, linear, norm). The standalone `Transformer` fills them with
plain torch modules; the supernet fills the same classes with elastic (front-sliced) modules,
so the two run literally the same code and an extracted sub-network matches the supernet.

    model = Transformer(arch, config)
    logits = model(src_tokens, prev_output_tokens)                    # teacher forcing
    enc = model.encode(src_tokens)
    logits, states = model.decode(prefix, enc, return_states=True)    # then one token a step:
    logits, states = model.decode(next_tokens, enc, states=states)

cosFormer's length rule (`attention_options: {cosformer: {m_rule: length}}`): one M per batch
for every attention of the model (encoder self, decoder self and cross, as the official
cosFormer code does), chosen by `length_rule_m` from the source alone, so that training and
beam search use the same M: `forward(src, prev, m=None)` / `encode(src, m=None)` compute it when
not given; `decode` takes it from the `EncoderOut`. Kinds without a length M ignore it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attention import MultiheadAttention
from .arch import TransformerArch
from .config import TransformerConfig


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """fairseq's fixed positions: (length, dim), first half sin, second half cos."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / max(half - 1, 1)))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * freqs[None, :]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2:
        table = F.pad(table, (0, 1))
    return table


# The decoder's maximum output length, fairseq's max_len_a * src_len + max_len_b (the defaults of
# mixnas.families.transformer.task.beam.BeamConfig); it also sets cosformer's M under the length rule.
DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B = 1.2, 10


def max_output_lengths(src_lengths: Tensor, max_len_a: float = DEFAULT_MAX_LEN_A,
                       max_len_b: int = DEFAULT_MAX_LEN_B) -> Tensor:
    """(B,) most positions beam search decodes per sentence: int(a * src_len + b), at least 1;
    `src_lengths` (B,) counts the non-pad source tokens (EOS included)."""
    return (src_lengths.float() * max_len_a + max_len_b).long().clamp_min(1)


def length_rule_m(src_tokens: Tensor, pad_id: int, tgt_len: int = 0, max_len_a: float = DEFAULT_MAX_LEN_A,
                  max_len_b: int = DEFAULT_MAX_LEN_B) -> int:
    """cosFormer's M for a translation batch under m_rule="length" (one M for the whole batch):

        M = max(S, int(max_len_a * s + max_len_b), T)

    S: the padded source length (src_tokens.shape[1]); s: the longest non-pad source in the
    batch; T: the padded decoder input length (BOS + target) in training, 0 in decoding.
    int(a s + b) is the most positions beam search decodes (`max_output_lengths`), so M is
    known before decoding starts and every decoded position is < M.

    Training and decoding agree exactly: with the same max_len_a / max_len_b (the translation
    task uses its `beam` settings for both) a batch gets the same M in teacher forcing and in
    beam search, unless a training target is longer than anything beam search may output
    (T > int(a s + b)); only then training widens M to T. Unlike the paper's
    M = max(src_len, tgt_len), M does not depend on the unknown target length, at the price of a
    somewhat weaker locality bias (M ~ 1.2 s + 10 instead of ~ s). As in the paper, M belongs to
    the batch (its longest source), so a sentence's output depends a little on its batch.
    """
    s = int((src_tokens != pad_id).sum(1).max()) if src_tokens.numel() else 0
    longest_output = int(max_output_lengths(torch.tensor([s]), max_len_a, max_len_b)[0])
    return max(src_tokens.shape[1], longest_output, tgt_len)


def uses_length_m(config) -> bool:
    """Whether a model config asks for cosformer's length rule (then the models compute M)."""
    return (getattr(config, "attention_options", None) or {}).get("cosformer", {}).get("m_rule") == "length"


@dataclass(frozen=True)
class EncoderOut:
    """What the decoder needs from the encoder: the outputs of the last few encoder layers
    (as many as the largest `cross_layers`, final norm applied under pre-norm) and the source
    padding mask (B, S), True = padded."""

    layer_outputs: tuple[Tensor, ...]
    padding_mask: Tensor
    m: int | None = None  # cosformer's M for this batch (length rule), used by the decoder too

    def memory(self, cross_layers: int) -> tuple[Tensor, Tensor]:
        """Keys/values of a cross-attention over the last `cross_layers` encoder layers,
        concatenated along the sequence axis, with the matching padding mask."""
        outs = self.layer_outputs[-cross_layers:]
        if len(outs) == 1:
            return outs[0], self.padding_mask
        memory, mask = torch.cat(outs, dim=1), self.padding_mask.repeat(1, len(outs))
        if bool(mask.any()):
            # Move the pads of every chunk to the end (stable, so real tokens keep their order):
            # positional kinds (cosformer, relative) then give a real key the same position
            # however much padding its batch has.
            order = torch.sort(mask.to(torch.uint8), dim=1, stable=True).indices
            memory = memory.gather(1, order[..., None].expand_as(memory))
            mask = mask.gather(1, order)
        return memory, mask

    def reorder(self, index: Tensor) -> "EncoderOut":
        return EncoderOut(tuple(x.index_select(0, index) for x in self.layer_outputs),
                          self.padding_mask.index_select(0, index), self.m)


@dataclass(frozen=True)
class DecoderStates:
    """Per decoder layer (self-attention state, cross-attention state), and how many target
    positions were consumed (the position of the next token)."""

    layers: tuple[tuple[object, object], ...]
    offset: int

    def reorder(self, index: Tensor) -> "DecoderStates":
        return replace(self, layers=tuple((s.reorder(index), c.reorder(index)) for s, c in self.layers))


class EncoderLayer(nn.Module):
    def __init__(self, self_attn, self_attn_norm, fc1, fc2, ffn_norm, pre_norm: bool, dropout: float):
        super().__init__()
        self.self_attn, self.self_attn_norm = self_attn, self_attn_norm
        self.fc1, self.fc2, self.ffn_norm = fc1, fc2, ffn_norm
        self.pre_norm, self.dropout = pre_norm, dropout

    def forward(self, x: Tensor, padding_mask: Tensor, m: int | None = None) -> Tensor:
        return self.block(x, lambda h: self.self_attn(h, key_padding_mask=padding_mask, m=m)[0])

    def block(self, x: Tensor, attend) -> Tensor:
        """The layer's sub-layers in order, with its attention given as `attend(normalised x)`
        (the export programs pass their plain-tensor attention here)."""
        x = _sublayer(self, x, attend, self.self_attn_norm)
        return _sublayer(self, x, self.feed_forward, self.ffn_norm)

    def feed_forward(self, h: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(h)))


class DecoderLayer(nn.Module):
    def __init__(self, self_attn, self_attn_norm, cross_attn, cross_attn_norm, fc1, fc2, ffn_norm,
                 cross_layers: int, pre_norm: bool, dropout: float):
        super().__init__()
        self.self_attn, self.self_attn_norm = self_attn, self_attn_norm
        self.cross_attn, self.cross_attn_norm = cross_attn, cross_attn_norm
        self.fc1, self.fc2, self.ffn_norm = fc1, fc2, ffn_norm
        self.cross_layers, self.pre_norm, self.dropout = cross_layers, pre_norm, dropout

    def forward(self, x: Tensor, encoder_out: EncoderOut, self_state=None, cross_state=None,
                return_state: bool = False):
        states = [self_state, cross_state]

        def self_attend(h: Tensor) -> Tensor:
            h, states[0] = self.self_attn(h, causal=True, state=states[0], return_state=return_state,
                                          m=encoder_out.m)
            return h

        def cross_attend(h: Tensor) -> Tensor:
            memory = mask = None
            if states[1] is None:  # a cross-attention state already caches the memory's keys
                memory, mask = encoder_out.memory(self.cross_layers)
            h, states[1] = self.cross_attn(h, memory, key_padding_mask=mask, state=states[1],
                                           return_state=return_state, m=encoder_out.m)
            return h

        x = self.block(x, self_attend, cross_attend)
        return x, states[0], states[1]

    def block(self, x: Tensor, self_attend, cross_attend) -> Tensor:
        """The layer's sub-layers in order: causal self-attention, cross-attention, feed-forward,
        the attentions given as functions of the normalised input (see EncoderLayer.block)."""
        x = _sublayer(self, x, self_attend, self.self_attn_norm)
        x = _sublayer(self, x, cross_attend, self.cross_attn_norm)
        return _sublayer(self, x, self.feed_forward, self.ffn_norm)

    feed_forward = EncoderLayer.feed_forward


def _sublayer(layer: nn.Module, x: Tensor, fn, norm) -> Tensor:
    """x + dropout(fn(norm(x))) pre-norm, norm(x + dropout(fn(x))) post-norm."""
    h = fn(norm(x) if layer.pre_norm else x)
    x = x + F.dropout(h, layer.dropout, layer.training)
    return x if layer.pre_norm else norm(x)


class EncoderDecoder(nn.Module):
    """Forward logic shared by the standalone model and the supernet. Subclasses provide the
    modules `encoder_embed`, `decoder_embed`, `encoder_norm`, `decoder_norm` (None unless
    pre-norm) and the hooks below."""

    config: TransformerConfig

    def encoder_layers_active(self) -> list[EncoderLayer]:
        raise NotImplementedError

    def decoder_layers_active(self) -> list[DecoderLayer]:
        raise NotImplementedError

    def output_logits(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _embed(self, tokens: Tensor, embedding, offset: int) -> Tensor:
        x = embedding(tokens)
        dim = x.shape[-1]
        end = offset + tokens.shape[1]
        if end > self.config.max_len:
            raise ValueError(f"sequence position {end - 1} is beyond config.max_len={self.config.max_len}; "
                             f"shorten the input or build the model with a larger max_len")
        x = x * math.sqrt(dim) + self._positions(dim, x.device, x.dtype)[offset:end]
        return F.dropout(x, self.config.dropout, self.training)

    def _positions(self, dim: int, device, dtype) -> Tensor:
        # A cache, not a buffer: positions are fixed, so they stay out of the state_dict.
        cache = self.__dict__.setdefault("_position_cache", {})
        key = (dim, device, dtype)
        if key not in cache:
            cache[key] = sinusoidal_positions(self.config.max_len, dim).to(device=device, dtype=dtype)
        return cache[key]

    def _check_tokens(self, tokens: Tensor, vocab: int, name: str) -> None:
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            raise ValueError(f"{name} must be a LongTensor of shape (batch, length), got "
                             f"{tuple(tokens.shape)} {tokens.dtype}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab):
            raise ValueError(f"{name} holds ids outside the vocabulary [0, {vocab})")

    def forward(self, src_tokens: Tensor, prev_output_tokens: Tensor, m: int | None = None) -> Tensor:
        """Teacher forcing. `m`: cosformer's M under the length rule (default: `length_rule_m`
        with the default max_len_a / max_len_b, widened to the decoder input length)."""
        if m is None and uses_length_m(self.config):
            self._check_tokens(src_tokens, self.config.src_vocab, "src_tokens")
            m = length_rule_m(src_tokens, self.config.pad_id, prev_output_tokens.shape[-1])
        logits, _ = self.decode(prev_output_tokens, self.encode(src_tokens, m=m))
        return logits

    def encode(self, src_tokens: Tensor, m: int | None = None) -> EncoderOut:
        """`m`: cosformer's M for this batch under the length rule, kept in the EncoderOut for
        the decoder (default: `length_rule_m(src_tokens, pad_id)`, which covers every position
        beam search with the default max_len_a / max_len_b decodes)."""
        self._check_tokens(src_tokens, self.config.src_vocab, "src_tokens")
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ValueError(f"m must be a positive integer, got {m!r}")
        if m is None and uses_length_m(self.config):
            m = length_rule_m(src_tokens, self.config.pad_id)
        padding_mask = src_tokens.eq(self.config.pad_id)
        x = self._embed(src_tokens, self.encoder_embed, 0)
        keep = max(layer.cross_layers for layer in self.decoder_layers_active())
        outputs = []
        for layer in self.encoder_layers_active():
            x = layer(x, padding_mask, m)
            outputs.append(x)
        outputs = outputs[-keep:]
        if self.encoder_norm is not None:
            outputs = [self.encoder_norm(x) for x in outputs]
        return EncoderOut(tuple(outputs), padding_mask, m)

    def decode(self, prev_output_tokens: Tensor, encoder_out: EncoderOut,
               states: DecoderStates | None = None, return_states: bool = False):
        """Logits (B, T, V) for `prev_output_tokens`. With `states`, the tokens continue the
        sequence the states have seen; the returned states then include them."""
        self._check_tokens(prev_output_tokens, self.config.tgt_vocab, "prev_output_tokens")
        offset = 0 if states is None else states.offset
        x = self._embed(prev_output_tokens, self.decoder_embed, offset)
        want = return_states or states is not None
        layer_states = []
        for i, layer in enumerate(self.decoder_layers_active()):
            self_state, cross_state = (None, None) if states is None else states.layers[i]
            x, self_state, cross_state = layer(x, encoder_out, self_state, cross_state, want)
            layer_states.append((self_state, cross_state))
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        new_states = DecoderStates(tuple(layer_states), offset + prev_output_tokens.shape[1]) if want else None
        return self.output_logits(x), new_states

    @staticmethod
    def reorder_states(states: DecoderStates, index: Tensor) -> DecoderStates:
        return states.reorder(index)

    @staticmethod
    def reorder_encoder_out(encoder_out: EncoderOut, index: Tensor) -> EncoderOut:
        return encoder_out.reorder(index)


def check_transformer_arch(arch: TransformerArch) -> None:
    if not isinstance(arch, TransformerArch):
        raise ValueError(f"expected a TransformerArch, got {type(arch).__name__}")
    if not arch.encoder_layers or not arch.decoder_layers:
        raise ValueError("a Transformer needs at least one encoder and one decoder layer")
    for where, layer in [*(("encoder", x) for x in arch.encoder_layers), *(("decoder", x) for x in arch.decoder_layers)]:
        heads = [layer.heads] + ([layer.cross_heads] if where == "decoder" else [])
        for h in heads:
            if h < 1 or arch.qkv_dim % h:
                raise ValueError(f"{where} layer heads={h} must divide qkv_dim={arch.qkv_dim}")
        if where == "decoder" and not 1 <= layer.cross_layers <= len(arch.encoder_layers):
            raise ValueError(f"decoder cross_layers={layer.cross_layers} must be in "
                             f"1..{len(arch.encoder_layers)} (the number of encoder layers)")


def init_embedding(weight: Tensor, pad_id: int) -> None:
    """fairseq: N(0, dim^-0.5), padding row zero."""
    nn.init.normal_(weight, 0.0, weight.shape[1] ** -0.5)
    with torch.no_grad():
        weight[pad_id].zero_()


class Transformer(EncoderDecoder):
    def __init__(self, arch: TransformerArch, config: TransformerConfig):
        super().__init__()
        check_transformer_arch(arch)
        self.arch, self.config = arch, config
        c, e_enc, e_dec = config, arch.encoder_embed_dim, arch.decoder_embed_dim
        self.encoder_embed = nn.Embedding(c.src_vocab, e_enc, padding_idx=c.pad_id)
        init_embedding(self.encoder_embed.weight, c.pad_id)
        if c.shared_vocab and e_enc == e_dec:
            self.decoder_embed = self.encoder_embed
        else:
            self.decoder_embed = nn.Embedding(c.tgt_vocab, e_dec, padding_idx=c.pad_id)
            init_embedding(self.decoder_embed.weight, c.pad_id)
        self.output_projection = None
        if not c.tie_embeddings:
            self.output_projection = nn.Linear(e_dec, c.tgt_vocab, bias=False)
            init_embedding(self.output_projection.weight, c.pad_id)

        def attn(embed, heads, kind, kv_dim=None):
            return MultiheadAttention(embed, heads, kind, kv_dim=kv_dim, qkv_dim=arch.qkv_dim,
                                      **c.kernel_options(kind))

        self.encoder_layers = nn.ModuleList(
            EncoderLayer(attn(e_enc, x.heads, x.attention), nn.LayerNorm(e_enc),
                         nn.Linear(e_enc, x.ffn_dim), nn.Linear(x.ffn_dim, e_enc), nn.LayerNorm(e_enc),
                         c.pre_norm, c.dropout)
            for x in arch.encoder_layers)
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(attn(e_dec, x.heads, x.attention), nn.LayerNorm(e_dec),
                         attn(e_dec, x.cross_heads, x.cross_attention, kv_dim=e_enc), nn.LayerNorm(e_dec),
                         nn.Linear(e_dec, x.ffn_dim), nn.Linear(x.ffn_dim, e_dec), nn.LayerNorm(e_dec),
                         x.cross_layers, c.pre_norm, c.dropout)
            for x in arch.decoder_layers)
        self.encoder_norm = nn.LayerNorm(e_enc) if c.pre_norm else None
        self.decoder_norm = nn.LayerNorm(e_dec) if c.pre_norm else None

    def encoder_layers_active(self):
        return self.encoder_layers

    def decoder_layers_active(self):
        return self.decoder_layers

    def output_logits(self, x: Tensor) -> Tensor:
        if self.output_projection is not None:
            return self.output_projection(x)
        return F.linear(x, self.decoder_embed.weight)
