import pytest
import torch

from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.models import load_model, save_model
from mixnas.supernet import front, weight_pairs
from vit_supernet_cases import vit_archs, vit_supernet


@pytest.mark.parametrize("share_projections,pool", [(False, "cls"), (True, "cls"), (False, "mean"), (True, "mean")])
def test_supernet_equals_extracted(share_projections, pool):
    torch.manual_seed(0)
    supernet = vit_supernet(share_projections, pool=pool).eval()
    images = torch.randn(3, 2, 8, 8)
    for arch in vit_archs(seed=int(share_projections) + 2 * (pool == "mean")):
        supernet.set_arch(arch)
        model = supernet.extract(arch).eval()
        with torch.no_grad():
            out = supernet(images)
            assert out.shape == (3, 5)
            torch.testing.assert_close(out, model(images), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("share_projections,pool", [(False, "cls"), (True, "mean")])
def test_supernet_equals_extracted_with_length_rule(share_projections, pool):
    """cosformer's M = the number of tokens (m_rule: length) in the supernet as in the extracted
    ViT, and it differs from the fixed-M supernet with the same weights."""
    torch.manual_seed(0)
    options = {"cosformer": {"m_rule": "length"}}
    supernet = vit_supernet(share_projections, pool=pool, attention_options=options).eval()
    fixed = vit_supernet(share_projections, pool=pool, attention_options={"cosformer": {"m_rule": "fixed"}}).eval()
    fixed.load_state_dict(supernet.state_dict())
    images = torch.randn(3, 2, 8, 8)
    for arch in vit_archs(seed=5 + share_projections):
        supernet.set_arch(arch)
        fixed.set_arch(arch)
        model = supernet.extract(arch).eval()
        assert model.config.attention_options == options
        with torch.no_grad():
            out = supernet(images)
            torch.testing.assert_close(out, model(images), atol=1e-5, rtol=1e-5)
            if any(a.attention == "cosformer" for a in arch.layers):
                assert (out - fixed(images)).abs().max() > 1e-5


def test_gradients_only_reach_the_slice():
    torch.manual_seed(1)
    supernet = vit_supernet()
    images = torch.randn(3, 2, 8, 8)
    arch = vit_archs(seed=4, n=2)[1]
    supernet.set_arch(arch)
    model = supernet.extract(arch)
    supernet(images).square().sum().backward()
    model(images).square().sum().backward()
    expected = {id(p): torch.zeros_like(p) for p in supernet.parameters()}
    for _, p, source in weight_pairs(supernet, model):
        front(expected[id(source)], p.shape).add_(p.grad)
    for name, p in supernet.named_parameters():
        got = torch.zeros_like(p) if p.grad is None else p.grad
        torch.testing.assert_close(got, expected[id(p)], atol=1e-5, rtol=1e-4, msg=name)


def test_save_load_and_errors(tmp_path):
    supernet = vit_supernet(pool="mean").eval()
    arch = vit_archs(seed=9)[0]
    supernet.set_arch(arch)
    save_model(supernet.extract(arch), tmp_path)
    images = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path).eval()(images), supernet(images), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="heads=5 exceeds"):
        supernet.set_arch(ViTArch(16, (ViTLayerArch(16, 5, "softmax"),), head_dim=4))
    with pytest.raises(ValueError, match="depth=5 exceeds"):
        supernet.set_arch(ViTArch(16, (ViTLayerArch(16, 1, "softmax"),) * 5, head_dim=4))
