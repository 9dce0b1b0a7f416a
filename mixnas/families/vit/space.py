"""The search space of the ViT family: StackSpace's stack choices (embed_dim, layers, ffn_dim,
heads, attention) and a fixed head size, on ViT architectures."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...space.search_space import StackSpace
from .arch import ViTArch, ViTLayerArch


@dataclass(frozen=True)
class ViTSpace(StackSpace):
    """ViT space (head_dim 64 unless the YAML says otherwise)."""

    kind: ClassVar[str] = "vit"
    arch_class: ClassVar[type] = ViTArch
    layer_class: ClassVar[type] = ViTLayerArch
