"""Tiny search spaces small enough to enumerate, shared by the space tests."""
from mixnas.space import SearchSpace

# The encoder depth varies (1 or 2), so cross_layers choices depend on it (capped at depth).
TINY_TRANSFORMER = {
    "type": "transformer", "name": "tiny", "qkv_dim": 8,
    "encoder": {"embed_dim": [4, 8], "layers": [1, 2], "ffn_dim": [8, 16], "heads": [1, 2],
                "attention": ["softmax", "cosformer"]},
    "decoder": {"embed_dim": [4, 8], "layers": [1, 2], "ffn_dim": [8], "heads": [2],
                "attention": ["cosformer", "softmax"], "cross_heads": [1, 2], "cross_attention": ["softmax"],
                "cross_layers": [1, 2, 3]},
}

TINY_VIT = {"type": "vit", "name": "tiny_vit", "head_dim": 4, "embed_dim": [8, 16], "layers": [1, 2],
            "ffn_dim": [8, 16], "heads": [1, 2], "attention": ["softmax", "cosformer", "relative"]}


def tiny_transformer(**changes) -> SearchSpace:
    return SearchSpace.from_dict({**TINY_TRANSFORMER, **changes})


def tiny_vit(**changes) -> SearchSpace:
    return SearchSpace.from_dict({**TINY_VIT, **changes})
