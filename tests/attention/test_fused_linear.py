"""The fused CPU kernels of the linear kinds (mixnas/attention/fused.py), non-causal and causal,
against the PyTorch path they replace and the explicit quadratic reference: outputs, gradients
of q, k, v (and of the returned kv, z, and causally of the initial state kv0, z0), masks,
cross-attention, cosFormer's M rules, block and chunk borders, prefill + decoding; plus the
fallback when the extension is unavailable, disabled or not applicable."""
import warnings

import pytest
import torch

from attention_reference import options_for, random_padding, random_qkv, reference_attention
from mixnas.attention import LinearState, build_kernel, export_mode, fused
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


@pytest.fixture(autouse=True)
def fused_at_every_length(monkeypatch):
    """The kinds use the fused kernels from a measured length on (`fused_min_length`); these
    tests check the kernels at small sizes, so they lower it. test_fused_min_length checks the
    real thresholds."""
    for kind in KINDS:
        monkeypatch.setattr(type(build_kernel(kind, 8)), "fused_min_length", (1, 2))


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
    """Records "full" / "causal" for every call of the fused non-causal / causal kernel."""
    calls = []
    for name, cls in (("full", fused._FusedLinear), ("causal", fused._FusedCausal)):
        monkeypatch.setattr(cls, "apply", lambda *a, _apply=cls.apply, _name=name: calls.append(_name) or _apply(*a))
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
        warnings.simplefilter("error")  # a second call does not warn again, nor a causal one
        again = kernel(q, k, v, key_padding_mask=mask)[0]
        causal_out = kernel(q, k, v, key_padding_mask=mask, causal=True)[0]
    torch.testing.assert_close(again, out, atol=0, rtol=0)
    causal_ref = reference_attention(kind, kernel, q, k, v, causal=True, key_padding_mask=mask)
    torch.testing.assert_close(causal_out, causal_ref, atol=1e-10, rtol=1e-10)
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
        for causal in (False, True):
            monkeypatch.setenv("MIXNAS_FUSED", "0")
            kernel(q, k, v, causal=causal)
            monkeypatch.delenv("MIXNAS_FUSED")
            with export_mode():
                kernel(q, k, v, causal=causal)
            with fused.reference_path():  # what the FLOP-count tests use
                kernel(q, k, v, causal=causal)
    assert not calls


def test_decoding_steps_and_other_dtypes_are_not_fused(monkeypatch):
    """Causal calls of several tokens take the fused kernel, single decoding steps the PyTorch
    recurrence (measured faster there, see kernels.py); a float16 input falls back with the
    reason named."""
    calls = count_fused_calls(monkeypatch)
    q, k, v = random_qkv(1, 2, 10, 10, 8)
    kernel = kernel_for("linear")
    _, state = kernel(q, k, v, causal=True, return_state=True)
    kernel(q[:, :, :1], k[:, :, :1], v[:, :, :1], causal=True, state=state)
    kernel(q[:, :, :1], k[:, :, :1], v[:, :, :1], causal=True)
    assert calls == ["causal"] or fused.load_extension() is not None
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


# --------------------------------------------------------------------------- causal
def causal_pytorch_path(kernel, q, k, v, mask, kv0, z0, offset, big_m):
    """Features + `functional.causal_linear_attention` (out, kv, z), bypassing the fused kernel."""
    state = None if kv0 is None else LinearState(kv0, z0, offset, m=big_m)
    return kernel._from_features(q, k, v, True, mask, state, offset, big_m)


def causal_fused_path(kernel, q, k, v, mask, kv0, z0, offset, big_m, chunk=fused.CAUSAL_CHUNK,
                      every=fused.CAUSAL_EVERY):
    end = offset + q.shape[2]
    result = fused.fused_causal_linear_attention(q, k, v, mask, kernel.fused_kind, kernel.fused_m(end, end, big_m),
                                                 kernel.eps, offset, kv0, z0, chunk, every)
    assert result is not None, "the fused path did not run"
    return result


def causal_outputs_and_grads(fn, q, k, v, kv0, z0):
    """fn(q, k, v, kv0, z0) -> (out, kv, z); a loss on all three; gradients of all five inputs."""
    leaves = [t.detach().clone().requires_grad_() for t in (q, k, v, kv0, z0)]
    out, kv, z = fn(*leaves)
    (out.sin().sum() + (kv * 0.3).cos().sum() + (z * 0.2).sin().sum()).backward()
    return [out.detach(), kv.detach(), z.detach()] + [t.grad for t in leaves]


# (batch, heads, L, d, dv, chunk, every, offset): one row, lengths off the chunk size, a value
# size unlike the key size, segments of several chunks (every > 1), a continued state (offset).
CAUSAL_SHAPES = [(1, 1, 1, 4, 4, 3, 2, 0), (2, 3, 37, 8, 8, 8, 2, 0), (2, 2, 23, 8, 5, 4, 3, 6),
                 (1, 2, 41, 16, 16, 64, 4, 0), (2, 1, 50, 8, 8, 7, 1, 3)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", CAUSAL_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_causal_matches_pytorch_path(extension, kind, shape, padded, dtype):
    """With an initial state (random sums, as after `offset` tokens) whenever offset > 0."""
    b, h, n, d, dv, chunk, every, offset = shape
    kernel = kernel_for(kind, dtype)
    gen = torch.Generator().manual_seed(n + offset)
    q, k, _ = random_qkv(b, h, n, n, d, dtype=dtype, seed=n)
    v = torch.randn(b, h, n, dv, dtype=dtype, generator=gen)
    big_d = 2 * d if kind == "cosformer" else d
    kv0 = torch.rand(b, h, big_d, dv, dtype=dtype, generator=gen) * offset
    z0 = torch.rand(b, h, big_d, dtype=dtype, generator=gen) * offset
    mask = random_padding(b, n, seed=n, fully_padded_row=b - 1 if b > 1 else None) if padded else None
    big_m = kernel.resolve_m(n, n, causal=True, state=None, m=None, return_state=False)
    mine = causal_outputs_and_grads(
        lambda *t: causal_fused_path(kernel, *t[:3], mask, *t[3:], offset, big_m, chunk, every), q, k, v, kv0, z0)
    ref = causal_outputs_and_grads(
        lambda *t: causal_pytorch_path(kernel, *t[:3], mask, *t[3:], offset, big_m), q, k, v, kv0, z0)
    for name, a, r in zip(("out", "kv", "z", "g_q", "g_k", "g_v", "g_kv0", "g_z0"), mine, ref):
        # float32: relative to the tensor's scale (a query that sees only the initial state has
        # an output independent of its size: its gradient is a cancellation, zero up to rounding)
        tol = TOL[dtype] if dtype == torch.float64 else dict(atol=5e-5 * max(1.0, float(r.abs().max())), rtol=1e-5)
        torch.testing.assert_close(a, r, **tol, msg=lambda s: f"{name}: {s}")


@pytest.mark.parametrize("kind,options,m", [M_CASES[i] for i in (0, 1, 2, 4)],
                         ids=["fixed", "length", "length_m90", "linear"])
def test_causal_kernel_matches_quadratic_reference(extension, kind, options, m):
    """The kernel module's default causal path (fused, across a default-size chunk border)
    against the explicit quadratic formula: forward and gradients of q, k, v, key padding."""
    kernel = kernel_for(kind, **options)
    q, k, v = random_qkv(2, 2, 70, 70, 8, seed=70)
    mask = random_padding(2, 70, seed=7)
    with pytest.MonkeyPatch.context() as mp:
        calls = count_fused_calls(mp)
        mine = outputs_and_grads(lambda *t: (kernel(*t, causal=True, key_padding_mask=mask, m=m)[0],) * 3, q, k, v)
    assert calls == ["causal"], "the kernel did not take the fused causal path"
    ref = outputs_and_grads(lambda *t: (reference_attention(kind, kernel, *t, causal=True, key_padding_mask=mask,
                                                            m=m),) * 3, q, k, v)
    for a, r in zip(mine, ref):
        torch.testing.assert_close(a, r, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_causal_gradcheck_with_state_and_padding(extension, kind):
    """Numerical gradients of out, kv, z with respect to q, k, v, kv0, z0 (float64, chunks of 2,
    a checkpoint every 2 chunks, 7 rows: a partial chunk and a partial segment)."""
    kernel = kernel_for(kind, max_len=12) if kind == "cosformer" else kernel_for(kind)
    gen = torch.Generator().manual_seed(5)
    q, k, v = random_qkv(2, 1, 7, 7, 3, seed=4, away_from_zero=True)
    big_d = 6 if kind == "cosformer" else 3
    kv0 = torch.randn(2, 1, big_d, 3, dtype=torch.float64, generator=gen)
    z0 = torch.rand(2, 1, big_d, dtype=torch.float64, generator=gen) + 0.5
    mask = torch.tensor([[False, True, False, False, False, True, False], [False] * 6 + [True]])
    inputs = [t.requires_grad_() for t in (q, k, v, kv0, z0)]
    assert torch.autograd.gradcheck(lambda *t: causal_fused_path(kernel, *t[:3], mask, *t[3:], 4, 12, 2, 2), inputs,
                                    eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("kind,options,m", [M_CASES[0], M_CASES[2], M_CASES[4]], ids=["fixed", "length_m90", "linear"])
def test_prefill_then_decoding_equals_full_forward(extension, kind, options, m, monkeypatch):
    """An LM's use: prefill 30 tokens (fused, return_state=True), 5 single steps (PyTorch), a
    fused 12-token continuation of the state, 3 more steps: equals one full causal forward."""
    kernel = kernel_for(kind, **options)
    q, k, v = random_qkv(2, 2, 50, 50, 8, seed=50)
    mask = random_padding(2, 50, seed=3)
    full = kernel(q, k, v, causal=True, key_padding_mask=mask, m=m)[0]
    calls = count_fused_calls(monkeypatch)
    outs, state, start = [], None, 0
    for n in [30] + [1] * 5 + [12] + [1] * 3:
        piece = slice(start, start + n)
        out, state = kernel(q[:, :, piece], k[:, :, piece], v[:, :, piece], causal=True,
                            key_padding_mask=mask[:, piece], state=state, return_state=True, m=m)
        outs.append(out)
        start += n
    assert calls == ["causal", "causal"] and state.offset == 50
    torch.testing.assert_close(torch.cat(outs, dim=2), full, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(full, reference_attention(kind, kernel, q, k, v, causal=True, key_padding_mask=mask,
                                                         m=m), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_causal_strided_inputs_float32_several_segments(extension, kind):
    """Head-split views over several default-size segments; out.sum()'s gradient arrives
    expanded (stride 0)."""
    kernel = kernel_for(kind, torch.float32, max_len=700) if kind == "cosformer" else kernel_for(kind, torch.float32)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 600, 3, 16, generator=gen).transpose(1, 2) for _ in range(3))
    mask = random_padding(2, 600, seed=1)
    results = []
    for setting in ("1", "0"):
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("MIXNAS_FUSED", setting)
            out = kernel(*leaves, causal=True, key_padding_mask=mask)[0]
        out.sum().backward()
        results.append([out.detach()] + [t.grad for t in leaves])
    for a, r in zip(*results):
        assert (a - r).abs().max() <= 1e-5 * r.abs().max()


def test_parallel_region_with_inputs_that_require_grad(extension):
    """Two threads and calls large enough for the parallel region over (batch, head) pairs, on
    inputs that require grad (the region's other threads start with grad mode on): both kernels
    give what they give on one thread."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 2048, 16, generator=gen) for _ in range(3))
    kernel = kernel_for("cosformer", torch.float32, max_len=2048)
    threads = torch.get_num_threads()
    results = []
    for n in (2, 1):
        torch.set_num_threads(n)
        try:
            results.append([t for causal in (False, True)
                            for t in outputs_and_grads(lambda *t: (kernel(*t, causal=causal)[0],) * 3, q, k, v)])
        finally:
            torch.set_num_threads(threads)
    for a, r in zip(*results):
        torch.testing.assert_close(a, r, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_min_length(extension, kind, monkeypatch):
    """Below a kind's measured thresholds the PyTorch path runs (faster there), from them on
    the fused kernels; the numbers agree either way."""
    monkeypatch.undo()  # the real thresholds, not the autouse fixture's
    kernel = kernel_for(kind, max_len=8192) if kind == "cosformer" else kernel_for(kind)
    full_min, causal_min = kernel.fused_min_length
    assert 2 <= causal_min <= full_min
    calls = count_fused_calls(monkeypatch)
    for causal, length, expected in ((False, full_min - 1, []), (False, full_min, ["full"]),
                                     (True, causal_min - 1, []), (True, causal_min, ["causal"])):
        calls.clear()
        q, k, v = random_qkv(1, 1, length, length, 16, seed=length)
        out = kernel(q, k, v, causal=causal)[0]
        assert calls == expected, (causal, length)
        with fused.reference_path():
            torch.testing.assert_close(out, kernel(q, k, v, causal=causal)[0], **TOL[torch.float64])
