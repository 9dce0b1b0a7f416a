"""Analytic gradients equal numerical ones (float64, tiny sizes) for every kind and mode,
including the learned relative-position tables."""
import pytest
import torch
from torch.func import functional_call

from attention_reference import options_for, random_padding, random_qkv
from mixnas.attention import build_kernel, kinds
from mixnas.attention.functional import causal_linear_attention, linear_attention


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


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_gradcheck_linear_forms_including_state(causal):
    """The hand-written backward of the linear forms, through every output (out and the
    returned running sums kv, z) and, causally, the initial state kv0, z0 of a decoding prefix.
    Length 7 with chunk 3: a partial last chunk and state carried over two chunk borders."""
    gen = torch.Generator().manual_seed(0)
    qf, kf = (torch.rand(1, 2, 7, 4, generator=gen, dtype=torch.float64) + 0.1 for _ in range(2))
    v = torch.randn(1, 2, 7, 3, generator=gen, dtype=torch.float64)
    kv0 = torch.randn(1, 2, 4, 3, generator=gen, dtype=torch.float64)
    z0 = torch.rand(1, 2, 4, generator=gen, dtype=torch.float64)
    if causal:
        def fn(qf, kf, v, kv0, z0):
            return causal_linear_attention(qf, kf, v, 1e-6, chunk=3, kv0=kv0, z0=z0)
        inputs = (qf, kf, v, kv0, z0)
    else:
        def fn(qf, kf, v):
            return linear_attention(qf, kf, v, 1e-6)
        inputs = (qf, kf, v)
    assert torch.autograd.gradcheck(fn, [t.requires_grad_() for t in inputs], eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_linear_forms_match_plain_autograd(causal):
    """Same forward and gradients as autograd through the plain quadratic formula (float32)."""
    gen = torch.Generator().manual_seed(1)
    qf, kf = (torch.rand(2, 3, 150, 16, generator=gen) for _ in range(2))
    v = torch.randn(2, 3, 150, 8, generator=gen)
    grads = []
    for use_kernel in (True, False):
        inputs = [t.clone().requires_grad_() for t in (qf, kf, v)]
        if use_kernel:
            out = (causal_linear_attention(*inputs, 1e-6, chunk=64) if causal
                   else linear_attention(*inputs, 1e-6))[0]
        else:
            w = inputs[0] @ inputs[1].transpose(-1, -2)
            w = w.tril() if causal else w
            out = (w / w.sum(-1, keepdim=True).clamp_min(1e-6)) @ inputs[2]
        out.sin().sum().backward()
        grads.append((out.detach(), *[t.grad for t in inputs]))
    for mine, plain in zip(*grads):
        torch.testing.assert_close(mine, plain, atol=1e-5, rtol=1e-4)
