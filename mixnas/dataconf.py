"""Typed configs: build (nested) dataclasses from YAML dicts with validation, and apply
`key=value` overrides from the command line.

Errors name the dotted path of the bad key, the value, and what was expected, e.g.
"train.lr: expected a number, got 'fast'" or "train: unknown key 'lrr' (valid: lr, warmup, ...)".
"""
from __future__ import annotations

import dataclasses
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value the user can fix; one line."""


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, recursively, checking keys and value types."""
    where = path or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (valid: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        key_path = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key_path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key_path}: required key is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        check()
    return obj


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        out = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {value!r}")
        return value
    return value


def to_dict(obj: Any) -> Any:
    """A dataclass (tree) as plain YAML-able data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


@dataclasses.dataclass
class ModelSection:
    """The `model` section of experiment and pipeline configs. `config` holds fields of the
    family's model config (the task completes it from the data: vocabulary, image size...)."""

    arch: str | None = None  # experiments: an arch preset or arch.yaml path; pipelines: none (the search picks)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`a.b.c=value` sets data["a"]["b"]["c"]; the value is parsed as YAML (1e-3, true, [1, 2])."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. train.lr=0.001)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = nxt
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return data


PRESET_KINDS = ("archs", "spaces", "experiments", "pipelines")


def preset_dirs(kind: str) -> list[Path]:
    """Where presets of `kind` live: mixnas/configs/<kind>/ (if present) and every model family's
    configs/<kind>/ (a family keeps its presets in its own folder)."""
    if kind not in PRESET_KINDS:
        raise ValueError(f"preset kind must be one of {PRESET_KINDS}, got {kind!r}")
    from mixnas.families import families
    root = Path(__file__).resolve().parent
    dirs = [root / "configs" / kind]
    for family in families():
        dirs.append(Path(sys.modules[type(family).__module__].__file__).resolve().parent / "configs" / kind)
    return [d for d in dirs if d.is_dir()]


def preset_names(kind: str) -> list[str]:
    return sorted(p.stem for d in preset_dirs(kind) for p in d.glob("*.yaml"))


def resolve_preset(path_or_name: str, kind: str, what: str) -> Path:
    """A YAML path as given, else the preset NAME of `kind` (see preset_dirs); the error lists
    the presets. The one resolver of every preset: archs, spaces, experiments and pipelines."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    found = [d / f"{path_or_name}.yaml" for d in preset_dirs(kind)] if not path.suffix and path.name == str(path_or_name) else []
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        raise ConfigError(f"{what} {path_or_name!r} is defined twice: {', '.join(map(str, found))}; rename one")
    if found:
        return found[0]
    raise ConfigError(f"no {what} {path_or_name!r}: give a YAML path or one of {', '.join(preset_names(kind))}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping at the top level")
    return data
