import random

import numpy as np
import pytest
from search_toys import linear_score, load_space, width_constraint, width_cost

from mixnas.search.nsga2 import nsga2_search
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
