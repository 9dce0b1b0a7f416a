import json

import pytest

from mixnas.pipeline import load_supernet, score
from mixnas.pipeline.rank_check import rank_check
from mixnas.space import arch_from_dict


def test_rank_check_rows_and_tau(trained_micro):
    cfg, supernet_dir = trained_micro
    result = rank_check(cfg, supernet_dir, k=3, retrain_updates=4)
    assert len(result["rows"]) == 3 and result["metric"] == "accuracy"
    assert -1.0 <= result["tau_loss"] <= 1.0
    assert result["tau"] is None or -1.0 <= result["tau"] <= 1.0
    task, _, supernet = load_supernet(cfg, supernet_dir)
    row = result["rows"][0]
    supernet.set_arch(arch_from_dict(row["arch"]))
    assert row["inherited"] == score(task, supernet, cfg.collect.score_limit)["score"]
    saved = json.loads((supernet_dir.parent / "rank_check/u4/rank_check.json").read_text())
    assert saved == json.loads(json.dumps(result))
    # a second call reuses the finished retrainings and gives the same answer
    assert rank_check(cfg, supernet_dir, k=3, retrain_updates=4) == result


def test_rank_check_rejects_bad_arguments(trained_micro):
    cfg, supernet_dir = trained_micro
    with pytest.raises(ValueError, match="--k must be >= 2"):
        rank_check(cfg, supernet_dir, k=1, retrain_updates=4)
    with pytest.raises(ValueError, match="--updates must be >= 1"):
        rank_check(cfg, supernet_dir, k=3, retrain_updates=0)
