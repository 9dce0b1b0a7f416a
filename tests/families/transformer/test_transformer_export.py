"""Export of translation models (mixnas/families/transformer/export.py): greedy decoding through
the exported encoder + decoder-step programs (ONNX Runtime and torch.export) equals PyTorch's own
`encode` / incremental `decode`, step by step, at other batch and source sizes than the traced ones."""
from __future__ import annotations

import pytest
import torch
from onnx_sessions import session_function

from mixnas.cli import main
from mixnas.export import export_model
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.export import empty_states
from mixnas.families.transformer.model import Transformer
from mixnas.models.io import save_model

V, STEPS = 30, 6
LENGTH = {"cosformer": {"m_rule": "length"}}


def arch(enc, dec, dim=16) -> TransformerArch:
    """enc: kinds of the encoder layers; dec: (self kind, cross kind, cross_layers) per decoder layer."""
    return TransformerArch(dim, dim, tuple(EncoderLayerArch(20, 2, k) for k in enc),
                           tuple(DecoderLayerArch(24, 2, s, 4 if i % 2 else 2, c, n) for i, (s, c, n) in enumerate(dec)),
                           qkv_dim=16)


CASES = {
    "softmax": (arch(["softmax"] * 2, [("softmax", "softmax", 1), ("softmax", "softmax", 2)]), {}),
    "cosformer-length": (arch(["cosformer"] * 2, [("cosformer", "cosformer", 2), ("cosformer", "cosformer", 1)]),
                         {"attention_options": LENGTH}),
    "cosformer-fixed-prenorm": (arch(["cosformer"] * 2, [("cosformer", "cosformer", 1)]),
                                {"pre_norm": True, "tie_embeddings": False}),
    "mixed-linear": (arch(["softmax", "linear", "relative"],
                          [("linear", "cosformer", 2), ("softmax", "linear", 3), ("cosformer", "softmax", 1)]),
                     {"attention_options": LENGTH, "shared_vocab": False}),
}


def tiny(name: str) -> Transformer:
    torch.manual_seed(0)
    a, options = CASES[name]
    return Transformer(a, TransformerConfig(V, V, dropout=0.0, **options)).eval()


def source() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    src = torch.randint(3, V, (3, 7), generator=g)
    src[1, 5:] = 0  # right-padded sources of different lengths
    src[2, 3:] = 0
    return src


def reference(model, src):
    """Greedy decoding with PyTorch's encode + incremental decode: per-step logits and tokens."""
    with torch.no_grad():
        enc = model.encode(src)
        tokens = torch.full((src.shape[0], 1), model.config.bos_id, dtype=torch.long)
        states, logits, chosen = None, [], []
        for _ in range(STEPS):
            out, states = model.decode(tokens, enc, states=states, return_states=True)
            logits.append(out[:, -1])
            tokens = out[:, -1].argmax(-1, keepdim=True)
            chosen.append(tokens)
    return logits, chosen


def greedy(model, src, run_encoder, run_step):
    """The same greedy decoding through the exported programs (functions of tensors)."""
    enc = list(run_encoder(src))
    batch = src.shape[0]
    states = empty_states(model, batch)  # an empty KV cache (length 0) / zero sums
    tokens = torch.full((batch, 1), model.config.bos_id, dtype=torch.long)
    logits, chosen = [], []
    for t in range(STEPS):
        out = list(run_step(tokens, torch.tensor(t), *enc, *states))
        logits.append(out[0])
        states = out[1:]
        tokens = out[0].argmax(-1, keepdim=True)
        chosen.append(tokens)
    return logits, chosen


def check(model, got, src):
    ref_logits, ref_tokens = reference(model, src)
    for step, (g, r) in enumerate(zip(got[0], ref_logits)):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4, msg=lambda m: f"step {step}: {m}")
    assert torch.equal(torch.cat(got[1], 1), torch.cat(ref_tokens, 1))


@pytest.mark.parametrize("name", list(CASES))
def test_translation_exports_decode_like_the_model(name, tmp_path):
    model = tiny(name)
    src = source()
    paths = export_model(model, tmp_path / "mt.pt2", "torch-export")
    assert [p.name for p in paths] == ["mt.encoder.pt2", "mt.decoder_step.pt2"]
    encoder, step = (torch.export.load(str(p)).module() for p in paths)
    with torch.no_grad():
        check(model, greedy(model, src, encoder, step), src)

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e '.[dev]')")
    paths = export_model(model, tmp_path / "mt.onnx", "onnx")
    assert [p.name for p in paths] == ["mt.encoder.onnx", "mt.decoder_step.onnx"]
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]

    n_layers = len(model.arch.decoder_layers)
    step_inputs = [i.name for i in sessions[1].get_inputs()]
    assert step_inputs[:2] == ["tokens", "position"] and len(step_inputs) >= 4 + 2 * n_layers
    check(model, greedy(model, src, session_function(sessions[0]), session_function(sessions[1])), src)


def test_export_command_writes_both_programs(tmp_path, capsys):
    save_model(tiny("softmax"), tmp_path / "mt")
    out = tmp_path / "out" / "mt.pt2"
    assert main(["export", "--model", str(tmp_path / "mt"), "--format", "torch-export", "--output", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"wrote {out.with_name('mt.encoder.pt2')}", f"wrote {out.with_name('mt.decoder_step.pt2')}"]
