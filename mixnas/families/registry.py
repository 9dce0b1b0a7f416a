"""The registry of model families: `register(family)` in a family package's `__init__.py`.

The built-in families are the sub-packages of `mixnas.families`; they are imported on the
first lookup, so adding a family folder needs no edit anywhere else.

A task variant (`Family.variant`, e.g. MQAR on the language models) shares its base's name
and models: `family_named` and `family_of` give the base (one model family per name), only
`family_for_task` gives the variant; `families()` lists both (their presets, their tasks).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .family import Family

_FAMILIES: list[Family] = []   # in registration order; bases and variants
_loaded = False


def register(family: Family) -> Family:
    """Add `family`; its task must be new, and so must its name unless it is a task variant
    (`variant = True`) of the registered base family of that name, i.e. subclasses it."""
    for other in _FAMILIES:
        if other.name == family.name or other.task == family.task:
            if type(other) is type(family):
                return other  # the same family imported twice (e.g. reloaded module)
            if other.task != family.task and family.variant:
                continue  # another task of the same models; its base is checked below
            raise ValueError(f"family {family.name!r} (task {family.task!r}) clashes with {other!r}")
    if family.variant and not any(not f.variant and f.name == family.name and isinstance(family, type(f))
                                  for f in _FAMILIES):
        raise ValueError(f"{family!r} is a task variant but no family {family.name!r} of its base class is "
                         f"registered; register the base first")
    _FAMILIES.append(family)
    return family


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import mixnas.families as package
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg:
            importlib.import_module(f"{package.__name__}.{info.name}")


def families() -> list[Family]:
    """Every registered family, task variants included."""
    _load_builtins()
    return list(_FAMILIES)


def _bases() -> dict[str, Family]:
    return {f.name: f for f in families() if not f.variant}


def family_named(name: Any) -> Family:
    """The family whose architectures and spaces have `type: name` (a base, never a variant)."""
    bases = _bases()
    if name not in bases:
        raise ValueError(f"unknown model type {name!r}; registered: {', '.join(sorted(bases))}")
    return bases[name]


def family_for_task(task: Any) -> Family:
    """The family of a config's `task:` value (a variant for its own task)."""
    for family in families():
        if family.task == task:
            return family
    tasks = ", ".join(sorted(f.task for f in _FAMILIES))
    raise ValueError(f"task: {task!r} is not a registered task; choose one of {tasks}")


def family_of(obj: Any) -> Family:
    """The (base) family of an architecture, a search space or a model (by its `arch`)."""
    bases = _bases()
    for family in bases.values():
        if isinstance(obj, (family.arch_class, family.space_class)):
            return family
    arch = getattr(obj, "arch", None)
    if arch is not None and not isinstance(arch, type(obj)):
        return family_of(arch)
    raise ValueError(f"{type(obj).__name__} belongs to no registered model family ({', '.join(sorted(bases))})")
