"""What the supernets of single-stack models (the ViT, the decoder-only LM) share: activating an
architecture's slice of every block, the checks that it fits, and the active blocks.

A subclass holds `blocks` (each with `attn` an ElasticMultiheadAttention and `fc1`/`fc2`
ElasticLinears), `kinds`, `max_heads` and `head_dim`, and says how its embeddings follow the
active width (`set_embed_dim`) and how wide they are at most (`max_embed_dim`).
"""
from __future__ import annotations

from typing import Any, Callable


class StackSupernet:
    arch: Any
    check_arch: Callable[[Any], None]  # the standalone model's structural check of an arch
    space_kind: str  # the `kind` of the search spaces it is built from

    @classmethod
    def from_space(cls, space, config, share_projections: bool = False):
        """The supernet holding every architecture of `space` (a StackSpace of `space_kind`)."""
        if getattr(space, "kind", None) != cls.space_kind:
            raise ValueError(f"{cls.__name__} needs a {cls.space_kind} search space, "
                             f"got {getattr(space, 'kind', space)!r}")
        return cls(config, embed_dim=space.max_embed_dim, layers=space.max_layers, ffn_dim=space.max_ffn_dim,
                   heads=space.max_heads, head_dim=space.head_dim, kinds=space.attention,
                   share_projections=share_projections)

    def max_embed_dim(self) -> int:
        raise NotImplementedError

    def set_embed_dim(self, embed_dim: int) -> None:
        raise NotImplementedError

    def set_arch(self, arch) -> None:
        """Make the supernet run `arch` (until the next set_arch)."""
        self._check_fits(arch)
        self.set_embed_dim(arch.embed_dim)
        for block, a in zip(self.blocks, arch.layers):
            block.attn.set_active(a.attention, a.heads, a.heads * arch.head_dim, arch.embed_dim)
            block.fc1.active_out, block.fc2.active_out = a.ffn_dim, arch.embed_dim
        self.arch = arch

    def _check_fits(self, arch) -> None:
        type(self).check_arch(arch)
        limits = [("embed_dim", arch.embed_dim, self.max_embed_dim()), ("depth", len(arch.layers), len(self.blocks)),
                  ("head_dim", arch.head_dim, self.head_dim)]
        for i, a in enumerate(arch.layers):
            limits += [(f"layers[{i}].ffn_dim", a.ffn_dim, self.blocks[0].fc1.out_features),
                       (f"layers[{i}].heads", a.heads, self.max_heads)]
        for what, value, limit in limits:
            if value > limit:
                raise ValueError(f"architecture {what}={value} exceeds the supernet's {limit}")
        if arch.head_dim != self.head_dim:  # every kernel is built for this head size
            raise ValueError(f"architecture head_dim={arch.head_dim} differs from the supernet's {self.head_dim}")
        bad = sorted({a.attention for a in arch.layers} - set(self.kinds))
        if bad:
            raise ValueError(f"attention kind(s) {bad} are not in the supernet's {list(self.kinds)}")

    def blocks_active(self):
        if self.arch is None:
            raise ValueError("call set_arch(arch) before running the supernet")
        return self.blocks[:len(self.arch.layers)]
