"""Latency on ONNX Runtime (`measure_latency(..., runtime="onnxruntime")`, mixnas/cost/onnxruntime.py):
positive numbers and the recorded runtime for a ViT and translation models of every attention
mix, the translation workload's decoder steps (counted, and their logits equal PyTorch's own
workload's), the LM's decoding step, the refusal of a family without a workload, the protocol comparison, `mixnas cost --runtime` and the collect
config. Each ONNX export takes seconds: one per model here."""
from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from cost_archs import VISION
from test_cost_command import cost_main

import mixnas.cost.onnxruntime as ort_latency
from mixnas.cost import describe_protocol, measure_latency, protocol_differences
from mixnas.dataconf import ConfigError, from_dict
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.config import LMConfig
from mixnas.families.lm.model import LM
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.model import Transformer
from mixnas.families.vit.model import ViT
from mixnas.fileio import write_json
from mixnas.models import build_model, save_model
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.collect import check_latency_protocol, latency_protocol_path
from mixnas.pipeline.config import CollectSection, PipelineConfig

HAS_ORT = all(importlib.util.find_spec(n) is not None for n in ("onnx", "onnxscript", "onnxruntime"))
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnx, onnxscript or onnxruntime is not installed "
                                                   "(pip install onnx onnxscript onnxruntime, or pip install -e '.[dev]')")
V, SRC, STEPS, BEAM = 30, 6, 3, 3
LENGTH = {"cosformer": {"m_rule": "length"}}  # the encoder then also outputs m, a scalar the beam must not tile


def tiny_translation(kinds: tuple[str, str, str]) -> Transformer:
    """kinds: (encoder self, decoder self, decoder cross) attention; two decoder layers."""
    enc, dec_self, cross = kinds
    torch.manual_seed(0)
    arch = TransformerArch(16, 16, (EncoderLayerArch(20, 2, enc), EncoderLayerArch(20, 2, "softmax")),
                           (DecoderLayerArch(24, 2, dec_self, 2, cross, 1), DecoderLayerArch(24, 2, "softmax", 2, cross, 2)),
                           qkv_dim=16)
    return Transformer(arch, TransformerConfig(V, V, dropout=0.0, attention_options=LENGTH)).eval()


TRANSLATION = {"softmax": ("softmax", "softmax", "softmax"), "cosformer": ("cosformer", "cosformer", "cosformer"),
               "mixed": ("cosformer", "linear", "softmax")}


class Recording:
    """An InferenceSession whose run calls are kept: (feeds, outputs) per call."""

    def __init__(self, session):
        self.session, self.calls = session, []

    def run(self, names, feeds):
        outputs = self.session.run(names, feeds)
        self.calls.append((dict(feeds), outputs))
        return outputs

    def __getattr__(self, name):
        return getattr(self.session, name)


def record_sessions(monkeypatch) -> dict:
    """{part: Recording} of the sessions the next measurement opens (filled when it opens them)."""
    sessions, real = {}, ort_latency.open_sessions

    def recording_sessions(*args, **kwargs):
        sessions.update({part: Recording(s) for part, s in real(*args, **kwargs).items()})
        return sessions

    monkeypatch.setattr(ort_latency, "open_sessions", recording_sessions)
    return sessions


@needs_ort
def test_vit_latency_on_onnxruntime():
    arch, config = VISION["cls-all-kinds"]  # every kind a ViT uses
    result = measure_latency(ViT(arch, config), runtime="onnxruntime", warmup=1, runs=3)
    p = result.protocol
    assert result.ms > 0 and len(result.runs) == 3 and all(t > 0 for t in result.runs)
    assert (p["runtime"], p["threads"], p["device"], p["task"], p["batch"]) == ("onnxruntime", 1, "cpu",
                                                                               "classification", 1)
    import onnxruntime
    assert p["onnxruntime"] == onnxruntime.__version__
    assert describe_protocol(p).endswith(f"1 thread on cpu, batch 1, runtime onnxruntime {onnxruntime.__version__}")


@needs_ort
@pytest.mark.parametrize("name", list(TRANSLATION))
def test_translation_latency_on_onnxruntime_runs_the_same_decoder_steps(name, monkeypatch):
    """One timed run, no warm-up: the encoder runs once and the decoder step STEPS times, on BEAM rows,
    and every step's logits equal those of PyTorch's workload on the same source (seed 0)."""
    model = tiny_translation(TRANSLATION[name])
    sessions = record_sessions(monkeypatch)
    result = measure_latency(model, runtime="onnxruntime", warmup=0, runs=1, src_len=SRC, tgt_len=STEPS, beam=BEAM)
    assert result.ms > 0 and result.protocol["runtime"] == "onnxruntime"
    assert (result.protocol["decoder_steps"], result.protocol["beam"]) == (STEPS, BEAM)
    assert len(sessions["encoder"].calls) == 1 and len(sessions["decoder_step"].calls) == STEPS
    steps = sessions["decoder_step"].calls
    assert [int(feeds["position"]) for feeds, _ in steps] == list(range(STEPS))
    assert all(feeds["tokens"].shape == (BEAM, 1) and outputs[0].shape == (BEAM, V) for feeds, outputs in steps)
    if "m" in dict(steps[0][0]):
        assert steps[0][0]["m"].ndim == 0  # cosFormer's M, not tiled

    reference = []
    decode = model.decode

    def recording_decode(tokens, enc, **kwargs):
        logits, states = decode(tokens, enc, **kwargs)
        reference.append((tokens.clone(), logits[:, -1].clone()))
        return logits, states

    monkeypatch.setattr(model, "decode", recording_decode)
    measure_latency(model, warmup=0, runs=1, src_len=SRC, tgt_len=STEPS, beam=BEAM)
    assert len(reference) == STEPS
    for (feeds, outputs), (tokens, logits) in zip(steps, reference):
        assert torch.equal(torch.from_numpy(feeds["tokens"]), tokens)
        torch.testing.assert_close(torch.from_numpy(outputs[0]), logits, atol=1e-4, rtol=1e-4)


@needs_ort
@pytest.mark.parametrize("kinds", [("softmax", "softmax"), ("linear", "softmax"), ("cosformer", "linear")])
def test_lm_latency_on_onnxruntime_runs_the_same_decoding_step(kinds, monkeypatch):
    """One decode_step call per run, at position seq_len - 1 from the states of the seq_len - 1
    tokens before it, whose logits equal PyTorch's workload's step (the same tokens, seed 0)."""
    torch.manual_seed(0)
    arch = LMArch(embed_dim=16, layers=tuple(LMLayerArch(ffn_dim=20, heads=2, attention=k) for k in kinds), head_dim=8)
    model = LM(arch, LMConfig(vocab="abcdef", context=8)).eval()
    sessions = record_sessions(monkeypatch)
    result = measure_latency(model, runtime="onnxruntime", warmup=1, runs=2, seq_len=6)
    assert result.ms > 0 and result.protocol["runtime"] == "onnxruntime" and result.protocol["decode_position"] == 5
    calls = sessions["decode_step"].calls
    assert len(calls) == 3 and not sessions["forward"].calls
    feeds, outputs = calls[0]
    assert int(feeds["position"]) == 5 and feeds["tokens"].shape == (1, 1)
    if kinds[0] == "softmax":
        assert feeds["past_key_0"].shape == (1, 2, 5, 8)  # the 5 tokens before

    reference = []
    step = model.step
    monkeypatch.setattr(model, "step", lambda *a: reference.append(step(*a)) or reference[-1])
    measure_latency(model, warmup=0, runs=1, seq_len=6)
    logits = reference[-1][0]  # the timed step (the first call built its states)
    torch.testing.assert_close(torch.from_numpy(outputs[0]), logits[:, -1], atol=1e-4, rtol=1e-4)


def test_a_family_without_an_onnxruntime_workload_is_refused_before_any_export(monkeypatch):
    from mixnas.families.lm.family import LMFamily
    monkeypatch.setattr(LMFamily, "onnxruntime_unsupported", "no workload written")
    monkeypatch.setattr(ort_latency, "open_sessions", lambda *a, **k: pytest.fail("exported"))
    arch = LMArch(embed_dim=16, layers=(LMLayerArch(ffn_dim=20, heads=2, attention="softmax"),), head_dim=8)
    with pytest.raises(ValueError, match=r"^lm latency on onnxruntime is not supported yet: no workload written$"):
        measure_latency(LM(arch, LMConfig(vocab="abcdef", context=8)), runtime="onnxruntime", runs=1, seq_len=4)
    with pytest.raises(ConfigError, match=r"^collect.latency_runtime: onnxruntime: lm latency on onnxruntime is not "
                                          r"supported yet"):
        from_dict(PipelineConfig, {"task": "language-modeling", "collect": {"latency_runtime": "onnxruntime"}})


def test_onnxruntime_errors_are_one_line(monkeypatch):
    arch, config = VISION["mean-pool"]
    with pytest.raises(ValueError, match="^runtime must be one of pytorch, onnxruntime; got 'tensorrt'$"):
        measure_latency(ViT(arch, config), runtime="tensorrt", runs=1)
    with pytest.raises(ValueError, match=r"^runtime 'onnxruntime' is measured on the CPU \(CPUExecutionProvider\); "
                                         r"got device 'cuda', use device='cpu'$"):
        measure_latency(ViT(arch, config), runtime="onnxruntime", device="cuda", clock="wall", runs=1)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(ValueError, match=r"^latency on onnxruntime needs the package\(s\) onnxscript: "
                                         r"pip install onnx onnxscript onnxruntime$"):
        measure_latency(ViT(arch, config), runtime="onnxruntime", runs=1)


def test_protocol_differences_flag_a_runtime_change():
    recorded = {"runtime": "onnxruntime", "device": "cpu", "threads": 1, "clock": "oncpu", "stat": "min",
                "warmup": 3, "runs": 10}
    assert protocol_differences(recorded, **recorded) == []
    assert protocol_differences(recorded, **{**recorded, "runtime": "pytorch"}) == ["runtime: onnxruntime -> pytorch"]
    old = {k: v for k, v in recorded.items() if k != "runtime"}  # recorded before the runtime was: PyTorch
    assert protocol_differences(old, **{**old, "runtime": "pytorch"}) == []
    assert protocol_differences(old, **{**old, "runtime": "onnxruntime"}) == ["runtime: pytorch -> onnxruntime"]
    assert describe_protocol(old).endswith("runtime pytorch")


@needs_ort
def test_cost_command_measures_on_onnxruntime(tmp_path, capsys):
    arch, config = VISION["mean-pool"]
    save_model(build_model(arch, config), tmp_path / "model")
    out = tmp_path / "report.json"
    assert cost_main([str(tmp_path / "model"), "--latency", "--runtime", "onnxruntime", "--runs", "2",
                      "--warmup", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["latency_ms"] > 0 and report["latency_protocol"]["runtime"] == "onnxruntime"
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("latency measured as"))
    assert "runtime onnxruntime" in line
    with pytest.raises(SystemExit):
        cost_main([str(tmp_path / "model"), "--latency", "--runtime", "tvm"])


def test_collect_latency_runtime_config():
    assert from_dict(CollectSection, {}).latency_options()["runtime"] == "pytorch"
    c = from_dict(CollectSection, {"latency_runtime": "onnxruntime"})
    assert c.latency_options()["runtime"] == "onnxruntime"
    with pytest.raises(ConfigError, match=r"^collect.latency_runtime: onnxruntime runs on the CPU \(CPUExecutionProvider"
                                          r"\), not on latency_device: cuda; set collect.latency_device: cpu"):
        from_dict(CollectSection, {"latency_runtime": "onnxruntime", "latency_device": "cuda", "latency_clock": "wall"})
    with pytest.raises(ConfigError, match="latency_runtime"):
        from_dict(CollectSection, {"latency_runtime": "tensorrt"})
    from_dict(CollectSection, {"latency": False, "latency_runtime": "onnxruntime", "latency_device": "cuda"})
    from_dict(PipelineConfig, {"task": "language-modeling", "collect": {"latency_runtime": "onnxruntime"}})


def test_collect_does_not_continue_latencies_of_another_runtime(tmp_path):
    out = tmp_path / "collect.csv"
    old = {"device": "cpu", "threads": 1, "clock": "oncpu", "stat": "min", "warmup": 0, "runs": 2}  # no runtime
    write_json(latency_protocol_path(out), old)
    rows = [{"latency_ms": "0.5"}]
    settings = [f"run_dir={tmp_path}", "collect.latency=true", "collect.latency_runs=2", "collect.latency_warmup=0"]
    check_latency_protocol(out, rows, load_pipeline_config("micro", settings))  # PyTorch, as recorded
    with pytest.raises(ValueError, match=r"another protocol than collect.latency_\* \(runtime: pytorch -> onnxruntime, "):
        check_latency_protocol(out, rows, load_pipeline_config("micro", [*settings, "collect.latency_runtime=onnxruntime"]))
