"""FLOPs of the attention *core* of each kind: what happens between the q/k/v projections and
the output projection (those are ordinary Linear layers, counted in flops.py).

Convention (as torch.utils.flop_counter.FlopCounterMode counts): 2 x multiply-adds of matrix
products only; softmax, masks, feature maps, sums and divisions cost nothing. Every formula
is for ONE sequence (batch 1) and counts exactly the products the kernel in
`mixnas/attention/` performs, masked-out entries included (a causal softmax still computes the
whole score matrix). For the linear kinds' non-causal attention that is the PyTorch path; the
fused CPU kernel (mixnas/attention/fused.py) computes the key sum z as one more value column of
the same product, 2 * lk * D more per head.

A core is asked for in one of three modes:
- `full(h, d, lq, lk, opts)`     non-causal attention computed from keys and values
                                 (encoder / ViT self-attention, cross-attention's first call);
- `causal(h, d, n, past, opts)`  causal self-attention of n new tokens after `past` earlier
                                 ones (teacher forcing: past=0; one decoding step: n=1);
- `cached(h, d, lq, lk, opts)`   queries against a static cross-attention state that already
                                 holds lk keys (decoding steps after the first).
h = heads, d = head size, opts = the kind's options (registry defaults merged with config).
`params(d, opts)` is the number of parameters inside the kernel (positional tables), 0 for most.
`state(d, tokens, opts)` is the number of values ONE head keeps to continue decoding after
`tokens` keys (causal self-attention after `tokens` steps, or a cross-attention state over
`tokens` encoder positions): a KV cache grows as 2 * tokens * d, a linear kind's sums stay
D * d + D whatever the length. That is where a softmax layer's long-context memory goes.

Adding an attention kind: register its formulas here with
`register_attention_cost("mykind", AttentionCost(full=..., causal=..., cached=...))` (or reuse
`kv_cache_cost()` / `linear_cost(feature_dim)`; pass `params=` if its kernel has
parameters), and add the kind to the parameterised archs of
tests/cost so FlopCounterMode checks it. tests/cost fails for any registered kind without one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from mixnas.attention import get_spec, kinds

Options = dict[str, Any]


@dataclass(frozen=True)
class AttentionCost:
    full: Callable[[int, int, int, int, Options], int]
    causal: Callable[[int, int, int, int, Options], int]
    cached: Callable[[int, int, int, int, Options], int]
    params: Callable[[int, Options], int] = lambda d, opts: 0
    state: Callable[[int, int, Options], int] = lambda d, tokens, opts: 2 * tokens * d  # a KV cache


_COSTS: dict[str, AttentionCost] = {}


def register_attention_cost(kind: str, cost: AttentionCost) -> None:
    if kind in _COSTS:
        raise ValueError(f"attention kind {kind!r} already has a cost formula")
    _COSTS[kind] = cost


def attention_cost(kind: str) -> AttentionCost:
    get_spec(kind)  # unknown kind: the registry's error lists the registered kinds
    if kind not in _COSTS:
        raise ValueError(f"attention kind {kind!r} has no FLOPs formula; register one with "
                         f"mixnas.cost.attention.register_attention_cost (see that module's docstring)")
    return _COSTS[kind]


def kind_options(kind: str, attention_options: dict[str, dict[str, Any]] | None) -> Options:
    """The options a kernel of `kind` is built with: registry defaults, then the config's."""
    return {**get_spec(kind).options, **((attention_options or {}).get(kind) or {})}


def core_flops(kind: str, mode: str, *, heads: int, head_dim: int, lq: int, lk: int = 0,
               past: int = 0, attention_options: dict[str, dict[str, Any]] | None = None) -> int:
    """FLOPs of one attention core for one sequence; `mode` is full, causal or cached."""
    cost = attention_cost(kind)
    opts = kind_options(kind, attention_options)
    if mode == "full":
        return cost.full(heads, head_dim, lq, lk, opts)
    if mode == "causal":
        return cost.causal(heads, head_dim, lq, past, opts)
    if mode == "cached":
        return cost.cached(heads, head_dim, lq, lk, opts)
    raise ValueError(f"unknown attention cost mode {mode!r}; use 'full', 'causal' or 'cached'")


def kernel_params(kind: str, head_dim: int, attention_options: dict[str, dict[str, Any]] | None = None) -> int:
    """Parameters inside one attention kernel of `kind` with head size `head_dim`."""
    return attention_cost(kind).params(head_dim, kind_options(kind, attention_options))


def state_elements(kind: str, *, heads: int, head_dim: int, tokens: int,
                   attention_options: dict[str, dict[str, Any]] | None = None) -> int:
    """Values one sequence's decoding state of one attention layer holds after `tokens` keys
    (key-padding masks, one bool per position, are not counted)."""
    return heads * attention_cost(kind).state(head_dim, tokens, kind_options(kind, attention_options))


def covered_kinds() -> list[str]:
    """Registered attention kinds that have a cost formula."""
    return [k for k in kinds() if k in _COSTS]


# ------------------------------------------------------------------ kinds with a KV cache
def kv_cache_cost(extra_per_query: Callable[[int, Options], int] = lambda d, o: 0,
                  params: Callable[[int, Options], int] = lambda d, o: 0) -> AttentionCost:
    """softmax-like kinds: scores q k^T (lq x lk x d) and probs @ v (lq x lk x d), plus
    `extra_per_query(d, opts)` FLOPs per query row and head (positional terms)."""

    def full(h, d, lq, lk, o):
        return h * (4 * lq * lk * d + lq * extra_per_query(d, o))

    def causal(h, d, n, past, o):  # new queries see past + n keys (the mask zeroes the rest)
        return full(h, d, n, past + n, o)

    return AttentionCost(full=full, causal=causal, cached=full, params=params)


def _relative_extra(d: int, o: Options) -> int:
    """q @ aK^T (d x (2K+1)) and buckets @ aV ((2K+1) x d) per query row."""
    return 4 * _relative_buckets(o) * d


def _relative_params(d: int, o: Options) -> int:
    """The tables aK and aV, (2K+1) x d each."""
    return 2 * _relative_buckets(o) * d


def _relative_buckets(o: Options) -> int:
    return 2 * o["max_relative_position"] + 1


# ------------------------------------------------------------------ linear kinds
def linear_cost(feature_dim: Callable[[int], int]) -> AttentionCost:
    """Kinds of the form phi(q) (sum_j phi(k_j)^T v_j) / (phi(q) . sum_j phi(k_j)) with
    phi(x) of size D = feature_dim(d), as computed by mixnas/attention/functional.py."""

    def readout(h, d, lq, D):  # linear_readout: qf @ kv (D x d) and qf @ z (D x 1)
        return h * 2 * lq * D * (d + 1)

    def full(h, d, lq, lk, o):  # linear_attention: kv = kf^T v, then the readout
        D = feature_dim(d)
        return h * 2 * lk * D * d + readout(h, d, lq, D)

    def causal(h, d, n, past, o):
        D = feature_dim(d)
        if n == 1:  # the recurrence: kv += kf^T v, then the readout
            return h * 2 * D * d + readout(h, d, 1, D)
        c = min(o["chunk"], n)
        chunks = math.ceil(n / c)  # the last chunk is zero-padded and still multiplied
        per_chunk = (2 * c * c * D        # scores = qc @ kc^T
                     + 2 * D * c * d      # kv_chunk = kc^T @ vc
                     + 2 * c * c * d      # scores @ vc
                     + 2 * c * D * d      # qc @ kv_prev
                     + 2 * c * D)         # qc @ z_prev
        return h * chunks * per_chunk

    def cached(h, d, lq, lk, o):  # the static state already holds kv and z
        return readout(h, d, lq, feature_dim(d))

    def state(d, tokens, o):  # kv (D x d) and z (D): constant in the length
        return feature_dim(d) * (d + 1)

    return AttentionCost(full=full, causal=causal, cached=cached, state=state)


register_attention_cost("softmax", kv_cache_cost())
register_attention_cost("relative", kv_cache_cost(_relative_extra, _relative_params))
register_attention_cost("cosformer", linear_cost(lambda d: 2 * d))  # [q sin, q cos]
register_attention_cost("linear", linear_cost(lambda d: d))  # elu(x) + 1
