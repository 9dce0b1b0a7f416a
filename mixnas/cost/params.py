"""Analytic parameter counts of an architecture: the helpers every family's formulas use, and
`params_breakdown` / `count_params`, which ask the arch's family (its cost.py holds the formulas).

`params_breakdown` names every part; `count_params` sums it. Without embeddings (how HAT
reports model size) the parts named in EMBEDDING_PARTS are left out: token / patch embeddings
(with the ViT class token and position embedding), the output projection / classifier;
sinusoidal positions have no parameters.
"""
from __future__ import annotations

from typing import Any

from .attention import kernel_params

# Parts that `include_embeddings=False` leaves out (of parameters and of FLOPs).
EMBEDDING_PARTS = ("embed_tokens", "output_projection", "patch_embedding", "classifier")


def linear_params(fan_in: int, fan_out: int, bias: bool = True) -> int:
    return fan_in * fan_out + (fan_out if bias else 0)


def layer_norm_params(dim: int) -> int:
    return 2 * dim


def head_dim_of(qkv_dim: int, heads: int, where: str) -> int:
    if heads < 1 or qkv_dim % heads:
        raise ValueError(f"{where}: qkv width {qkv_dim} is not divisible by heads={heads}; "
                         f"choose heads that divide it")
    return qkv_dim // heads


def attention_params(embed_dim: int, kv_dim: int, qkv_dim: int, heads: int, kind: str,
                     attention_options: dict | None, where: str) -> int:
    """mixnas.attention.MultiheadAttention: q, k, v and output projections (with bias) + kernel."""
    head_dim = head_dim_of(qkv_dim, heads, where)
    return (linear_params(embed_dim, qkv_dim) + 2 * linear_params(kv_dim, qkv_dim)
            + linear_params(qkv_dim, embed_dim) + kernel_params(kind, head_dim, attention_options))


def ffn_params(embed_dim: int, ffn_dim: int) -> int:
    return linear_params(embed_dim, ffn_dim) + linear_params(ffn_dim, embed_dim)


def stack_layers_params(arch: Any, attention_options: dict | None) -> dict[str, int]:
    """"layers.i" parts of a single-stack model (ViT, decoder-only LM): attention of the layer's
    kind with q/k/v width heads * head_dim, FFN and two LayerNorms, at width arch.embed_dim."""
    e = arch.embed_dim
    return {f"layers.{i}": (attention_params(e, e, layer.heads * arch.head_dim, layer.heads, layer.attention,
                                             attention_options, f"layer {i}")
                            + ffn_params(e, layer.ffn_dim) + 2 * layer_norm_params(e))
            for i, layer in enumerate(arch.layers)}


def params_breakdown(arch: Any, config: Any) -> dict[str, int]:
    """Parameters per named part of the model (see EMBEDDING_PARTS), by the arch's family."""
    from mixnas.families import family_of
    return family_of(arch).params_breakdown(arch, config)


def count_params(arch: Any, config: Any, include_embeddings: bool = True) -> int:
    """Number of parameters of the standalone model `arch` builds with `config`."""
    parts = params_breakdown(arch, config)
    return sum(v for k, v in parts.items() if include_embeddings or k not in EMBEDDING_PARTS)
