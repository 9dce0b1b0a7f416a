"""Architectures as typed objects: what a sub-network of a supernet is.

Depth is the length of a per-layer list, so there are no hand-counted gene indices. Every
architecture serialises to a plain dict / YAML and back; `from_dict` checks structure and
types (the search space checks that values are allowed choices).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from ..dataconf import ConfigError, from_dict, load_yaml

T = TypeVar("T")


@dataclass(frozen=True)
class StackLayerArch:
    """One layer of a single-stack model (ViT, decoder-only LM)."""

    ffn_dim: int
    heads: int
    attention: str  # a registered attention kind


@dataclass(frozen=True)
class StackArch:
    """A model of one layer stack: embedding width, per-layer genes, qkv width of a layer =
    heads * head_dim. A subclass sets `type_name` (its family's name) and types `layers`."""

    embed_dim: int
    layers: tuple[StackLayerArch, ...]
    head_dim: int = 64

    type_name: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type_name, **_plain(asdict(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return from_dict(cls, _without_type(d, cls.type_name), "architecture")

    def validate(self) -> None:
        _non_empty(self, "layers")


Arch = Any  # an architecture of any registered model family (mixnas.families)


def arch_from_dict(d: dict[str, Any]) -> Arch:
    """The architecture of the family named by d["type"] (transformer, vit, ...)."""
    from mixnas.families import families
    types = {family.name: family.arch_class for family in families()}
    if not isinstance(d, dict) or d.get("type") not in types:
        raise ValueError(f"architecture needs 'type' in {sorted(types)}, got {d.get('type') if isinstance(d, dict) else d!r}")
    return types[d["type"]].from_dict(d)


def arch_to_yaml(arch: Arch) -> str:
    return yaml.safe_dump(arch.to_dict(), sort_keys=False)


def arch_from_yaml(text: str) -> Arch:
    return arch_from_dict(yaml.safe_load(text))


def save_arch(arch: Arch, path: str | Path) -> None:
    from ..fileio import atomic_write_text
    atomic_write_text(path, arch_to_yaml(arch))


def load_arch(path: str | Path) -> Arch:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"architecture file {p} does not exist")
    return arch_from_dict(load_yaml(p))


# ---------------------------------------------------------------- structural checks
def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _without_type(d: Any, expected: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"architecture must be a mapping, got {type(d).__name__}")
    if d.get("type", expected) != expected:
        raise ValueError(f"architecture type is {d['type']!r}, expected {expected!r}")
    return {k: v for k, v in d.items() if k != "type"}


def _non_empty(arch: Any, *stacks: str) -> None:
    for name in stacks:
        if not getattr(arch, name):
            raise ConfigError(f"architecture.{name}: expected a non-empty list of layers")


def _build(cls: type[T], d: Any, where: str) -> T:
    """A layer dataclass from a mapping, by the one typed loader (errors name `where`.key)."""
    return from_dict(cls, d, where)
