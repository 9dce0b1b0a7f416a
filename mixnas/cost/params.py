"""Analytic parameter counts of an architecture, for the standalone models of mixnas/models
(see briefs/models.md): Transformer(arch, TransformerConfig) and ViT(arch, ViTConfig).

`params_breakdown` names every part; `count_params` sums it. Without embeddings (how HAT
reports model size) the token / patch embeddings, the ViT class token and position embedding,
and the output projection / classifier are left out; sinusoidal positions have no parameters.
"""
from __future__ import annotations

from typing import Any

from mixnas.space.arch import TransformerArch, ViTArch

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


def vit_params_breakdown(arch: ViTArch, config: Any) -> dict[str, int]:
    e = arch.embed_dim
    tokens = num_patches(config) + (1 if config.pool == "cls" else 0)
    parts = {"patch_embedding": (config.in_channels * config.patch_size ** 2 * e + e  # conv + bias
                                 + (e if config.pool == "cls" else 0)  # class token
                                 + tokens * e)}  # learned positions
    for i, layer in enumerate(arch.layers):
        qkv = layer.heads * arch.head_dim
        parts[f"layers.{i}"] = (attention_params(e, e, qkv, layer.heads, layer.attention,
                                                 config.attention_options, f"layer {i}")
                                + ffn_params(e, layer.ffn_dim) + 2 * layer_norm_params(e))
    parts["final_norm"] = layer_norm_params(e)
    parts["classifier"] = linear_params(e, config.num_classes)
    return parts


def num_patches(config: Any) -> int:
    if config.pool not in ("cls", "mean"):
        raise ValueError(f"ViT pool must be 'cls' or 'mean', got {config.pool!r}")
    if config.image_size % config.patch_size:
        raise ValueError(f"image_size={config.image_size} is not a multiple of "
                         f"patch_size={config.patch_size}")
    return (config.image_size // config.patch_size) ** 2


def params_breakdown(arch: Any, config: Any) -> dict[str, int]:
    """Parameters per named part of the model (see EMBEDDING_PARTS), by the arch's family."""
    from mixnas.families import family_of
    return family_of(arch).params_breakdown(arch, config)


def count_params(arch: Any, config: Any, include_embeddings: bool = True) -> int:
    """Number of parameters of the standalone model `arch` builds with `config`."""
    parts = params_breakdown(arch, config)
    return sum(v for k, v in parts.items() if include_embeddings or k not in EMBEDDING_PARTS)
