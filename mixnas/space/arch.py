"""Architectures as typed objects: what a sub-network of a supernet is.

Depth is the length of a per-layer list, so there are no hand-counted gene indices. Every
architecture serialises to a plain dict / YAML and back; `from_dict` checks structure and
types (the search space checks that values are allowed choices).
"""
from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..dataconf import load_yaml

T = TypeVar("T")


@dataclass(frozen=True)
class EncoderLayerArch:
    ffn_dim: int
    heads: int
    attention: str  # a registered attention kind, e.g. "softmax" or "cosformer"


@dataclass(frozen=True)
class DecoderLayerArch:
    ffn_dim: int
    heads: int  # self-attention heads
    attention: str  # self-attention kind (causal)
    cross_heads: int  # encoder-decoder attention heads
    cross_attention: str  # encoder-decoder attention kind
    # Arbitrary encoder-decoder attention (HAT): attend to the concatenated outputs of the
    # last `cross_layers` encoder layers. HAT's gene values -1, 1, 2 are cross_layers 1, 2, 3.
    cross_layers: int = 1


@dataclass(frozen=True)
class TransformerArch:
    """Encoder-decoder Transformer (translation)."""

    encoder_embed_dim: int
    decoder_embed_dim: int
    encoder_layers: tuple[EncoderLayerArch, ...]
    decoder_layers: tuple[DecoderLayerArch, ...]
    qkv_dim: int = 512  # width of q/k/v projections; head size = qkv_dim // heads

    def to_dict(self) -> dict[str, Any]:
        return {"type": "transformer", **_plain(asdict(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TransformerArch":
        d = _without_type(d, "transformer")
        return cls(
            encoder_embed_dim=_int(d, "encoder_embed_dim"),
            decoder_embed_dim=_int(d, "decoder_embed_dim"),
            encoder_layers=tuple(_build(EncoderLayerArch, x, f"encoder_layers[{i}]")
                                 for i, x in enumerate(_list(d, "encoder_layers"))),
            decoder_layers=tuple(_build(DecoderLayerArch, x, f"decoder_layers[{i}]")
                                 for i, x in enumerate(_list(d, "decoder_layers"))),
            qkv_dim=_int(d, "qkv_dim", 512),
        )


@dataclass(frozen=True)
class ViTLayerArch:
    ffn_dim: int
    heads: int
    attention: str


@dataclass(frozen=True)
class ViTArch:
    """Vision Transformer (classification). qkv width of a layer = heads * head_dim."""

    embed_dim: int
    layers: tuple[ViTLayerArch, ...]
    head_dim: int = 64

    def to_dict(self) -> dict[str, Any]:
        return {"type": "vit", **_plain(asdict(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTArch":
        d = _without_type(d, "vit")
        return cls(embed_dim=_int(d, "embed_dim"),
                   layers=tuple(_build(ViTLayerArch, x, f"layers[{i}]") for i, x in enumerate(_list(d, "layers"))),
                   head_dim=_int(d, "head_dim", 64))


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


def _int(d: dict[str, Any], key: str, default: int | None = None) -> int:
    if key not in d:
        if default is None:
            raise ValueError(f"architecture is missing {key!r}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"architecture field {key!r} must be an integer, got {v!r}")
    return v


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key)
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError(f"architecture field {key!r} must be a non-empty list of layers")
    return list(v)


def _build(cls: type[T], d: Any, where: str) -> T:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a mapping, got {d!r}")
    names = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {sorted(unknown)}; expected {sorted(names)}")
    kwargs = {}
    for name, f in names.items():
        if name not in d:
            if f.default is not MISSING:  # optional field: keep the dataclass default
                continue
            raise ValueError(f"{where} is missing {name!r}")
        value = d[name]
        want = str if f.type == "str" else int
        if not isinstance(value, want) or isinstance(value, bool):
            raise ValueError(f"{where}.{name} must be {want.__name__}, got {value!r}")
        kwargs[name] = value
    return cls(**kwargs)
