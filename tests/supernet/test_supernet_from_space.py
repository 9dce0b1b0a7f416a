"""Supernets built from the CPU-scale preset spaces hold their largest, smallest and sampled
architectures exactly."""
import random

import pytest
import torch

from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.supernet import SupernetTransformer
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.supernet import SupernetViT
from mixnas.space.search_space import SearchSpace


def test_translation_preset():
    space = SearchSpace.load("multi30k_small")
    supernet = SupernetTransformer.from_space(space, TransformerConfig(50, 50, dropout=0.0)).eval()
    src, prev = torch.randint(3, 50, (2, 6)), torch.randint(3, 50, (2, 4))
    src[0, 3:] = 0
    for arch in (space.largest(), space.sample(random.Random(0))):
        supernet.set_arch(arch)
        with torch.no_grad():
            torch.testing.assert_close(supernet(src, prev), supernet.extract(arch).eval()(src, prev),
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset,size,patch", [("digits_vit", 8, 2), ("fashion_mnist_vit", 28, 7)])
def test_vit_presets(preset, size, patch):
    space = SearchSpace.load(preset)
    cfg = ViTConfig(image_size=size, patch_size=patch, in_channels=1, num_classes=10)
    supernet = SupernetViT.from_space(space, cfg).eval()
    images = torch.randn(2, 1, size, size)
    for arch in (space.largest(), space.smallest(), space.sample(random.Random(1))):
        supernet.set_arch(arch)
        with torch.no_grad():
            torch.testing.assert_close(supernet(images), supernet.extract(arch).eval()(images), atol=1e-5, rtol=1e-5)


def test_wrong_space_kind():
    with pytest.raises(ValueError, match="transformer search space"):
        SupernetTransformer.from_space(SearchSpace.load("digits_vit"), TransformerConfig(10, 10))
