"""Analytic parameters and FLOPs of the standalone encoder-decoder `Transformer` (batch 1).

Conventions are mixnas.cost's (see mixnas/cost/flops.py and params.py): FLOPs are 2 x
multiply-adds of matrix products only; attention cores come from `mixnas.cost.attention.core_flops`.
- `translation_flops`: teacher-forced forward (encoder over src_len tokens, decoder over tgt_len).
- `decode_flops`: encoder once at batch 1, then tgt_len incremental decoder steps on `beam`
  hypotheses (HAT's latency protocol); cross-attention keys/values are projected at the first
  step and cached afterwards.
"""
from __future__ import annotations

from typing import Any

from ...cost.attention import core_flops, state_elements
from ...cost.flops import ffn_flops, linear_flops, projection_flops
from ...cost.params import attention_params, ffn_params, head_dim_of, layer_norm_params
from .arch import DecoderLayerArch, TransformerArch


def shares_token_embedding(arch: TransformerArch, config: Any) -> bool:
    """Encoder and decoder use one table when the vocabulary is shared and the widths agree."""
    return bool(config.shared_vocab) and arch.encoder_embed_dim == arch.decoder_embed_dim


def transformer_params_breakdown(arch: TransformerArch, config: Any) -> dict[str, int]:
    ee, ed, qkv = arch.encoder_embed_dim, arch.decoder_embed_dim, arch.qkv_dim
    opts = config.attention_options
    parts: dict[str, int] = {}
    if shares_token_embedding(arch, config):
        parts["embed_tokens"] = config.src_vocab * ee
    else:
        parts["embed_tokens"] = config.src_vocab * ee + config.tgt_vocab * ed
    parts["output_projection"] = 0 if config.tie_embeddings else config.tgt_vocab * ed
    for i, layer in enumerate(arch.encoder_layers):
        parts[f"encoder.{i}"] = (attention_params(ee, ee, qkv, layer.heads, layer.attention, opts,
                                                  f"encoder layer {i}")
                                 + ffn_params(ee, layer.ffn_dim) + 2 * layer_norm_params(ee))
    for i, layer in enumerate(arch.decoder_layers):
        parts[f"decoder.{i}"] = (
            attention_params(ed, ed, qkv, layer.heads, layer.attention, opts, f"decoder layer {i}")
            + attention_params(ed, ee, qkv, layer.cross_heads, layer.cross_attention, opts,
                               f"decoder layer {i} cross-attention")
            + ffn_params(ed, layer.ffn_dim) + 3 * layer_norm_params(ed))
    if config.pre_norm:  # final LayerNorm on the encoder and on the decoder output
        parts["final_norms"] = layer_norm_params(ee) + layer_norm_params(ed)
    return parts


def _memory_len(arch: TransformerArch, layer: DecoderLayerArch, i: int, src_len: int) -> int:
    """Cross-attention keys: the last `cross_layers` encoder outputs, concatenated."""
    if not 1 <= layer.cross_layers <= len(arch.encoder_layers):
        raise ValueError(f"decoder layer {i}: cross_layers={layer.cross_layers} needs 1.."
                         f"{len(arch.encoder_layers)} (the encoder depth)")
    return layer.cross_layers * src_len


def encoder_flops(arch: TransformerArch, config: Any, src_len: int) -> dict[str, int]:
    e, qkv, opts = arch.encoder_embed_dim, arch.qkv_dim, config.attention_options
    parts = {}
    for i, layer in enumerate(arch.encoder_layers):
        d = head_dim_of(qkv, layer.heads, f"encoder layer {i}")
        parts[f"encoder.{i}"] = (
            projection_flops(src_len, src_len, e, e, qkv)
            + core_flops(layer.attention, "full", heads=layer.heads, head_dim=d, lq=src_len,
                         lk=src_len, attention_options=opts)
            + ffn_flops(src_len, e, layer.ffn_dim))
    return parts


def translation_flops(arch: TransformerArch, config: Any, src_len: int, tgt_len: int) -> dict[str, int]:
    ee, ed, qkv, opts = arch.encoder_embed_dim, arch.decoder_embed_dim, arch.qkv_dim, config.attention_options
    parts = encoder_flops(arch, config, src_len)
    for i, layer in enumerate(arch.decoder_layers):
        d = head_dim_of(qkv, layer.heads, f"decoder layer {i}")
        dc = head_dim_of(qkv, layer.cross_heads, f"decoder layer {i} cross-attention")
        mem = _memory_len(arch, layer, i, src_len)
        parts[f"decoder.{i}"] = (
            projection_flops(tgt_len, tgt_len, ed, ed, qkv)
            + core_flops(layer.attention, "causal", heads=layer.heads, head_dim=d, lq=tgt_len,
                         attention_options=opts)
            + projection_flops(tgt_len, mem, ed, ee, qkv)
            + core_flops(layer.cross_attention, "full", heads=layer.cross_heads, head_dim=dc,
                         lq=tgt_len, lk=mem, attention_options=opts)
            + ffn_flops(tgt_len, ed, layer.ffn_dim))
    parts["output_projection"] = linear_flops(tgt_len, ed, config.tgt_vocab)
    return parts


def decode_flops(arch: TransformerArch, config: Any, src_len: int, tgt_len: int, beam: int) -> dict[str, int]:
    ee, ed, qkv, opts = arch.encoder_embed_dim, arch.decoder_embed_dim, arch.qkv_dim, config.attention_options
    parts = encoder_flops(arch, config, src_len)  # batch 1; its output is then copied to the beams
    for i, layer in enumerate(arch.decoder_layers):
        d = head_dim_of(qkv, layer.heads, f"decoder layer {i}")
        dc = head_dim_of(qkv, layer.cross_heads, f"decoder layer {i} cross-attention")
        mem = _memory_len(arch, layer, i, src_len)
        # First step: project the encoder memory to keys/values (cached from then on).
        total = (2 * linear_flops(mem, ee, qkv)
                 + core_flops(layer.cross_attention, "full", heads=layer.cross_heads, head_dim=dc,
                              lq=1, lk=mem, attention_options=opts))
        for step in range(1, tgt_len):
            total += core_flops(layer.cross_attention, "cached", heads=layer.cross_heads, head_dim=dc,
                                lq=1, lk=mem, attention_options=opts)
        for step in range(tgt_len):
            total += core_flops(layer.attention, "causal", heads=layer.heads, head_dim=d, lq=1,
                                past=step, attention_options=opts)
        total += tgt_len * (projection_flops(1, 1, ed, ed, qkv)
                            + linear_flops(1, ed, qkv) + linear_flops(1, qkv, ed)  # cross q, out
                            + ffn_flops(1, ed, layer.ffn_dim))
        parts[f"decoder.{i}"] = beam * total
    parts["output_projection"] = beam * tgt_len * linear_flops(1, ed, config.tgt_vocab)
    return parts


def decode_state_breakdown(arch: TransformerArch, config: Any, src_len: int, tgt_len: int) -> dict[str, int]:
    """Values one hypothesis's decoder keeps after `tgt_len` steps over a `src_len` source: per
    decoder layer its self-attention state (tgt_len keys) and its cross-attention state (the
    keys and values, or linear sums, of the `cross_layers * src_len` encoder positions)."""
    qkv, opts = arch.qkv_dim, config.attention_options
    parts = {}
    for i, layer in enumerate(arch.decoder_layers):
        d = head_dim_of(qkv, layer.heads, f"decoder layer {i}")
        dc = head_dim_of(qkv, layer.cross_heads, f"decoder layer {i} cross-attention")
        parts[f"decoder.{i}"] = (
            state_elements(layer.attention, heads=layer.heads, head_dim=d, tokens=tgt_len, attention_options=opts)
            + state_elements(layer.cross_attention, heads=layer.cross_heads, head_dim=dc,
                             tokens=_memory_len(arch, layer, i, src_len), attention_options=opts))
    return parts
