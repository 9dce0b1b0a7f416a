"""Smoke test of benchmarks/train_step.py: the arch rewrite it relies on, and a tiny run of the
LM case (context 16, one timed step per path) that writes its JSON."""
import json

import pytest
import torch
from benchmark_scripts import load_script

from mixnas.attention.fused import load_extension
from mixnas.experiment import resolve_arch
from mixnas.space.search_space import SearchSpace


@pytest.fixture
def module():
    threads = torch.get_num_threads()
    yield load_script("train_step")
    torch.set_num_threads(threads)


def attention_fields(obj) -> list[str]:
    text = json.dumps(obj.to_dict())
    return [part.split('"')[0] for part in text.split('attention": "')[1:]]


def test_all_kind_rewrites_every_attention_field(module):
    arch = module.all_kind(SearchSpace.load("multi30k_small").largest(), "cosformer")
    kinds = attention_fields(arch)
    assert len(kinds) >= 3 and set(kinds) == {"cosformer"}  # encoder self, decoder self and cross
    lm = module.all_kind(resolve_arch("gpt_shakespeare_softmax"), "linear")
    assert set(attention_fields(lm)) == {"linear"} and len(lm.layers) == 4


def test_lm_case_runs_and_writes_json(module, tmp_path, capsys):
    if load_extension() is not None:
        pytest.skip(f"fused extension unavailable: {load_extension()}")
    out = tmp_path / "steps.json"
    assert module.main(["--cases", "lm_long", "--context", "16", "--repeats", "1", "--json", str(out)]) == 0
    assert "speedup" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [r["model"] for r in rows] == ["lm context 16 cosformer", "lm context 16 linear"]
    assert all(r["fused_ms"] > 0 and r["pytorch_ms"] > 0 and r["max_rel_diff"] < 1e-9 for r in rows)
