"""The registry of attention kinds: name -> typed spec. Adding a kind is one file that
defines a kernel class and calls `register`, plus its import in `attention/__init__.py`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kernels import AttentionKernel


@dataclass(frozen=True)
class AttentionSpec:
    name: str
    kernel: type[AttentionKernel]
    linear_complexity: bool  # cost O(N d^2) instead of O(N^2 d)
    summary: str
    options: dict[str, Any] = field(default_factory=dict)  # option -> default value


_REGISTRY: dict[str, AttentionSpec] = {}


def register(spec: AttentionSpec) -> AttentionSpec:
    """Add an attention kind (its kernel class, options and cost); names must be new."""
    if spec.name in _REGISTRY:
        raise ValueError(f"attention kind {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> AttentionSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown attention kind {name!r}; registered kinds: {', '.join(kinds())}") from None


def kinds() -> list[str]:
    return sorted(_REGISTRY)


def build_kernel(name: str, head_dim: int, **options: Any) -> AttentionKernel:
    """Instantiate kind `name`; unknown options give an error listing the valid ones."""
    spec = get_spec(name)
    allowed = set(spec.options) | {"dropout"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"attention kind {name!r} has no option(s) {sorted(unknown)}; "
                         f"valid: {sorted(allowed)}")
    return spec.kernel(head_dim, **{**spec.options, **options})
