"""Random search: the control every architecture search has to beat (Li & Talwalkar 2019).

Draws architectures with the space's own sampler from one `random.Random(seed)` and evaluates
exactly `budget` DISTINCT feasible ones; the best `top` are kept. A draw is rejected, and does
not count, when it breaks a constraint or was evaluated already. Given the seed, the sequence
of evaluated architectures is the first `budget` accepted draws of one stream:

    x_1, x_2, ... ~ space.sample(rng);  accepted = [x_t : feasible(x_t), x_t not in earlier accepted]

so it does not depend on `batch` (only the objective's calls are grouped by `batch`). When
`max_attempts` draws in a row are rejected, the search stops with an error: the constraints
leave (almost) nothing feasible, or the feasible part of the space is nearly exhausted.

The objective is called once per batch of `batch` new architectures; after every batch the
state (RNG state, the evaluated architectures' digests, the best `top`, history) is written
atomically to `state_path`, and `resume=True` continues it to exactly the result of an
uninterrupted run. A finished state may be extended with a larger `budget`: that continues the
same stream (batch boundaries match a straight run when the old budget is a multiple of
`batch`). Registered as searcher `random`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mixnas.space.arch import arch_from_dict

from ..fileio import write_json
from .objectives import Constraint, Objective, check_feasible, feasible_mask
from .searcher import (resume_identity, Log, SearchResult, Searcher, arch_key, check_not_past, load_state, one_objective,
                       refuse_overwrite, register_searcher, rng_state_from_json, rng_state_to_json)

STATE_FORMAT = "mixnas-random-state/1"


@dataclass(frozen=True)
class RandomConfig:
    budget: int = 1000            # distinct feasible architectures to evaluate
    batch: int = 100              # architectures per objective call and per saved state
    top: int = 25                 # best architectures kept in the result, best first
    seed: int = 0
    max_attempts: int = 10000     # rejected draws in a row before the search gives up
    feasibility_samples: int = 1000  # random archs probed for the infeasible-limit check

    def __post_init__(self) -> None:
        for name in ("budget", "batch", "top", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"random search {name} must be >= 1, got {getattr(self, name)}")
        if self.feasibility_samples < 0:
            raise ValueError(f"random search feasibility_samples must be >= 0, got {self.feasibility_samples}")

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must share with the saved one (the budget may grow)."""
        return resume_identity(self, "budget")


class RandomSearcher(Searcher):
    name = "random"

    def search(self, space: Any, objectives: Objective | Sequence[Objective], constraints: Sequence[Constraint] = (),
               *, state_path: str | Path | None = None, resume: bool = False, log: Log | None = None) -> SearchResult:
        objective, constraints, config = one_objective(objectives, self.name), list(constraints), self.config
        if config.budget > space.size():
            raise ValueError(f"random search budget {config.budget} exceeds the {space.size()} distinct "
                             f"architectures of space {space.name}; lower the budget")
        # the same early, named error as the other searchers for a limit below the space's minimum
        check_feasible(space, constraints, samples=config.feasibility_samples, seed=config.seed + 1)
        identity = {"config": config.identity(), "objective": objective.name,
                    "constraints": [c.describe() for c in constraints]}
        sign = 1.0 if objective.higher_is_better else -1.0
        rng = random.Random(config.seed)

        refuse_overwrite(state_path, resume)
        state = load_state(state_path, STATE_FORMAT, identity, "a random search") if resume else None
        if state is None:
            seen: dict[str, None] = {}
            top: list[tuple[Any, float]] = []
            history: list[dict[str, Any]] = []
        else:
            seen = dict.fromkeys(state["evaluated"])
            top = [(arch_from_dict(t["arch"]), t["score"]) for t in state["top"]]
            history = state["history"]
            rng.setstate(rng_state_from_json(state["rng_state"]))
            check_not_past(state_path, len(seen), config.budget, "evaluated architectures", "as budget")

        while len(seen) < config.budget:
            archs, rejected = _draw(space, constraints, rng, seen, min(config.batch, config.budget - len(seen)),
                                    config.max_attempts)
            values = objective(archs).tolist()
            # stable sort of old top + new: ties keep the order of evaluation
            top = sorted(top + list(zip(archs, values)), key=lambda t: -sign * t[1])[: config.top]
            entry = {"batch": len(history), "evaluated": len(seen), "best": top[0][1],
                     "mean": float(np.mean(values)), "rejected": rejected}
            history.append(entry)
            if state_path is not None:
                write_json(state_path, {"format": STATE_FORMAT, **identity, "evaluated": list(seen),
                                        "top": [{"arch": a.to_dict(), "score": s} for a, s in top],
                                        "rng_state": rng_state_to_json(rng.getstate()), "history": history})
            if log is not None:
                log(entry)

        if not top:
            raise ValueError(f"search state {state_path} has no evaluated batch; delete it and start again")
        best, best_score = top[0]
        return SearchResult(best=best, best_score=best_score, top=top, evaluated=len(seen), history=history,
                            constraint_values={c.name: c.value(best) for c in constraints})


def _draw(space: Any, constraints: list[Constraint], rng: random.Random, seen: dict[str, None], n: int,
          max_attempts: int) -> tuple[list[Any], int]:
    """The next n accepted draws of the stream (added to `seen`), and how many were rejected.
    Draws are proposed in rounds of the missing count, so each round's constraints are one
    batched call, and never more than n can be accepted: the stream is consumed exactly as a
    one-at-a-time loop would consume it."""
    archs: list[Any] = []
    rejected = in_a_row = 0
    while len(archs) < n:
        candidates = [space.sample(rng) for _ in range(n - len(archs))]
        for arch, ok in zip(candidates, feasible_mask(constraints, candidates)):
            key = arch_key(arch)
            if ok and key not in seen:
                seen[key] = None
                archs.append(arch)
                in_a_row = 0
                continue
            rejected += 1
            in_a_row += 1
            if in_a_row >= max_attempts:
                limits = ", ".join(f"{c.name} <= {c.limit:g}" for c in constraints) or "none"
                raise ValueError(f"random search: {max_attempts} draws in a row broke a constraint or repeated an "
                                 f"evaluated architecture after {len(seen)} evaluated (constraints: {limits}); "
                                 f"loosen the constraints, lower the budget or raise max_attempts")
    return archs, rejected


register_searcher("random", RandomSearcher, RandomConfig)
