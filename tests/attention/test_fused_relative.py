"""The fused CPU kernel of the relative kind (mixnas/attention/fused_relative.py) against the
PyTorch path it replaces (`reference_path()`) and an explicit dense formula written here:
outputs and gradients of q, k, v, rel_k, rel_v; causal / padding / both / none, query offsets,
cross-attention, block borders, L below and above K, a head smaller than head_dim, KV-cache
decoding; plus the fallback when the extension is unavailable, disabled or not applicable."""
import math
import warnings

import pytest
import torch

from attention_reference import random_padding, random_qkv
from mixnas.attention import build_kernel, export_mode, fused_relative
from mixnas.attention import extension as extension_module

TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=2e-5, rtol=2e-5)}
MASKS = ["none", "causal", "pad", "both"]


@pytest.fixture(autouse=True)
def fused_at_every_length(monkeypatch):
    """The kind uses the fused kernel from a measured length on (`fused_min_length`); these
    tests check it at small sizes, so they lower it (test_fused_min_length checks the real one)."""
    monkeypatch.setattr(type(build_kernel("relative", 8)), "fused_min_length", 1)


@pytest.fixture(scope="module")
def extension():
    reason = fused_relative.load_extension()
    if reason is not None:
        pytest.skip(f"fused relative extension unavailable on this machine: {reason}")


def explicit(q, k, v, rel_k, rel_v, big_k, causal=False, key_padding_mask=None, q_offset=0):
    """e_ij = q_i . (k_j + aK[clip(j - p_i)]) / sqrt(d), out_i = sum_j a_ij (v_j + aV[clip(j - p_i)]),
    p_i = q_offset + i, with every (i, j) pair's aK / aV gathered densely; rows seeing no key: 0."""
    d, lq, lk = q.shape[-1], q.shape[2], k.shape[2]
    pos = torch.arange(lq)[:, None] + q_offset
    keys = torch.arange(lk)[None, :]
    bucket = (keys - pos).clamp(-big_k, big_k) + big_k  # (Lq, Lk)
    a_k, a_v = rel_k[:, :d][bucket], rel_v[:, :d][bucket]  # (Lq, Lk, d)
    logits = (q.unsqueeze(-2) * (k.unsqueeze(-3) + a_k)).sum(-1) / math.sqrt(d)  # (B, H, Lq, Lk)
    seen = torch.ones(q.shape[0], 1, lq, lk, dtype=torch.bool)
    if causal:
        seen = seen & (keys <= pos)
    if key_padding_mask is not None:
        seen = seen & ~key_padding_mask[:, None, None, :]
    seen = seen.expand_as(logits)
    top = logits.masked_fill(~seen, -math.inf).amax(-1, keepdim=True).detach()
    w = torch.exp(logits - torch.where(torch.isfinite(top), top, torch.zeros_like(top))) * seen
    w = w / w.sum(-1, keepdim=True).clamp_min(1e-300)
    return (w.unsqueeze(-1) * (v.unsqueeze(-3) + a_v)).sum(-2)


def make_kernel(big_k, head_dim, dtype=torch.float64, seed=0):
    kernel = build_kernel("relative", head_dim, max_relative_position=big_k).to(dtype)
    with torch.no_grad():  # tables of order one, so the relative terms matter at test scale
        gen = torch.Generator().manual_seed(seed)
        for p in (kernel.rel_k, kernel.rel_v):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=dtype))
    return kernel


def masks_for(mask, b, lk, seed):
    causal = mask in ("causal", "both")
    padding = random_padding(b, lk, seed=seed, fully_padded_row=b - 1 if b > 1 else None) \
        if mask in ("pad", "both") else None
    return causal, padding


def results(fn, kernel, q, k, v):
    """Output and gradients of q, k, v, rel_k, rel_v of a non-linear loss on fn(q, k, v)."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    kernel.zero_grad(set_to_none=True)
    out = fn(*leaves)
    (out.sin().sum() + out.square().sum() * 0.1).backward()
    return [out.detach()] + [t.grad for t in leaves] + [kernel.rel_k.grad.clone(), kernel.rel_v.grad.clone()]


def assert_all_close(mine, ref, dtype, what):
    for name, a, r in zip(("out", "g_q", "g_k", "g_v", "g_rel_k", "g_rel_v"), mine, ref):
        scale = max(1.0, r.abs().max().item()) if dtype == torch.float32 else 1.0
        torch.testing.assert_close(a / scale, r / scale, **TOL[dtype], msg=lambda s: f"{what} {name}: {s}")


def count_fused_calls(monkeypatch) -> list:
    calls = []
    apply = fused_relative._FusedRelative.apply
    monkeypatch.setattr(fused_relative._FusedRelative, "apply", lambda *a: calls.append(1) or apply(*a))
    return calls


# (batch, heads, Lq, Lk, d, head_dim, K, block_q, block_k): lengths off the block sizes, one key
# block and many, L < K and L > K, K = 0, a head smaller than head_dim (front-sliced tables).
SHAPES = [(2, 2, 37, 37, 8, 8, 4, 8, 16), (1, 2, 70, 70, 8, 16, 5, 32, 16), (2, 1, 6, 6, 4, 4, 9, 4, 4),
          (1, 1, 50, 50, 4, 4, 0, 16, 8), (1, 2, 1, 1, 4, 8, 2, 128, 256), (1, 1, 90, 90, 8, 8, 40, 16, 32)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_self_attention_matches_pytorch_path_and_formula(extension, shape, mask, dtype, monkeypatch):
    b, h, lq, lk, d, head_dim, big_k, bq, bk = shape
    kernel = make_kernel(big_k, head_dim, dtype)
    q, k, v = (t.to(dtype) for t in random_qkv(b, h, lq, lk, d, seed=lq + big_k))
    causal, padding = masks_for(mask, b, lk, seed=lk)
    monkeypatch.setattr(fused_relative, "BLOCK_Q", bq)
    monkeypatch.setattr(fused_relative, "BLOCK_K", bk)
    calls = count_fused_calls(monkeypatch)
    mine = results(lambda *t: kernel(*t, causal=causal, key_padding_mask=padding)[0], kernel, q, k, v)
    assert calls, "the kernel did not take the fused path"
    with fused_relative.reference_path():
        ref = results(lambda *t: kernel(*t, causal=causal, key_padding_mask=padding)[0], kernel, q, k, v)
    assert_all_close(mine, ref, dtype, "vs PyTorch path")
    if dtype == torch.float64:
        formula = results(lambda *t: explicit(*t, kernel.rel_k, kernel.rel_v, big_k, causal, padding), kernel, q, k, v)
        assert_all_close(mine, formula, dtype, "vs formula")


@pytest.mark.parametrize("lq,lk,q_offset", [(7, 50, 0), (50, 7, 0), (9, 40, 30), (33, 33, 5)],
                         ids=["short_q", "long_q", "offset", "offset_self"])
@pytest.mark.parametrize("mask", MASKS)
def test_offsets_and_cross_attention_match_formula(extension, lq, lk, q_offset, mask):
    """Lq != Lk and queries at absolute positions q_offset + i (causal: keys j <= q_offset + i)."""
    kernel = make_kernel(3, 8)
    q, k, v = random_qkv(2, 2, lq, lk, 8, seed=lq * 7 + lk)
    causal, padding = masks_for(mask, 2, lk, seed=lq)
    mine = results(lambda *t: fused_relative.fused_relative_attention(
        *t, kernel.rel_k, kernel.rel_v, causal=causal, q_offset=q_offset, key_padding_mask=padding,
        block_q=8, block_k=16), kernel, q, k, v)
    ref = results(lambda *t: explicit(*t, kernel.rel_k, kernel.rel_v, 3, causal, padding, q_offset), kernel, q, k, v)
    assert_all_close(mine, ref, torch.float64, f"offset {q_offset}")


@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_kv_cache_decoding_equals_full_causal_forward(extension, padded, monkeypatch):
    """Prefill 5 tokens, then one token at a time (attend with Lq = 1, q_offset > 0): equal to
    the full causal forward, fused all along (small blocks, so the cache spans several)."""
    monkeypatch.setattr(fused_relative, "BLOCK_Q", 4)
    monkeypatch.setattr(fused_relative, "BLOCK_K", 8)
    kernel = make_kernel(3, 8)
    q, k, v = random_qkv(2, 2, 23, 23, 8, seed=11)
    padding = random_padding(2, 23, seed=3) if padded else None
    full = kernel(q, k, v, causal=True, key_padding_mask=padding)[0]
    with fused_relative.reference_path():
        torch.testing.assert_close(full, kernel(q, k, v, causal=True, key_padding_mask=padding)[0],
                                   atol=1e-12, rtol=1e-12)
    calls = count_fused_calls(monkeypatch)
    part = lambda m, a, z: None if m is None else m[:, a:z]  # noqa: E731
    out, state = kernel(q[:, :, :5], k[:, :, :5], v[:, :, :5], causal=True, key_padding_mask=part(padding, 0, 5),
                        return_state=True)
    steps = [out]
    for t in range(5, 23):
        out, state = kernel(q[:, :, t:t + 1], k[:, :, t:t + 1], v[:, :, t:t + 1], causal=True,
                            key_padding_mask=part(padding, t, t + 1), state=state)
        steps.append(out)
    assert len(calls) == 19
    torch.testing.assert_close(torch.cat(steps, dim=2), full, atol=1e-12, rtol=1e-12)


def test_cached_cross_attention_state(extension, monkeypatch):
    """A static (cross-attention) state: later queries continue at the state's offset, fused,
    equal to the PyTorch path."""
    kernel = make_kernel(2, 8)
    q, mem, _ = random_qkv(2, 2, 6, 30, 8, seed=9)
    padding = random_padding(2, 30, seed=4)
    outs = []
    for fused_on in (True, False):
        monkeypatch.setenv("MIXNAS_FUSED", "1" if fused_on else "0")
        calls = count_fused_calls(monkeypatch)
        out, state = kernel(q, mem, mem, key_padding_mask=padding, return_state=True)
        later, state = kernel(q[:, :, :2], None, None, state=state)
        assert bool(calls) == fused_on and len(calls) in (0, 2)
        outs.append((out, later, kernel(q[:, :, :1], None, None, state=state)[0]))
    for a, r in zip(*outs):
        torch.testing.assert_close(a, r, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("mask", ["causal_offset", "pad"])
def test_gradcheck(extension, mask):
    """Numerical gradients of q, k, v, rel_k, rel_v (float64, blocks of 2 x 3)."""
    kernel = make_kernel(2, 4)
    q, k, v = random_qkv(1, 2, 4, 7, 3, seed=4)
    causal, offset, padding = mask == "causal_offset", 3 if mask == "causal_offset" else 0, None
    if mask == "pad":
        padding = torch.tensor([[False, True, False, False, True, False, True]])
    rel_k = kernel.rel_k.detach().clone().requires_grad_()
    rel_v = kernel.rel_v.detach().clone().requires_grad_()
    inputs = [t.requires_grad_() for t in (q, k, v)] + [rel_k, rel_v]
    fn = lambda q, k, v, rk, rv: fused_relative.fused_relative_attention(  # noqa: E731
        q, k, v, rk, rv, causal=causal, q_offset=offset, key_padding_mask=padding, block_q=2, block_k=3)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6)


def test_strided_float32_inputs_default_blocks(extension, monkeypatch):
    """Head-split views (not contiguous) over several default blocks; the gradient of
    out.sum() arrives expanded (stride 0)."""
    kernel = make_kernel(16, 16, torch.float32)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 300, 3, 16, generator=gen).transpose(1, 2) for _ in range(3))
    assert not q.is_contiguous()
    padding = random_padding(2, 300, seed=1)
    calls = count_fused_calls(monkeypatch)
    for causal in (False, True):
        fn = lambda *t: kernel(*t, causal=causal, key_padding_mask=padding)[0]  # noqa: E731
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        out = fn(*leaves)
        out.sum().backward()
        with fused_relative.reference_path():
            ref_leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
            ref = fn(*ref_leaves)
            ref.sum().backward()
        for a, r in zip([out] + [t.grad for t in leaves], [ref] + [t.grad for t in ref_leaves]):
            assert (a - r).abs().max() <= 1e-5 * max(1.0, r.abs().max().item())
    assert len(calls) == 2


def test_fallback_when_unavailable_warns_once_same_numbers(monkeypatch):
    """Runs whether or not the extension builds: a simulated build failure falls back to the
    PyTorch path with one warning per process, and the numbers equal the fused ones."""
    kernel = make_kernel(3, 8)
    q, k, v = random_qkv(2, 2, 19, 19, 8, seed=2)
    padding = random_padding(2, 19, seed=2)
    fused_out = None
    if fused_relative.load_extension() is None and fused_relative.enabled():
        fused_out = kernel(q, k, v, causal=True, key_padding_mask=padding)[0]
    monkeypatch.setattr(fused_relative, "load_extension", lambda: "simulated build failure")
    monkeypatch.setattr(extension_module, "_warned", set())
    calls = count_fused_calls(monkeypatch)
    with pytest.warns(fused_relative.FusedFallbackWarning, match="relative.*simulated build failure") as record:
        out = kernel(q, k, v, causal=True, key_padding_mask=padding)[0]
    assert len(record) == 1 and not calls
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call does not warn again
        again = kernel(q, k, v, causal=True, key_padding_mask=padding)[0]
    torch.testing.assert_close(again, out, atol=0, rtol=0)
    ref = explicit(q, k, v, kernel.rel_k.detach(), kernel.rel_v.detach(), 3, True, padding)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    if fused_out is not None:
        torch.testing.assert_close(out, fused_out, atol=1e-10, rtol=1e-10)


def test_not_fused_when_disabled_exporting_reference_or_dropout(monkeypatch):
    kernel = make_kernel(3, 8)
    kernel.dropout = 0.5
    q, k, v = random_qkv(1, 2, 10, 10, 8)
    calls = count_fused_calls(monkeypatch)
    monkeypatch.setattr(extension_module, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        kernel.train()(q, k, v)  # dropout on the probabilities: the PyTorch path
        kernel.eval()
        monkeypatch.setenv("MIXNAS_FUSED", "0")
        kernel(q, k, v, causal=True)
        monkeypatch.delenv("MIXNAS_FUSED")
        with export_mode():
            kernel(q, k, v, causal=True)
        with fused_relative.reference_path():
            kernel(q, k, v)
    assert not calls
    if fused_relative.load_extension() is None:
        kernel(q, k, v)  # eval: dropout is off, so the fused path runs
        assert calls


def test_other_dtypes_fall_back_with_reason(monkeypatch):
    q, k, v = random_qkv(1, 2, 10, 10, 8)
    assert "float16" in fused_relative.unavailable_reason(q.half(), k.half(), v.half())
    monkeypatch.setattr(extension_module, "_warned", set())
    kernel = make_kernel(3, 8, torch.bfloat16)
    with pytest.warns(fused_relative.FusedFallbackWarning, match="bfloat16"):
        kernel(q.bfloat16(), k.bfloat16(), v.bfloat16())


def test_fused_min_length(extension, monkeypatch):
    """Below the measured threshold (keys or queries) the PyTorch path runs, from it the fused
    kernel; the numbers agree either way."""
    monkeypatch.undo()
    kernel = build_kernel("relative", 16).double()
    threshold = kernel.fused_min_length
    calls = []
    apply = fused_relative._FusedRelative.apply
    monkeypatch.setattr(fused_relative._FusedRelative, "apply", lambda *a: calls.append(1) or apply(*a))
    for length, expected in ((threshold - 1, 0), (threshold, 1)):
        calls.clear()
        q, k, v = random_qkv(1, 2, length, length, 16, seed=length)
        out = kernel(q, k, v, causal=True)[0]
        assert len(calls) == expected, length
        with fused_relative.reference_path():
            torch.testing.assert_close(out, kernel(q, k, v, causal=True)[0], **TOL[torch.float64])
