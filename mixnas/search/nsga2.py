"""Multi-objective search with pymoo's NSGA-II: the Pareto front of score against cost.

The individuals are architecture objects (one object-typed variable), so pymoo's selection,
non-dominated sorting, crowding distance and constraint domination do the algorithmic work
while sampling, mutation and crossover are the search space's own `sample`, `mutate` and
`crossover` (no gene vector to decode). Every random number derives from pymoo's seeded
generator, so a seed reproduces the front. Constraints are pymoo inequality constraints
(`value - limit <= 0`); only feasible architectures are returned.
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.optimize import minimize

from .objectives import Constraint, Objective, check_feasible, feasible_mask


def _python_rng(random_state: np.random.Generator) -> random.Random:
    """The space's operators take a random.Random; derive one from pymoo's generator."""
    return random.Random(int(random_state.integers(2**63)))


class _ArchProblem(Problem):
    def __init__(self, objectives: Sequence[Objective], constraints: Sequence[Constraint]):
        super().__init__(n_var=1, n_obj=len(objectives), n_ieq_constr=len(constraints))
        self.objectives, self.constraints = list(objectives), list(constraints)

    def _evaluate(self, X: np.ndarray, out: dict, *args: Any, **kwargs: Any) -> None:
        archs = list(X[:, 0])
        # pymoo minimises: a score to maximise enters negated
        out["F"] = np.column_stack([-o.fitness(archs) for o in self.objectives])
        if self.constraints:
            out["G"] = np.column_stack([c.values(archs) - c.limit for c in self.constraints])


class _SpaceSampling(Sampling):
    def __init__(self, space: Any, seeds: Sequence[Any] = ()):
        super().__init__()
        self.space, self.seeds = space, list(seeds)

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        rng = _python_rng(random_state)
        archs = self.seeds[:n_samples] + [self.space.sample(rng) for _ in range(n_samples - len(self.seeds))]
        X = np.empty((n_samples, 1), dtype=object)
        X[:, 0] = archs
        return X


class _SpaceCrossover(Crossover):
    def __init__(self, space: Any, prob: float):
        super().__init__(n_parents=2, n_offsprings=2)
        self.space, self.gene_prob = space, prob

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        rng = _python_rng(random_state)
        _, n_matings, _ = X.shape
        Y = np.empty((2, n_matings, 1), dtype=object)
        for k in range(n_matings):
            a, b = X[0, k, 0], X[1, k, 0]
            Y[0, k, 0] = self.space.crossover(a, b, rng, self.gene_prob)
            Y[1, k, 0] = self.space.crossover(b, a, rng, self.gene_prob)
        return Y


class _SpaceMutation(Mutation):
    def __init__(self, space: Any, prob: float):
        super().__init__()
        self.space, self.gene_prob = space, prob

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        rng = _python_rng(random_state)
        Y = np.empty_like(X)
        Y[:, 0] = [self.space.mutate(a, self.gene_prob, rng) for a in X[:, 0]]
        return Y


class _SameArch(DuplicateElimination):
    """Architectures are hashable frozen dataclasses: duplicates by hashing, O(n)."""

    def _do(self, pop, other, is_duplicate):
        seen = {ind.X[0] for ind in other} if other is not None else set()
        for i, ind in enumerate(pop):
            arch = ind.X[0]
            if arch in seen:
                is_duplicate[i] = True
            seen.add(arch)
        return is_duplicate


def nsga2_search(space: Any, objectives: Sequence[Objective], constraints: Sequence[Constraint] = (), *,
                 population: int = 100, generations: int = 30, mutation_prob: float = 0.3,
                 crossover_prob: float = 0.5, seed: int = 0,
                 feasibility_samples: int = 1000) -> list[tuple[Any, dict[str, float]]]:
    """Pareto front as [(arch, {objective name: value})], sorted by the first objective, best first.

    Typical use: objectives = [predicted score (maximise), FLOPs or latency (minimise)]."""
    if len(objectives) < 2:
        raise ValueError(f"NSGA-II needs at least two objectives, got {len(objectives)}; use evolution_search for one")
    if population < 4 or generations < 1:
        raise ValueError(f"NSGA-II needs population >= 4 and generations >= 1, got {population} and {generations}")
    constraints = list(constraints)
    pool = check_feasible(space, constraints, samples=feasibility_samples, seed=seed + 1)
    # Start from a few known-feasible architectures so tight limits still give a front.
    seeds = pool[: max(1, population // 10)] if pool else []
    algorithm = NSGA2(pop_size=population, sampling=_SpaceSampling(space, seeds),
                      crossover=_SpaceCrossover(space, crossover_prob),
                      mutation=_SpaceMutation(space, mutation_prob), eliminate_duplicates=_SameArch())
    result = minimize(_ArchProblem(objectives, constraints), algorithm, ("n_gen", generations),
                      seed=seed, verbose=False)

    opt = result.opt
    archs = [] if opt is None else [ind.X[0] for ind in opt]
    archs = [a for a, ok in zip(archs, feasible_mask(constraints, archs)) if ok]  # our own check, not pymoo's
    if not archs:
        raise ValueError("NSGA-II found no architecture satisfying every constraint; loosen the constraints "
                         "or raise population/generations")
    values = {o.name: o(archs) for o in objectives}
    front = [(a, {name: float(v[i]) for name, v in values.items()}) for i, a in enumerate(archs)]
    first = objectives[0]
    front.sort(key=lambda item: -item[1][first.name] if first.higher_is_better else item[1][first.name])
    return front


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a Pareto-dominates b, both as values to minimise."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))
