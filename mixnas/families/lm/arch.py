"""The architecture of a decoder-only language model: what one sub-network of the LM supernet is.

    LMArch(embed_dim=128, layers=(LMLayerArch(ffn_dim=512, heads=4, attention="softmax"),) * 4, head_dim=32)

Depth is the length of `layers`. A layer's q/k/v width is heads * head_dim (head_dim is fixed by
the search space, as for the ViT), so every head of every layer has the same size.
Serialises to {"type": "lm", "embed_dim": ..., "head_dim": ..., "layers": [{...}, ...]}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...space.arch import StackArch, StackLayerArch

ARCH_TYPE = "lm"


@dataclass(frozen=True)
class LMLayerArch(StackLayerArch):
    """ffn_dim: hidden width of the GELU MLP; heads: the layer's q/k/v width is heads *
    LMArch.head_dim; attention: a registered kind, always run causally."""


@dataclass(frozen=True)
class LMArch(StackArch):
    """GPT-style pre-norm decoder (the YAML/dict form and its checks come from StackArch)."""

    layers: tuple[LMLayerArch, ...]
    head_dim: int = 32

    type_name: ClassVar[str] = ARCH_TYPE


def check_lm_arch(arch: LMArch) -> None:
    """What a model needs of an architecture, beyond its structure: positive sizes."""
    if not isinstance(arch, LMArch):
        raise ValueError(f"expected an LMArch, got {type(arch).__name__}")
    if not arch.layers:
        raise ValueError("a language model needs at least one layer")
    for what, value in (("embed_dim", arch.embed_dim), ("head_dim", arch.head_dim)):
        if value < 1:
            raise ValueError(f"{what} must be positive, got {value}")
    for i, layer in enumerate(arch.layers):
        if layer.heads < 1 or layer.ffn_dim < 1:
            raise ValueError(f"layers[{i}] needs positive heads and ffn_dim, got {layer.heads} and {layer.ffn_dim}")
