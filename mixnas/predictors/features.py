"""Predictor features: `space.encode(arch)` plus numeric context such as the sequence length."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def context_names(context: Mapping[str, Any] | None) -> list[str]:
    return [f"ctx:{k}" for k in (context or {})]


def featurize(space, archs: Sequence[Any], context: Mapping[str, Any] | None = None) -> np.ndarray:
    """Rows of `space.encode(arch)` followed by context columns (sorted by insertion order).
    A context value is a scalar (same for every arch) or a sequence with one value per arch.
    Column names: `space.feature_names() + context_names(context)`."""
    if not archs:
        return np.zeros((0, len(space.feature_names()) + len(context or {})))
    X = np.stack([np.asarray(space.encode(a), dtype=np.float64) for a in archs])
    cols = []
    for key, value in (context or {}).items():
        v = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(archs),)) if np.ndim(value) == 0 \
            else np.asarray(value, dtype=np.float64)
        if v.shape != (len(archs),):
            raise ValueError(f"context {key!r} has {v.size} values for {len(archs)} architectures; give one value or one per architecture")
        cols.append(v[:, None])
    return np.hstack([X, *cols]) if cols else X
