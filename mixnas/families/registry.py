"""The registry of model families: `register(family)` in a family package's `__init__.py`.

The built-in families are the sub-packages of `mixnas.families`; they are imported on the
first lookup, so adding a family folder needs no edit anywhere else.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from .family import Family

_FAMILIES: dict[str, Family] = {}
_loaded = False


def register(family: Family) -> Family:
    """Add `family`; its name (arch/space `type`) and task name must be new."""
    for other in _FAMILIES.values():
        if other.name == family.name or other.task == family.task:
            if type(other) is type(family):
                return other  # the same family imported twice (e.g. reloaded module)
            raise ValueError(f"family {family.name!r} (task {family.task!r}) clashes with {other!r}")
    _FAMILIES[family.name] = family
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
    _load_builtins()
    return list(_FAMILIES.values())


def family_named(name: Any) -> Family:
    """The family whose architectures and spaces have `type: name`."""
    _load_builtins()
    if name not in _FAMILIES:
        raise ValueError(f"unknown model type {name!r}; registered: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def family_for_task(task: Any) -> Family:
    """The family of a config's `task:` value."""
    for family in families():
        if family.task == task:
            return family
    tasks = ", ".join(sorted(f.task for f in _FAMILIES.values()))
    raise ValueError(f"task: {task!r} is not a registered task; choose one of {tasks}")


def family_of(obj: Any) -> Family:
    """The family of an architecture, a search space or a model (by its `arch`)."""
    for family in families():
        if isinstance(obj, (family.arch_class, family.space_class)):
            return family
    arch = getattr(obj, "arch", None)
    if arch is not None and not isinstance(arch, type(obj)):
        return family_of(arch)
    raise ValueError(f"{type(obj).__name__} belongs to no registered model family "
                     f"({', '.join(sorted(_FAMILIES))})")
