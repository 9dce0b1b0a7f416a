"""Analytic FLOPs of an architecture (the standalone models of briefs/models.md), for ONE
sequence / image (batch 1).

Convention: 2 x multiply-adds of matrix products and convolutions only, which is exactly what
torch.utils.flop_counter.FlopCounterMode counts (mm, addmm, bmm, convolution, attention);
biases, norms, activations, softmax and embedding lookups cost nothing. Attention cores come
from cost/attention.py, one formula per attention kind.

- `count_flops(transformer_arch, cfg, src_len=30, tgt_len=30)`: teacher-forced forward
  (encoder over src_len tokens, decoder over tgt_len tokens).
- `count_decode_flops(transformer_arch, cfg, src_len=30, tgt_len=30, beam=4)`: encoder once at
  batch 1, then tgt_len incremental decoder steps on `beam` hypotheses (HAT's latency protocol);
  cross-attention keys/values are projected at the first step and cached afterwards.
- `count_flops(vit_arch, cfg)`: forward at cfg.image_size.
Without embeddings (HAT's convention) the output projection / patch embedding / classifier
are left out; token embeddings are lookups and cost nothing anyway.
"""
from __future__ import annotations

from typing import Any

from mixnas.space.arch import DecoderLayerArch, TransformerArch, ViTArch  # noqa: F401  (formulas below)

from .attention import core_flops
from .params import EMBEDDING_PARTS, head_dim_of, num_patches


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def projection_flops(lq: int, lkv: int, embed_dim: int, kv_dim: int, qkv_dim: int) -> int:
    """q, k, v and output projections of MultiheadAttention for lq queries and lkv keys."""
    return (linear_flops(lq, embed_dim, qkv_dim) + 2 * linear_flops(lkv, kv_dim, qkv_dim)
            + linear_flops(lq, qkv_dim, embed_dim))


def ffn_flops(tokens: int, embed_dim: int, ffn_dim: int) -> int:
    return linear_flops(tokens, embed_dim, ffn_dim) + linear_flops(tokens, ffn_dim, embed_dim)


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


def vit_flops(arch: ViTArch, config: Any) -> dict[str, int]:
    e, patches = arch.embed_dim, num_patches(config)
    tokens = patches + (1 if config.pool == "cls" else 0)
    parts = {"patch_embedding": linear_flops(patches, config.in_channels * config.patch_size ** 2, e)}
    for i, layer in enumerate(arch.layers):
        qkv = layer.heads * arch.head_dim
        parts[f"layers.{i}"] = (
            projection_flops(tokens, tokens, e, e, qkv)
            + core_flops(layer.attention, "full", heads=layer.heads, head_dim=arch.head_dim,
                         lq=tokens, lk=tokens, attention_options=config.attention_options)
            + ffn_flops(tokens, e, layer.ffn_dim))
    parts["classifier"] = linear_flops(1, e, config.num_classes)
    return parts


def flops_breakdown(arch: Any, config: Any, *, decode: bool = False, **options: int) -> dict[str, int]:
    """FLOPs per named part (see params.EMBEDDING_PARTS for the embedding parts), by the arch's
    family, at its cost options (`Family.cost_options`: lengths, beam...). `decode`: the
    family's decoding FLOPs (families with incremental decoding only)."""
    from mixnas.families import family_of
    family = family_of(arch)
    if not decode:
        return family.flops_breakdown(arch, config, **options)
    if not hasattr(family, "decode_flops_breakdown"):
        raise ValueError(f"{family.name} models have no decoding; use count_flops")
    return family.decode_flops_breakdown(arch, config, **options)


def total(parts: dict[str, int], include_embeddings: bool) -> int:
    return sum(v for k, v in parts.items() if include_embeddings or k not in EMBEDDING_PARTS)


def count_flops(arch: Any, config: Any, *, include_embeddings: bool = True, **options: int) -> int:
    """Forward FLOPs of one example at the family's cost options (translation: teacher-forced
    at src_len/tgt_len, default 30/30; ViT: at config.image_size, no options)."""
    return total(flops_breakdown(arch, config, **options), include_embeddings)


def count_decode_flops(arch: Any, config: Any, *, include_embeddings: bool = True, **options: int) -> int:
    """Decoding FLOPs (translation: encoder once at batch 1 plus tgt_len incremental decoder
    steps on `beam` hypotheses, default beam 1)."""
    return total(flops_breakdown(arch, config, decode=True, **options), include_embeddings)
