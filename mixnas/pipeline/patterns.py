"""Fixed hybrid patterns at equal size: the searched architecture with softmax placed by a rule.

Hybrid language models place their softmax layers by hand (MiniMax-01: one in eight; others
every k-th layer, or first and last only). To show what the search adds over such rules, the
report can retrain the mixed search's best architecture with its attention kinds re-set by a
pattern, keeping every width and the depth: rows that differ from `searched-mixed` only in
where softmax goes (`retrain.fixed_patterns`, rows named `fixed-<pattern>`).

    all-<kind>   every attention module is <kind>
    1in<k>       `retrain.fixed_main` (default softmax) in layers k, 2k, 3k, ... of each layer
                 stack (counting from 1), `retrain.fixed_other` (default linear) elsewhere
    first-last   the main kind in the first and the last layer of each stack, the other elsewhere

"softmax" below is the main kind: a space whose full-attention layers are relative-position
softmax (`relative`) places that kind instead (fixed_main: relative).

A layer with several attention modules (a decoder layer's self- and cross-attention) gets the
pattern's kind in all of them.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..space.genes import KIND_GENES

_ONE_IN = re.compile(r"^1in([1-9][0-9]*)$")


def check_pattern(pattern: str) -> None:
    """One-line ValueError unless `pattern` is all-<registered kind>, 1in<k> or first-last."""
    from ..attention import kinds
    if pattern == "first-last" or _ONE_IN.match(pattern):
        return
    if pattern.startswith("all-") and pattern[4:] in kinds():
        return
    raise ValueError(f"{pattern!r} is not a pattern; use all-<kind> (kinds: {', '.join(kinds())}), 1in<k> "
                     f"(softmax every k-th layer, e.g. 1in4) or first-last")


def layer_kind(pattern: str, index: int, depth: int, other: str, main: str = "softmax") -> str:
    """The attention kind of layer `index` (0-based) of a stack of `depth` layers."""
    if pattern.startswith("all-"):
        return pattern[4:]
    if pattern == "first-last":
        return main if index in (0, depth - 1) else other
    k = int(_ONE_IN.match(pattern).group(1))
    return main if (index + 1) % k == 0 else other


def apply_pattern(arch: Any, pattern: str, other: str = "linear", main: str = "softmax") -> Any:
    """`arch` with every layer stack's attention kinds set by `pattern` (widths unchanged)."""
    from .search_step import layer_stacks
    check_pattern(pattern)
    changes = {}
    for name, layers in layer_stacks(arch).items():
        changes[name] = tuple(
            dataclasses.replace(layer, **{gene: layer_kind(pattern, i, len(layers), other, main)
                                          for gene in KIND_GENES if hasattr(layer, gene)})
            for i, layer in enumerate(layers))
    return dataclasses.replace(arch, **changes)


def pattern_archs(patterns: list[str], other: str, mixed_arch: Any, main: str = "softmax") -> list[tuple[str, Any]]:
    """(fixed-<pattern>, arch) for each pattern, from the mixed search's best architecture."""
    return [(f"fixed-{pattern}", apply_pattern(mixed_arch, pattern, other, main)) for pattern in patterns]
