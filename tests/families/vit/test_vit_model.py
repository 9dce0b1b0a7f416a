import pytest
import torch

from mixnas.attention import kinds
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.model import ViT

ARCH = ViTArch(24, tuple(ViTLayerArch(32 + 8 * i, 2 + i % 2, k) for i, k in enumerate(kinds())), head_dim=8)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_forward_shapes(pool):
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=5, pool=pool)
    model = ViT(ARCH, cfg).eval()
    assert model.pos_embed.shape == (1, 4 + (pool == "cls"), 24)
    assert (model.cls_token is not None) == (pool == "cls")
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 5)
    assert model.blocks[0].attn.qkv_dim == ARCH.layers[0].heads * 8


def test_mean_pool_is_permutation_invariant_over_patches():
    """Without positions, mean pooling ignores patch order: a check of the pooling itself."""
    torch.manual_seed(0)
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=3, pool="mean")
    arch = ViTArch(16, (ViTLayerArch(16, 2, "softmax"), ViTLayerArch(16, 2, "linear")), head_dim=8)
    model = ViT(arch, cfg).eval()
    with torch.no_grad():
        model.pos_embed.zero_()
    img = torch.randn(2, 1, 8, 8)
    swapped = img.clone()
    swapped[..., :4, :], swapped[..., 4:, :] = img[..., 4:, :], img[..., :4, :]  # swap patch rows
    torch.testing.assert_close(model(img), model(swapped), atol=1e-5, rtol=1e-5)


def test_bad_image_shape():
    model = ViT(ARCH, ViTConfig(image_size=8, patch_size=4, in_channels=1))
    with pytest.raises(ValueError, match="images must have shape"):
        model(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="pool"):
        ViTConfig(pool="max")
