"""Analytic parameters and FLOPs of the standalone `ViT` (one image at config.image_size).

Conventions are mixnas.cost's (see mixnas/cost/flops.py and params.py): FLOPs are 2 x
multiply-adds of matrix products and convolutions only; attention cores come from
`mixnas.cost.attention.core_flops`. Without embeddings the patch embedding (with the class token
and positions) and the classifier are left out (mixnas.cost.EMBEDDING_PARTS).
"""
from __future__ import annotations

from typing import Any

from ...cost.attention import core_flops
from ...cost.flops import ffn_flops, linear_flops, projection_flops
from ...cost.params import layer_norm_params, linear_params, stack_layers_params
from .arch import ViTArch


def vit_params_breakdown(arch: ViTArch, config: Any) -> dict[str, int]:
    e = arch.embed_dim
    tokens = num_patches(config) + (1 if config.pool == "cls" else 0)
    parts = {"patch_embedding": (config.in_channels * config.patch_size ** 2 * e + e  # conv + bias
                                 + (e if config.pool == "cls" else 0)  # class token
                                 + tokens * e)}  # learned positions
    parts.update(stack_layers_params(arch, config.attention_options))
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
