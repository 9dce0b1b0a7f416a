import random

import numpy as np
import pytest
from search_toys import load_space, width_constraint, width_cost

from mixnas.predictors import GBDTPredictor, featurize
from mixnas.search.objectives import (CallableObjective, Constraint, PredictorObjective, check_feasible,
                                      feasible_mask)


@pytest.fixture(scope="module")
def space_and_archs():
    space = load_space()
    rng = random.Random(0)
    return space, [space.sample(rng) for _ in range(60)]


def test_callable_objectives_per_arch_and_batched(space_and_archs):
    _, archs = space_and_archs
    per_arch = CallableObjective("width", width_cost, higher_is_better=False)
    batched = CallableObjective("width", lambda xs: [width_cost(a) for a in xs], batched=True)
    expected = np.array([width_cost(a) for a in archs])
    assert np.array_equal(per_arch(archs), expected) and np.array_equal(batched(archs), expected)
    assert np.array_equal(per_arch.fitness(archs), -expected)  # lower is better -> negated fitness
    with pytest.raises(ValueError, match="returned shape"):
        CallableObjective("bad", lambda xs: [1.0], batched=True)(archs)
    with pytest.raises(ValueError, match="non-finite"):
        CallableObjective("nan", lambda a: float("nan"))(archs[:2])


def test_predictor_objective_and_constraint_use_one_batch(space_and_archs):
    space, archs = space_and_archs
    X = featurize(space, archs, {"src_len": 30})
    y = np.array([width_cost(a) for a in archs])
    predictor = GBDTPredictor(space.feature_names() + ["ctx:src_len"], n_estimators=20, min_child_samples=5).fit(X, y)
    objective = PredictorObjective("pred", predictor, space, context={"src_len": 30})
    assert np.array_equal(objective(archs), predictor.predict(X))
    limit = float(np.median(objective(archs)))
    c = Constraint.from_predictor("pred_width", limit, predictor, space, {"src_len": 30})
    assert c.name == "pred_width" and c.value(archs[0]) == objective(archs[:1])[0]
    assert np.array_equal(c.satisfied(archs), objective(archs) <= limit)


def test_feasibility_check(space_and_archs):
    space, archs = space_and_archs
    with pytest.raises(ValueError, match="finite limit"):
        width_constraint(float("inf"))
    smallest = width_cost(space.smallest())
    pool = check_feasible(space, [width_constraint(smallest * 1.5)], samples=100)
    assert pool and all(width_cost(a) <= smallest * 1.5 for a in pool) and len(set(pool)) == len(pool)
    assert check_feasible(space, [], samples=10) == []
    # each limit alone is achievable, both together are not: the big-only and small-only cost
    big_only = Constraint.from_callable("minus_width", -smallest * 3, lambda a: -width_cost(a))
    with pytest.raises(ValueError, match="no architecture among 101 probed satisfies all"):
        check_feasible(space, [width_constraint(smallest * 1.01), big_only], samples=100)
    mask = feasible_mask([width_constraint(float(np.median([width_cost(a) for a in archs])))], archs)
    assert mask.sum() == 30
