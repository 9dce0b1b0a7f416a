"""ViT supernet with a per-layer choice of attention kind.

    supernet = SupernetViT.from_space(SearchSpace.load("digits_vit"), config)
    supernet.set_arch(arch); logits = supernet(images)
    model = supernet.extract(arch)     # a standalone mixnas.models.ViT, weights copied

Elastic: embedding width (patch embedding output channels, class token, position embedding,
every norm and the classifier input), depth (the first n blocks), per-layer FFN width, heads
(qkv width = heads * head_dim) and attention kind.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...supernet.elastic import ElasticLayerNorm, ElasticLinear, ElasticMultiheadAttention, ElasticPatchEmbed, copy_weights
from ...supernet.stack import StackSupernet
from .arch import ViTArch
from .config import ViTConfig
from .model import ViT, ViTBase, ViTBlock, check_vit_arch, init_tokens


class SupernetViT(StackSupernet, ViTBase):
    space_kind = "vit"
    check_arch = staticmethod(check_vit_arch)

    def __init__(self, config: ViTConfig, *, embed_dim: int, layers: int, ffn_dim: int, heads: int,
                 head_dim: int, kinds: Sequence[str], share_projections: bool = False):
        super().__init__()
        self.config, self.kinds, self.share_projections = config, tuple(kinds), share_projections
        self.max_heads, self.head_dim = heads, head_dim
        e = embed_dim
        self.patch_embed = ElasticPatchEmbed(config.in_channels, e, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e)) if config.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, e))
        init_tokens(self.cls_token, self.pos_embed)
        self.blocks = nn.ModuleList(
            ViTBlock(ElasticMultiheadAttention(e, heads * head_dim, self.kinds, head_dim, config.kernel_options,
                                               share_projections=share_projections),
                     ElasticLayerNorm(e), ElasticLinear(e, ffn_dim), ElasticLinear(ffn_dim, e), ElasticLayerNorm(e),
                     config.dropout)
            for _ in range(layers))
        self.norm = ElasticLayerNorm(e)
        self.head = ElasticLinear(e, config.num_classes)
        self.arch: ViTArch | None = None

    def max_embed_dim(self) -> int:
        return self.pos_embed.shape[-1]

    def set_embed_dim(self, embed_dim: int) -> None:
        self.patch_embed.active_out = embed_dim

    def token_params(self):
        e = self.patch_embed.active_out
        cls_token = None if self.cls_token is None else self.cls_token[..., :e]
        return cls_token, self.pos_embed[..., :e]

    def extract(self, arch: ViTArch) -> ViT:
        """A standalone ViT for `arch` with copies of its slice of the weights."""
        self._check_fits(arch)
        ref = self.pos_embed
        model = ViT(arch, self.config).to(device=ref.device, dtype=ref.dtype)
        copy_weights(self, model)
        return model.train(self.training)
