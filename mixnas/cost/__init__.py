"""Cost model: analytic parameter counts and FLOPs of an architecture, and measured latency."""
from .attention import (AttentionCost, attention_cost, core_flops, covered_kinds, kernel_params,
                        register_attention_cost)
from .flops import count_decode_flops, count_flops, flops_breakdown
from .latency import (CLOCKS, RUNTIMES, STATS, LatencyResult, check_clock, default_clock, describe_protocol, latency_statistic,
                      measure_latency, protocol_differences, summarize, trimmed)
from .params import EMBEDDING_PARTS, count_params, params_breakdown

__all__ = ["AttentionCost", "CLOCKS", "EMBEDDING_PARTS", "LatencyResult", "RUNTIMES", "STATS", "attention_cost", "check_clock",
           "core_flops", "count_decode_flops", "count_flops", "count_params", "covered_kinds", "default_clock",
           "describe_protocol", "flops_breakdown", "kernel_params", "latency_statistic", "measure_latency",
           "params_breakdown", "protocol_differences", "register_attention_cost", "summarize", "trimmed"]
