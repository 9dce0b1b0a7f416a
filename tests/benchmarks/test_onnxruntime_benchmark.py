"""Smoke test of benchmarks/onnxruntime_latency.py: --quick (a tiny ViT, a tiny translation
Transformer and a tiny LM, 3 timed runs each in PyTorch and ONNX Runtime; about 20 s, mostly the
ONNX exports)."""
import importlib.util
import json

import pytest
import torch
from benchmark_scripts import load_script

HAS_ORT = all(importlib.util.find_spec(n) is not None for n in ("onnx", "onnxscript", "onnxruntime"))


@pytest.mark.skipif(not HAS_ORT, reason="onnx, onnxscript or onnxruntime is not installed "
                                        "(pip install onnx onnxscript onnxruntime)")
def test_quick_run_measures_both_runtimes_and_writes_json(tmp_path, capsys):
    module = load_script("onnxruntime_latency")
    before = torch.get_num_threads()
    try:
        assert module.main(["--quick", "--json", str(tmp_path / "out.json")]) == 0
    finally:
        torch.set_num_threads(before)
    assert "ratio = ONNX Runtime ms / PyTorch ms" in capsys.readouterr().out
    result = json.loads((tmp_path / "out.json").read_text())
    rows = result["rows"]
    assert [r["model"] for r in rows] == ["quick/vit", "quick/transformer", "quick/lm"]
    assert rows[1]["options"] == {"src_len": 4, "tgt_len": 3, "beam": 2} and rows[0]["options"] == {}
    assert rows[2]["options"] == {"seq_len": 6} and rows[2]["attention"] == "S L"
    for row in rows:
        assert row["pytorch_ms"] > 0 and row["onnxruntime_ms"] > 0 and row["params"] > 0
        assert row["ratio"] == pytest.approx(row["onnxruntime_ms"] / row["pytorch_ms"], rel=1e-3)
        for runtime in ("pytorch", "onnxruntime"):
            measured = row["measurements"][runtime]
            assert measured["protocol"]["runtime"] == runtime and measured["protocol"]["threads"] == 1
            assert len(measured["runs_ms"]) == 3 and min(measured["runs_ms"]) > 0
    assert rows[1]["measurements"]["onnxruntime"]["protocol"]["decoder_steps"] == 3
    assert rows[2]["measurements"]["onnxruntime"]["protocol"]["decode_position"] == 5
    assert result["machine"]["cpu_count"] >= 1 and result["settings"]["runs"] == 3
