"""The search space of the LM family: ViT-like stack choices plus a fixed head size.

    type: lm
    name: shakespeare_lm
    head_dim: 32                      # a layer's qkv width is heads * 32
    embed_dim: [96, 128]
    layers: [2, 3, 4]
    ffn_dim: [256, 384, 512]
    heads: [2, 4]
    attention: [softmax, cosformer, linear]   # the first is the sandwich rule's kind

Sampling, mutation, crossover, counting and the feature encoding are StackSpace's gene-wise
operations (mixnas.space.genes), walking the fields of `LMLayerArch`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...space.search_space import StackSpace
from .arch import ARCH_TYPE, LMArch, LMLayerArch


@dataclass(frozen=True)
class LMSpace(StackSpace):
    """The stack choices (embed_dim, layers, ffn_dim, heads, attention) and a fixed `head_dim`;
    every operation is StackSpace's (the ViT's), on LM architectures."""

    head_dim: int = 32

    kind: ClassVar[str] = ARCH_TYPE
    arch_class: ClassVar[type] = LMArch
    layer_class: ClassVar[type] = LMLayerArch
