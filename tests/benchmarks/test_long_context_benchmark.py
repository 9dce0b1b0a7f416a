"""Smoke test of benchmarks/long_context.py: --quick (all-softmax and all-linear, 2 layers of
width 32, lengths 16 and 32, a few timed runs, one peak-memory child per model and length;
about 10-15 s, mostly the children's imports)."""
import json

import pytest
import torch
from benchmark_scripts import load_script

from mixnas.space.arch import save_arch


@pytest.fixture
def module():
    """The script as a module; torch's thread count (main sets 1) restored afterwards."""
    threads = torch.get_num_threads()
    yield load_script("long_context")
    torch.set_num_threads(threads)


def test_patterns_put_softmax_where_documented(module):
    assert module.pattern_kinds("fixed-1in2", 6) == ["linear", "softmax"] * 3
    assert module.pattern_kinds("fixed-1in4", 6) == ["linear"] * 3 + ["softmax"] + ["linear"] * 2
    assert module.pattern_kinds("first-last-softmax", 6) == ["softmax"] + ["linear"] * 4 + ["softmax"]
    assert module.pattern_kinds("all-cosformer", 2) == ["cosformer"] * 2
    assert len(module.VOCAB) == len(set(module.VOCAB)) == 65


def test_quick_run_measures_every_model_and_length_and_writes_json(module, tmp_path, capsys):
    assert module.main(["--quick", "--json", str(tmp_path / "out.json")]) == 0
    out = capsys.readouterr().out
    assert "prefill tokens/s" in out and "ratio to all-softmax at L=32" in out
    result = json.loads((tmp_path / "out.json").read_text())
    assert set(result) == {"machine", "settings", "protocol", "models", "results", "ratios"}
    assert result["settings"]["lengths"] == [16, 32] and result["settings"]["decode_batch"] == 8
    assert result["protocol"]["threads"] == 1 and result["protocol"]["stat"] == "min"
    assert list(result["models"]) == ["all-softmax", "all-linear"]
    results = result["results"]
    for name, per_length in results.items():
        assert list(per_length) == ["16", "32"]
        for length, row in per_length.items():
            assert row["prefill_ms"] > 0 and row["prefill_tokens_per_s"] > 0 and row["state_bytes"] > 0
            assert len(row["prefill_runs_ms"]) == 2
            assert set(row["decode"]) == {"1", "8"}
            for batch, decode in row["decode"].items():
                assert decode["ms"] > 0 and decode["tokens_per_s"] == pytest.approx(
                    int(batch) / decode["ms"] * 1e3, rel=1e-3)
                assert len(decode["runs_ms"]) == 3
            assert row["prefill_peak_mb"] >= 0 and row["prefill_peak"]["rss_before_kib"] > 0
    softmax, linear = results["all-softmax"], results["all-linear"]
    assert softmax["32"]["state_bytes"] == 2 * softmax["16"]["state_bytes"]  # the KV cache grows with L
    assert linear["32"]["state_bytes"] == linear["16"]["state_bytes"]  # the running sums do not
    assert result["ratios"]["reference"] == "all-softmax" and result["ratios"]["values"]["all-softmax"]["state_mb"] == 1


def test_arch_file_adds_a_row(module, tmp_path):
    path = tmp_path / "searched.yaml"
    save_arch(module.pattern_arch("fixed-1in2", module.QUICK_SHAPE), path)
    assert module.main(["--quick", "--models", "all-linear", "--arch", str(path), "--lengths", "8",
                        "--no-memory", "--json", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert list(result["results"]) == ["all-linear", "searched"]
    assert result["models"]["searched"]["attention"] == ["linear", "softmax"]
    assert "prefill_peak_mb" not in result["results"]["searched"]["8"]


def test_models_alone_measures_only_the_arch_files(module, tmp_path, capsys):
    """`--models` with no names: only --arch rows, and the ratios are to the first of them."""
    for name, pattern in (("full", "all-softmax"), ("hybrid", "fixed-1in2")):
        save_arch(module.pattern_arch(pattern, module.QUICK_SHAPE), tmp_path / f"{name}.yaml")
    assert module.main(["--quick", "--models", "--arch", str(tmp_path / "full.yaml"), "--arch",
                        str(tmp_path / "hybrid.yaml"), "--lengths", "8", "--no-memory",
                        "--json", str(tmp_path / "out.json")]) == 0
    result = json.loads((tmp_path / "out.json").read_text())
    assert list(result["results"]) == ["full", "hybrid"] and result["ratios"]["reference"] == "full"
    capsys.readouterr()
    with pytest.raises(SystemExit):
        module.main(["--quick", "--models"])
    assert "no models" in capsys.readouterr().err
