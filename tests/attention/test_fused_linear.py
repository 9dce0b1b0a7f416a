"""The fused non-causal CPU kernel of the linear kinds (mixnas/attention/fused.py) against the
PyTorch path it replaces and the explicit quadratic reference: outputs, gradients of q, k, v
(and of the returned kv, z), masks, cross-attention, cosFormer's M rules, block borders; plus
the fallback when the extension is unavailable, disabled or not applicable."""
import warnings

import pytest
import torch

from attention_reference import options_for, random_padding, random_qkv, reference_attention
from mixnas.attention import build_kernel, export_mode, fused
from mixnas.attention import extension as extension_module

KINDS = ("cosformer", "linear")
# (batch, heads, Lq, Lk, d, dv, block): lengths off the block size, cross-attention both ways,
# a single row, a value size different from the key size, one block larger than the sequence.
SHAPES = [(1, 1, 1, 1, 4, 4, 3), (2, 3, 37, 37, 8, 8, 16), (2, 2, 5, 23, 8, 8, 4),
          (1, 2, 41, 9, 16, 16, 8), (2, 1, 100, 100, 8, 5, 32), (1, 2, 30, 30, 8, 8, 512)]
TOL = {torch.float64: dict(atol=1e-10, rtol=1e-10), torch.float32: dict(atol=1e-5, rtol=1e-5)}


@pytest.fixture(scope="module")
def extension():
    reason = fused.load_extension()
    if reason is not None:
        pytest.skip(f"fused extension unavailable on this machine: {reason}")


def kernel_for(kind, dtype=torch.float64, **options):
    return build_kernel(kind, 16, **{**options_for(kind), **options}).to(dtype)


def pytorch_path(kernel, q, k, v, mask, m=None):
    """The features + `functional.linear_attention` path (out, kv, z), bypassing the fused kernel."""
    lq, lk = q.shape[2], k.shape[2]
    big_m = kernel.resolve_m(lq, lk, causal=False, state=None, m=m, return_state=False)
    return kernel._from_features(q, k, v, False, mask, None, 0, big_m)


def fused_path(kernel, q, k, v, mask, m=None, block=fused.BLOCK):
    lq, lk = q.shape[2], k.shape[2]
    big_m = kernel.resolve_m(lq, lk, causal=False, state=None, m=m, return_state=False)
    result = fused.fused_linear_attention(q, k, v, mask, kernel.fused_kind, kernel.fused_m(lq, lk, big_m),
                                          kernel.eps, block)
    assert result is not None, "the fused path did not run"
    return result


def outputs_and_grads(fn, q, k, v):
    """fn(q, k, v) -> (out, kv, z); a loss on all three, so the kv / z gradients are checked too."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    out, kv, z = fn(*leaves)
    (out.sin().sum() + (kv * 0.3).cos().sum() + (z * 0.2).sin().sum()).backward()
    return [out.detach(), kv.detach(), z.detach()] + [t.grad for t in leaves]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_matches_pytorch_path(extension, kind, shape, padded, dtype):
    b, h, lq, lk, d, dv, block = shape
    kernel = kernel_for(kind, dtype)
    q, k, _ = random_qkv(b, h, lq, lk, d, dtype=dtype, seed=lq + lk)
    v = torch.randn(b, h, lk, dv, dtype=dtype, generator=torch.Generator().manual_seed(3))
    mask = random_padding(b, lk, seed=lk, fully_padded_row=b - 1 if b > 1 else None) if padded else None
    mine = outputs_and_grads(lambda *t: fused_path(kernel, *t, mask, block=block), q, k, v)
    ref = outputs_and_grads(lambda *t: pytorch_path(kernel, *t, mask), q, k, v)
    for name, a, r in zip(("out", "kv", "z", "g_q", "g_k", "g_v"), mine, ref):
        torch.testing.assert_close(a, r, **TOL[dtype], msg=lambda s: f"{name}: {s}")


# cosformer's M: the fixed max_len, and the length rule without m, with m > Lk and with m < Lk.
M_CASES = [("cosformer", {}, None), ("cosformer", {"m_rule": "length"}, None),
           ("cosformer", {"m_rule": "length"}, 90), ("cosformer", {"m_rule": "length"}, 4),
           ("linear", {}, None)]


@pytest.mark.parametrize("kind,options,m", M_CASES, ids=["fixed", "length", "length_m90", "length_m4", "linear"])
@pytest.mark.parametrize("lq,lk", [(45, 45), (7, 50), (50, 7)], ids=["self", "cross_short_q", "cross_long_q"])
def test_kernel_matches_quadratic_reference(extension, kind, options, m, lq, lk):
    """The kernel module's default non-causal path (fused) against the explicit quadratic
    formula: forward and gradients of q, k, v, with key padding."""
    kernel = kernel_for(kind, **options)
    q, k, v = random_qkv(2, 2, lq, lk, 8, seed=lq * 100 + lk)
    mask = random_padding(2, lk, seed=5)
    if kind == "cosformer" and max(lq, lk) > kernel.resolve_m(lq, lk, causal=False, state=None, m=m,
                                                              return_state=False):
        for setting in ("1", "0"):  # queries beyond M = max(m, Lk): the same error on both paths
            with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match="pass a larger m"):
                mp.setenv("MIXNAS_FUSED", setting)
                kernel(q, k, v, m=m)
        return
    calls = []
    apply = fused._FusedLinear.apply
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused._FusedLinear, "apply", lambda *a: calls.append(1) or apply(*a))
        mine = outputs_and_grads(lambda *t: (kernel(*t, key_padding_mask=mask, m=m)[0],) * 3, q, k, v)
    assert calls, "the kernel did not take the fused path"
    ref = outputs_and_grads(lambda *t: (reference_attention(kind, kernel, *t, key_padding_mask=mask, m=m),) * 3,
                            q, k, v)
    for a, r in zip(mine, ref):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_gradcheck(extension, kind, padded):
    """Numerical gradients of out, kv and z with respect to q, k, v (float64, blocks of 2)."""
    kernel = kernel_for(kind, max_len=8) if kind == "cosformer" else kernel_for(kind)
    q, k, v = random_qkv(2, 2, 3, 5, 3, seed=4, away_from_zero=True)
    mask = None
    if padded:
        mask = torch.tensor([[False, True, False, False, True], [True, True, True, True, True]])
    inputs = [t.requires_grad_() for t in (q, k, v)]
    assert torch.autograd.gradcheck(lambda *t: fused_path(kernel, *t, mask, block=2), inputs,
                                    eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_strided_inputs_and_float32_default_block(extension, kind):
    """Head-split views (not contiguous) at a length spanning several default blocks; the
    gradient of out.sum() arrives as an expanded (stride 0) tensor."""
    kernel = kernel_for(kind, torch.float32, max_len=1500) if kind == "cosformer" else kernel_for(kind, torch.float32)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 1100, 3, 16, generator=gen).transpose(1, 2) for _ in range(3))
    assert not q.is_contiguous()
    mask = random_padding(2, 1100, seed=1)
    mine = outputs_and_grads(lambda *t: fused_path(kernel, *t, mask), q, k, v)
    ref = outputs_and_grads(lambda *t: pytorch_path(kernel, *t, mask), q, k, v)
    for a, r in zip(mine, ref):  # sums over 1100 rows: float32 error relative to the tensor's scale
        assert (a - r).abs().max() <= 1e-5 * r.abs().max()
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    fused_path(kernel, *leaves, mask)[0].sum().backward()
    ref_leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
    pytorch_path(kernel, *ref_leaves, mask)[0].sum().backward()
    for a, r in zip(leaves, ref_leaves):
        assert (a.grad - r.grad).abs().max() <= 1e-5 * r.grad.abs().max()


def test_cosformer_position_error_unchanged(extension):
    kernel = kernel_for("cosformer", max_len=20)
    q, k, v = random_qkv(1, 1, 25, 25, 4)
    with pytest.raises(ValueError, match="beyond max_len=20"):
        kernel(q, k, v)


def count_fused_calls(monkeypatch) -> list:
    calls = []
    apply = fused._FusedLinear.apply
    monkeypatch.setattr(fused._FusedLinear, "apply", lambda *a: calls.append(1) or apply(*a))
    return calls


@pytest.mark.parametrize("kind", KINDS)
def test_fallback_when_unavailable_warns_once_same_numbers(kind, monkeypatch):
    """Runs whether or not the extension builds: a simulated build failure falls back to the
    PyTorch path with one warning per process, and the numbers equal the reference (and the
    fused result, when the extension is there)."""
    kernel = kernel_for(kind)
    q, k, v = random_qkv(2, 2, 19, 19, 8, seed=2)
    mask = random_padding(2, 19, seed=2)
    fused_out = None
    if fused.load_extension() is None and fused.enabled():
        fused_out = kernel(q, k, v, key_padding_mask=mask)[0]
    monkeypatch.setattr(fused, "load_extension", lambda: "simulated build failure")
    monkeypatch.setattr(extension_module, "_warned", set())
    calls = count_fused_calls(monkeypatch)
    with pytest.warns(fused.FusedFallbackWarning, match="simulated build failure.*MIXNAS_FUSED=0") as record:
        out = kernel(q, k, v, key_padding_mask=mask)[0]
    assert len(record) == 1 and not calls
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call does not warn again
        again = kernel(q, k, v, key_padding_mask=mask)[0]
    torch.testing.assert_close(again, out, atol=0, rtol=0)
    ref = reference_attention(kind, kernel, q, k, v, key_padding_mask=mask)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    if fused_out is not None:
        torch.testing.assert_close(out, fused_out, atol=1e-10, rtol=1e-10)


def test_disabled_by_environment_in_export_mode_and_on_the_reference_path(monkeypatch):
    kernel = kernel_for("cosformer")
    q, k, v = random_qkv(1, 2, 10, 10, 8)
    calls = count_fused_calls(monkeypatch)
    monkeypatch.setattr(extension_module, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither warns
        monkeypatch.setenv("MIXNAS_FUSED", "0")
        kernel(q, k, v)
        monkeypatch.delenv("MIXNAS_FUSED")
        with export_mode():
            kernel(q, k, v)
        with fused.reference_path():  # what the FLOP-count tests use
            kernel(q, k, v)
    assert not calls


def test_causal_and_other_dtypes_are_not_fused(monkeypatch):
    """Causal calls keep the chunked PyTorch form (no notice); a float16 input falls back with
    the reason named."""
    calls = count_fused_calls(monkeypatch)
    q, k, v = random_qkv(1, 2, 10, 10, 8)
    kernel_for("linear")(q, k, v, causal=True)
    assert not calls
    assert "float16" in fused.unavailable_reason(q.half(), k.half(), v.half())
    monkeypatch.setattr(extension_module, "_warned", set())
    with pytest.warns(fused.FusedFallbackWarning, match="float16"):
        kernel_for("linear", torch.float16)(q.half(), k.half(), v.half())


def test_returned_state_matches(extension, monkeypatch):
    """A cross-attention state made by the fused path (kv, z) equals the PyTorch path's and
    gives the same later readout."""
    kernel = kernel_for("cosformer", m_rule="length")
    q, k, v = random_qkv(2, 2, 6, 30, 8, seed=9)
    results = []
    for setting in ("1", "0"):
        monkeypatch.setenv("MIXNAS_FUSED", setting)
        out, state = kernel(q, k, v, return_state=True, m=40)
        results.append((out, state.kv, state.z, kernel(q, None, None, state=state)[0]))
    for a, r in zip(*results):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)
