"""The architecture of an encoder-decoder Transformer: what one sub-network of the translation
supernet is (per-layer genes of the encoder and of the decoder, HAT's arbitrary
encoder-decoder attention). Serialises to {"type": "transformer", ...}.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ...dataconf import from_dict
from ...space.arch import _non_empty, _plain, _without_type


@dataclass(frozen=True)
class EncoderLayerArch:
    ffn_dim: int
    heads: int
    attention: str  # a registered attention kind, e.g. "softmax" or "cosformer"


@dataclass(frozen=True)
class DecoderLayerArch:
    ffn_dim: int
    heads: int  # self-attention heads
    attention: str  # self-attention kind (causal)
    cross_heads: int  # encoder-decoder attention heads
    cross_attention: str  # encoder-decoder attention kind
    # Arbitrary encoder-decoder attention (HAT): attend to the concatenated outputs of the
    # last `cross_layers` encoder layers. HAT's gene values -1, 1, 2 are cross_layers 1, 2, 3.
    cross_layers: int = 1


@dataclass(frozen=True)
class TransformerArch:
    """Encoder-decoder Transformer (translation)."""

    encoder_embed_dim: int
    decoder_embed_dim: int
    encoder_layers: tuple[EncoderLayerArch, ...]
    decoder_layers: tuple[DecoderLayerArch, ...]
    qkv_dim: int = 512  # width of q/k/v projections; head size = qkv_dim // heads

    def to_dict(self) -> dict[str, Any]:
        return {"type": "transformer", **_plain(asdict(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TransformerArch":
        return from_dict(cls, _without_type(d, "transformer"), "architecture")

    def validate(self) -> None:
        _non_empty(self, "encoder_layers", "decoder_layers")
