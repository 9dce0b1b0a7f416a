"""Vision Transformer whose blocks each use their own attention kind.

As for the translation model, the forward logic (`ViTBase`, `ViTBlock`) only calls sub-modules,
so the supernet reuses it with elastic modules and extracted sub-networks match it exactly.
cosFormer with `attention_options: {cosformer: {m_rule: length}}` uses M = the number of tokens
(the kernel's own rule for a non-causal call), so nothing is passed here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attention import MultiheadAttention
from .arch import ViTArch
from .config import ViTConfig


class ViTBlock(nn.Module):
    """Pre-norm block: x + Attn(LN(x)), then x + FFN(LN(x)) with a GELU FFN."""

    def __init__(self, attn, attn_norm, fc1, fc2, ffn_norm, dropout: float):
        super().__init__()
        self.attn, self.attn_norm = attn, attn_norm
        self.fc1, self.fc2, self.ffn_norm = fc1, fc2, ffn_norm
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.attn(self.attn_norm(x))
        x = x + F.dropout(h, self.dropout, self.training)
        h = self.fc2(F.gelu(self.fc1(self.ffn_norm(x))))
        return x + F.dropout(h, self.dropout, self.training)


class ViTBase(nn.Module):
    """Forward logic shared by `ViT` and the ViT supernet. Subclasses provide the modules
    `patch_embed`, `norm`, `head` and the hooks below."""

    config: ViTConfig

    def blocks_active(self) -> list[ViTBlock]:
        raise NotImplementedError

    def token_params(self) -> tuple[Tensor | None, Tensor]:
        """(class token (1, 1, E) or None, position embedding (1, tokens, E))."""
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        c = self.config
        want = (c.in_channels, c.image_size, c.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != want:
            raise ValueError(f"images must have shape (batch, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {tuple(images.shape)}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, patches, E)
        cls_token, pos = self.token_params()
        if cls_token is not None:
            x = torch.cat([cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = F.dropout(x + pos, c.dropout, self.training)
        for block in self.blocks_active():
            x = block(x)
        x = self.norm(x)
        x = x[:, 0] if c.pool == "cls" else x.mean(dim=1)
        return self.head(x)


def check_vit_arch(arch: ViTArch) -> None:
    if not isinstance(arch, ViTArch):
        raise ValueError(f"expected a ViTArch, got {type(arch).__name__}")
    if not arch.layers:
        raise ValueError("a ViT needs at least one layer")
    for i, layer in enumerate(arch.layers):
        if layer.heads < 1:
            raise ValueError(f"layers[{i}].heads must be positive, got {layer.heads}")


class ViT(ViTBase):
    def __init__(self, arch: ViTArch, config: ViTConfig):
        super().__init__()
        check_vit_arch(arch)
        self.arch, self.config = arch, config
        e = arch.embed_dim
        self.patch_embed = nn.Conv2d(config.in_channels, e, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e)) if config.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_tokens, e))
        init_tokens(self.cls_token, self.pos_embed)
        self.blocks = nn.ModuleList(
            ViTBlock(MultiheadAttention(e, x.heads, x.attention, qkv_dim=x.heads * arch.head_dim,
                                        **config.kernel_options(x.attention)),
                     nn.LayerNorm(e), nn.Linear(e, x.ffn_dim), nn.Linear(x.ffn_dim, e), nn.LayerNorm(e),
                     config.dropout)
            for x in arch.layers)
        self.norm = nn.LayerNorm(e)
        self.head = nn.Linear(e, config.num_classes)

    def blocks_active(self):
        return self.blocks

    def token_params(self):
        return self.cls_token, self.pos_embed


def init_tokens(cls_token: Tensor | None, pos_embed: Tensor) -> None:
    nn.init.trunc_normal_(pos_embed, std=0.02)
    if cls_token is not None:
        nn.init.trunc_normal_(cls_token, std=0.02)
