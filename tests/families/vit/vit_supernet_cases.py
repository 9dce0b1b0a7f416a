"""Shared by the ViT supernet tests: tiny supernets and random architectures that mix every registered attention kind."""
import random

from mixnas.attention import kinds
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.supernet import SupernetViT

KINDS = tuple(kinds())
V_MAX = dict(embed_dim=24, layers=4, ffn_dim=32, heads=4, head_dim=4)


def random_vit_arch(rng: random.Random) -> ViTArch:
    layers = tuple(ViTLayerArch(rng.choice([8, 16, 32]), rng.randint(1, V_MAX["heads"]), rng.choice(KINDS))
                   for _ in range(rng.randint(1, V_MAX["layers"])))
    return ViTArch(rng.choice([8, 16, 24]), layers, head_dim=V_MAX["head_dim"])


def covering_vit_arch() -> ViTArch:
    return ViTArch(16, tuple(ViTLayerArch(16, 1 + i % 4, k) for i, k in enumerate(KINDS)), head_dim=4)


def vit_archs(seed: int, n: int = 4) -> list[ViTArch]:
    rng = random.Random(seed)
    return [covering_vit_arch()] + [random_vit_arch(rng) for _ in range(n - 1)]


def vit_supernet(share_projections=False, **config) -> SupernetViT:
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=2, num_classes=5, **config)
    return SupernetViT(cfg, kinds=KINDS, share_projections=share_projections, **V_MAX)
