"""Export of a translation model as two programs: the encoder and one incremental decoder step.

    encoder:      src_tokens (B, S) int64
                  -> encoder_out_0 .. encoder_out_{K-1} (B, S, E_enc), encoder_padding_mask (B, S) bool
                     [, m () int64: cosformer's M under the length rule, when the decoder needs it]
    decoder_step: tokens (B, 1) int64, position () int64 (the index of this target token: 0 for BOS),
                  the encoder outputs above [, m], and per decoder layer i its self-attention state:
                  softmax / relative: past_key_i, past_value_i (B, H, T, d) (T = position; T = 0 at BOS)
                  linear / cosformer: state_kv_i (B, H, D, d), state_z_i (B, H, D) (zeros at BOS)
                  -> logits (B, V) and the new state: present_key_i, present_value_i (B, H, T + 1, d)
                     or new_state_kv_i, new_state_z_i.

`m` exists only for a model whose decoder uses cosformer under the length rule: the encoder
computes it as `Transformer.encode(src_tokens)` does (`length_rule_m` with the default
max_len_a=1.2 / max_len_b=10) and uses it itself; a runtime must keep position < m (and
< config.max_len), as beam search with those defaults does; nothing checks it in the graphs.
K is the largest `cross_layers` of the decoder (the last K encoder layers' outputs, as
`EncoderOut.layer_outputs`). The step recomputes the cross-attention keys and values from the
encoder outputs at every step (no cross-attention cache). Both programs run the same
sub-modules as `Transformer.encode` / `decode` through the layers' own `block` (one order of
norms, residuals and feed-forward), with only the attention replaced by a plain-tensor form
taking the positions and cosformer's M as tensors.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attention.cosformer import CosformerKernel
from ...attention import export_step
from ...attention.export_step import causal_step, check_kind, dynamic_state_shapes, kernel_m
from ...attention.functional import linear_readout
from ...attention.kernels import KVCacheKernel
from ...attention.multihead import merge_heads, split_heads
from .model import DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B, sinusoidal_positions, uses_length_m


MODELS = "translation models"


def _attend_all(attn, x: Tensor, memory: Tensor, padding_mask: Tensor, q_position, m: Tensor | None) -> Tensor:
    """Non-causal attention of x (queries from position `q_position` on) over all of `memory`."""
    kernel = attn.kernel
    q = split_heads(attn.q_proj(x), attn.num_heads)
    k = split_heads(attn.k_proj(memory), attn.num_heads)
    v = split_heads(attn.v_proj(memory), attn.num_heads)
    lq, lk = q.shape[2], k.shape[2]
    if isinstance(kernel, KVCacheKernel):
        out = kernel.attend(q, k, v, ~padding_mask[:, None, None, :], q_position)
    else:
        mm = kernel_m(kernel, m, lk, causal=False)
        qf = kernel.feature_map(q, torch.arange(lq, device=x.device) + q_position, mm)
        kf = kernel.feature_map(k, torch.arange(lk, device=x.device), mm)
        kf = kf.masked_fill(padding_mask[:, None, :, None], 0.0)
        out = linear_readout(qf, kf.transpose(-1, -2) @ v, kf.sum(-2), kernel.eps)
    return attn.out_proj(merge_heads(out))


def _memory(outputs: list[Tensor], padding_mask: Tensor) -> tuple[Tensor, Tensor]:
    """`EncoderOut.memory` without a value-dependent branch: pads of every chunk moved to the end
    (a stable order, from unique sort keys)."""
    if len(outputs) == 1:
        return outputs[0], padding_mask
    memory, mask = torch.cat(outputs, dim=1), padding_mask.repeat(1, len(outputs))
    n = mask.shape[1]
    key = mask.to(torch.long) * n + torch.arange(n, device=mask.device)
    order = torch.argsort(key, dim=1)
    memory = memory.gather(1, order[..., None].expand_as(memory))
    return memory, mask.gather(1, order)


def _table(model, dim: int) -> Tensor:
    p = next(model.parameters())
    return sinusoidal_positions(model.config.max_len, dim).to(device=p.device, dtype=p.dtype)


def _needs_m(model, layers) -> bool:
    return uses_length_m(model.config) and any(isinstance(a.kernel, CosformerKernel) for a in layers)


def _decoder_attentions(model):
    return [a for layer in model.decoder_layers_active() for a in (layer.self_attn, layer.cross_attn)]


class EncoderProgram(nn.Module):
    """src_tokens -> encoder outputs, padding mask [, m] (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.keep = max(layer.cross_layers for layer in model.decoder_layers_active())
        for layer in model.encoder_layers_active():
            check_kind(layer.self_attn, MODELS)
        self.encoder_m = _needs_m(model, [layer.self_attn for layer in model.encoder_layers_active()])
        self.output_m = _needs_m(model, _decoder_attentions(model))
        # A buffer, not the model's position cache (which a trace would fill with fake tensors).
        self.register_buffer("positions", _table(model, model.arch.encoder_embed_dim), persistent=False)

    def forward(self, src_tokens: Tensor):
        model, c = self.model, self.model.config
        padding_mask = src_tokens.eq(c.pad_id)
        m = None
        if self.encoder_m or self.output_m:  # length_rule_m(src_tokens, pad_id) as a tensor
            s = (~padding_mask).sum(1).max()
            longest = (s.float() * DEFAULT_MAX_LEN_A + DEFAULT_MAX_LEN_B).long().clamp_min(1)
            m = longest.clamp_min(src_tokens.shape[1])
        x = model.encoder_embed(src_tokens)
        dim = x.shape[-1]
        x = x * math.sqrt(dim) + self.positions[: src_tokens.shape[1]].to(x.dtype)
        outputs = []
        for layer in model.encoder_layers_active():
            x = layer.block(x, lambda h, a=layer.self_attn: _attend_all(a, h, h, padding_mask, 0, m))
            outputs.append(x)
        outputs = outputs[-self.keep:]
        if model.encoder_norm is not None:
            outputs = [model.encoder_norm(x) for x in outputs]
        return (*outputs, padding_mask) + ((m,) if self.output_m else ())


class DecoderStepProgram(nn.Module):
    """One target token per hypothesis + encoder outputs + states -> logits + new states."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.keep = max(layer.cross_layers for layer in model.decoder_layers_active())
        for a in _decoder_attentions(model):
            check_kind(a, MODELS)
        self.takes_m = _needs_m(model, _decoder_attentions(model))
        self.register_buffer("positions", _table(model, model.arch.decoder_embed_dim), persistent=False)

    def forward(self, tokens: Tensor, position: Tensor, *rest: Tensor):
        model = self.model
        n = self.keep
        outputs, padding_mask = list(rest[:n]), rest[n]
        m = rest[n + 1] if self.takes_m else None
        states = rest[n + 1 + int(self.takes_m):]
        x = model.decoder_embed(tokens)
        dim = x.shape[-1]
        x = x * math.sqrt(dim) + self.positions.index_select(0, position.reshape(1)).to(x.dtype)
        new_states = []
        for i, layer in enumerate(model.decoder_layers_active()):
            state = (states[2 * i], states[2 * i + 1])
            memory, mask = _memory(outputs[-layer.cross_layers:], padding_mask)

            def self_attend(h, layer=layer, state=state):
                h, new = causal_step(layer.self_attn, h, state, position, m)
                new_states.extend(new)
                return h

            x = layer.block(x, self_attend,
                            lambda h, a=layer.cross_attn, mem=memory, mk=mask: _attend_all(a, h, mem, mk, position, m))
        if model.decoder_norm is not None:
            x = model.decoder_norm(x)
        return (model.output_logits(x)[:, 0], *new_states)


def empty_states(model, batch: int, past: int = 0) -> list[Tensor]:
    """The decoder step's state inputs before the first (BOS) step: per decoder layer an empty
    KV cache (length `past`, 0 by default) or zero linear sums."""
    return export_step.empty_states(_self_attentions(model), batch, past)


def decoder_state_names(model) -> tuple[list[str], list[str]]:
    """(input names, output names) of the decoder step's states, two per decoder layer."""
    return export_step.state_names(_self_attentions(model))


def _self_attentions(model) -> list:
    return [layer.self_attn for layer in model.decoder_layers_active()]


def export_programs(model) -> dict:
    """{"encoder": ExportProgram, "decoder_step": ExportProgram} of a standalone Transformer."""
    from torch.export import Dim

    from ..family import ExportProgram
    encoder, step = EncoderProgram(model), DecoderStepProgram(model)
    c = model.config
    batch, src_len = Dim("batch"), Dim("src_len", max=c.max_len)
    b, s = 2, 4  # sizes 2+: not specialised as 1
    src = torch.full((b, s), c.bos_id + 1 if c.bos_id + 1 != c.pad_id else 3, dtype=torch.long) % c.src_vocab
    enc_names = [f"encoder_out_{i}" for i in range(encoder.keep)] + ["encoder_padding_mask"]
    enc_names += ["m"] if encoder.output_m else []
    enc = ExportProgram(encoder, (src,), ({0: batch, 1: src_len},), ("src_tokens",), tuple(enc_names))

    p = next(model.parameters())
    outs = [p.new_zeros(b, s, model.arch.encoder_embed_dim) for _ in range(encoder.keep)]
    args = [torch.ones(b, 1, dtype=torch.long), torch.tensor(3), *outs, torch.zeros(b, s, dtype=torch.bool)]
    dyn = [{0: batch}, None, *({0: batch, 1: src_len} for _ in outs), {0: batch, 1: src_len}]
    if step.takes_m:
        args.append(torch.tensor(20))
        dyn.append(None)
    past = Dim("past", min=0, max=c.max_len - 1)
    args += empty_states(model, b, past=3)
    dyn += dynamic_state_shapes(_self_attentions(model), batch, past)
    ins, state_outs = decoder_state_names(model)
    names = ["tokens", "position", *enc_names]  # "m" last when the decoder needs it
    dyn = (dyn[0], dyn[1], tuple(dyn[2:]))  # torch.export groups the *rest arguments
    dec = ExportProgram(step, tuple(args), dyn, tuple(names + ins), ("logits", *state_outs))
    return {"encoder": enc, "decoder_step": dec}
