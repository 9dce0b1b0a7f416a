"""The registry of predictor kinds: name -> Predictor class. Adding a kind is one module that
defines the class (with its typed `Options`) and ends with `register(name, cls)`, plus its
import in `predictors/__init__.py`."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from ..dataconf import ConfigError, from_dict
from .base import META_FILE, REFIT, Predictor, option_defaults, option_problem, read_description

_REGISTRY: dict[str, type[Predictor]] = {}


def register(name: str, cls: type[Predictor] | None = None) -> Any:
    """Register `cls` as kind `name` (sets `cls.kind`); without `cls`, a class decorator."""
    if cls is None:
        return lambda c: register(name, c)
    if name in _REGISTRY:
        raise ValueError(f"predictor kind {name!r} is already registered")
    if not (isinstance(cls, type) and issubclass(cls, Predictor)):
        raise TypeError(f"predictor kind {name!r} must be a Predictor subclass, got {cls!r}")
    cls.kind = name
    _REGISTRY[name] = cls
    return cls


def predictor_kinds() -> list[str]:
    return sorted(_REGISTRY)


def get_predictor_class(name: str) -> type[Predictor]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown predictor kind {name!r}; registered kinds: {', '.join(predictor_kinds())}") from None


def predictor_options(name: str, values: dict[str, Any] | None, where: str) -> Any:
    """Kind `name`'s typed Options from a mapping (YAML): an unknown key, a wrong type or a
    negative count is a one-line ConfigError naming the dotted path under `where`."""
    cls = get_predictor_class(name)
    defaults = option_defaults(cls)
    unknown = sorted(set(values) - set(defaults)) if isinstance(values, dict) else []
    if unknown:  # named by its own dotted path (from_dict names only the section)
        raise ConfigError(f"{where}.{unknown[0]}: predictor kind {name!r} has no such option "
                          f"(valid: {', '.join(defaults) or 'none'})")
    options = from_dict(cls.Options, values, where)
    for key, default in defaults.items():
        expected = option_problem(default, getattr(options, key))
        if expected is not None:
            raise ConfigError(f"{where}.{key} must be {expected}, got {getattr(options, key)!r}")
    return options


def build_predictor(name: str, options: dict[str, Any] | None = None, *, feature_names: Sequence[str],
                    seed: int = 0, where: str | None = None) -> Predictor:
    """An unfitted predictor of kind `name` with `options` (a mapping of its Options fields;
    missing ones at their defaults), checked as `predictor_options` does."""
    typed = predictor_options(name, options, where or f"{name} predictor options")
    return _REGISTRY[name](feature_names, seed=seed, **dataclasses.asdict(typed))


def load_predictor(directory: str | Path) -> Predictor:
    """Load a predictor saved with `save`, whatever its registered kind (no pickle, no code execution)."""
    kind = read_description(directory)["kind"]
    if kind not in _REGISTRY:
        raise ValueError(f"{Path(directory) / META_FILE} names predictor kind {kind!r}, which is not registered "
                         f"(registered kinds: {', '.join(predictor_kinds())}); {REFIT}")
    return _REGISTRY[kind].load(directory)

