"""`mixnas run` end to end on the micro preset, step reuse, fit-predictor and search commands."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixnas.cli import main as mixnas_main
from mixnas.cost import count_flops
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.scoring import build_task, load_space
from mixnas.predictors import featurize, load_predictor
from mixnas.space import arch_from_dict

SEARCHES = ("mixed", "all-softmax", "all-cosformer", "random")  # random: the control, on the mixed space
BASELINES = ("baseline-vit_digits_softmax", "baseline-vit_digits_cosformer")
WITH_LATENCY = "collect.latency=true"  # the micro preset skips latency measurement; the run test fits its predictor


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("micro_run")
    start = time.perf_counter()
    assert mixnas_main(["run", "--preset", "micro", f"run_dir={run_dir}", WITH_LATENCY]) == 0
    return run_dir, time.perf_counter() - start


def test_micro_run_writes_report_with_searched_and_baseline_rows(micro_run):
    run_dir, _ = micro_run
    for name in ("report.md", "pareto.png", "results.json"):
        assert (run_dir / name).stat().st_size > 0
    assert (run_dir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (run_dir / "report.md").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    names = [row["name"] for row in results["rows"]]
    assert names == [f"searched-{s}" for s in SEARCHES] + list(BASELINES)
    for name in names:
        assert f"| {name} |" in report
    for row in results["rows"]:
        per_seed = [json.loads((run_dir / "retrain" / row["name"] / f"seed-{seed}" / "results.json").read_text())
                     for seed in row["seeds"]]
        assert row["test_scores"] == [r["eval"]["accuracy"] for r in per_seed] and len(per_seed) == 2
        assert row["test_accuracy"] == pytest.approx(sum(row["test_scores"]) / 2)
        assert all(r["eval"]["split"] == "test" for r in per_seed)
        assert row["latency_ms"] > 0
    assert set(results["rows"][1]["attention"].split()) == {"S"}
    assert set(results["rows"][2]["attention"].split()) == {"C"}
    assert "Kendall tau" in report and "RMSE" in report and "MAPE" in report
    # The report opens with a verdict: the recommended model (the best feasible mean) and trust.
    verdict = report.split("## Verdict", 1)[1].split("## Rows", 1)[0]
    limit = results["constraints"]["flops"]
    feasible = [r for r in results["rows"] if r["flops"] <= limit]
    best = max(feasible, key=lambda r: r["test_accuracy"])
    assert f"**Use `{best['name']}`**" in verdict
    assert "Supernet:" in verdict and "Rank check:" in verdict
    # Every timing is recorded with the machine it was taken on.
    (machine,) = results["machines"]
    assert machine["steps"][:2] == ["train-supernet", "collect"] and machine["matmul_gflops_1_thread"] > 0
    assert f"{machine['cpu_count']} cores" in report


def test_every_searched_arch_satisfies_the_constraints_and_scores_are_the_predictors(micro_run):
    run_dir, _ = micro_run
    cfg = load_pipeline_config("micro", [f"run_dir={run_dir}", WITH_LATENCY])
    limit = cfg.search.constraints.flops
    config = build_task(cfg).model_config(cfg.model.config)
    space = load_space(cfg, cfg.supernet_dir)
    predictor = load_predictor(run_dir / "predictors" / "score")
    result = json.loads((run_dir / "search" / "result.json").read_text())
    entries = [e for s in SEARCHES for e in result["searches"][s]["top"]] + result["nsga2"]
    assert len(entries) >= 4
    for entry in entries:
        arch = arch_from_dict(entry["arch"])
        assert count_flops(arch, config, include_embeddings=False) <= limit
        expected = float(predictor.predict(featurize(space, [arch]))[0])
        assert entry["predicted_score"] == pytest.approx(expected, abs=1e-12)
    for kind in ("softmax", "cosformer"):
        arch = arch_from_dict(result["searches"][f"all-{kind}"]["top"][0]["arch"])
        assert {layer.attention for layer in arch.layers} == {kind}


def test_random_control_evaluates_as_many_archs_as_the_mixed_search(micro_run):
    run_dir, _ = micro_run
    result = json.loads((run_dir / "search" / "result.json").read_text())
    mixed, rand = result["searches"]["mixed"], result["searches"]["random"]
    assert rand["evaluated"] == mixed["evaluated"] > 0 and rand["space"] == mixed["space"]
    state = json.loads((run_dir / "search" / "random.state.json").read_text())
    assert len(state["evaluated"]) == len(set(state["evaluated"])) == mixed["evaluated"]
    assert rand["history"][-1]["evaluated"] == mixed["evaluated"]
    for name in SEARCHES:  # every search's count, also in one place
        assert result["evaluated"][name] == result["searches"][name]["evaluated"] > 0
    assert result["evaluated"]["nsga2"] > 0
    assert rand["objective_value"] == rand["top"][0]["predicted_score"]  # the micro search maximises the prediction
    control = result["random_control"]
    assert control == {"mixed_objective": mixed["objective_value"], "random_objective": rand["objective_value"],
                       "evolution_beats_random": mixed["objective_value"] > rand["objective_value"]}


def test_rerun_reuses_every_step(micro_run, capsys):
    run_dir, first_seconds = micro_run
    artifacts = [run_dir / "supernet" / "supernet.pt", run_dir / "collect.csv",
                 run_dir / "predictors" / "score" / "metrics.json", run_dir / "search" / "result.json",
                 *(run_dir / "retrain" / name / "seed-1" / "model" / "model.pt" for name in BASELINES)]
    before = [p.stat().st_mtime_ns for p in artifacts]
    everything = _snapshot(run_dir)
    capsys.readouterr()
    start = time.perf_counter()
    assert mixnas_main(["run", "--preset", "micro", f"run_dir={run_dir}", WITH_LATENCY]) == 0
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in artifacts] == before
    assert _snapshot(run_dir) == everything  # not one file rewritten: report, plot, configs included
    for step in ("train-supernet", "collect", "fit-predictor", "search", "retrain"):
        assert f"[{step}] reused" in out
    assert "from scratch" not in out
    assert seconds < first_seconds


def test_fit_predictor_command_prints_and_saves_held_out_metrics(micro_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(micro_run[0] / "supernet", run_dir / "supernet")
    shutil.copy(micro_run[0] / "collect.csv", run_dir / "collect.csv")
    assert mixnas_main(["fit-predictor", "--config", "micro", f"run_dir={run_dir}", WITH_LATENCY]) == 0
    out = capsys.readouterr().out
    for kind in ("score", "latency"):
        metrics = json.loads((run_dir / "predictors" / kind / "metrics.json").read_text())
        assert metrics["n_train"] + metrics["n_test"] == 30
        assert set(metrics["held_out"]) >= {"kendall_tau", "rmse", "mape"}
        assert f"{kind} predictor" in out
    assert "Kendall tau" in out and "RMSE" in out and "MAPE" in out


def _search_inputs(micro_run_dir: Path, run_dir: Path) -> Path:
    for part in ("supernet", "predictors"):
        shutil.copytree(micro_run_dir / part, run_dir / part)
    shutil.copy(micro_run_dir / "collect.csv", run_dir / "collect.csv")
    return run_dir


def test_infeasible_constraint_exits_2_naming_smallest_achievable(micro_run, tmp_path, capsys):
    run_dir = _search_inputs(micro_run[0], tmp_path / "run")
    cfg = load_pipeline_config("micro", [f"run_dir={run_dir}"])
    smallest = count_flops(load_space(cfg).smallest(), build_task(cfg).model_config(cfg.model.config),
                           include_embeddings=False)
    code = mixnas_main(["search", "--config", "micro", f"run_dir={run_dir}", WITH_LATENCY, "search.constraints.flops=1000"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"smallest achievable value is {smallest:g}" in err


def test_random_search_budget_and_switches(micro_run, tmp_path):
    run_dir = _search_inputs(micro_run[0], tmp_path / "run")
    quick = [WITH_LATENCY, "search.restricted=false", "search.nsga2.enabled=false"]
    assert mixnas_main(["search", "--config", "micro", f"run_dir={run_dir}", *quick, "search.random.budget=10"]) == 0
    result = json.loads((run_dir / "search" / "result.json").read_text())
    assert result["searches"]["random"]["evaluated"] == 10 and result["evaluated"] == {
        "mixed": result["searches"]["mixed"]["evaluated"], "random": 10}
    assert result["random_control"]["random_objective"] == result["searches"]["random"]["objective_value"]
    off = _search_inputs(micro_run[0], tmp_path / "off")
    assert mixnas_main(["search", "--config", "micro", f"run_dir={off}", *quick, "search.random.enabled=false"]) == 0
    result = json.loads((off / "search" / "result.json").read_text())
    assert list(result["searches"]) == ["mixed"] and result["random_control"] is None and result["nsga2"] is None


LONG_SEARCH = [WITH_LATENCY, "search.restricted=false", "search.nsga2.enabled=false", "search.random.enabled=false",
               "search.evolution.generations=300"]


def test_search_killed_and_resumed_equals_uninterrupted(micro_run, tmp_path):
    reference = _search_inputs(micro_run[0], tmp_path / "reference")
    killed = _search_inputs(micro_run[0], tmp_path / "killed")
    assert mixnas_main(["search", "--config", "micro", f"run_dir={reference}", *LONG_SEARCH]) == 0

    state = killed / "search" / "mixed.state.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mixnas.cli", "search", "--config", "micro",
                             f"run_dir={killed}", *LONG_SEARCH], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["generation"] >= 5:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the search finished before it could be killed"
    generation = json.loads(state.read_text())["generation"]
    assert 5 <= generation < 300 and not (killed / "search" / "result.json").exists()

    assert mixnas_main(["search", "--config", "micro", f"run_dir={killed}", *LONG_SEARCH]) == 2  # needs --resume
    assert mixnas_main(["search", "--resume", "--config", "micro", f"run_dir={killed}", *LONG_SEARCH]) == 0
    assert (json.loads((killed / "search" / "result.json").read_text())
            == json.loads((reference / "search" / "result.json").read_text()))


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".mixnas.lock"}


def test_changed_config_is_refused_before_anything_is_written(micro_run, capsys):
    run_dir = micro_run[0]
    before = _snapshot(run_dir)
    for override, step, key in (("supernet.train.lr=0.001", "train-supernet", "supernet.train.lr"),
                                ("collect.score_limit=64", "collect", "collect.score_limit"),
                                ("predictor.test_fraction=0.3", "fit-predictor", "predictor.test_fraction"),
                                ("search.constraints.flops=1.1e6", "search", "search.constraints.flops"),
                                ("retrain.train.lr=0.001", "retrain", "train.lr")):
        capsys.readouterr()
        assert mixnas_main(["run", "--preset", "micro", f"run_dir={run_dir}", WITH_LATENCY, override]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and key in err and f"--restart {step}" in err, err
    assert _snapshot(run_dir) == before


def test_restart_search_retrains_only_what_changed_and_the_report_matches(micro_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(micro_run[0], run_dir)
    baseline_model = run_dir / "retrain" / BASELINES[0] / "seed-2" / "model" / "model.pt"
    baseline_mtime = baseline_model.stat().st_mtime_ns
    argv = ["run", "--preset", "micro", f"run_dir={run_dir}", WITH_LATENCY, "search.constraints.flops=0.9e6"]
    capsys.readouterr()
    assert mixnas_main(["run", "--restart", "search", *argv[1:]]) == 0
    out = capsys.readouterr().out
    assert "[train-supernet] reused" in out and "[search] running (restarted)" in out
    assert baseline_model.stat().st_mtime_ns == baseline_mtime  # baselines do not depend on the search
    results = json.loads((run_dir / "results.json").read_text())
    assert results["constraints"]["flops"] == 0.9e6
    for row in results["rows"]:  # every row's numbers come from a retraining of that very arch
        for seed, score in zip(row["seeds"], row["test_scores"]):
            retrained = run_dir / "retrain" / row["name"] / f"seed-{seed}"
            assert arch_from_dict(row["arch"]) == arch_from_dict(yaml.safe_load((retrained / "arch.yaml").read_text()))
            assert score == json.loads((retrained / "results.json").read_text())["eval"]["accuracy"]
        if row["kind"] == "searched":
            assert row["flops"] <= 0.9e6


def test_a_busy_run_dir_and_an_infeasible_constraint_exit_2_at_once(micro_run, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom mixnas.rundir import hold_lock\n"
                               "with hold_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
                               str(micro_run[0])], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert mixnas_main(["run", "--preset", "micro", f"run_dir={micro_run[0]}", WITH_LATENCY]) == 2
        assert f"in use by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    fresh = tmp_path / "fresh"
    assert mixnas_main(["run", "--preset", "micro", f"run_dir={fresh}", "search.constraints.flops=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "search.constraints.flops=1 is below the smallest architecture" in err and len(err.splitlines()) == 1
    assert not (fresh / "supernet").exists()


def test_parallel_retraining_equals_sequential(micro_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(micro_run[0], run_dir, ignore=shutil.ignore_patterns("retrain", "results.json", "report.md"))
    assert mixnas_main(["run", "--preset", "micro", f"run_dir={run_dir}", WITH_LATENCY, "retrain.workers=2"]) == 0
    out = capsys.readouterr().out
    assert "(2 at a time)" in out and "retrain: trainings finished" in out
    want = json.loads((micro_run[0] / "results.json").read_text())["rows"]
    got = json.loads((run_dir / "results.json").read_text())["rows"]
    assert [(r["name"], r["test_scores"]) for r in got] == [(r["name"], r["test_scores"]) for r in want]


def test_paper_claim_verdict_reads_the_seed_spread():
    from mixnas.pipeline.verdict import paper_claim

    def row(name, scores, flops):
        mean = sum(scores) / len(scores)
        std = (sum((v - mean) ** 2 for v in scores) / (len(scores) - 1)) ** 0.5
        return {"name": f"searched-{name}", "test_accuracy": mean, "test_accuracy_std": std, "flops": flops}

    cheaper = [row("mixed", [0.90, 0.91], 80), row("all-softmax", [0.905, 0.905], 100), row("all-cosformer", [0.8, 0.81], 60)]
    assert "claim (" in paper_claim(cheaper, "accuracy")[0] and ": holds here" in paper_claim(cheaper, "accuracy")[0]
    equal_budget = [row("mixed", [0.82, 0.823], 103), row("all-softmax", [0.81, 0.805], 100), row("all-cosformer", [0.80, 0.805], 50)]
    assert "holds in its equal-budget form" in paper_claim(equal_budget, "accuracy")[0]
    worse = [row("mixed", [0.80, 0.801], 90), row("all-softmax", [0.85, 0.851], 100), row("all-cosformer", [0.79, 0.792], 50)]
    assert "does NOT hold" in paper_claim(worse, "accuracy")[0]


def test_hybrid_claim_compares_with_the_best_softmax_row_the_equal_size_one_and_each_fixed_pattern():
    from mixnas.pipeline.verdict import hybrid_claim, recommendation

    def row(name, attention, scores, latency, state):
        mean = sum(scores) / len(scores)
        std = (sum((v - mean) ** 2 for v in scores) / (len(scores) - 1)) ** 0.5
        return {"name": name, "attention": attention, "test_loss": mean, "test_loss_std": std,
                "test_scores": scores, "latency_ms": latency, "decode_state_bytes": state, "flops": 1, "params": 1}

    rows = [row("searched-mixed", "L L S L", [2.00, 2.01], 2.0, 3e6),
            row("searched-all-softmax", "S S S S", [2.10, 2.11], 3.0, 6e6),
            row("baseline-gpt_long_softmax", "S S S S S S", [2.005, 2.006], 8.0, 12e6),
            row("fixed-1in2", "L S L S", [2.10, 2.09], 2.5, 6e6),
            row("fixed-first-last", "S L L S", [2.004, 2.012], 2.5, 6e6),
            row("fixed-all-softmax", "S S S S", [2.3, 2.3], 3.0, 12e6)]
    lines = hybrid_claim(rows, "loss", higher=False)
    assert "vs baseline-gpt_long_softmax (the best all-softmax row)" in lines[0]
    assert "matching it" in lines[0] and "25% of its measured latency and 25% of its decoding state" in lines[0]
    # fixed-all-softmax is a softmax row, not a placement rule: the equal-size comparison.
    assert len(lines) == 4 and lines[1].startswith("At equal size: searched-mixed 2.005 vs fixed-all-softmax (the "
                                                   "same widths and depth) 2.3: 0.295 better, matching it")
    assert "at 67% of its measured latency and 25% of its decoding state" in lines[1]
    assert lines[2].startswith("Searched placement beats fixed-1in2") and "at 50% of its decoding state" in lines[2]
    assert lines[3].startswith("Searched placement ties (within the seed spread) fixed-first-last")
    # No separate equal-size line when the equal-size softmax row is the best softmax row.
    assert len(hybrid_claim([rows[0], *rows[3:]], "loss", higher=False)) == 3
    worse = [dict(rows[0], test_loss=2.2, test_scores=[2.2, 2.2], test_loss_std=0.0), *rows[1:4]]
    assert "below it" in hybrid_claim(worse, "loss", higher=False)[0]
    assert hybrid_claim(rows[:3], "loss", higher=False) == []  # no fixed pattern: nothing to say
    relative = [dict(r, attention=r["attention"].replace("S", "R")) for r in rows]  # relative-position softmax
    assert [line.replace("R", "S") for line in hybrid_claim(relative, "loss", higher=False)] == lines
    # A decoding-state limit keeps the recommendation to rows within it (the baseline's 12 MB is not).
    best_outside = [*rows[:2], row("baseline-gpt_long_softmax", "S S S S S S", [1.9, 1.9], 8.0, 12e6)]
    text = recommendation(best_outside, {"decode_state_bytes": 6.0e6}, "loss", higher=False)
    assert "**Use `searched-mixed`**" in text[0] and "Outside the constraints, baseline-gpt_long_softmax" in text[-1]
    assert "**Use `baseline-gpt_long_softmax`**" in recommendation(best_outside, {}, "loss", higher=False)[0]
