"""`mixnas export` and the attention kernels' export mode: the inference form of every kind
equals the normal forward; the exported ONNX graph (run in onnxruntime) and the torch.export
program equal PyTorch's forward at other batch sizes than the traced ones (language models:
tests/families/lm/test_lm_export.py; translation: tests/families/transformer/test_transformer_export.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mixnas.attention import MultiheadAttention, export_mode, exporting
from mixnas.cli import main
from mixnas.export import export_model, trace
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig
from mixnas.families.vit.model import ViT
from mixnas.models.io import save_model

VIT_KINDS = ("softmax", "cosformer", "linear", "relative")  # every kind a ViT space can use


def tiny_vit(kind: str) -> ViT:
    torch.manual_seed(0)
    arch = ViTArch(16, (ViTLayerArch(24, 2, kind), ViTLayerArch(16, 1, kind)), head_dim=8)
    return ViT(arch, ViTConfig(image_size=8, patch_size=4, in_channels=2, num_classes=3)).eval()


def vit_inputs() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(1, 2, 8, 8, generator=g), torch.randn(5, 2, 8, 8, generator=g)]


# ---------------------------------------------------------------- the kernels' export mode
@pytest.mark.parametrize("kind", VIT_KINDS)
def test_export_mode_equals_the_normal_forward(kind):
    """Non-causal with padding (some rows of a softmax see no key), causal from a state."""
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 2, kind).eval()
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    pad[2, :] = True  # nothing visible
    with torch.no_grad():
        ref = [attn(x, memory, key_padding_mask=pad)[0], attn(x, causal=True)[0]]
        _, st = attn(x[:, :2], causal=True, return_state=True, m=8)
        ref.append(attn(x[:, 2:], causal=True, state=st, m=8)[0])
        with export_mode():
            assert exporting()
            got = [attn(x, memory, key_padding_mask=pad)[0], attn(x, causal=True)[0]]
            _, st = attn(x[:, :2], causal=True, return_state=True, m=8)
            got.append(attn(x[:, 2:], causal=True, state=st, m=8)[0])
    assert not exporting()
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- exported programs
def _check_program(model, inputs, tmp_path):
    exported, _ = trace(model)
    program = exported.module()
    with torch.no_grad():
        for x in inputs:
            torch.testing.assert_close(program(x), model(x), atol=1e-4, rtol=1e-4)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e '.[dev]')")
    path = export_model(model, tmp_path / "model.onnx", "onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with torch.no_grad():
        for x in inputs:
            got = torch.from_numpy(session.run(None, {name: x.numpy()})[0])
            torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", VIT_KINDS)
def test_vit_exports_equal_the_forward(kind, tmp_path):
    _check_program(tiny_vit(kind), vit_inputs(), tmp_path)


# ---------------------------------------------------------------- the command
def test_export_command_writes_both_formats(tmp_path, capsys):
    model = tiny_vit("cosformer")
    save_model(model, tmp_path / "run" / "model")
    out = tmp_path / "vit.pt2"
    assert main(["export", "--model", str(tmp_path / "run"), "--format", "torch-export", "--output", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x = vit_inputs()[1]
    with torch.no_grad():
        torch.testing.assert_close(torch.export.load(str(out)).module()(x), model(x), atol=1e-4, rtol=1e-4)
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e '.[dev]')")
    assert main(["export", "--model", str(tmp_path / "run" / "model")]) == 0  # default: onnx beside the weights
    assert (tmp_path / "run" / "model" / "model.onnx").stat().st_size > 0


def test_export_of_an_unsupported_family_is_one_line(tmp_path, capsys, monkeypatch):
    # Every family exports now (translation: tests/families/transformer/test_transformer_export.py);
    # the transformer family with the default `export_program` stands for one that does not.
    from mixnas.families.family import Family
    from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
    from mixnas.families.transformer.family import TransformerFamily
    monkeypatch.setattr(TransformerFamily, "export_program", Family.export_program)
    from mixnas.families.transformer.config import TransformerConfig
    from mixnas.families.transformer.model import Transformer
    arch = TransformerArch(16, 16, (EncoderLayerArch(16, 2, "softmax"),),
                           (DecoderLayerArch(16, 2, "softmax", 2, "softmax", 1),), qkv_dim=16)
    save_model(Transformer(arch, TransformerConfig(20, 20)), tmp_path / "mt")
    assert main(["export", "--model", str(tmp_path / "mt"), "--output", str(tmp_path / "mt.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mixnas export: error: export is not supported for transformer models yet"]
    assert not (tmp_path / "mt.onnx").exists()


def test_export_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown export format"):
        export_model(tiny_vit("softmax"), tmp_path / "x", "tflite")
    assert main(["export", "--model", str(tmp_path / "nothing")]) == 2
    assert "arch.yaml does not exist" in capsys.readouterr().err
