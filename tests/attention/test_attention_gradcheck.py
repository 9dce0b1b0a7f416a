"""Analytic gradients equal numerical ones (float64, tiny sizes) for every kind and mode,
including the learned relative-position tables."""
import pytest
import torch
from torch.func import functional_call

from attention_reference import options_for, random_padding, random_qkv
from mixnas.attention import build_kernel, kinds


def small_kernel(kind):
    # chunk 2 makes the causal linear forms carry state across chunks at length 5;
    # max_len 8 makes cosformer's re-weighting vary strongly; K = 2 clips relative positions.
    opts = {"cosformer": {"max_len": 8, "chunk": 2}, "linear": {"chunk": 2},
            "relative": {"max_relative_position": 2}}.get(kind, options_for(kind))
    return build_kernel(kind, 3, **opts).double()


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("causal,lq,lk", [(False, 5, 5), (True, 5, 5), (False, 3, 6)],
                         ids=["self", "causal", "cross"])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_gradcheck(kind, causal, lq, lk, padded):
    kernel = small_kernel(kind)
    q, k, v = random_qkv(1, 2, lq, lk, 3, seed=lq + 10 * lk, away_from_zero=True)
    mask = random_padding(1, lk, seed=1) if padded else None
    if padded:
        mask[0, 1] = True  # at least one padded key
        mask[0, 0] = False  # and a visible first key, so no row is empty by accident
    params = dict(kernel.named_parameters())
    names = list(params)
    inputs = [q, k, v] + [params[n].detach().clone() for n in names]

    def fn(q, k, v, *param_values):
        out, _ = functional_call(kernel, dict(zip(names, param_values)), (q, k, v),
                                 {"causal": causal, "key_padding_mask": mask})
        return out

    inputs = [t.requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)
    if kind == "relative":
        assert names == ["rel_k", "rel_v"]  # the relative tables were part of the check
