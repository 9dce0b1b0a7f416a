"""The architecture of a Vision Transformer: what one sub-network of the ViT supernet is
(StackArch's layer stack). Serialises to {"type": "vit", "embed_dim": ..., "head_dim": ..., "layers": [...]}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...space.arch import StackArch, StackLayerArch


@dataclass(frozen=True)
class ViTLayerArch(StackLayerArch):
    pass


@dataclass(frozen=True)
class ViTArch(StackArch):
    """Vision Transformer (classification)."""

    layers: tuple[ViTLayerArch, ...]

    type_name: ClassVar[str] = "vit"
