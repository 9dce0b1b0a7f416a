"""Export of language models (mixnas/families/lm/export.py): the forward program equals the
model's forward, and decoding token by token through the exported decode_step (torch.export
and ONNX Runtime) gives the full forward's logits at every position, from empty states and
continuing PyTorch's own states, at other batch sizes and cache lengths than the traced ones."""
from __future__ import annotations

import pytest
import torch
from onnx_sessions import session_function
from lm_helpers import tiny_config, uniform_arch

from mixnas.cli import main
from mixnas.export import export_model, trace_programs
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.export import empty_states, states_as_tensors, step_state_names
from mixnas.families.lm.model import LM
from mixnas.models.io import save_model

CONTEXT = 12


def mixed_arch() -> LMArch:
    kinds = ("softmax", "linear", "cosformer")
    return LMArch(embed_dim=16, layers=tuple(LMLayerArch(ffn_dim=12 + 4 * i, heads=2, attention=k)
                                             for i, k in enumerate(kinds)), head_dim=4)


CASES = {"softmax": uniform_arch("softmax"), "cosformer": uniform_arch("cosformer"),
         "linear": uniform_arch("linear"), "mixed": mixed_arch()}


def tiny(name: str) -> LM:
    torch.manual_seed(0)
    return LM(CASES[name], tiny_config(CONTEXT)).eval()


def tokens(batch: int = 3, length: int = CONTEXT) -> torch.Tensor:
    return torch.randint(0, 14, (batch, length), generator=torch.Generator().manual_seed(1))


def check_decoding(model, forward, step) -> None:
    """forward and step: functions of tensors (an exported program or an ONNX Runtime session)."""
    x = tokens()
    with torch.no_grad():
        full = model(x)
        torch.testing.assert_close(forward(x), full, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(forward(x[:1, :5]), model(x[:1, :5]), atol=1e-4, rtol=1e-4)
        states = empty_states(model, x.shape[0])
        for t in range(CONTEXT):  # from the first token on
            logits, *states = step(x[:, t:t + 1], torch.tensor(t), *states)
            torch.testing.assert_close(logits, full[:, t], atol=1e-4, rtol=1e-4, msg=lambda m: f"position {t}: {m}")
        _, prefix = model.step(x[:, :7], None, 0)  # continuing PyTorch's states (the latency workload's inputs)
        logits, *_ = step(x[:, 7:8], torch.tensor(7), *states_as_tensors(prefix))
        torch.testing.assert_close(logits, full[:, 7], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list(CASES))
def test_lm_exports_decode_like_the_full_forward(name, tmp_path):
    model = tiny(name)
    paths = export_model(model, tmp_path / "lm.pt2", "torch-export")
    assert [p.name for p in paths] == ["lm.forward.pt2", "lm.decode_step.pt2"]
    forward, step = (torch.export.load(str(p)).module() for p in paths)
    check_decoding(model, forward, step)

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e '.[dev]')")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install -e '.[dev]')")
    paths = export_model(model, tmp_path / "lm.onnx", "onnx")
    assert [p.name for p in paths] == ["lm.forward.onnx", "lm.decode_step.onnx"]
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]

    ins, outs = step_state_names(model)
    assert [i.name for i in sessions[1].get_inputs()] == ["tokens", "position", *ins]
    assert [o.name for o in sessions[1].get_outputs()] == ["logits", *outs]
    check_decoding(model, session_function(sessions[0]), session_function(sessions[1]))


@pytest.mark.parametrize("kind", ["relative", "cosformer", "linear"])
def test_forward_export_covers_every_length_around_the_fused_thresholds(kind):
    """Kinds with fused kernels from some length on (relative 64 keys, cosFormer 20 causal) trace
    the plain-tensor form at every length up to the context, not a guard at the threshold."""
    torch.manual_seed(0)
    model = LM(uniform_arch(kind), tiny_config(80)).eval()
    program = trace_programs(model)["forward"][0].module()
    x = torch.randint(0, 14, (2, 80), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for length in (5, 63, 64, 80):
            torch.testing.assert_close(program(x[:, :length]), model(x[:, :length]), atol=1e-4, rtol=1e-4)


def test_state_names_follow_the_kinds():
    ins, outs = step_state_names(tiny("mixed"))
    assert ins == ["past_key_0", "past_value_0", "state_kv_1", "state_z_1", "state_kv_2", "state_z_2"]
    assert outs == ["present_key_0", "present_value_0", "new_state_kv_1", "new_state_z_1",
                    "new_state_kv_2", "new_state_z_2"]
    shapes = [tuple(t.shape) for t in empty_states(tiny("mixed"), 5)]
    assert shapes == [(5, 2, 0, 4)] * 2 + [(5, 2, 4, 4), (5, 2, 4), (5, 2, 8, 4), (5, 2, 8)]  # cosFormer: D = 2d


def test_export_command_writes_both_programs(tmp_path, capsys):
    save_model(tiny("softmax"), tmp_path / "lm")
    out = tmp_path / "out" / "lm.pt2"
    assert main(["export", "--model", str(tmp_path / "lm"), "--format", "torch-export", "--output", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"wrote {out.with_name('lm.forward.pt2')}", f"wrote {out.with_name('lm.decode_step.pt2')}"]
