"""Elastic modules: one set of full-size weights, used by front slicing.

A sub-network of width w uses `weight[:w_out, :w_in]` (HAT's weight sharing). Each module is
called exactly like the torch module it stands in for (nn.Linear, nn.Embedding, nn.LayerNorm,
nn.Conv2d, mixnas.attention.MultiheadAttention), so the model code of `mixnas.models` runs on
them unchanged. Input widths are read from the input itself; output widths are "active"
settings written by the supernet's `set_arch`. Slices are views: forward copies no weights,
and autograd sends gradients only into the slice.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiheadAttention, build_kernel


def front(t: Tensor, shape: Sequence[int]) -> Tensor:
    """The leading block of `t` with the given shape (a view)."""
    if len(shape) != t.dim() or any(n > m for n, m in zip(shape, t.shape)):
        raise ValueError(f"cannot take a {tuple(shape)} front slice of a {tuple(t.shape)} tensor")
    return t[tuple(slice(0, n) for n in shape)]


class ElasticLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.active_out = out_features
        # nn.Linear's initialisation at full size.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        o, i = self.active_out, x.shape[-1]
        if o == self.out_features and i == self.in_features:  # full width: no slice to scatter back
            return F.linear(x, self.weight, self.bias)
        bias = None if self.bias is None else self.bias[:o]
        return F.linear(x, self.weight[:o, :i], bias)


class ElasticEmbedding(nn.Module):
    """Token table (vocab, max_dim); a sub-network of width d uses its first d columns.
    `weight` may be shared with another ElasticEmbedding (shared vocabulary) while each keeps
    its own active width."""

    def __init__(self, num_embeddings: int, max_dim: int, padding_idx: int,
                 weight: nn.Parameter | None = None):
        super().__init__()
        self.weight = weight if weight is not None else nn.Parameter(torch.empty(num_embeddings, max_dim))
        self.padding_idx = padding_idx
        self.active_dim = self.weight.shape[1]

    def active_weight(self) -> Tensor:
        return self.weight[:, :self.active_dim]

    def forward(self, tokens: Tensor) -> Tensor:
        return F.embedding(tokens, self.active_weight(), self.padding_idx)


class ElasticLayerNorm(nn.Module):
    """Normalises over the d features the input has, with weight[:d] and bias[:d]."""

    def __init__(self, max_dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        d = x.shape[-1]
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)


class ElasticPatchEmbed(nn.Module):
    """Conv2d(in_channels, max_dim, patch, stride=patch) sliced on its output channels."""

    def __init__(self, in_channels: int, max_dim: int, patch_size: int):
        super().__init__()
        conv = nn.Conv2d(in_channels, max_dim, patch_size, stride=patch_size)  # for its initialisation
        self.weight, self.bias = conv.weight, conv.bias
        self.patch_size = patch_size
        self.active_out = max_dim

    def forward(self, images: Tensor) -> Tensor:
        o = self.active_out
        return F.conv2d(images, self.weight[:o], self.bias[:o], stride=self.patch_size)


class _Projections(nn.Module):
    def __init__(self, embed_dim: int, kv_dim: int, qkv_dim: int):
        super().__init__()
        self.q_proj = ElasticLinear(embed_dim, qkv_dim)
        self.k_proj = ElasticLinear(kv_dim, qkv_dim)
        self.v_proj = ElasticLinear(kv_dim, qkv_dim)
        self.out_proj = ElasticLinear(qkv_dim, embed_dim)


class ElasticMultiheadAttention(nn.Module):
    """Multi-head attention with elastic heads, qkv width, input and output widths and a
    choice of attention kind. Each kind owns its q/k/v/out projections (`proj[kind]`), or all
    kinds share one set (`proj["shared"]`) with `share_projections=True`. The kernels are the
    registry's (`build_kernel`), sized for the largest head; the same kernel code runs in the
    supernet and in the extracted `MultiheadAttention`."""

    SHARED = "shared"

    def __init__(self, embed_dim: int, qkv_dim: int, kinds: Sequence[str], kernel_head_dim: int,
                 kernel_options: Callable[[str], dict[str, Any]], *, kv_dim: int | None = None,
                 share_projections: bool = False):
        super().__init__()
        if not kinds:
            raise ValueError("an elastic attention needs at least one attention kind")
        self.kinds = tuple(kinds)
        self.share_projections = share_projections
        keys = [self.SHARED] if share_projections else self.kinds
        self.proj = nn.ModuleDict({k: _Projections(embed_dim, kv_dim or embed_dim, qkv_dim) for k in keys})
        self.kernels = nn.ModuleDict({k: build_kernel(k, kernel_head_dim, **kernel_options(k)) for k in self.kinds})
        self.max_qkv_dim, self.kernel_head_dim = qkv_dim, kernel_head_dim
        self.kind = self.heads = self._active = None  # set by set_active (the supernet's set_arch)

    def projection_key(self, kind: str) -> str:
        return self.SHARED if self.share_projections else kind

    def set_active(self, kind: str, heads: int, qkv_dim: int, out_dim: int) -> None:
        if kind not in self.kernels:
            raise ValueError(f"attention kind {kind!r} is not in this supernet layer's kinds {list(self.kinds)}")
        if heads < 1 or qkv_dim % heads or qkv_dim > self.max_qkv_dim:
            raise ValueError(f"heads={heads} and qkv_dim={qkv_dim} need qkv_dim % heads == 0 and "
                             f"qkv_dim <= {self.max_qkv_dim}")
        if qkv_dim // heads > self.kernel_head_dim:
            raise ValueError(f"head size {qkv_dim // heads} exceeds the supernet's largest head "
                             f"{self.kernel_head_dim}; build the supernet with fewer min_heads")
        self.kind, self.heads = kind, heads
        p = self.proj[self.projection_key(kind)]
        p.q_proj.active_out = p.k_proj.active_out = p.v_proj.active_out = qkv_dim
        p.out_proj.active_out = out_dim
        self._active = (p, self.kernels[kind])

    # The forward pass is MultiheadAttention's own, run on the active projections and kernel
    # (the properties below), so supernet and extracted model share every line of it.
    forward = MultiheadAttention.forward

    @property
    def q_proj(self) -> ElasticLinear:
        return self._active[0].q_proj

    @property
    def k_proj(self) -> ElasticLinear:
        return self._active[0].k_proj

    @property
    def v_proj(self) -> ElasticLinear:
        return self._active[0].v_proj

    @property
    def out_proj(self) -> ElasticLinear:
        return self._active[0].out_proj

    @property
    def kernel(self) -> nn.Module:
        return self._active[1]

    @property
    def num_heads(self) -> int:
        return self.heads

    @property
    def embed_dim(self) -> int:
        return self._active[0].out_proj.active_out

    def source_name(self, local_name: str, kind: str) -> str:
        """Name (relative to this module) of the supernet parameter behind parameter
        `local_name` of a standalone MultiheadAttention of `kind`."""
        if local_name.startswith("kernel."):
            return f"kernels.{kind}.{local_name[len('kernel.'):]}"
        return f"proj.{self.projection_key(kind)}.{local_name}"


def weight_pairs(supernet: nn.Module, model: nn.Module):
    """(standalone parameter name, standalone parameter, supernet parameter) for every
    parameter of an extracted `model`; the standalone one is a front slice of the supernet
    one. The module names of supernets mirror the standalone models, except attention."""
    sup_modules = dict(supernet.named_modules())
    sup_params = dict(supernet.named_parameters(remove_duplicate=False))
    attention = {name: m for name, m in model.named_modules() if isinstance(m, MultiheadAttention)}
    for name, param in model.named_parameters(remove_duplicate=False):
        source = name
        owner, _, local = name.rpartition(".")
        while owner and owner not in attention:  # find the attention module holding `name`, if any
            owner, _, rest = owner.rpartition(".")
            local = f"{rest}.{local}"
        if owner:
            elastic = sup_modules[owner]
            source = f"{owner}.{elastic.source_name(local, attention[owner].kind)}"
        if source not in sup_params:
            raise ValueError(f"supernet has no parameter {source!r} for {name!r}")
        yield name, param, sup_params[source]


@torch.no_grad()
def copy_weights(supernet: nn.Module, model: nn.Module) -> None:
    """Copy (clone) the front slices of the supernet's weights into a standalone model."""
    extra = set(model.state_dict()) - {n for n, _ in model.named_parameters(remove_duplicate=False)}
    if extra:
        raise ValueError(f"standalone model has state that is not a parameter: {sorted(extra)[:3]}")
    for _, param, source in weight_pairs(supernet, model):
        param.copy_(front(source, param.shape))
