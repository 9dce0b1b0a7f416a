"""Constrained evolutionary search (HAT / RankNAS).

Each generation: score the population with the objective (one batched call), keep the best
`parents`, then make `mutations` children by mutating random parents (per-gene probability
`mutation_prob`) and `crossovers` children by uniform crossover of two random parents
(parents are distinct architectures, see `_select_parents`). A child that breaks a constraint
is thrown away and proposed again (at most `max_attempts` proposals per child; after that a
copy of a parent, which is feasible, takes the slot and the history says so). The initial
population is random feasible samples.

All randomness comes from one `random.Random(seed)`. After every generation the state (next
population, RNG state, parents, history, digests of the evaluated architectures) is written
atomically to `state_path`; `resume=True`
continues from it to exactly the result an uninterrupted run gives, also with a larger
`generations`. The objective must be deterministic for that (predictors and inherited-weight
scoring on a fixed validation subset are).

Registered as searcher `evolution` (config: `EvolutionConfig`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mixnas.space.arch import arch_from_dict

from ..fileio import write_json
from .objectives import Constraint, Objective, check_feasible, feasible_mask
from .searcher import (resume_identity, Log, SearchResult, Searcher, arch_key, check_not_past, load_state, one_objective,
                       refuse_overwrite, register_searcher, rng_state_from_json, rng_state_to_json)

# /2 added the evaluated architectures' digests; a /1 state cannot say how many were evaluated
STATE_FORMAT = "mixnas-evolution-state/2"


@dataclass(frozen=True)
class EvolutionConfig:
    generations: int = 30
    population: int = 125
    parents: int = 25
    mutations: int = 50
    crossovers: int = 50
    mutation_prob: float = 0.3
    crossover_prob: float = 0.5
    seed: int = 0
    max_attempts: int = 100  # proposals per child before falling back to a parent copy
    feasibility_samples: int = 1000  # random archs probed for the infeasible-limit check

    def __post_init__(self) -> None:
        for name in ("generations", "population", "parents", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"evolution {name} must be >= 1, got {getattr(self, name)}")
        if min(self.mutations, self.crossovers, self.feasibility_samples) < 0:
            raise ValueError("evolution mutations, crossovers and feasibility_samples must be >= 0")
        if self.parents + self.mutations + self.crossovers != self.population:
            raise ValueError(f"population ({self.population}) must equal parents + mutations + crossovers "
                             f"({self.parents} + {self.mutations} + {self.crossovers})")
        for name in ("mutation_prob", "crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"evolution {name} must be in [0, 1], got {getattr(self, name)}")

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must share with the saved one (generations may grow)."""
        return resume_identity(self, "generations")


class EvolutionSearcher(Searcher):
    """`evolution_search` behind the common interface; `top` is the final parents."""

    name = "evolution"

    def search(self, space: Any, objectives: Any, constraints: Sequence[Constraint] = (), *,
               state_path: str | Path | None = None, resume: bool = False, log: Log | None = None) -> SearchResult:
        return evolution_search(space, one_objective(objectives, self.name), constraints, self.config,
                                state_path=state_path, resume=resume, log=log)


def _score(objective: Objective, population: list[Any], known: dict[Any, float],
           evaluated: dict[str, None]) -> np.ndarray:
    """Objective values of the population, evaluating each architecture not in `known` (the
    previous parents) once, in one batch. Only the parents' scores are reused, and they are in
    the saved state, so a resumed run sends the objective exactly the batches an uninterrupted
    run sends (a batched objective may differ in the last bit with the batch's composition).
    `evaluated` (an ordered set of arch digests) records every architecture ever scored.
    """
    new = list(dict.fromkeys(a for a in population if a not in known))
    values = dict(known)
    if new:
        values.update(zip(new, objective(new).tolist()))
        evaluated.update(dict.fromkeys(arch_key(a) for a in new))
    return np.array([values[a] for a in population], dtype=np.float64)


def evolution_search(space: Any, objective: Objective, constraints: Sequence[Constraint] = (),
                     config: EvolutionConfig = EvolutionConfig(), *, state_path: str | Path | None = None,
                     resume: bool = False, log: Log | None = None) -> SearchResult:
    """Maximise (or minimise, per `objective.higher_is_better`) under `constraints`."""
    constraints = list(constraints)
    pool = check_feasible(space, constraints, samples=config.feasibility_samples, seed=config.seed + 1)
    identity = {"config": config.identity(), "objective": objective.name,
                "constraints": [c.describe() for c in constraints]}
    sign = 1.0 if objective.higher_is_better else -1.0
    rng = random.Random(config.seed)

    def fill(n: int, propose: Callable[[], Any]) -> tuple[list[Any], int]:
        """Up to n feasible proposals, proposed in batches so constraints are batch-evaluated."""
        out, attempts = [], 0
        while len(out) < n and attempts < n * config.max_attempts:
            candidates = [propose() for _ in range(n - len(out))]
            attempts += len(candidates)
            out += [c for c, ok in zip(candidates, feasible_mask(constraints, candidates)) if ok]
        return out, attempts - len(out)

    refuse_overwrite(state_path, resume)
    state = load_state(state_path, STATE_FORMAT, identity, "an evolution search") if resume else None
    evaluated: dict[str, None] = {}
    if state is None:
        population, _ = fill(config.population, lambda: space.sample(rng))
        if len(population) < config.population:  # tight limits: grow from the feasible probes
            more, _ = fill(config.population - len(population),
                           lambda: space.mutate(rng.choice(pool), config.mutation_prob, rng))
            population += more
            population += [pool[i % len(pool)] for i in range(config.population - len(population))]
        generation, history, parents = 0, [], []
    else:
        generation, history = state["generation"], state["history"]
        population = [arch_from_dict(d) for d in state["population"]]
        parents = [(arch_from_dict(p["arch"]), p["score"]) for p in state["parents"]]
        evaluated = dict.fromkeys(state["evaluated"])
        rng.setstate(rng_state_from_json(state["rng_state"]))
        check_not_past(state_path, generation, config.generations, "generations", "generations")

    while generation < config.generations:
        values = _score(objective, population, dict(parents), evaluated)
        parents = _select_parents(population, values, config.parents, sign)
        parent_archs = [a for a, _ in parents]
        mutants, resampled_m = fill(config.mutations, lambda: space.mutate(
            rng.choice(parent_archs), config.mutation_prob, rng))
        children, resampled_c = fill(config.crossovers, lambda: space.crossover(
            rng.choice(parent_archs), rng.choice(parent_archs), rng, config.crossover_prob))
        fallbacks = (config.mutations - len(mutants)) + (config.crossovers - len(children))
        mutants += [parent_archs[i % len(parent_archs)] for i in range(config.mutations - len(mutants))]
        children += [parent_archs[i % len(parent_archs)] for i in range(config.crossovers - len(children))]
        population = parent_archs + mutants + children
        entry = {"generation": generation, "best": parents[0][1], "mean": float(values.mean()),
                 "resampled": resampled_m + resampled_c, "fallbacks": fallbacks}
        history.append(entry)
        generation += 1
        if state_path is not None:
            write_json(state_path, {"format": STATE_FORMAT, **identity, "generation": generation,
                                    "population": [a.to_dict() for a in population],
                                    "parents": [{"arch": a.to_dict(), "score": s} for a, s in parents],
                                    "rng_state": rng_state_to_json(rng.getstate()), "history": history,
                                    "evaluated": list(evaluated)})
        if log is not None:
            log(entry)

    if not parents:
        raise ValueError(f"search state {state_path} has no scored generation; delete it and start again")
    best, best_score = parents[0]
    return SearchResult(best=best, best_score=best_score, top=parents, evaluated=len(evaluated), history=history,
                        constraint_values={c.name: c.value(best) for c in constraints})


def _select_parents(population: list[Any], values: np.ndarray, k: int, sign: float) -> list[tuple[Any, float]]:
    """The k fittest *distinct* architectures (ties by position), with their objective values.
    HAT keeps duplicates; a crossover of a parent with itself or an unchanged mutant would
    otherwise crowd the parents with copies of one architecture. If the population holds
    fewer than k distinct ones, the best duplicates fill the rest."""
    order = np.argsort(-sign * values, kind="stable")
    seen, first, repeats = set(), [], []
    for i in order:
        (repeats if population[i] in seen else first).append(i)
        seen.add(population[i])
    return [(population[i], float(values[i])) for i in (first + repeats)[:k]]


register_searcher("evolution", EvolutionSearcher, EvolutionConfig)
