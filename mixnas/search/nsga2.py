"""Multi-objective search, NSGA-II (Deb et al. 2002): the Pareto front of score against cost.

The loop is ours and pymoo supplies the two pieces of NSGA-II mathematics, non-dominated
sorting and crowding distance. Driving pymoo's own `NSGA2` object cannot be resumed without
pickling it (its generator, survival and termination live inside the object), and search
state here is JSON only; owning the loop makes the whole state a population, its objective
and constraint values, and one `random.Random` state.

Minimisation form: objective j of arch x is f_j(x) = -value_j(x) when higher is better, else
value_j(x). Constraint violation CV(x) = sum_c max(0, (c(x) - limit_c) / |limit_c|) (relative,
so that a FLOPs excess does not drown a latency excess; CV = 0 is feasible).

    generation 1: N distinct architectures (known-feasible probes first, then space.sample),
                  evaluated; `generations` counts it, as pymoo's n_gen does.
    each next generation:
      rank r(x) = index of x's non-dominated front among the feasible members, and
      crowding d(x) = crowding distance inside that front (the boundary points: infinite);
      parents by binary tournament: the smaller CV if either is infeasible, else the smaller
        rank, then the larger crowding, then a coin flip (Deb's crowded comparison);
      two children per pair: space.crossover(a, b) and (b, a), each then space.mutate'd;
        a child equal to a population member or an earlier child is proposed again
        (at most N * max_attempts proposals; a short generation is recorded in the history);
      survival from parents + children: the feasible ones front by front, the front that
        does not fit cut by descending crowding (ties: position), then the infeasible ones
        by ascending CV (ties: position).
    the result: the feasible members of rank 0 of the last population.

Every random number comes from one `random.Random(seed)`; after each generation the state is
written atomically to `state_path`, and `resume=True` continues it to exactly the result of
an uninterrupted run (also with a larger `generations`). Registered as searcher `nsga2`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from mixnas.space.arch import arch_from_dict

from ..fileio import write_json
from .objectives import Constraint, Objective, check_feasible
from .searcher import (resume_identity, Log, SearchResult, Searcher, arch_key, check_not_past, load_state, refuse_overwrite,
                       register_searcher, rng_state_from_json, rng_state_to_json)

STATE_FORMAT = "mixnas-nsga2-state/1"
_CROWDING = get_crowding_function("cd")


@dataclass(frozen=True)
class NSGA2Config:
    population: int = 100
    generations: int = 30  # including the initial population
    mutation_prob: float = 0.3
    crossover_prob: float = 0.5
    seed: int = 0
    max_attempts: int = 100  # child proposals per population slot before a generation goes short
    feasibility_samples: int = 1000

    def __post_init__(self) -> None:
        if self.population < 4 or self.generations < 1:
            raise ValueError(f"NSGA-II needs population >= 4 and generations >= 1, "
                             f"got {self.population} and {self.generations}")
        if self.max_attempts < 1 or self.feasibility_samples < 0:
            raise ValueError("NSGA-II max_attempts must be >= 1 and feasibility_samples >= 0")
        for name in ("mutation_prob", "crossover_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"NSGA-II {name} must be in [0, 1], got {getattr(self, name)}")

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must share with the saved one (generations may grow)."""
        return resume_identity(self, "generations")


@dataclass
class _Member:
    arch: Any
    values: list[float]       # raw objective values, in the objectives' order
    costs: list[float]        # raw constraint values, in the constraints' order

    def to_json(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "values": self.values, "costs": self.costs}


class NSGA2Searcher(Searcher):
    name = "nsga2"

    def search(self, space: Any, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (), *,
               state_path: str | Path | None = None, resume: bool = False, log: Log | None = None) -> SearchResult:
        """Pareto front of `objectives` (at least two, e.g. predicted score and FLOPs) under
        `constraints`; `front` and `top` are sorted by the first objective, best first."""
        objectives, constraints, config = list(objectives), list(constraints), self.config
        if len(objectives) < 2:
            raise ValueError(f"NSGA-II needs at least two objectives, got {len(objectives)}; "
                             f"use the evolution search for one")
        pool = check_feasible(space, constraints, samples=config.feasibility_samples, seed=config.seed + 1)
        identity = {"config": config.identity(), "objectives": [[o.name, o.higher_is_better] for o in objectives],
                    "constraints": [c.describe() for c in constraints]}
        signs = np.array([-1.0 if o.higher_is_better else 1.0 for o in objectives])  # to minimisation form
        limits = [c.limit for c in constraints]
        rng = random.Random(config.seed)
        evaluated: dict[str, None] = {}

        def evaluate(archs: list[Any]) -> list[_Member]:
            values = [o(archs).tolist() for o in objectives] if archs else []
            costs = [c.values(archs).tolist() for c in constraints] if archs else []
            evaluated.update(dict.fromkeys(arch_key(a) for a in archs))
            return [_Member(a, [v[i] for v in values], [c[i] for c in costs]) for i, a in enumerate(archs)]

        refuse_overwrite(state_path, resume)
        state = load_state(state_path, STATE_FORMAT, identity, "an NSGA-II search") if resume else None
        if state is None:
            # A few known-feasible probes first, so that tight limits still give a front.
            archs = list(dict.fromkeys(pool[: max(1, config.population // 10)]))
            attempts = 0
            while len(archs) < config.population and attempts < config.population * config.max_attempts:
                attempts += 1
                arch = space.sample(rng)
                if arch not in archs:
                    archs.append(arch)
            population, generation, history = evaluate(archs), 1, []
            history.append(_entry(0, population, 0, signs, limits))
            _save(state_path, identity, generation, population, rng, history, evaluated)
            if log is not None:
                log(history[-1])
        else:
            generation, history = state["generation"], state["history"]
            population = [_Member(arch_from_dict(m["arch"]), m["values"], m["costs"]) for m in state["population"]]
            evaluated.update(dict.fromkeys(state["evaluated"]))
            rng.setstate(rng_state_from_json(state["rng_state"]))
            check_not_past(state_path, generation, config.generations, "generations", "generations")

        while generation < config.generations:
            children = _offspring(space, population, config, rng, signs, limits)
            population = _survivors(population + evaluate(children), config.population, signs, limits)
            history.append(_entry(generation, population, config.population - len(children), signs, limits))
            generation += 1
            _save(state_path, identity, generation, population, rng, history, evaluated)
            if log is not None:
                log(history[-1])

        F, cv = _matrices(population, signs, limits)
        feasible = [i for i in range(len(population)) if cv[i] == 0]
        if not feasible:
            raise ValueError("NSGA-II found no architecture satisfying every constraint; loosen the constraints "
                             "or raise population/generations")
        first_front = NonDominatedSorting().do(F[feasible], only_non_dominated_front=True)
        members = [population[feasible[i]] for i in sorted(first_front)]
        members.sort(key=lambda m: m.values[0] * signs[0])  # stable: ties keep population order
        front = [(m.arch, {o.name: m.values[j] for j, o in enumerate(objectives)}) for m in members]
        best = members[0]
        return SearchResult(best=best.arch, best_score=best.values[0], top=[(m.arch, m.values[0]) for m in members],
                            evaluated=len(evaluated), history=history, front=front,
                            constraint_values={c.name: best.costs[j] for j, c in enumerate(constraints)})


def _matrices(members: list[_Member], signs: np.ndarray, limits: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """F (to minimise) and the constraint violation CV of each member."""
    F = np.array([m.values for m in members], dtype=np.float64) * signs
    cv = np.zeros(len(members))
    for j, limit in enumerate(limits):
        excess = np.maximum(np.array([m.costs[j] for m in members]) - limit, 0.0)
        cv += excess / abs(limit) if limit != 0 else excess
    return F, cv


def _rank_and_crowding(F: np.ndarray, cv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Front index and crowding distance of each feasible member (infeasible: rank -1, 0)."""
    rank, crowding = np.full(len(F), -1), np.zeros(len(F))
    feasible = np.flatnonzero(cv == 0)
    for k, front in enumerate(NonDominatedSorting().do(F[feasible]) if len(feasible) else []):
        idx = feasible[front]
        rank[idx], crowding[idx] = k, _CROWDING.do(F[idx])
    return rank, crowding


def _survivors(members: list[_Member], n: int, signs: np.ndarray, limits: list[float]) -> list[_Member]:
    F, cv = _matrices(members, signs, limits)
    feasible = np.flatnonzero(cv == 0)
    chosen: list[int] = []
    for front in (NonDominatedSorting().do(F[feasible], n_stop_if_ranked=n) if len(feasible) else []):
        idx = feasible[front]
        if len(chosen) + len(idx) > n:  # the front that does not fit: the least crowded survive
            d = _CROWDING.do(F[idx], n_remove=len(chosen) + len(idx) - n)
            # a stable sort, not pymoo's randomized argsort: ties by position need no RNG draw
            idx = idx[np.argsort(-d, kind="stable")][: n - len(chosen)]
        chosen += idx.tolist()
        if len(chosen) >= n:
            break
    infeasible = sorted(np.flatnonzero(cv > 0).tolist(), key=lambda i: (cv[i], i))
    chosen += infeasible[: n - len(chosen)]
    return [members[i] for i in chosen]


def _offspring(space: Any, population: list[_Member], config: NSGA2Config, rng: random.Random,
               signs: np.ndarray, limits: list[float]) -> list[Any]:
    """Up to N new distinct children by tournament selection, crossover and mutation."""
    F, cv = _matrices(population, signs, limits)
    rank, crowding = _rank_and_crowding(F, cv)

    def tournament() -> Any:
        a, b = rng.randrange(len(population)), rng.randrange(len(population))
        if cv[a] > 0 or cv[b] > 0:
            key_a, key_b = (cv[a],), (cv[b],)
        else:
            key_a, key_b = (rank[a], -crowding[a]), (rank[b], -crowding[b])
        if key_a == key_b:
            return population[a if rng.random() < 0.5 else b].arch
        return population[a if key_a < key_b else b].arch

    seen = {m.arch for m in population}
    children: list[Any] = []
    attempts, n = 0, config.population
    while len(children) < n and attempts < n * config.max_attempts:
        p, q = tournament(), tournament()
        for x, y in ((p, q), (q, p)):
            child = space.mutate(space.crossover(x, y, rng, config.crossover_prob), config.mutation_prob, rng)
            attempts += 1
            if child not in seen and len(children) < n:
                seen.add(child)
                children.append(child)
    return children


def _entry(generation: int, population: list[_Member], short: int, signs: np.ndarray,
           limits: list[float]) -> dict[str, Any]:
    F, cv = _matrices(population, signs, limits)
    feasible = np.flatnonzero(cv == 0)
    front = NonDominatedSorting().do(F[feasible], only_non_dominated_front=True) if len(feasible) else []
    best = min((population[i].values[0] * signs[0] for i in feasible), default=None)
    return {"generation": generation, "feasible": len(feasible), "front_size": len(front),
            "best": None if best is None else float(best * signs[0]), "short": short}


def _save(state_path: str | Path | None, identity: dict[str, Any], generation: int, population: list[_Member],
          rng: random.Random, history: list[dict[str, Any]], evaluated: dict[str, None]) -> None:
    if state_path is not None:
        write_json(state_path, {"format": STATE_FORMAT, **identity, "generation": generation,
                                "population": [m.to_json() for m in population],
                                "rng_state": rng_state_to_json(rng.getstate()), "history": history,
                                "evaluated": list(evaluated)})


def nsga2_search(space: Any, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (), *,
                 population: int = 100, generations: int = 30, mutation_prob: float = 0.3,
                 crossover_prob: float = 0.5, seed: int = 0, feasibility_samples: int = 1000,
                 state_path: str | Path | None = None, resume: bool = False) -> list[tuple[Any, dict[str, float]]]:
    """Pareto front as [(arch, {objective name: value})], sorted by the first objective, best first.

    Typical use: objectives = [predicted score (maximise), FLOPs or latency (minimise)]."""
    if len(objectives) < 2:  # before the config check: the more useful message
        raise ValueError(f"NSGA-II needs at least two objectives, got {len(objectives)}; use evolution_search for one")
    config = NSGA2Config(population=population, generations=generations, mutation_prob=mutation_prob,
                         crossover_prob=crossover_prob, seed=seed, feasibility_samples=feasibility_samples)
    return NSGA2Searcher(config).search(space, objectives, constraints, state_path=state_path, resume=resume).front


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a Pareto-dominates b, both as values to minimise."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


register_searcher("nsga2", NSGA2Searcher, NSGA2Config)
