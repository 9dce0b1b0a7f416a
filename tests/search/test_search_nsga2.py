import json
import random

import numpy as np
import pytest
from search_toys import Interrupted, Recording, linear_score, load_space, width_constraint, width_cost

from mixnas.search import build_searcher
from mixnas.search.nsga2 import NSGA2Config, nsga2_search
from mixnas.search.objectives import CallableObjective


@pytest.fixture(scope="module")
def space():
    return load_space()


def objectives(space):
    return [linear_score(space), CallableObjective("width", width_cost, higher_is_better=False)]


def test_front_is_feasible_non_dominated_and_reproducible(space):
    rng = random.Random(0)
    limit = float(np.quantile([width_cost(space.sample(rng)) for _ in range(200)], 0.7))
    kwargs = dict(population=24, generations=8, seed=0, feasibility_samples=100)
    front = nsga2_search(space, objectives(space), [width_constraint(limit)], **kwargs)
    assert len(front) >= 2
    archs = [a for a, _ in front]
    assert len(set(archs)) == len(archs)
    score, width = objectives(space)
    for arch, values in front:
        space.validate(arch)
        assert values["width"] == width_cost(arch) <= limit
        assert values["linear_score"] == pytest.approx(score([arch])[0])
    # pairwise: no member is at least as good in both objectives and strictly better in one
    for a, va in front:
        for b, vb in front:
            if a is b:
                continue
            no_worse = va["linear_score"] >= vb["linear_score"] and va["width"] <= vb["width"]
            better = va["linear_score"] > vb["linear_score"] or va["width"] < vb["width"]
            assert not (no_worse and better), f"{va} dominates {vb}"
    # sorted by the first objective, best first
    assert [v["linear_score"] for _, v in front] == sorted((v["linear_score"] for _, v in front), reverse=True)
    # seeded: the same call gives the same front
    again = nsga2_search(space, objectives(space), [width_constraint(limit)], **kwargs)
    assert [(a, v) for a, v in again] == front


def test_front_beats_random_sampling(space):
    front = nsga2_search(space, objectives(space), population=24, generations=10, seed=1)
    rng = random.Random(5)
    score, _ = objectives(space)
    sampled = [space.sample(rng) for _ in range(24)]
    assert max(v["linear_score"] for _, v in front) > score(sampled).max()


def test_bad_calls_are_explained(space):
    with pytest.raises(ValueError, match="at least two objectives"):
        nsga2_search(space, objectives(space)[:1])
    smallest = width_cost(space.smallest())
    with pytest.raises(ValueError, match=f"smallest achievable value is {smallest:g}"):
        nsga2_search(space, objectives(space), [width_constraint(smallest - 1)], feasibility_samples=50)


def width_limit(space, q=0.7) -> float:
    rng = random.Random(0)
    return float(np.quantile([width_cost(space.sample(rng)) for _ in range(200)], q))


def test_searcher_result_front_top_and_evaluated(space):
    score = Recording(linear_score(space))
    limit = width_limit(space)
    result = build_searcher("nsga2", {"population": 16, "generations": 5, "feasibility_samples": 100}, 0).search(
        space, [score, objectives(space)[1]], [width_constraint(limit)])
    assert [a for a, _ in result.front] == [a for a, _ in result.top]
    assert [v["linear_score"] for _, v in result.front] == [s for _, s in result.top]
    assert result.best == result.top[0][0] and result.best_score == result.top[0][1]
    assert result.constraint_values == {"width": width_cost(result.best)} and width_cost(result.best) <= limit
    assert len(score.calls) == 5 and result.evaluated == len(set(score.archs))
    assert len(score.calls[0]) == 16  # generation 1: the initial population, distinct
    assert len(result.history) == 5


def test_killed_and_resumed_equals_uninterrupted(space, tmp_path):
    limit = width_limit(space)
    config = {"population": 16, "generations": 6, "feasibility_samples": 100}
    straight = build_searcher("nsga2", config, 4).search(space, objectives(space), [width_constraint(limit)],
                                                         state_path=tmp_path / "straight.json")
    state = tmp_path / "killed.json"
    with pytest.raises(Interrupted):  # killed while scoring generation 4's children
        build_searcher("nsga2", config, 4).search(space, [Recording(linear_score(space), fail_at=4),
                                                          objectives(space)[1]],
                                                  [width_constraint(limit)], state_path=state)
    assert json.loads(state.read_text())["generation"] == 3
    resumed = build_searcher("nsga2", config, 4).search(space, objectives(space), [width_constraint(limit)],
                                                        state_path=state, resume=True)
    assert resumed.to_dict() == straight.to_dict()
    assert state.read_text() == (tmp_path / "straight.json").read_text()


def test_fewer_generations_extended_equal_the_full_run_and_other_settings_are_refused(space, tmp_path):
    config = {"population": 12, "generations": 5, "feasibility_samples": 0}
    straight = build_searcher("nsga2", config, 1).search(space, objectives(space))
    state = tmp_path / "s.json"
    build_searcher("nsga2", {**config, "generations": 2}, 1).search(space, objectives(space), state_path=state)
    extended = build_searcher("nsga2", config, 1).search(space, objectives(space), state_path=state, resume=True)
    assert extended.to_dict() == straight.to_dict()
    with pytest.raises(ValueError, match="already has 5 generations"):
        build_searcher("nsga2", {**config, "generations": 3}, 1).search(space, objectives(space),
                                                                        state_path=state, resume=True)
    with pytest.raises(ValueError, match="cannot resume .* config"):
        build_searcher("nsga2", {**config, "mutation_prob": 0.5}, 1).search(space, objectives(space),
                                                                            state_path=state, resume=True)
    with pytest.raises(ValueError, match="cannot resume .* objectives"):
        build_searcher("nsga2", config, 1).search(space, objectives(space)[::-1], state_path=state, resume=True)
    with pytest.raises(ValueError, match="population >= 4"):
        NSGA2Config(population=3)
