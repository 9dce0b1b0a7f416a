"""`mixnas train --config shakespeare_char`, `mixnas sample` and `mixnas run --preset micro-lm`
end to end on a generated text."""
import json

import pytest
import yaml

from mixnas.cli import main as mixnas_main
from lm_helpers import write_text

TINY_ARCH = {"type": "lm", "embed_dim": 16, "head_dim": 8,
             "layers": [{"ffn_dim": 32, "heads": 2, "attention": "softmax"},
                        {"ffn_dim": 32, "heads": 1, "attention": "cosformer"}]}


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return write_text(tmp_path_factory.mktemp("text"), chars=20_000)


def test_train_then_sample(tmp_path, text_dir, capsys):
    arch = tmp_path / "arch.yaml"
    arch.write_text(yaml.safe_dump(TINY_ARCH))
    run = tmp_path / "run"
    assert mixnas_main(["train", "--config", "shakespeare_char", f"data.dir={text_dir}", "data.context=32",
                        f"model.arch={arch}", "train.max_updates=5", "train.warmup_updates=1",
                        f"train.save_dir={run}", "train.progress=false", "train.tensorboard=false",
                        "train.validate_every=0", "train.checkpoint_every=0"]) == 0
    results = json.loads((run / "results.json").read_text())
    assert results["eval"]["split"] == "val" and results["eval"]["loss"] > 0
    assert results["eval"]["bpc"] == pytest.approx(results["eval"]["loss"] / 0.6931471805599453)
    capsys.readouterr()
    assert mixnas_main(["sample", "--model", str(run / "model"), "--prompt", "ROMEO:", "--tokens", "20",
                        "--top-k", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= 6 + 20 - 2  # newlines may end the text
    assert mixnas_main(["sample", "--model", str(run), "--prompt", "é", "--tokens", "3"]) == 2
    assert "not in the model" in capsys.readouterr().err
    assert mixnas_main(["cost", str(run / "model")]) == 0
    assert "decode_flops" in capsys.readouterr().out


def test_micro_lm_pipeline_end_to_end(tmp_path, text_dir):
    run_dir = tmp_path / "micro-lm"
    assert mixnas_main(["run", "--preset", "micro-lm", f"run_dir={run_dir}", f"data.dir={text_dir}",
                        "collect.latency=true"]) == 0
    assert (run_dir / "report.md").stat().st_size > 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_metric"] == "loss" and results["test_higher_is_better"] is False
    names = [row["name"] for row in results["rows"]]
    assert "baseline-gpt_shakespeare_softmax" in names and any(n.startswith("searched-") for n in names)
    for row in results["rows"]:
        assert row["test_loss"] > 0 and len(row["test_scores"]) == 2 and row["latency_ms"] > 0


def test_micro_lm_pipeline_stated_at_a_length(tmp_path, text_dir):
    """Costs and constraints at cost.seq_len; every row's latency and memory at retrain.lengths."""
    from mixnas.cost import count_flops
    from mixnas.families import family_named
    from mixnas.pipeline import load_pipeline_config
    from mixnas.pipeline.collect import load_collected
    from mixnas.pipeline.scoring import build_task
    from mixnas.space import arch_from_dict

    run_dir = tmp_path / "long"
    overrides = [f"run_dir={run_dir}", f"data.dir={text_dir}", "collect.latency=true", "cost.seq_len=32",
                 "retrain.lengths=[8,32,64]", "search.constraints.decode_state_bytes=1500", "rank_check.enabled=false"]
    assert mixnas_main(["run", "--preset", "micro-lm", *overrides]) == 0
    cfg = load_pipeline_config("micro-lm", overrides)
    model_config = build_task(cfg).model_config(cfg.model.config)
    lm = family_named("lm")
    # The collected FLOPs are those at seq_len 32, not at the family's default 64.
    row = load_collected(run_dir / "collect.csv")[0]
    assert row["flops"] == count_flops(row["arch"], model_config, seq_len=32) != count_flops(row["arch"], model_config)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["cost_options"] == {"seq_len": 32}
    rows = {r["name"]: r for r in results["rows"]}
    for r in rows.values():
        assert list(r["latency_by_length"]) == ["8", "32", "64"] and all(v > 0 for v in r["latency_by_length"].values())
        a = arch_from_dict(r["arch"])
        assert r["memory_by_length"] == {str(n): 4 * sum(lm.decode_state_breakdown(a, model_config, seq_len=n).values())
                                         for n in (8, 32, 64)}
        assert r["decode_state_bytes"] == r["memory_by_length"]["32"]
        if r["kind"] == "searched":
            assert r["decode_state_bytes"] <= 1500  # the constraint at seq_len 32 (the space spans 288 .. 6,144)
    soft, cos = rows["baseline-gpt_shakespeare_softmax"], rows["baseline-gpt_shakespeare_cosformer"]
    assert soft["memory_by_length"]["64"] == 8 * soft["memory_by_length"]["8"]  # a KV cache grows with the context
    assert len(set(cos["memory_by_length"].values())) == 1                       # linear sums do not
    assert "Latency and decoding memory by length" in (run_dir / "report.md").read_text()
    assert (run_dir / "by_length.png").stat().st_size > 0
