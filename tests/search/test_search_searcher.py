"""The searcher registry: built-in searchers, one result type, and a new searcher in a few lines."""
from dataclasses import dataclass

import pytest
from search_toys import Recording, linear_score, load_space, tiny_vit_space, width_constraint, width_cost

from mixnas.search import (EvolutionConfig, SearchResult, Searcher, build_searcher, evolution_search, get_searcher,
                           register_searcher, searchers)
from mixnas.search import searcher as registry

SMALL = dict(population=20, parents=5, mutations=8, crossovers=7, feasibility_samples=100)


def test_builtin_searchers():
    assert {"evolution", "nsga2", "random"} <= set(searchers())
    assert get_searcher("evolution").config is EvolutionConfig
    with pytest.raises(ValueError, match="unknown searcher 'annealing'; registered searchers: .*evolution"):
        build_searcher("annealing", {}, 0)


def test_registering_twice_is_an_error():
    spec = get_searcher("random")
    with pytest.raises(ValueError, match="searcher 'random' is already registered"):
        register_searcher("random", spec.searcher, spec.config)


def test_the_seed_argument_replaces_the_configs():
    assert build_searcher("evolution", EvolutionConfig(generations=3, **SMALL), seed=7).config.seed == 7
    assert build_searcher("random", {"budget": 3}, seed=9).config.seed == 9
    assert build_searcher("nsga2", None, seed=2).config.population == 100
    with pytest.raises(TypeError, match="takes a RandomConfig or a dict"):
        build_searcher("random", EvolutionConfig(), 0)


def test_evolution_through_the_registry_is_evolution_search_and_counts_distinct_evaluations():
    space = load_space()
    config = EvolutionConfig(generations=5, seed=3, **SMALL)
    objective = Recording(linear_score(space))
    result = build_searcher("evolution", config, 3).search(space, objective)
    assert isinstance(result, SearchResult) and result.front == []
    assert result.to_dict() == evolution_search(space, linear_score(space), config=config).to_dict()
    assert result.evaluated == len(set(objective.archs)) and result.evaluated <= len(objective.archs)
    with pytest.raises(ValueError, match="optimises one objective, got 2"):
        build_searcher("evolution", config, 3).search(space, [linear_score(space)] * 2)


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, restored after the test, so a toy searcher never leaks out."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_new_searcher_is_one_class_and_one_registration(scratch_registry):
    # --- the whole new searcher: score the first `n` samples, keep the best -----------------
    @dataclass(frozen=True)
    class FirstNConfig:
        n: int = 8
        seed: int = 0

    class FirstN(Searcher):
        def search(self, space, objectives, constraints=(), *, state_path=None, resume=False, log=None):
            import random
            rng = random.Random(self.config.seed)
            archs = list(dict.fromkeys(space.sample(rng) for _ in range(self.config.n)))
            ranked = sorted(zip(archs, objectives(archs).tolist()), key=lambda t: -t[1])
            return SearchResult(best=ranked[0][0], best_score=ranked[0][1], top=ranked, evaluated=len(archs))

    register_searcher("toy_first_n", FirstN, FirstNConfig)
    # -------------------------------------------------------------------------------------------
    assert "toy_first_n" in searchers()
    space = tiny_vit_space()
    result = build_searcher("toy_first_n", {"n": 20}, seed=1).search(space, linear_score(space))
    assert result.evaluated == 4 and result.best_score == max(s for _, s in result.top)
    with pytest.raises(ValueError, match="toy_first_n: unknown key 'm'"):
        build_searcher("toy_first_n", {"m": 3}, 0)


def test_toy_searcher_did_not_leak():
    assert "toy_first_n" not in searchers()


def test_a_config_class_needs_a_seed(scratch_registry):
    @dataclass(frozen=True)
    class NoSeed:
        n: int = 1

    with pytest.raises(ValueError, match="dataclass with a 'seed' field"):
        register_searcher("toy_no_seed", Searcher, NoSeed)


@pytest.mark.parametrize("name, config", [("evolution", dict(generations=3, **SMALL)), ("random", {"budget": 25}),
                                          ("nsga2", {"population": 12, "generations": 3})])
def test_every_searcher_returns_feasible_results_through_one_interface(name, config):
    space = load_space()
    limit = width_cost(space.largest()) * 0.4
    objectives = linear_score(space)
    if name == "nsga2":
        from mixnas.search import CallableObjective
        objectives = [objectives, CallableObjective("width", width_cost, higher_is_better=False)]
    result = build_searcher(name, {**config, "feasibility_samples": 100}, 0).search(
        space, objectives, [width_constraint(limit)])
    assert result.evaluated > 0 and result.top and result.history
    assert all(width_cost(a) <= limit for a, _ in result.top)
    assert result.constraint_values["width"] == width_cost(result.best)
    assert bool(result.front) == (name == "nsga2")
