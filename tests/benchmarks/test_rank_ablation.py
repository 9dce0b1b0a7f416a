"""Smoke test of benchmarks/rank_ablation.py: micro preset, 3 archs, 4 updates, one variant + the ceiling (seconds)."""
import json

import torch
from benchmark_scripts import load_script


def test_rank_ablation_runs_caches_and_writes_json(tmp_path, capsys):
    module = load_script("rank_ablation")
    before = torch.get_num_threads()
    argv = ["--preset", "micro", "--k", "3", "--updates", "4", "--variants", "base", "--workdir", str(tmp_path),
            "--json", str(tmp_path / "out.json"), "supernet.train.max_updates=4"]
    try:
        assert module.main(argv) == 0
        first = json.loads((tmp_path / "out.json").read_text())
        assert "reference 3/3" in capsys.readouterr().out
        assert module.main(argv) == 0  # rerun: reference and supernet come from the cache
        assert "reference 1/3" not in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)
    second = json.loads((tmp_path / "out.json").read_text())
    variant, ceiling, proxy = second["variants"]  # the variant, a second from-scratch training, FLOPs
    (run,) = variant["runs"]
    assert ceiling["runs"][0]["seed"] == 2 and len(second["references"]) == 2
    assert proxy["runs"][0]["inherited"][0]["score"] == second["archs"][0]["flops"]
    assert run["updates"] == 4 and len(run["inherited"]) == 3 and set(run["stats"]) == {
        "score_val", "loss_val", "score_test", "loss_test"}
    assert second["references"] == first["references"] and second["variants"][0]["runs"][0]["stats"] == run["stats"]
    assert second["machine"]["cpu_count"] >= 1 and second["machine"]["matmul_gflops_1_thread"] > 0
    assert second["code"]  # fingerprints of the mixnas sources used
