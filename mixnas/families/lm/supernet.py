"""The LM supernet: every architecture of an `LMSpace` in one set of weights (HAT's sharing).

    supernet = SupernetLM.from_space(SearchSpace.load("shakespeare_lm"), config)
    supernet.set_arch(arch); logits = supernet(tokens)
    model = supernet.extract(arch)     # a standalone LM, weights copied

Elastic: embedding width (token and position tables, every norm; the tied output projection
reads the same active columns of the token table), depth (the first n blocks), per-layer FFN
width, heads (qkv width = heads * head_dim) and attention kind (each kind owns its q/k/v/out
projections unless `share_projections`). Front slicing: a sub-network of width w uses
weight[:w_out, :w_in]. The forward is `LMBase`'s, the standalone model's own code.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ...supernet.elastic import (ElasticEmbedding, ElasticLayerNorm, ElasticLinear, ElasticMultiheadAttention,
                                 copy_weights)
from ...supernet.stack import StackSupernet
from .arch import LMArch, check_lm_arch
from .config import LMConfig
from .model import LM, LMBase, LMBlock, init_lm_weights


class SupernetLM(StackSupernet, LMBase):
    space_kind = "lm"
    check_arch = staticmethod(check_lm_arch)

    def __init__(self, config: LMConfig, *, embed_dim: int, layers: int, ffn_dim: int, heads: int,
                 head_dim: int, kinds: Sequence[str], share_projections: bool = False):
        super().__init__()
        self.config, self.kinds, self.share_projections = config, tuple(kinds), share_projections
        self.max_heads, self.head_dim = heads, head_dim
        e = embed_dim
        self.embed_tokens = ElasticEmbedding(config.vocab_size, e, None)
        self.embed_positions = ElasticEmbedding(config.context, e, None)
        self.blocks = nn.ModuleList(
            LMBlock(ElasticMultiheadAttention(e, heads * head_dim, self.kinds, head_dim, config.kernel_options,
                                              share_projections=share_projections),
                    ElasticLayerNorm(e), ElasticLinear(e, ffn_dim), ElasticLinear(ffn_dim, e), ElasticLayerNorm(e),
                    config.dropout)
            for _ in range(layers))
        self.final_norm = ElasticLayerNorm(e)
        init_lm_weights(self, layers)
        self.arch: LMArch | None = None

    def max_embed_dim(self) -> int:
        return self.embed_tokens.weight.shape[1]

    def set_embed_dim(self, embed_dim: int) -> None:
        self.embed_tokens.active_dim = self.embed_positions.active_dim = embed_dim

    def token_weight(self) -> Tensor:
        return self.embed_tokens.active_weight()

    def extract(self, arch: LMArch) -> LM:
        """A standalone LM for `arch` with copies of its slice of the weights."""
        self._check_fits(arch)
        ref = self.embed_tokens.weight
        model = LM(arch, self.config).to(device=ref.device, dtype=ref.dtype)
        copy_weights(self, model)
        return model.train(self.training)
