"""`mixnas run --preset micro-mqar`: the whole pipeline on a task variant (MQAR on the LM
family's models), with a hybrid softmax/linear space, costs stated at the context length and
latency / memory reported by length."""
import json

from mixnas.cli import main as mixnas_main


def test_micro_mqar_pipeline_end_to_end(tmp_path):
    run_dir = tmp_path / "micro-mqar"
    assert mixnas_main(["run", "--preset", "micro-mqar", f"run_dir={run_dir}",
                        "retrain.fixed_patterns=[first-last,all-linear]"]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "mqar" and results["test_metric"] == "accuracy" and results["test_higher_is_better"]
    rows = {r["name"]: r for r in results["rows"]}
    # The single-kind searches of this space are softmax and linear (no cosFormer in it).
    assert {"searched-mixed", "searched-all-softmax", "searched-all-linear", "searched-random",
            "baseline-mqar_softmax_2l", "baseline-mqar_linear_2l"} <= set(rows)
    for r in rows.values():
        assert 0.0 <= r["test_accuracy"] <= 1.0 and len(r["test_scores"]) == 2
        assert list(r["latency_by_length"]) == ["4", "8", "16"] and list(r["memory_by_length"]) == ["4", "8", "16"]
        if r["kind"] == "searched":
            assert r["decode_state_bytes"] <= 1500
    # Fixed patterns: searched-mixed's widths, softmax placed by the rule.
    mixed, first_last, all_linear = rows["searched-mixed"], rows["fixed-first-last"], rows["fixed-all-linear"]
    assert first_last["kind"] == all_linear["kind"] == "fixed"
    assert set(all_linear["attention"].split()) == {"L"} and first_last["attention"].split()[0] == "S"
    assert first_last["params"] == all_linear["params"] == mixed["params"]
    linear = rows["baseline-mqar_linear_2l"]["memory_by_length"]
    softmax = rows["baseline-mqar_softmax_2l"]["memory_by_length"]
    assert len(set(linear.values())) == 1 and softmax["16"] == 4 * softmax["4"]
    collected = (run_dir / "collect.csv").read_text().splitlines()[0].split(",")
    assert "val_accuracy" in collected and "val_bpc" not in collected  # the variant's metrics, not the LM's
    assert results["rank_check"]["n"] == 3


def test_latency_predictor_takes_the_length_and_is_checked_on_held_out_lengths(tmp_path):
    import numpy as np

    from mixnas.pipeline import load_pipeline_config
    from mixnas.pipeline.collect import load_collected
    from mixnas.pipeline.search_step import Searcher

    run_dir = tmp_path / "by-length"
    overrides = [f"run_dir={run_dir}", "collect.latency_lengths=[4,8,16]", "cost.seq_len=12",
                 "search.constraints.latency_ms=1000", "rank_check.enabled=false", "retrain.lengths=[]"]
    assert mixnas_main(["run", "--preset", "micro-mqar", *overrides]) == 0
    rows = load_collected(run_dir / "collect.csv")
    assert all(r[f"latency_ms@{n}"] > 0 for r in rows for n in (4, 8, 16))
    metrics = json.loads((run_dir / "predictors" / "latency" / "metrics.json").read_text())
    assert metrics["lengths"] == [4, 8, 16] and metrics["held_out"]["n"] == 3 * metrics["n_test"]
    assert set(metrics["by_length"]) == set(metrics["held_out_length"]) == {"4", "8", "16"}
    assert all(m["n"] == metrics["n_test"] and m["mape"] is not None for m in metrics["held_out_length"].values())
    # The search predicts the latency at the cost length, 12 (not collected): log2(12) is the feature.
    cfg = load_pipeline_config("micro-mqar", overrides)
    searcher = Searcher(cfg)
    arch = rows[0]["arch"]
    features = np.append(np.asarray(searcher.space.encode(arch), dtype=np.float64), np.log2(12))[None]
    assert searcher.predicted_latency()([arch])[0] == searcher.latency_predictor.predict(features)[0]
    assert "also held-out length" in (run_dir / "report.md").read_text()
