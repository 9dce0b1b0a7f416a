"""Shared by the translation supernet tests: tiny supernets and random architectures that mix every registered attention kind."""
import random

from mixnas.attention import kinds
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.supernet import SupernetTransformer

KINDS = tuple(kinds())
VOCAB = 37
T_MAX = dict(encoder_embed_dim=24, decoder_embed_dim=16, encoder_layers=4, decoder_layers=4,
             encoder_ffn_dim=40, decoder_ffn_dim=32, qkv_dim=16)


def random_transformer_arch(rng: random.Random) -> TransformerArch:
    enc_depth = rng.randint(1, T_MAX["encoder_layers"])
    enc = tuple(EncoderLayerArch(rng.choice([8, 24, 40]), rng.choice([1, 2, 4]), rng.choice(KINDS))
                for _ in range(enc_depth))
    dec = tuple(DecoderLayerArch(rng.choice([8, 32]), rng.choice([2, 4]), rng.choice(KINDS), rng.choice([1, 2, 4]),
                                 rng.choice(KINDS), rng.randint(1, enc_depth))
                for _ in range(rng.randint(1, T_MAX["decoder_layers"])))
    return TransformerArch(rng.choice([8, 16, 24]), rng.choice([8, 16]), enc, dec, qkv_dim=rng.choice([8, 16]))


def covering_transformer_arch() -> TransformerArch:
    """Every kind as encoder self, decoder self and cross attention; cross_layers 1..3."""
    n = len(KINDS)
    enc = tuple(EncoderLayerArch(24, (1, 2, 4)[i % 3], KINDS[i]) for i in range(n))
    dec = tuple(DecoderLayerArch(32, (2, 4)[i % 2], KINDS[i], (4, 1, 2)[i % 3], KINDS[(i + 1) % n], 1 + i % 3)
                for i in range(n))
    return TransformerArch(16, 16, enc, dec, qkv_dim=16)


def transformer_archs(seed: int, n: int = 4) -> list[TransformerArch]:
    rng = random.Random(seed)
    return [covering_transformer_arch()] + [random_transformer_arch(rng) for _ in range(n - 1)]


def transformer_supernet(share_projections=False, **config) -> SupernetTransformer:
    cfg = TransformerConfig(VOCAB, VOCAB, dropout=0.0, **config)
    return SupernetTransformer(cfg, kinds=KINDS, share_projections=share_projections, **T_MAX)
