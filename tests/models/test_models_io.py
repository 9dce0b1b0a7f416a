import os

import pytest
import torch
import yaml

from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.model import Transformer
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.model import ViT
from mixnas.models import load_model, save_model


def test_transformer_round_trip(tmp_path):
    arch = TransformerArch(16, 16, (EncoderLayerArch(24, 2, "relative"),),
                           (DecoderLayerArch(24, 4, "cosformer", 2, "softmax", 1),), qkv_dim=16)
    cfg = TransformerConfig(30, 30, dropout=0.0, attention_options={"cosformer": {"max_len": 64}})
    model = Transformer(arch, cfg).eval()
    save_model(model, tmp_path / "m")
    meta = yaml.safe_load((tmp_path / "m" / "arch.yaml").read_text())
    assert set(meta) == {"arch", "config"} and meta["config"]["attention_options"] == {"cosformer": {"m_rule": "length", "max_len": 64}}
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


class _Payload:
    """What an attacker would put in a model.pt: pickle calls os.system on load (here "true")."""

    def __reduce__(self):
        return os.system, ("true",)


def _saved_vit(directory):
    cfg = ViTConfig(image_size=8, patch_size=4, in_channels=1, num_classes=4)
    save_model(ViT(ViTArch(16, (ViTLayerArch(16, 2, "softmax"),), head_dim=8), cfg), directory)
    return directory


@pytest.mark.parametrize("damage, message", [
    ("payload", r"holds Python objects outside the safe set \((posix|nt).system; refused: loading it could run code\); "
                r"it was not written by mixnas"),
    ("truncated", r"it is truncated or corrupt \(.+\); retrain the model or restore the file"),
    ("empty", r"it is truncated or corrupt \(the file is empty\)"),
    ("not-a-state-dict", r"holds a list, not a state_dict"),
])
def test_damaged_weights_are_one_line_errors(tmp_path, damage, message):
    weights = _saved_vit(tmp_path / "m") / "model.pt"
    if damage == "payload":
        torch.save({"patch_embed.weight": _Payload()}, weights)
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        torch.save([torch.zeros(2)], weights)
    with pytest.raises(ValueError, match=message) as err:
        load_model(tmp_path / "m")
    text = str(err.value)
    assert str(weights) in text and "\n" not in text and "weights_only" not in text


@pytest.mark.parametrize("key, value, message", [
    ("dropout", float("nan"), r"config.dropout: expected a number in \[0, 1\), got nan"),
    ("patch_size", "abc", r"config.patch_size: expected an integer, got 'abc'"),
    ("patch_size", 3, r"config.patch_size: expected a divisor of image_size=8, got 3"),
])
def test_bad_config_in_arch_yaml_names_the_file_and_key(tmp_path, key, value, message):
    arch_file = _saved_vit(tmp_path) / "arch.yaml"
    meta = yaml.safe_load(arch_file.read_text())
    meta["config"][key] = value
    arch_file.write_text(yaml.safe_dump(meta))
    with pytest.raises(ValueError, match=f"{arch_file}: {message}"):
        load_model(tmp_path)


def test_evaluate_command_reports_truncated_weights_in_one_line(tmp_path, capsys):
    from mixnas.cli import main
    from mixnas.experiment import build_experiment_model, build_task, load_experiment

    exp = load_experiment("digits_vit", [f"train.save_dir={tmp_path}"])
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(exp.to_dict()))
    save_model(build_experiment_model(exp, build_task(exp)), tmp_path / "model")
    weights = tmp_path / "model" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    rc = main(["evaluate", "--checkpoint", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"cannot read model weights {weights}: it is truncated or corrupt" in err and "weights_only" not in err
