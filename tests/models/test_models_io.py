import pytest
import torch
import yaml

from mixnas.models import TransformerConfig, ViT, ViTConfig, Transformer, load_model, save_model
from mixnas.space.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch, ViTArch, ViTLayerArch


def test_transformer_round_trip(tmp_path):
    arch = TransformerArch(16, 16, (EncoderLayerArch(24, 2, "relative"),),
                           (DecoderLayerArch(24, 4, "cosformer", 2, "softmax", 1),), qkv_dim=16)
    cfg = TransformerConfig(30, 30, dropout=0.0, attention_options={"cosformer": {"max_len": 64}})
    model = Transformer(arch, cfg).eval()
    save_model(model, tmp_path / "m")
    meta = yaml.safe_load((tmp_path / "m" / "arch.yaml").read_text())
    assert set(meta) == {"arch", "config"} and meta["config"]["attention_options"] == {"cosformer": {"max_len": 64}}
    loaded = load_model(tmp_path / "m").eval()
    assert loaded.arch == arch and loaded.config == cfg
    src, prev = torch.randint(3, 30, (2, 5)), torch.randint(3, 30, (2, 4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, prev), model(src, prev), atol=0, rtol=0)


def test_vit_round_trip_and_mismatch(tmp_path):
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=4)
    model = ViT(ViTArch(16, (ViTLayerArch(16, 2, "cosformer"),), head_dim=8), cfg).eval()
    save_model(model, tmp_path)
    img = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path)(img), model(img), atol=0, rtol=0)
    other = ViT(ViTArch(24, (ViTLayerArch(16, 2, "cosformer"),), head_dim=8), cfg)
    torch.save(other.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ValueError, match="does not match arch.yaml"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "nowhere")
