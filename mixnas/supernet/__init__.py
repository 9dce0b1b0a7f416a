"""Weight-sharing supernets: every architecture of a search space is a front slice of one network."""
from .elastic import (ElasticEmbedding, ElasticLayerNorm, ElasticLinear, ElasticMultiheadAttention,
                      ElasticPatchEmbed, copy_weights, front, weight_pairs)
from .transformer import SupernetTransformer
from .vit import SupernetViT

__all__ = ["ElasticEmbedding", "ElasticLayerNorm", "ElasticLinear", "ElasticMultiheadAttention",
           "ElasticPatchEmbed", "SupernetTransformer", "SupernetViT", "copy_weights", "front", "weight_pairs"]
