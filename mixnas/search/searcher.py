"""One interface for every search algorithm, and the registry of them (like attention kinds).

A searcher maximises (or minimises, per `Objective.higher_is_better`) one objective, or finds
the Pareto front of several, over a search space, under upper-limit constraints:

    searcher = build_searcher("random", {"budget": 500}, seed=1)
    result = searcher.search(space, objective, constraints, state_path="random.state.json", resume=True)

Every searcher returns the same `SearchResult` and saves its state atomically as JSON after
every generation (or batch), so `resume=True` continues an interrupted run to exactly the
result of an uninterrupted one. Adding a searcher is one class (subclass `Searcher`, implement
`search`), a frozen config dataclass with a `seed` field, and one
`register_searcher(name, searcher_class, config_class)` in a module imported by
`mixnas/search/__init__.py`. Built in: `evolution`, `nsga2`, `random`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..dataconf import from_dict
from ..fileio import read_json
from .objectives import Constraint, Objective

Log = Callable[[dict[str, Any]], None]


@dataclass
class SearchResult:
    """What every searcher returns.

    `top` is best first, each with its objective value (the first objective's for a
    multi-objective search); `evaluated` counts the DISTINCT architectures whose objective was
    computed (an architecture scored twice counts once); `history` has one entry per
    generation or batch; `front` is the Pareto front [(arch, {objective name: value})] of a
    multi-objective search, empty otherwise; `constraint_values` are those of `best`."""

    best: Any  # Arch
    best_score: float
    top: list[tuple[Any, float]]
    evaluated: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    front: list[tuple[Any, dict[str, float]]] = field(default_factory=list)
    constraint_values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"best": self.best.to_dict(), "best_score": self.best_score,
                "top": [{"arch": a.to_dict(), "score": s} for a, s in self.top], "evaluated": self.evaluated,
                "constraint_values": self.constraint_values, "history": self.history,
                "front": [{"arch": a.to_dict(), "values": v} for a, v in self.front]}


class Searcher:
    """Base class: `config` is the searcher's config dataclass (seed included)."""

    name: str = "searcher"

    def __init__(self, config: Any):
        self.config = config

    def search(self, space: Any, objectives: Objective | Sequence[Objective], constraints: Sequence[Constraint] = (),
               *, state_path: str | Path | None = None, resume: bool = False, log: Log | None = None) -> SearchResult:
        raise NotImplementedError


@dataclass(frozen=True)
class SearcherSpec:
    name: str
    searcher: type[Searcher]
    config: type  # a dataclass with a `seed` field


_REGISTRY: dict[str, SearcherSpec] = {}


def register_searcher(name: str, searcher_class: type[Searcher], config_class: type) -> SearcherSpec:
    """Add a searcher under `name`, configured by `config_class` (a dataclass with a seed field)."""
    if name in _REGISTRY:
        raise ValueError(f"searcher {name!r} is already registered")
    if not dataclasses.is_dataclass(config_class) or "seed" not in {f.name for f in dataclasses.fields(config_class)}:
        raise ValueError(f"searcher {name!r}: its config class must be a dataclass with a 'seed' field")
    spec = SearcherSpec(name, searcher_class, config_class)
    _REGISTRY[name] = spec
    return spec


def get_searcher(name: str) -> SearcherSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown searcher {name!r}; registered searchers: {', '.join(searchers())}") from None


def searchers() -> list[str]:
    """The registered searchers' names."""
    return sorted(_REGISTRY)


def build_searcher(name: str, config: Any = None, seed: int = 0) -> Searcher:
    """The searcher `name` with `config` (its config dataclass, or a mapping of its fields
    checked like a YAML section: unknown keys and wrong types are one-line errors); `seed`
    always replaces the config's seed, so one run seed drives every searcher."""
    spec = get_searcher(name)
    if config is None or isinstance(config, dict):
        config = from_dict(spec.config, {**(config or {}), "seed": seed}, path=name)
    elif isinstance(config, spec.config):
        config = dataclasses.replace(config, seed=seed)
    else:
        raise TypeError(f"searcher {name!r} takes a {spec.config.__name__} or a dict, got {type(config).__name__}")
    return spec.searcher(config)


# ---------------------------------------------------------------- shared helpers
def one_objective(objectives: Objective | Sequence[Objective], searcher: str) -> Objective:
    """The single objective of a single-objective searcher (given alone or as a 1-list)."""
    if isinstance(objectives, Objective):
        return objectives
    objectives = list(objectives)
    if len(objectives) != 1:
        raise ValueError(f"the {searcher} search optimises one objective, got {len(objectives)}; "
                         f"use nsga2 for a Pareto front")
    return objectives[0]


def arch_key(arch: Any) -> str:
    """A short stable digest of an architecture: what the state files store to remember which
    architectures were evaluated (thousands of full architectures would bloat every write)."""
    text = json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def rng_state_to_json(state: tuple) -> list:
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


def rng_state_from_json(data: list) -> tuple:
    version, internal, gauss_next = data
    return version, tuple(internal), gauss_next


def refuse_overwrite(path: str | Path | None, resume: bool) -> None:
    if path is not None and not resume and Path(path).exists():
        raise ValueError(f"search state {path} already exists; pass resume=True to continue it or delete it")


def load_state(path: str | Path | None, fmt: str, identity: dict[str, Any], what: str) -> dict[str, Any] | None:
    """The saved state, or None when there is none yet (resume of a run that never started).
    A state of another format or made with other settings is refused, naming the difference."""
    if path is None:
        raise ValueError("resume=True needs a state_path")
    if not Path(path).exists():
        return None
    state = read_json(path, "search state")
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise ValueError(f"{path} is not {what} state ({fmt}); delete it or choose another path")
    for key, want in identity.items():
        if state.get(key) != want:
            raise ValueError(f"cannot resume {path}: its {key} is {state.get(key)} but this run has {want}; "
                             f"use the same settings or a new state path")
    return state


def check_not_past(state_path: Any, done: int, wanted: int, unit: str, knob: str) -> None:
    """A finished state may be extended, never shortened (its result already includes more)."""
    if done > wanted:
        raise ValueError(f"search state {state_path} already has {done} {unit}, more than the {wanted} asked for; "
                         f"ask for at least {done} {knob} or use a new state path")


def resume_identity(config: Any, growable: str) -> dict[str, Any]:
    """A searcher config's settings that a resumed run must share with the saved state: all of
    them but `growable` (generations or budget), which a resumed run may raise."""
    from dataclasses import asdict
    values = asdict(config)
    values.pop(growable)
    return values
