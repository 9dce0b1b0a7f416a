"""cosFormer's length rule (attention_options: {cosformer: {m_rule: length}}) in the standalone
ViT: M is the number of tokens, and the option set from an experiment config. (The
Transformer's: tests/families/transformer/test_transformer_cosformer_length.py.)"""
import pytest
import torch

from mixnas.attention.cosformer import CosformerKernel
from mixnas.experiment import build_experiment_model, build_task, load_experiment
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.model import ViT

LENGTH = {"cosformer": {"m_rule": "length"}}


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_uses_the_number_of_tokens(pool):
    """A ViT's M is its number of tokens: equal to cosformer built with max_len = tokens."""
    torch.manual_seed(4)
    arch = ViTArch(16, (ViTLayerArch(32, 2, "cosformer"), ViTLayerArch(32, 2, "softmax"),
                        ViTLayerArch(32, 4, "cosformer")), head_dim=4)
    base = dict(image_size=8, patch_size=2, in_channels=1, num_classes=3, pool=pool)
    tokens = ViTConfig(**base).num_tokens
    model = ViT(arch, ViTConfig(**base, attention_options=LENGTH)).eval()
    same = ViT(arch, ViTConfig(**base, attention_options={"cosformer": {"max_len": tokens, "m_rule": "fixed"}})).eval()
    default = ViT(arch, ViTConfig(**base, attention_options={"cosformer": {"m_rule": "fixed"}})).eval()  # M = 1024
    for other in (same, default):
        other.load_state_dict(model.state_dict())
    images = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(images), same(images), atol=1e-6, rtol=1e-6)
        assert (model(images) - default(images)).abs().max() > 1e-4


def test_option_from_experiment_config():
    """`model.config.attention_options='{cosformer: {m_rule: length}}'` on the command line
    reaches every cosformer kernel of the built model (a Transformer's config dict:
    test_transformer_cosformer_length.py)."""
    exp = load_experiment("digits_vit", ["model.arch=vit_digits_cosformer",
                                         "model.config.attention_options={cosformer: {m_rule: length}}"])
    model = build_experiment_model(exp, build_task(exp))
    kernels = [m for m in model.modules() if isinstance(m, CosformerKernel)]
    assert len(kernels) == 3 and all(k.m_rule == "length" for k in kernels)
