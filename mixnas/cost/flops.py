"""Analytic FLOPs of an architecture, for ONE sequence / image (batch 1): the helpers every
family's formulas use, and `flops_breakdown` / `count_flops` / `count_decode_flops`, which ask
the arch's family (the formulas live in each family's cost.py).

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

from .params import EMBEDDING_PARTS


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def projection_flops(lq: int, lkv: int, embed_dim: int, kv_dim: int, qkv_dim: int) -> int:
    """q, k, v and output projections of MultiheadAttention for lq queries and lkv keys."""
    return (linear_flops(lq, embed_dim, qkv_dim) + 2 * linear_flops(lkv, kv_dim, qkv_dim)
            + linear_flops(lq, qkv_dim, embed_dim))


def ffn_flops(tokens: int, embed_dim: int, ffn_dim: int) -> int:
    return linear_flops(tokens, embed_dim, ffn_dim) + linear_flops(tokens, ffn_dim, embed_dim)


def flops_breakdown(arch: Any, config: Any, *, decode: bool = False, **options: int) -> dict[str, int]:
    """FLOPs per named part (see params.EMBEDDING_PARTS for the embedding parts), by the arch's
    family, at its cost options (`Family.cost_options`: lengths, beam...). `decode`: the
    family's decoding FLOPs (families with incremental decoding only)."""
    from mixnas.families import family_of
    family = family_of(arch)
    if not decode:
        return family.flops_breakdown(arch, config, **options)
    if not family.decodes:
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
