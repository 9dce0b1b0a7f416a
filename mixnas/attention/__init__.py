"""Attention kinds behind one interface. Importing this package registers the built-in kinds."""
from . import cosformer, linear, relative, softmax  # noqa: F401  (registration side effect)
from .kernels import AttentionKernel, KVCacheKernel, LinearKernel
from .mode import export_mode, exporting
from .multihead import MultiheadAttention, merge_heads, split_heads
from .registry import AttentionSpec, build_kernel, get_spec, kinds, register
from .state import KVCache, LinearState

__all__ = ["AttentionKernel", "AttentionSpec", "KVCache", "KVCacheKernel", "LinearKernel",
           "LinearState", "MultiheadAttention", "build_kernel", "export_mode", "exporting", "get_spec",
           "kinds", "merge_heads", "register", "split_heads"]
