"""What a search optimises and what it must respect, as small interfaces.

An `Objective` scores a batch of architectures at once (a predictor evaluates a whole
population in one call); `higher_is_better` says which way is good. A `Constraint` is an upper
limit on a cost (FLOPs, params, latency): `values(archs) <= limit`. The search algorithms know
nothing else about where numbers come from, so inherited-weight scoring, predictors, analytic
FLOPs and measured latency all plug in the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..predictors import Predictor, featurize


class Objective:
    """A named batch scorer. Subclasses implement `evaluate`."""

    name: str = "objective"
    higher_is_better: bool = True

    def evaluate(self, archs: Sequence[Any]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, archs: Sequence[Any]) -> np.ndarray:
        values = np.asarray(self.evaluate(list(archs)), dtype=np.float64)
        if values.shape != (len(archs),):
            raise ValueError(f"objective {self.name!r} returned shape {values.shape} for {len(archs)} architectures")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"objective {self.name!r} returned a non-finite value")
        return values

    def fitness(self, archs: Sequence[Any]) -> np.ndarray:
        """Values oriented so that larger is always better (what selection sorts by)."""
        v = self(archs)
        return v if self.higher_is_better else -v


class CallableObjective(Objective):
    """An objective from a function: `fn(arch) -> float`, or with `batched=True`
    `fn(list_of_archs) -> array` (e.g. inherited-weight scoring of a population)."""

    def __init__(self, name: str, fn: Callable[..., Any], *, higher_is_better: bool = True, batched: bool = False):
        self.name, self.fn, self.higher_is_better, self.batched = name, fn, higher_is_better, batched

    def evaluate(self, archs: Sequence[Any]) -> np.ndarray:
        if self.batched:
            return np.asarray(self.fn(list(archs)), dtype=np.float64)
        return np.array([float(self.fn(a)) for a in archs], dtype=np.float64)


class PredictorObjective(Objective):
    """A fitted predictor applied to `featurize(space, archs, context)`, one call per batch."""

    def __init__(self, name: str, predictor: Predictor, space: Any, *, context: Mapping[str, Any] | None = None,
                 higher_is_better: bool = True):
        self.name, self.predictor, self.space = name, predictor, space
        self.context, self.higher_is_better = dict(context or {}), higher_is_better

    def evaluate(self, archs: Sequence[Any]) -> np.ndarray:
        return self.predictor.predict(featurize(self.space, archs, self.context))


@dataclass
class Constraint:
    """`measure(archs) <= limit`, where `measure` is an Objective (a cost: FLOPs, params,
    latency...). Build one with `Constraint.from_callable` or `Constraint.from_predictor`."""

    limit: float
    measure: Objective
    name: str = field(default="")

    def __post_init__(self) -> None:
        self.name = self.name or self.measure.name
        if not np.isfinite(self.limit):
            raise ValueError(f"constraint {self.name!r} needs a finite limit, got {self.limit}")

    def values(self, archs: Sequence[Any]) -> np.ndarray:
        return self.measure(archs)

    def value(self, arch: Any) -> float:
        return float(self.values([arch])[0])

    def satisfied(self, archs: Sequence[Any]) -> np.ndarray:
        return self.values(archs) <= self.limit

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "limit": float(self.limit)}

    @classmethod
    def from_callable(cls, name: str, limit: float, fn: Callable[..., Any], *, batched: bool = False) -> "Constraint":
        return cls(limit, CallableObjective(name, fn, higher_is_better=False, batched=batched))

    @classmethod
    def from_predictor(cls, name: str, limit: float, predictor: Predictor, space: Any,
                       context: Mapping[str, Any] | None = None) -> "Constraint":
        return cls(limit, PredictorObjective(name, predictor, space, context=context, higher_is_better=False))


def feasible_mask(constraints: Sequence[Constraint], archs: Sequence[Any]) -> np.ndarray:
    """True where an architecture satisfies every constraint (batched per constraint)."""
    ok = np.ones(len(archs), dtype=bool)
    for c in constraints:
        if len(archs):
            ok &= c.satisfied(archs)
    return ok


def check_feasible(space: Any, constraints: Sequence[Constraint], *, samples: int = 1000, seed: int = 0) -> list[Any]:
    """Before searching, estimate the smallest achievable value of each constrained quantity on
    `space.smallest()` plus `samples` random architectures; raise a ValueError naming the
    constraint, its limit and that value when a limit is below it. Returns the jointly feasible
    architectures found (the search falls back to them when random sampling rarely succeeds)."""
    import random

    if not constraints:
        return []
    rng = random.Random(seed)
    probes = [space.smallest()] + [space.sample(rng) for _ in range(samples)]
    ok = np.ones(len(probes), dtype=bool)
    for c in constraints:
        values = c.values(probes)
        if values.min() > c.limit:
            raise ValueError(f"constraint {c.name} <= {c.limit:g} is infeasible: the smallest achievable value is "
                             f"{values.min():g} (smallest architecture of the space: {values[0]:g}); "
                             f"raise the limit to at least {values.min():g}")
        ok &= values <= c.limit
    if not ok.any():
        names = ", ".join(f"{c.name} <= {c.limit:g}" for c in constraints)
        raise ValueError(f"constraints {names} are each achievable but no architecture among {len(probes)} "
                         f"probed satisfies all of them together; loosen one of them")
    seen, pool = set(), []
    for arch, good in zip(probes, ok):
        if good and arch not in seen:
            seen.add(arch)
            pool.append(arch)
    return pool
