"""Analytic parameters and FLOPs of the standalone `LM` (one sequence, batch 1).

Conventions are mixnas.cost's: FLOPs are 2 x multiply-adds of matrix products only (what
torch.utils.flop_counter.FlopCounterMode counts); embedding lookups, norms, GELU, softmax and
biases cost nothing; attention cores come from `mixnas.cost.attention.core_flops`.
Per layer of width E, FFN width F, h heads of size d (qkv width Q = h d), over L tokens:
    projections  2 L E Q x 3 (q, k, v)  +  2 L Q E (out)
    core         core_flops(kind, "causal", lq=L, past=0)    (one decoding step: lq=1, past=t)
    MLP          2 L E F + 2 L F E
Output projection (tied to the token table): 2 L E V. Named "output_projection" and
"embed_tokens", so `include_embeddings=False` (mixnas.cost.EMBEDDING_PARTS) leaves out the
token/position tables and the vocabulary projection, as HAT reports model size and FLOPs.
Decoding state after seq_len tokens, per layer: `state_elements` (a KV cache of 2 seq_len h d
values for softmax and relative, constant sums for the linear kinds).
The formulas hold for any seq_len (the model itself runs at most config.context positions).
"""
from __future__ import annotations

from typing import Any

from ...cost.attention import core_flops, state_elements
from ...cost.flops import ffn_flops, linear_flops, projection_flops
from ...cost.params import layer_norm_params, stack_layers_params
from .arch import LMArch


def params_breakdown(arch: LMArch, config: Any) -> dict[str, int]:
    """Parameters per part; the tied output projection adds none."""
    e = arch.embed_dim
    parts = {"embed_tokens": config.vocab_size * e + config.context * e}  # token + position tables
    parts.update(stack_layers_params(arch, config.attention_options))
    parts["final_norm"] = layer_norm_params(e)
    return parts


def flops_breakdown(arch: LMArch, config: Any, seq_len: int) -> dict[str, int]:
    """Causal forward over seq_len tokens (teacher forcing, all positions' logits)."""
    e, opts, n = arch.embed_dim, config.attention_options, seq_len
    parts = {}
    for i, layer in enumerate(arch.layers):
        qkv = layer.heads * arch.head_dim
        parts[f"layers.{i}"] = (projection_flops(n, n, e, e, qkv)
                                + core_flops(layer.attention, "causal", heads=layer.heads, head_dim=arch.head_dim,
                                             lq=n, past=0, attention_options=opts)
                                + ffn_flops(n, e, layer.ffn_dim))
    parts["output_projection"] = linear_flops(n, e, config.vocab_size)
    return parts


def decode_flops_breakdown(arch: LMArch, config: Any, seq_len: int) -> dict[str, int]:
    """One incremental step: the token at position seq_len - 1 (it attends to seq_len keys:
    seq_len - 1 cached ones and its own) -> its logits."""
    e, opts = arch.embed_dim, config.attention_options
    parts = {}
    for i, layer in enumerate(arch.layers):
        qkv = layer.heads * arch.head_dim
        parts[f"layers.{i}"] = (projection_flops(1, 1, e, e, qkv)
                                + core_flops(layer.attention, "causal", heads=layer.heads, head_dim=arch.head_dim,
                                             lq=1, past=seq_len - 1, attention_options=opts)
                                + ffn_flops(1, e, layer.ffn_dim))
    parts["output_projection"] = linear_flops(1, e, config.vocab_size)
    return parts


def decode_state_breakdown(arch: LMArch, config: Any, seq_len: int) -> dict[str, int]:
    """Values each layer keeps to decode the next token after seq_len tokens (batch 1)."""
    return {f"layers.{i}": state_elements(layer.attention, heads=layer.heads, head_dim=arch.head_dim,
                                          tokens=seq_len, attention_options=config.attention_options)
            for i, layer in enumerate(arch.layers)}
