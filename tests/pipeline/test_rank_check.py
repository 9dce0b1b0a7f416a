import copy
import json

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from mixnas import cli
from mixnas.dataconf import ConfigError
from mixnas.pipeline import load_pipeline_config, load_supernet, score
from mixnas.pipeline import rank_check as rc
from mixnas.pipeline.rank_check import draw_pool, rank_check, rank_statistics, run_rank_check, stratified_archs
from mixnas.pipeline.scoring import build_task, load_space
from mixnas.space import arch_from_dict


def space_and_config(name="digits"):
    cfg = load_pipeline_config(name)
    task = build_task(cfg)
    return cfg, load_space(cfg), task.model_config(cfg.model.config)


# ---------------------------------------------------------------- stratified sampling
@pytest.mark.parametrize("preset, k", [("digits", 8), ("micro", 4)])
def test_stratified_sample_spans_flops_and_every_attention_kind(preset, k):
    cfg, space, model_config = space_and_config(preset)
    limits = {"flops": cfg.search.constraints.flops}
    archs, profiles, pool = stratified_archs(space, model_config, cfg.seed, k, limits)
    assert len(set(archs)) == k and pool["size"] == 50 * k
    _, pool_profiles, _ = draw_pool(space, model_config, cfg.seed, 50 * k, limits)
    pool_flops = np.array([p["flops"] for p in pool_profiles])
    flops = [p["flops"] for p in profiles]
    assert flops == sorted(flops) and max(pool_flops) <= limits["flops"]
    assert min(flops) <= np.quantile(pool_flops, 0.1) and max(flops) >= np.quantile(pool_flops, 0.9)
    for kind in space.attention_kinds:  # an architecture made mostly of each kind
        assert any(p["fractions"][kind] > 0.5 for p in profiles), kind
    # Random draws of the same size would usually miss that: check the claim is not vacuous.
    misses = 0
    for seed in range(20):
        _, random_profiles, _ = draw_pool(space, model_config, 100 + seed, k, limits)
        random_flops = [p["flops"] for p in random_profiles]
        covered = (min(random_flops) <= np.quantile(pool_flops, 0.1)
                   and max(random_flops) >= np.quantile(pool_flops, 0.9)
                   and all(any(p["fractions"][kind] > 0.5 for p in random_profiles) for kind in space.attention_kinds))
        misses += not covered
    assert misses >= 10


def test_stratified_sample_is_deterministic_and_seeded():
    cfg, space, model_config = space_and_config()
    first = stratified_archs(space, model_config, 1, 8)
    assert stratified_archs(space, model_config, 1, 8) == first
    assert stratified_archs(space, model_config, 2, 8)[0] != first[0]


def test_too_small_a_pool_is_one_line():
    cfg, space, model_config = space_and_config()
    with pytest.raises(ValueError, match="lower rank_check.k") as error:
        stratified_archs(space, model_config, 1, 8, {"flops": 430_000}, pool_size=8)
    assert "\n" not in str(error.value)


# ---------------------------------------------------------------- statistics
def test_statistics_equal_scipy_including_ties_and_resampled_duplicates():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 5, 12).astype(float)  # many ties
    b = a + rng.integers(0, 3, 12)
    stats = rank_statistics(a, b, seed=0, resamples=50)
    assert stats["tau"] == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert stats["spearman"] == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    rows = rng.integers(0, 12, size=(30, 12))
    taus, rhos = rc._tau_b_rows(a[rows], b[rows]), rc._spearman_rows(a[rows], b[rows])
    for row, tau, rho in zip(rows, taus, rhos):
        assert np.isclose(tau, kendalltau(a[row], b[row]).statistic, equal_nan=True)
        assert np.isclose(rho, spearmanr(a[row], b[row]).statistic, equal_nan=True)


def test_bootstrap_interval_contains_estimate_and_narrows_with_more_archs():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=40)
        y = x + rng.normal(size=40)
        many, few = rank_statistics(x, y, seed=seed), rank_statistics(x[:8], y[:8], seed=seed)
        for stats in (many, few):
            for name in ("tau", "spearman"):
                lo, hi = stats[f"{name}_ci95"]
                assert lo <= stats[name] <= hi
        width = lambda stats, name: stats[f"{name}_ci95"][1] - stats[f"{name}_ci95"][0]  # noqa: E731
        assert width(few, "tau") > width(many, "tau") and width(few, "spearman") > width(many, "spearman")


def test_degenerate_scores_give_none_not_nan():
    stats = rank_statistics([0.5, 0.5, 0.5, 0.5], [0.1, 0.2, 0.3, 0.4], seed=0)
    assert stats == {"tau": None, "spearman": None, "tau_ci95": None, "spearman_ci95": None}
    stats = rank_statistics([1.0, 2.0], [3.0, 4.0], seed=0)  # half the resamples are one arch twice
    assert stats["tau"] == 1.0 and stats["tau_ci95"] == [1.0, 1.0]


# ---------------------------------------------------------------- the check
def test_rank_check_rows_statistics_and_reuse(trained_micro, monkeypatch):
    base, supernet_dir = trained_micro
    cfg = copy.deepcopy(base)
    assert cfg.rank_check.enabled and cfg.rank_check.k >= 4  # the micro preset runs it
    result = run_rank_check(cfg)
    k = cfg.rank_check.k
    assert result["n"] == k == len(result["rows"]) and result["retrain_updates"] == cfg.rank_check.updates
    assert result["metric"] == "accuracy" and result["higher_is_better"] is True
    rows = result["rows"]
    assert [r["index"] for r in rows] == list(range(k)) and [r["flops"] for r in rows] == sorted(r["flops"] for r in rows)
    inherited_loss, retrained_loss = [r["inherited_loss"] for r in rows], [r["retrained_loss"] for r in rows]
    assert result["tau_loss"] == pytest.approx(kendalltau(inherited_loss, retrained_loss).statistic)
    assert result["spearman_loss"] == pytest.approx(spearmanr(inherited_loss, retrained_loss).statistic)
    rho = spearmanr([r["inherited"] for r in rows], [r["retrained"] for r in rows]).statistic
    assert (result["spearman"] is None and rho != rho) or result["spearman"] == pytest.approx(rho)
    if result["tau"] is not None:
        lo, hi = result["ci95"]
        assert lo <= result["tau"] <= hi and set(result) >= {"spearman_ci95", "tau_loss_ci95"}
    task, _, supernet = load_supernet(cfg, supernet_dir)
    supernet.set_arch(arch_from_dict(rows[0]["arch"]))
    assert rows[0]["inherited"] == score(task, supernet, cfg.collect.score_limit)["score"]
    saved_path = supernet_dir.parent / f"rank_check/u{cfg.rank_check.updates}/rank_check.json"
    assert json.loads(saved_path.read_text()) == result

    # A finished result is returned as it is: no retraining, no write.
    mtime = saved_path.stat().st_mtime_ns
    monkeypatch.setattr(rc, "Trainer", lambda *a, **kw: pytest.fail("retrained a finished rank check"))
    assert run_rank_check(cfg) == result and saved_path.stat().st_mtime_ns == mtime
    monkeypatch.undo()
    # Without the result file, the finished per-arch trainings are reused: the same answer.
    saved_path.unlink()
    assert rank_check(cfg, supernet_dir, k, cfg.rank_check.updates) == result
    # Another K replaces the result.
    smaller = rank_check(cfg, supernet_dir, 2, cfg.rank_check.updates)
    assert smaller["n"] == 2 and saved_path.stat().st_mtime_ns != mtime


def test_rank_check_rejects_bad_arguments(trained_micro):
    cfg, supernet_dir = trained_micro
    with pytest.raises(ValueError, match="--k must be >= 2"):
        rank_check(cfg, supernet_dir, k=1, retrain_updates=4)
    with pytest.raises(ValueError, match="--updates must be >= 1"):
        rank_check(cfg, supernet_dir, k=3, retrain_updates=0)


@pytest.mark.parametrize("overrides, message", [
    (["rank_check.enabled=true", "rank_check.k=1"], "rank_check.k must be >= 2"),
    (["rank_check.updates=0"], "rank_check.updates must be >= 1"),
    (["supernet.distill=true"], "supernet.distill needs supernet.sandwich: true"),
])
def test_config_errors_are_one_line(overrides, message, capsys):
    with pytest.raises(ConfigError, match=message) as error:
        load_pipeline_config("micro", overrides)
    assert "\n" not in str(error.value)
    assert cli.main(["rank-check", "--config", "micro", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_presets_enable_the_check():
    digits = load_pipeline_config("digits")
    assert digits.rank_check.enabled and digits.rank_check.k >= 8
    assert load_pipeline_config("micro", ["rank_check.enabled=false", "rank_check.k=1"]).rank_check.k == 1


def test_trainings_in_worker_processes_equal_in_process(trained_micro, tmp_path, capfd):
    import shutil

    _, supernet_dir = trained_micro
    results = []
    for workers in (1, 2):
        run_dir = tmp_path / f"w{workers}"
        shutil.copytree(supernet_dir, run_dir / "supernet")
        cfg = load_pipeline_config("micro", [f"run_dir={run_dir}", "supernet.train.max_updates=12",
                                             f"retrain.workers={workers}"])
        results.append(rank_check(cfg, run_dir / "supernet", 3, 6))
        # Each training writes labelled progress lines (to a log, not a terminal), from workers too.
        err = capfd.readouterr().err
        assert all(f"rank check {i}/3: update 6/6 (100%)" in err for i in (1, 2, 3)), err[-2000:]
    strip = lambda result: [{k: v for k, v in r.items() if k != "dir"} for r in result["rows"]]  # noqa: E731
    assert strip(results[1]) == strip(results[0])
