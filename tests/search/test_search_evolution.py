import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from search_toys import big_score, linear_score, load_space, width_constraint, width_cost

from mixnas.search.evolution import EvolutionConfig, evolution_search
from mixnas.space.arch import arch_from_dict

SMALL = dict(population=20, parents=5, mutations=8, crossovers=7, feasibility_samples=200)


@pytest.fixture(scope="module")
def space():
    return load_space()


def test_improves_a_known_objective(space):
    objective = linear_score(space)
    result = evolution_search(space, objective, config=EvolutionConfig(generations=10, seed=0, **SMALL))
    bests = [h["best"] for h in result.history]
    assert len(bests) == 10
    assert all(b2 >= b1 for b1, b2 in zip(bests, bests[1:]))  # parents survive: never worse
    # better than the same number of random samples
    rng = random.Random(123)
    random_best = objective([space.sample(rng) for _ in range(20 + 9 * 15)]).max()
    assert result.best_score > random_best
    assert result.best_score == pytest.approx(objective([result.best])[0])
    assert [s for _, s in result.top] == sorted((s for _, s in result.top), reverse=True)


def test_minimises_when_lower_is_better(space):
    objective = linear_score(space)
    objective.higher_is_better = False
    result = evolution_search(space, objective, config=EvolutionConfig(generations=6, seed=0, **SMALL))
    assert result.best_score == min(s for _, s in result.top)
    assert result.history[-1]["best"] <= result.history[0]["best"]


def test_every_population_member_respects_the_constraints(space, tmp_path):
    rng = random.Random(0)
    limit = float(np.median([width_cost(space.sample(rng)) for _ in range(200)]))
    seen = []
    result = evolution_search(space, big_score(space), [width_constraint(limit)],
                              EvolutionConfig(generations=5, seed=1, **SMALL), state_path=tmp_path / "s.json",
                              log=lambda entry: seen.append(json.loads((tmp_path / "s.json").read_text())))
    assert all(width_cost(a) <= limit for a, _ in result.top)
    assert result.constraint_values["width"] == width_cost(result.best) <= limit
    for state in seen:  # every saved population, i.e. every candidate ever admitted
        assert all(width_cost(arch_from_dict(d)) <= limit for d in state["population"])
    # the score rewards width, so the constraint binds: the best is near the limit
    assert width_cost(result.best) > 0.8 * limit


def test_tight_constraint_still_fills_the_population(space):
    smallest = width_cost(space.smallest())
    result = evolution_search(space, big_score(space), [width_constraint(smallest * 1.02)],
                              EvolutionConfig(generations=2, seed=0, max_attempts=5, **SMALL))
    assert all(width_cost(a) <= smallest * 1.02 for a, _ in result.top)


def test_infeasible_limit_names_the_smallest_achievable_value(space):
    smallest = width_cost(space.smallest())  # width is monotone: the smallest arch is the minimum
    with pytest.raises(ValueError) as err:
        evolution_search(space, big_score(space), [width_constraint(smallest / 2)],
                         EvolutionConfig(generations=1, **SMALL))
    msg = str(err.value)
    assert "width" in msg and f"{smallest / 2:g}" in msg and f"smallest achievable value is {smallest:g}" in msg


def test_resume_gives_the_identical_result(space, tmp_path):
    objective = linear_score(space)
    straight = evolution_search(space, objective, config=EvolutionConfig(generations=6, seed=7, **SMALL),
                                state_path=tmp_path / "straight.json")
    evolution_search(space, objective, config=EvolutionConfig(generations=3, seed=7, **SMALL),
                     state_path=tmp_path / "resumed.json")
    assert json.loads((tmp_path / "resumed.json").read_text())["generation"] == 3
    resumed = evolution_search(space, linear_score(space), config=EvolutionConfig(generations=6, seed=7, **SMALL),
                               state_path=tmp_path / "resumed.json", resume=True)
    assert resumed.to_dict() == straight.to_dict()
    assert (tmp_path / "resumed.json").read_text() == (tmp_path / "straight.json").read_text()
    # a different seed is a different search
    other = evolution_search(space, objective, config=EvolutionConfig(generations=6, seed=8, **SMALL))
    assert other.to_dict() != straight.to_dict()


def test_resume_refuses_other_settings_and_overwrite(space, tmp_path):
    state = tmp_path / "s.json"
    evolution_search(space, linear_score(space), config=EvolutionConfig(generations=1, **SMALL), state_path=state)
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        evolution_search(space, linear_score(space), config=EvolutionConfig(generations=1, **SMALL), state_path=state)
    other = {**SMALL, "population": 21, "crossovers": 8}
    with pytest.raises(ValueError, match="cannot resume .* config"):
        evolution_search(space, linear_score(space), config=EvolutionConfig(generations=2, **other),
                         state_path=state, resume=True)
    state.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        evolution_search(space, linear_score(space), config=EvolutionConfig(generations=2, **SMALL),
                         state_path=state, resume=True)


def test_config_is_checked():
    with pytest.raises(ValueError, match="must equal parents"):
        EvolutionConfig(population=100)
    with pytest.raises(ValueError, match="mutation_prob"):
        EvolutionConfig(mutation_prob=1.5)


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from search_toys import linear_score, load_space
from mixnas.search.evolution import EvolutionConfig, evolution_search
space = load_space()
evolution_search(space, linear_score(space, delay=0.15), config=EvolutionConfig(generations=8, seed=3, **{small!r}),
                 state_path={state!r})
print("finished")
"""


def test_sigkill_then_resume_gives_the_identical_result(space, tmp_path):
    state = tmp_path / "killed.json"
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), small=SMALL, state=str(state))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    generation = 0
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            generation = json.loads(state.read_text())["generation"]
            if generation >= 2:
                break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= json.loads(state.read_text())["generation"] < 8

    config = EvolutionConfig(generations=8, seed=3, **SMALL)
    resumed = evolution_search(space, linear_score(space), config=config, state_path=state, resume=True)
    straight = evolution_search(space, linear_score(space), config=config)
    assert resumed.to_dict() == straight.to_dict()


def test_parents_are_distinct_and_extending_a_finished_state_is_checked(space, tmp_path):
    state = tmp_path / "s.json"
    result = evolution_search(space, linear_score(space), config=EvolutionConfig(generations=4, **SMALL),
                              state_path=state)
    archs = [a for a, _ in result.top]
    assert len(set(archs)) == len(archs) == SMALL["parents"]
    with pytest.raises(ValueError, match="already has 4 generations"):
        evolution_search(space, linear_score(space), config=EvolutionConfig(generations=2, **SMALL),
                         state_path=state, resume=True)
    again = evolution_search(space, linear_score(space), config=EvolutionConfig(generations=4, **SMALL),
                             state_path=state, resume=True)
    assert again.to_dict() == result.to_dict()
