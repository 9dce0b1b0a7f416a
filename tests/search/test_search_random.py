import json
import random

import numpy as np
import pytest
from search_toys import (Interrupted, Recording, big_score, linear_score, load_space, tiny_vit_space,
                         width_constraint, width_cost)

from mixnas.search import RandomConfig, build_searcher
from mixnas.search.searcher import arch_key


@pytest.fixture(scope="module")
def space():
    return load_space()


def median_width(space) -> float:
    rng = random.Random(0)
    return float(np.median([width_cost(space.sample(rng)) for _ in range(200)]))


def test_evaluates_exactly_budget_distinct_feasible_archs_and_keeps_the_best(space):
    limit = median_width(space)
    objective = Recording(big_score(space))  # rewards width: the limit binds
    result = build_searcher("random", {"budget": 57, "batch": 10, "top": 5, "feasibility_samples": 100}, 3).search(
        space, objective, [width_constraint(limit)])
    evaluated = objective.archs
    assert len(evaluated) == 57 and len(set(evaluated)) == 57 and result.evaluated == 57
    assert [len(b) for b in objective.calls] == [10] * 5 + [7]
    assert all(width_cost(a) <= limit for a in evaluated)  # not one infeasible arch was even scored
    assert sum(h["rejected"] for h in result.history) > 0  # ...though infeasible ones were drawn
    scores = dict(zip(evaluated, big_score(space)(evaluated)))
    expected = sorted(scores.values(), reverse=True)[:5]
    assert [s for _, s in result.top] == pytest.approx(expected)
    assert result.best == result.top[0][0] and result.best_score == max(scores.values())
    assert result.constraint_values == {"width": width_cost(result.best)}
    assert result.front == [] and [h["evaluated"] for h in result.history] == [10, 20, 30, 40, 50, 57]


def test_minimises_when_lower_is_better(space):
    objective = linear_score(space)
    objective.higher_is_better = False
    result = build_searcher("random", {"budget": 30, "feasibility_samples": 0}, 0).search(space, objective)
    assert result.best_score == min(s for _, s in result.top)
    assert [s for _, s in result.top] == sorted(s for _, s in result.top)


def test_reproducible_from_the_seed_and_independent_of_the_batch_size(space):
    limit = median_width(space)

    def make(seed, batch):
        return build_searcher("random", {"budget": 40, "batch": batch, "feasibility_samples": 100}, seed)

    in_one, in_sevens = Recording(linear_score(space)), Recording(linear_score(space))
    a = make(5, 100).search(space, in_one, [width_constraint(limit)])
    b = make(5, 100).search(space, linear_score(space), [width_constraint(limit)])
    assert a.to_dict() == b.to_dict()
    c = make(5, 7).search(space, in_sevens, [width_constraint(limit)])
    assert max(len(batch) for batch in in_sevens.calls) == 7
    # the same stream of accepted draws; the values only up to the last bits a batched
    # matrix product changes with the batch's size
    assert in_sevens.archs == in_one.archs and c.evaluated == a.evaluated == 40
    assert [arch for arch, _ in c.top] == [arch for arch, _ in a.top]
    assert [s for _, s in c.top] == pytest.approx([s for _, s in a.top], rel=1e-12)
    d = make(6, 100).search(space, linear_score(space), [width_constraint(limit)])
    assert d.to_dict() != a.to_dict()


def test_killed_and_resumed_equals_uninterrupted(space, tmp_path):
    limit = median_width(space)
    config = {"budget": 50, "batch": 8, "top": 6, "feasibility_samples": 100}
    straight = build_searcher("random", config, 2).search(space, linear_score(space), [width_constraint(limit)],
                                                          state_path=tmp_path / "straight.json")
    state = tmp_path / "killed.json"
    with pytest.raises(Interrupted):  # killed during the 4th objective call: 3 batches saved
        build_searcher("random", config, 2).search(space, Recording(linear_score(space), fail_at=4),
                                                   [width_constraint(limit)], state_path=state)
    assert len(json.loads(state.read_text())["evaluated"]) == 24
    resumed_objective = Recording(linear_score(space))
    resumed = build_searcher("random", config, 2).search(space, resumed_objective, [width_constraint(limit)],
                                                         state_path=state, resume=True)
    assert len(resumed_objective.archs) == 50 - 24  # nothing scored twice
    assert resumed.to_dict() == straight.to_dict()
    assert state.read_text() == (tmp_path / "straight.json").read_text()


def test_a_smaller_budget_extended_equals_the_full_one(space, tmp_path):
    config = {"batch": 10, "feasibility_samples": 0}
    straight = build_searcher("random", {**config, "budget": 40}, 1).search(space, linear_score(space))
    state = tmp_path / "s.json"
    build_searcher("random", {**config, "budget": 20}, 1).search(space, linear_score(space), state_path=state)
    extended = build_searcher("random", {**config, "budget": 40}, 1).search(space, linear_score(space),
                                                                            state_path=state, resume=True)
    assert extended.to_dict() == straight.to_dict()
    with pytest.raises(ValueError, match="already has 40 evaluated architectures"):
        build_searcher("random", {**config, "budget": 30}, 1).search(space, linear_score(space), state_path=state,
                                                                     resume=True)
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        build_searcher("random", {**config, "budget": 40}, 1).search(space, linear_score(space), state_path=state)
    with pytest.raises(ValueError, match="cannot resume .* config"):
        build_searcher("random", {**config, "budget": 40, "top": 3}, 1).search(space, linear_score(space),
                                                                               state_path=state, resume=True)


def test_the_whole_of_a_tiny_space_and_no_more():
    tiny = tiny_vit_space()
    objective = Recording(linear_score(tiny))
    result = build_searcher("random", {"budget": 4, "batch": 3}, 0).search(tiny, objective)
    assert set(objective.archs) == {a for a, _ in result.top} and len(objective.archs) == 4 == result.evaluated
    with pytest.raises(ValueError, match="budget 5 exceeds the 4 distinct architectures"):
        build_searcher("random", {"budget": 5}, 0).search(tiny, linear_score(tiny))


def test_infeasible_constraints_are_a_clear_error(space):
    smallest = width_cost(space.smallest())
    with pytest.raises(ValueError, match=f"smallest achievable value is {smallest:g}"):
        build_searcher("random", {"budget": 5, "feasibility_samples": 50}, 0).search(
            space, linear_score(space), [width_constraint(smallest / 2)])
    # feasible, but so rarely drawn that max_attempts rejections in a row end the search
    with pytest.raises(ValueError, match="20 draws in a row broke a constraint .*loosen the constraints"):
        build_searcher("random", {"budget": 50, "max_attempts": 20, "feasibility_samples": 0}, 0).search(
            space, linear_score(space), [width_constraint(smallest * 1.001)])


def test_config_is_checked():
    with pytest.raises(ValueError, match="budget must be >= 1"):
        RandomConfig(budget=0)
    with pytest.raises(ValueError, match="random: unknown key 'budgett'"):
        build_searcher("random", {"budgett": 5}, 0)


def test_arch_key_tells_architectures_apart(space):
    rng = random.Random(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(300)))
    assert len({arch_key(a) for a in archs}) == len(archs)
    assert arch_key(archs[0]) == arch_key(type(archs[0]).from_dict(archs[0].to_dict()))
