"""Search spaces: the allowed values of every gene of an architecture, loaded from YAML.

    space = SearchSpace.load("hat_wmt14")          # a preset under a family's configs/spaces/
    space = SearchSpace.load("my_space.yaml")      # or any YAML file
    arch = space.sample(random.Random(0))
    child = space.crossover(space.mutate(arch, 0.3, rng), other, rng)
    x = space.encode(arch)                          # features for predictors, see feature_names()

Sampling is uniform over every gene (depth first, then each layer's genes), as HAT and RankNAS
do; it is not uniform over architectures. Mutation resamples each gene with a probability;
crossover takes each gene from one parent. Both keep per-layer genes of the layers the child
shares with its parents and handle depth changes (see `genes.py`).
"""
from __future__ import annotations

import os
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import yaml

from ..fileio import atomic_write_text
from . import genes as g
from .arch import Arch
from .genes import StackChoices


class SearchSpace(ABC):
    """Base of every family's space (`TransformerSpace`, `ViTSpace`, ...); `load`/`from_dict`
    pick the right one by the YAML's `type` key (the family's name)."""

    kind: ClassVar[str]  # the family's name: the `type` key of the YAML and of architectures
    name: str

    # ------------------------------------------------------------ loading and saving
    @classmethod
    def presets(cls) -> list[str]:
        from ..dataconf import preset_names
        return preset_names("spaces")

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> "SearchSpace":
        """A preset name (see `presets()`) or the path of a YAML file."""
        text_name = str(name_or_path)
        path = Path(name_or_path)
        if path.suffix in (".yaml", ".yml") or os.sep in text_name or path.is_file():
            if not path.is_file():
                raise ValueError(f"search space file {path} does not exist")
            text, source, default_name = path.read_text(), str(path), path.stem
        else:
            from ..dataconf import ConfigError, resolve_preset
            try:
                preset = resolve_preset(text_name, "spaces", "search space")
            except ConfigError:
                raise ValueError(f"unknown search space {text_name!r}; presets: {', '.join(cls.presets())} "
                                 f"(or give the path of a YAML file)") from None
            text, source, default_name = preset.read_text(), f"preset {text_name!r}", text_name
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"{source} is not valid YAML: {str(e).splitlines()[0]}") from None
        if isinstance(data, dict):
            data.setdefault("name", default_name)
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "search space") -> "SearchSpace":
        if not isinstance(d, dict):
            raise ValueError(f"{source} must be a mapping, got {type(d).__name__}")
        from mixnas.families import families
        types = {family.name: family.space_class for family in families()}
        kind = d.get("type")
        if kind not in types:
            raise ValueError(f"{source} needs 'type' in {sorted(types)}, got {kind!r}")
        if cls is not SearchSpace and types[kind] is not cls:
            raise ValueError(f"{source} has type {kind!r}, expected {cls.kind!r}")
        return types[kind]._parse(d, source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "search space") -> "SearchSpace":
        return cls.from_dict(yaml.safe_load(text), source=source)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_yaml())

    # ------------------------------------------------------------ the operations
    @classmethod
    @abstractmethod
    def _parse(cls, d: dict, source: str) -> "SearchSpace": ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def sample(self, rng: random.Random) -> Arch: ...

    @abstractmethod
    def mutate(self, arch: Arch, prob: float, rng: random.Random) -> Arch:
        """Each gene is resampled (uniformly, possibly to the same value) with probability `prob`."""

    @abstractmethod
    def crossover(self, a: Arch, b: Arch, rng: random.Random, prob: float = 0.5) -> Arch:
        """Uniform crossover: each gene is taken from `b` with probability `prob`, else from `a`."""

    @abstractmethod
    def validate(self, arch: Arch) -> None:
        """Raise ValueError naming the first gene (path), its value and the allowed values."""

    @abstractmethod
    def size(self) -> int:
        """The exact number of distinct architectures."""

    @abstractmethod
    def largest(self) -> Arch: ...

    @abstractmethod
    def smallest(self) -> Arch: ...

    @abstractmethod
    def feature_names(self) -> list[str]: ...

    @abstractmethod
    def _features(self, arch: Arch) -> list[float]: ...

    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length float vector (see `feature_names`): numeric genes scaled to [0, 1] by
        their choice range, depths likewise, one slot per layer up to the maximum depth with a
        presence flag (absent layers are all zeros), attention kinds one-hot."""
        self.validate(arch)
        return np.asarray(self._features(arch), dtype=np.float64)

    @property
    @abstractmethod
    def attention_kinds(self) -> tuple[str, ...]:
        """Every attention kind some gene of the space can take, in order of first appearance."""


def _check_prob(prob: float, what: str) -> None:
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"{what} probability must be in [0, 1], got {prob}")


def _unique(*groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for group in groups for k in group))


# ================================================================ one stack of layers (ViT, LM)
@dataclass(frozen=True)
class StackSpace(StackChoices, SearchSpace):
    """A space of one layer stack: the stack choices (embed_dim, layers, ffn_dim, heads,
    attention) plus a fixed `head_dim` (a layer's qkv width is heads * head_dim). A subclass
    names its `kind` and its architecture classes (fields embed_dim, layers, head_dim)."""

    head_dim: int = 64
    name: str = "custom"

    arch_class: ClassVar[type]
    layer_class: ClassVar[type]

    @classmethod
    def _parse(cls, d: dict, source: str) -> "StackSpace":
        stack_keys = [f.name for f in fields(StackChoices)]
        g.check_keys(d, ["type", "name", "head_dim", *stack_keys], source)
        stack = g.parse_choices(StackChoices, {k: v for k, v in d.items() if k in stack_keys}, source)
        name = d.get("name", "custom")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}.name must be a non-empty string, got {name!r}")
        return cls(**stack, head_dim=g.positive_int(d, "head_dim", source), name=name)

    def to_dict(self) -> dict[str, Any]:
        stack = {f.name: list(getattr(self, f.name)) for f in fields(StackChoices)}
        return {"type": self.kind, "name": self.name, "head_dim": self.head_dim, **stack}

    def _genes(self) -> g.Genes:
        return self.layer_genes(self.layer_class)

    def _arch(self, embed: int, layers: tuple):
        return self.arch_class(embed_dim=embed, layers=layers, head_dim=self.head_dim)

    def sample(self, rng: random.Random):
        embed = rng.choice(self.embed_dim)
        return self._arch(embed, g.sample_layers(self.layer_class, self._genes(), self.layers, rng))

    def mutate(self, arch, prob: float, rng: random.Random):
        _check_prob(prob, "mutation")
        self.validate(arch)
        embed = g.mutate_gene(arch.embed_dim, self.embed_dim, prob, rng)
        return self._arch(embed, g.mutate_layers(arch.layers, self.layer_class, self._genes(), self.layers, prob, rng))

    def crossover(self, a, b, rng: random.Random, prob: float = 0.5):
        _check_prob(prob, "crossover")
        self.validate(a)
        self.validate(b)
        embed = g.inherit_gene(a.embed_dim, b.embed_dim, self.embed_dim, prob, rng)
        return self._arch(embed, g.crossover_layers(a.layers, b.layers, self.layer_class, self._genes(), self.layers, prob, rng))

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, self.arch_class):
            raise ValueError(f"search space {self.name!r} holds {self.kind} architectures, got {type(arch).__name__}")
        g.check_gene("embed_dim", arch.embed_dim, self.embed_dim, self.name)
        g.check_gene("head_dim", arch.head_dim, (self.head_dim,), self.name)
        g.check_layers(arch.layers, self.layer_class, self._genes(), self.layers, "layers", self.name)

    def size(self) -> int:
        per_layer = g.count_layer(self._genes())
        return len(self.embed_dim) * sum(per_layer ** d for d in self.layers)

    def largest(self):
        """Max of every width and depth; the first listed attention kind."""
        return self._arch(max(self.embed_dim), g.extreme_layers(self.layer_class, self._genes(), self.max_layers, max))

    def smallest(self):
        return self._arch(min(self.embed_dim), g.extreme_layers(self.layer_class, self._genes(), min(self.layers), min))

    def feature_names(self) -> list[str]:
        return ["embed_dim", "layers"] + g.layer_feature_names("layer", self._genes(), self.max_layers)

    def _features(self, arch) -> list[float]:
        return ([g.normalise(arch.embed_dim, self.embed_dim), g.normalise(len(arch.layers), self.layers)]
                + g.layer_features(arch.layers, self._genes(), self.max_layers))

    @property
    def attention_kinds(self) -> tuple[str, ...]:
        return _unique(self.attention)
