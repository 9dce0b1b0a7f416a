import json

import pytest

from mixnas.cost import count_flops, count_params
from mixnas.pipeline import load_pipeline_config, load_supernet, score
from mixnas.pipeline.collect import collect, collect_columns, load_collected, read_rows
from mixnas.space import arch_from_dict


def test_columns_and_values_match_independent_computation(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    out = tmp_path / "c.csv"
    assert collect(cfg, supernet_dir, out, num_archs=3) == {"rows": 3, "new_rows": 3, "path": str(out)}
    task, space, supernet = load_supernet(cfg, supernet_dir)
    rows = load_collected(out)
    assert list(rows[0]) == collect_columns(space, "classification")
    model_config = task.model_config(cfg.model.config)
    for i, row in enumerate(rows):
        arch = row["arch"]
        assert row["index"] == i and row["latency_ms"] is None
        # inherited score = the extracted standalone model's score on the same subset
        standalone = score(task, supernet.extract(arch), cfg.collect.score_limit)
        assert row["score"] == pytest.approx(standalone["accuracy"], abs=1e-9)
        assert row["val_loss"] == pytest.approx(standalone["loss"], rel=1e-5)
        assert row["params"] == count_params(arch, model_config) > row["params_no_emb"]
        assert row["flops_no_emb"] == count_flops(arch, model_config, include_embeddings=False)
        features = [row[f"feat:{n}"] for n in space.feature_names()]
        assert features == pytest.approx(list(space.encode(arch)))


def test_reproducible_and_resumes_after_partial_rows(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    collect(cfg, supernet_dir, full, num_archs=5)
    collect(cfg, supernet_dir, part, num_archs=2)
    assert part.read_text().splitlines() == full.read_text().splitlines()[:3]  # header + 2 rows
    assert collect(cfg, supernet_dir, part, num_archs=5)["new_rows"] == 3
    assert part.read_text() == full.read_text()
    # a killed run: the file holds the rows of the last completed chunk
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:4]))
    assert collect(cfg, supernet_dir, part, num_archs=5)["new_rows"] == 2
    assert part.read_text() == full.read_text()


def test_rows_of_another_seed_are_refused(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    out = tmp_path / "c.csv"
    collect(cfg, supernet_dir, out, num_archs=2)
    other = load_pipeline_config("micro", [f"run_dir={cfg.run_dir}", "seed=2"])
    with pytest.raises(ValueError, match="another architecture"):
        collect(other, supernet_dir, out, num_archs=3)
    out.write_text("index,arch\n")
    with pytest.raises(ValueError, match="has columns"):
        read_rows(out, collect_columns(load_supernet(cfg, supernet_dir)[1], "classification"))


def test_latency_is_measured_when_asked(trained_micro, tmp_path):
    cfg, supernet_dir = trained_micro
    cfg = load_pipeline_config("micro", [f"run_dir={cfg.run_dir}", "collect.latency=true",
                                         "collect.latency_runs=2", "collect.latency_warmup=0"])
    collect(cfg, supernet_dir, tmp_path / "c.csv", num_archs=2)
    rows = load_collected(tmp_path / "c.csv")
    assert all(row["latency_ms"] > 0 and row["latency_std_ms"] >= 0 for row in rows)
    assert arch_from_dict(json.loads(read_rows(tmp_path / "c.csv")[0]["arch"])) == rows[0]["arch"]


def test_missing_supernet_is_a_clear_error(tmp_path):
    cfg = load_pipeline_config("micro", [f"run_dir={tmp_path}"])
    with pytest.raises(ValueError, match="run `mixnas train-supernet` first"):
        collect(cfg, tmp_path / "supernet", tmp_path / "c.csv")
