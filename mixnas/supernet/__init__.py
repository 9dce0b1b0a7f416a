"""Weight-sharing supernets: every architecture of a search space is a front slice of one network
(each family's supernet lives in mixnas/families/<name>/supernet.py)."""
from .elastic import (ElasticEmbedding, ElasticLayerNorm, ElasticLinear, ElasticMultiheadAttention,
                      ElasticPatchEmbed, copy_weights, front, weight_pairs)

__all__ = ["ElasticEmbedding", "ElasticLayerNorm", "ElasticLinear", "ElasticMultiheadAttention",
           "ElasticPatchEmbed", "copy_weights", "front", "weight_pairs"]
