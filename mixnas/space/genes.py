"""Gene choices of one layer stack, and the gene-wise operations every search space shares.

A stack (encoder, decoder, or the body of a ViT) has an embedding width, a depth, and per layer
the genes named by the fields of its layer dataclass (`EncoderLayerArch`, `DecoderLayerArch`,
`ViTLayerArch`). A choices object holds one tuple of allowed values per gene under the same
name, so every operation below walks the layer dataclass's fields instead of a hand-kept list.

Depth: an architecture of depth d has d layer objects. When mutation or crossover makes a
stack deeper, the new layers get freshly sampled genes (mutation) or are copied from the
parent that has them (crossover).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, Callable, TypeVar

L = TypeVar("L")
Genes = dict[str, tuple]  # gene name -> allowed values, in the order the space lists them
KIND_GENES = ("attention", "cross_attention")  # genes whose values are attention kinds; the rest are integers


@dataclass(frozen=True)
class StackChoices:
    """Allowed values of the genes of one layer stack. Numbers are widths/counts; attention
    kinds are names of registered kinds, and their order matters: the first is the one the
    sandwich rule's largest and smallest sub-networks use."""

    embed_dim: tuple[int, ...]
    layers: tuple[int, ...]  # depth choices
    ffn_dim: tuple[int, ...]
    heads: tuple[int, ...]
    attention: tuple[str, ...]

    @property
    def max_embed_dim(self) -> int:
        return max(self.embed_dim)

    @property
    def max_layers(self) -> int:
        return max(self.layers)

    @property
    def max_ffn_dim(self) -> int:
        return max(self.ffn_dim)

    @property
    def max_heads(self) -> int:
        return max(self.heads)

    def check(self, where: str) -> None:
        """Every gene lists distinct, allowed values (called by parse_choices with the YAML path)."""
        for f in fields(self):
            _check_choices(f.name, getattr(self, f.name), f"{where}.{f.name}")

    def layer_genes(self, layer_cls: type) -> Genes:
        """Gene name -> choices for the fields of `layer_cls` (one layer of this stack)."""
        return {f.name: getattr(self, f.name) for f in fields(layer_cls)}


def is_kind_gene(choices: tuple) -> bool:
    return isinstance(choices[0], str)


# ---------------------------------------------------------------- parsing choices from YAML
def parse_choices(cls: type[StackChoices], d: Any, where: str, *, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Read the fields of `cls` (except `skip`) from mapping `d` as tuples of allowed values,
    by the one typed loader (mixnas.dataconf.from_dict: unknown and missing keys, item types).
    A scalar means a fixed gene. `StackChoices.validate` then refuses empty lists, duplicates,
    non-positive numbers and unregistered attention kinds; errors name `where` and the key."""
    from mixnas.dataconf import from_dict
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a mapping of gene -> list of choices, got {d!r}")
    listed = {k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in d.items()}
    choices = from_dict(cls, listed, where)
    choices.check(where)
    return {f.name: getattr(choices, f.name) for f in fields(cls) if f.name not in skip}


def _check_choices(name: str, values: tuple, where: str) -> None:
    if not values:
        raise ValueError(f"{where} must list at least one choice")
    dupes = sorted({repr(v) for v in values if values.count(v) > 1})
    if dupes:
        raise ValueError(f"{where} lists {', '.join(dupes)} more than once")
    if name in KIND_GENES:
        from mixnas.attention import kinds  # importing the package registers the built-in kinds
        registered = kinds()
        for v in values:
            if v not in registered:
                raise ValueError(f"{where}: unknown attention kind {v!r}; registered kinds: {', '.join(registered)}")
    else:
        for v in values:
            if v < 1:
                raise ValueError(f"{where} choices must be positive integers, got {v!r}")


def positive_int(d: dict, key: str, where: str) -> int:
    if key not in d:
        raise ValueError(f"{where} is missing {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{where}.{key} must be a positive integer, got {v!r}")
    return v


def check_keys(d: Any, allowed: list[str], where: str) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; allowed keys: {allowed}")
    return d


# ---------------------------------------------------------------- validation
def check_gene(path: str, value: Any, allowed: tuple, space: str, note: str = "") -> None:
    if value not in allowed or type(value) is not type(allowed[0]):
        raise ValueError(f"{path}={value!r} is not in search space {space!r}{note}; "
                         f"allowed values: {list(allowed)}")


def check_layers(layers: tuple, layer_cls: type, genes: Genes, depths: tuple[int, ...], path: str,
                 space: str, notes: dict[str, str] | None = None) -> None:
    check_gene(f"len({path})", len(layers), depths, space)
    for i, layer in enumerate(layers):
        if not isinstance(layer, layer_cls):
            raise ValueError(f"{path}[{i}] must be a {layer_cls.__name__}, got {type(layer).__name__}")
        for name, allowed in genes.items():
            check_gene(f"{path}[{i}].{name}", getattr(layer, name), allowed, space, (notes or {}).get(name, ""))


# ---------------------------------------------------------------- sampling, mutation, crossover
def sample_layers(layer_cls: type[L], genes: Genes, depths: tuple[int, ...], rng: random.Random) -> tuple[L, ...]:
    return tuple(sample_layer(layer_cls, genes, rng) for _ in range(rng.choice(depths)))


def sample_layer(layer_cls: type[L], genes: Genes, rng: random.Random) -> L:
    return layer_cls(**{name: rng.choice(allowed) for name, allowed in genes.items()})


def mutate_gene(value: Any, allowed: tuple, prob: float, rng: random.Random) -> Any:
    """Resample with probability `prob` (uniform over all choices, as HAT does: the new value
    may equal the old). A value that is no longer allowed (cross_layers after the encoder got
    shallower) is resampled regardless."""
    if rng.random() < prob or value not in allowed:
        return rng.choice(allowed)
    return value


def mutate_layers(layers: tuple[L, ...], layer_cls: type[L], genes: Genes, depths: tuple[int, ...],
                  prob: float, rng: random.Random) -> tuple[L, ...]:
    depth = mutate_gene(len(layers), depths, prob, rng)
    kept = tuple(layer_cls(**{n: mutate_gene(getattr(layer, n), allowed, prob, rng) for n, allowed in genes.items()})
                 for layer in layers[:depth])
    return kept + tuple(sample_layer(layer_cls, genes, rng) for _ in range(depth - len(kept)))


def inherit_gene(a: Any, b: Any, allowed: tuple, prob: float, rng: random.Random) -> Any:
    """`b`'s value with probability `prob`, else `a`'s. If that value is not allowed in the child
    (only possible for cross_layers above a shallower encoder), the other parent's value is
    used when allowed, else the largest allowed value."""
    value, other = (b, a) if rng.random() < prob else (a, b)
    if value in allowed:
        return value
    return other if other in allowed else max(allowed)


def crossover_layers(a: tuple[L, ...], b: tuple[L, ...], layer_cls: type[L], genes: Genes,
                     depths: tuple[int, ...], prob: float, rng: random.Random) -> tuple[L, ...]:
    """Uniform gene-wise crossover; a layer only one parent has is copied from that parent."""
    depth = inherit_gene(len(a), len(b), depths, prob, rng)
    child = []
    for i in range(depth):
        pa = a[i] if i < len(a) else b[i]
        pb = b[i] if i < len(b) else a[i]
        child.append(layer_cls(**{n: inherit_gene(getattr(pa, n), getattr(pb, n), allowed, prob, rng)
                                  for n, allowed in genes.items()}))
    return tuple(child)


def extreme_layers(layer_cls: type[L], genes: Genes, depth: int, pick: Callable[[tuple], Any]) -> tuple[L, ...]:
    """`depth` identical layers with `pick` (max or min) of every numeric gene and the first
    listed attention kind."""
    layer = layer_cls(**{n: allowed[0] if is_kind_gene(allowed) else pick(allowed) for n, allowed in genes.items()})
    return (layer,) * depth


# ---------------------------------------------------------------- counting and encoding
def count_layer(genes: Genes) -> int:
    n = 1
    for allowed in genes.values():
        n *= len(allowed)
    return n


def normalise(value: int, allowed: tuple[int, ...]) -> float:
    """Map a numeric gene to [0, 1] by its choice range (0 for a fixed gene)."""
    lo, hi = min(allowed), max(allowed)
    return 0.0 if hi == lo else (value - lo) / (hi - lo)


def layer_feature_names(prefix: str, genes: Genes, max_depth: int) -> list[str]:
    names = []
    for i in range(max_depth):
        names.append(f"{prefix}.{i}.present")
        for gene, allowed in genes.items():
            if is_kind_gene(allowed):
                names += [f"{prefix}.{i}.{gene}={kind}" for kind in allowed]
            else:
                names.append(f"{prefix}.{i}.{gene}")
    return names


def layer_features(layers: tuple, genes: Genes, max_depth: int) -> list[float]:
    """Per layer slot: presence, numeric genes normalised, attention kinds one-hot; all zeros
    for the slots beyond this architecture's depth."""
    values: list[float] = []
    width = 1 + sum(len(a) if is_kind_gene(a) else 1 for a in genes.values())
    for layer in layers:
        values.append(1.0)
        for gene, allowed in genes.items():
            value = getattr(layer, gene)
            if is_kind_gene(allowed):
                values += [float(value == kind) for kind in allowed]
            else:
                values.append(normalise(value, allowed))
    return values + [0.0] * (width * (max_depth - len(layers)))
