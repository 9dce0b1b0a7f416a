"""Cost model: analytic parameter counts and FLOPs of an architecture, and measured latency."""
from .attention import (AttentionCost, attention_cost, core_flops, covered_kinds, kernel_params,
                        register_attention_cost)
from .flops import count_decode_flops, count_flops, flops_breakdown
from .latency import LatencyResult, measure_latency, summarize, trimmed
from .params import EMBEDDING_PARTS, count_params, params_breakdown

__all__ = ["AttentionCost", "EMBEDDING_PARTS", "LatencyResult", "attention_cost", "core_flops",
           "count_decode_flops", "count_flops", "count_params", "covered_kinds", "flops_breakdown",
           "kernel_params", "measure_latency", "params_breakdown", "register_attention_cost", "summarize", "trimmed"]
