"""cosformer with m_rule="length" (M given per call, the official cosFormer code's rule):
against the explicit quadratic reference in every mode, gradients, decoding with an M fixed
in advance, and the errors."""
import math

import pytest
import torch
from torch.func import functional_call

from attention_reference import cosformer_m, random_padding, random_qkv, reference_attention
from mixnas.attention import LinearState, MultiheadAttention, build_kernel

ATOL = RTOL = 1e-6
LENGTH = {"m_rule": "length", "chunk": 16}

# (causal, query length, key length, m); m None: M is the call's own length.
CASES = [
    (False, 1, 1, None), (False, 37, 37, None), (False, 150, 150, None), (False, 37, 37, 60),
    (True, 1, 1, None), (True, 16, 16, None), (True, 37, 37, None), (True, 150, 150, None),
    (True, 37, 37, 37), (True, 37, 37, 90),
    (False, 5, 23, None), (False, 41, 9, None), (False, 70, 130, None),
    (False, 5, 23, 30), (False, 41, 9, 50), (False, 5, 23, 4),  # m below Lk: M = max(m, Lk)
]


def length_kernel(head_dim=8, **options):
    return build_kernel("cosformer", head_dim, **{**LENGTH, **options}).double()


@pytest.mark.parametrize("causal,lq,lk,m", CASES)
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_matches_reference_float64(causal, lq, lk, m, padded):
    kernel = length_kernel()
    q, k, v = random_qkv(2, 3, lq, lk, 8, seed=lq * 1000 + lk)
    mask = random_padding(2, lk, seed=lk) if padded else None
    out, state = kernel(q, k, v, causal=causal, key_padding_mask=mask, m=m)
    assert state is None
    ref = reference_attention("cosformer", kernel, q, k, v, causal=causal, key_padding_mask=mask, m=m)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)


def test_the_rule_gives_the_papers_weights():
    """Self-attention over L tokens without m is cosFormer with M = L: equal to a fixed kernel
    built with max_len = L, and far from the default M = 1024 (the weight between the first and
    the last token is cos(pi/2 (L-1)/L) ~ 0.05 instead of ~ 1)."""
    q, k, v = random_qkv(2, 2, 30, 30, 8, seed=1)
    for causal in (False, True):
        out, _ = length_kernel()(q, k, v, causal=causal)
        same, _ = build_kernel("cosformer", 8, max_len=30).double()(q, k, v, causal=causal)
        torch.testing.assert_close(out, same, atol=1e-12, rtol=1e-12)
        default, _ = build_kernel("cosformer", 8).double()(q, k, v, causal=causal)
        assert (out - default).abs().max() > 0.05
    assert cosformer_m(length_kernel(), 30, 30, False, None) == 30
    assert math.cos(math.pi / 2 * 29 / 30) < 0.06


def test_fixed_rule_ignores_m():
    kernel = build_kernel("cosformer", 8, max_len=50).double()
    q, k, v = random_qkv(1, 2, 20, 20, 8, seed=2)
    for causal in (False, True):
        a, _ = kernel(q, k, v, causal=causal)
        b, _ = kernel(q, k, v, causal=causal, m=25)
        assert torch.equal(a, b)


@pytest.mark.parametrize("causal", [False, True])
def test_float32_default_chunk(causal):
    kernel = build_kernel("cosformer", 16, m_rule="length")
    q, k, v = random_qkv(1, 2, 200, 200, 16, dtype=torch.float32, seed=7)
    mask = random_padding(1, 200, seed=3)
    out, _ = kernel(q, k, v, causal=causal, key_padding_mask=mask, m=230)
    ref = reference_attention("cosformer", kernel, q.double(), k.double(), v.double(), causal=causal,
                              key_padding_mask=mask, m=230)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunk", [1, 5, 64, 500])
def test_causal_chunk_size_does_not_change_the_result(chunk):
    kernel = length_kernel(chunk=chunk)
    q, k, v = random_qkv(2, 2, 77, 77, 8, seed=11)
    mask = random_padding(2, 77, seed=5)
    out, _ = kernel(q, k, v, causal=True, key_padding_mask=mask, m=80)
    ref = reference_attention("cosformer", kernel, q, k, v, causal=True, key_padding_mask=mask, m=80)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("causal,lq,lk", [(False, 5, 5), (True, 5, 5), (False, 3, 6)], ids=["self", "causal", "cross"])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("m", [None, 7])
def test_gradcheck(causal, lq, lk, padded, m):
    kernel = length_kernel(head_dim=3, chunk=2)
    q, k, v = random_qkv(1, 2, lq, lk, 3, seed=lq + 10 * lk, away_from_zero=True)
    mask = None
    if padded:
        mask = random_padding(1, lk, seed=1)
        mask[0, 1], mask[0, 0] = True, False

    def fn(q, k, v):
        return functional_call(kernel, {}, (q, k, v), {"causal": causal, "key_padding_mask": mask, "m": m})[0]

    assert torch.autograd.gradcheck(fn, [t.requires_grad_() for t in (q, k, v)], eps=1e-6, atol=1e-6, rtol=1e-5)


def decode_self(kernel, q, k, v, steps, m, mask=None):
    outs, state, start = [], None, 0
    for i, n in enumerate(steps):
        piece = slice(start, start + n)
        step_mask = None if mask is None else mask[:, piece]
        # m on the first call fixes M; later calls may repeat it or leave it out
        out, state = kernel(q[:, :, piece], k[:, :, piece], v[:, :, piece], causal=True,
                            key_padding_mask=step_mask, state=state, return_state=True,
                            m=m if i % 2 == 0 else None)
        assert isinstance(state, LinearState) and state.m == m and state.offset == start + n
        outs.append(out)
        start += n
    return torch.cat(outs, dim=2), state


@pytest.mark.parametrize("steps", [[1] * 23, [3, 1, 7, 1, 5, 6], [10, 13]], ids=["token", "multi", "prefix"])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("m", [23, 31])
def test_decoding_equals_full_causal_forward_with_the_same_m(steps, padded, m):
    kernel = length_kernel()
    q, k, v = random_qkv(2, 2, 23, 23, 8, seed=3)
    mask = random_padding(2, 23, seed=6) if padded else None
    full, _ = kernel(q, k, v, causal=True, key_padding_mask=mask, m=m)
    stepped, _ = decode_self(kernel, q, k, v, steps, m, mask)
    torch.testing.assert_close(stepped, full, atol=ATOL, rtol=RTOL)
    ref = reference_attention("cosformer", kernel, q, k, v, causal=True, key_padding_mask=mask, m=m)
    torch.testing.assert_close(full, ref, atol=ATOL, rtol=RTOL)
    # and a prefix decoded alone is the reference at its offsets with the same M
    tail, _ = kernel(q[:, :, 20:], k[:, :, 20:], v[:, :, 20:], causal=True, m=m,
                     state=kernel(q[:, :, :20], k[:, :, :20], v[:, :, :20], causal=True, m=m, return_state=True)[1])
    torch.testing.assert_close(tail, reference_attention("cosformer", kernel, q, k, v, causal=True, m=m)[:, :, 20:],
                               atol=ATOL, rtol=RTOL)


def test_m_matters_for_decoding():
    """The same tokens with another M give other outputs: M is a real input of the call."""
    kernel = length_kernel()
    q, k, v = random_qkv(1, 2, 12, 12, 8, seed=9)
    a, _ = kernel(q, k, v, causal=True, m=12)
    b, _ = kernel(q, k, v, causal=True, m=40)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("m", [None, 9, 30])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_cross_attention_static_state(m, padded):
    """The static state keeps M = max(m, Lk); state-only calls use it whatever m they pass."""
    kernel = length_kernel()
    q, k, v = random_qkv(2, 2, 12, 17, 8, seed=5)
    mask = random_padding(2, 17, seed=4) if padded else None
    big_m = max(m or 0, 17)
    full, _ = kernel(q, k, v, key_padding_mask=mask, m=big_m)
    ref = reference_attention("cosformer", kernel, q, k, v, key_padding_mask=mask, m=big_m)
    torch.testing.assert_close(full, ref, atol=ATOL, rtol=RTOL)
    if m is None:
        with pytest.raises(ValueError, match=r"needs M before decoding starts: pass m="):
            kernel(q[:, :, :3], k, v, key_padding_mask=mask, return_state=True)
        return
    first, state = kernel(q[:, :, :3], k, v, key_padding_mask=mask, return_state=True, m=m)
    assert state.static and state.m == big_m
    outs = [first]
    for start, stop in [(3, 4), (4, 9), (9, 12)]:
        out, state = kernel(q[:, :, start:stop], None, None, state=state, m=m)
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=2), full, atol=ATOL, rtol=RTOL)


def test_state_reorder_keeps_m():
    kernel = length_kernel()
    q, k, v = random_qkv(3, 2, 14, 14, 8, seed=12)
    index = torch.tensor([2, 0, 0])
    _, state = kernel(q[:, :, :8], k[:, :, :8], v[:, :, :8], causal=True, return_state=True, m=20)
    state = state.reorder(index)
    assert state.m == 20
    out, _ = kernel(q[index][:, :, 8:], k[index][:, :, 8:], v[index][:, :, 8:], causal=True, state=state)
    full, _ = kernel(q[index], k[index], v[index], causal=True, m=20)
    torch.testing.assert_close(out, full[:, :, 8:], atol=ATOL, rtol=RTOL)


def test_multihead_self_and_cross_decoding():
    torch.manual_seed(0)
    self_attn = MultiheadAttention(16, 2, "cosformer", **LENGTH).double().eval()
    cross_attn = MultiheadAttention(16, 2, "cosformer", kv_dim=12, qkv_dim=24, **LENGTH).double().eval()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    memory = torch.randn(2, 7, 12, dtype=torch.float64)
    src_mask = random_padding(2, 7, seed=3)
    src_mask[:, 0] = False
    m = 14
    full_self, _ = self_attn(x, causal=True, m=m)
    full_cross, _ = cross_attn(full_self, memory, key_padding_mask=src_mask, m=m)
    self_state = cross_state = None
    outs = []
    for start, stop in [(0, 1), (1, 2), (2, 6), (6, 7), (7, 11)]:
        h, self_state = self_attn(x[:, start:stop], causal=True, state=self_state, return_state=True, m=m)
        h, cross_state = cross_attn(h, memory if cross_state is None else None, key_padding_mask=src_mask,
                                    state=cross_state, return_state=True, m=m)
        outs.append(h)
    torch.testing.assert_close(torch.cat(outs, dim=1), full_cross, atol=ATOL, rtol=RTOL)
    without_m, _ = self_attn(x, causal=True)  # M = 11, another weighting
    assert (without_m - full_self).abs().max() > 1e-4


def test_errors():
    kernel = length_kernel()
    q, k, v = random_qkv(1, 2, 6, 6, 8)
    with pytest.raises(ValueError, match=r"needs M before decoding starts: pass m="):
        kernel(q, k, v, causal=True, return_state=True)
    with pytest.raises(ValueError, match=r"cosformer position 5 is beyond M=4 \(m_rule='length': positions must be < M\); pass a larger m"):
        kernel(q, k, v, causal=True, m=4)
    with pytest.raises(ValueError, match=r"cosformer position 5 is beyond M=5"):  # cross: queries past M
        kernel(q, k[:, :, :3], v[:, :, :3], m=5)
    _, state = kernel(q, k, v, causal=True, return_state=True, m=7)
    one = (q[:, :, :1], k[:, :, :1], v[:, :, :1])
    _, state = kernel(*one, causal=True, state=state)  # position 6 < 7
    with pytest.raises(ValueError, match=r"cosformer position 7 is beyond M=7"):
        kernel(*one, causal=True, state=state)
    with pytest.raises(ValueError, match=r"cosformer m=8 differs from M=7 the decoding state was started with"):
        kernel(*one, causal=True, state=state, m=8)
    for bad in (0, -3, 2.5, True, "9"):
        with pytest.raises(ValueError, match=r"cosformer m must be a positive integer"):
            kernel(q, k, v, m=bad)
    with pytest.raises(ValueError, match=r"cosformer option m_rule must be 'fixed' or 'length', got 'paper'"):
        build_kernel("cosformer", 8, m_rule="paper")
    with pytest.raises(ValueError, match=r"cosformer option max_len must be a positive integer"):
        build_kernel("cosformer", 8, max_len=0)
    with pytest.raises(ValueError, match=r"'softmax' has no option\(s\) \['m_rule'\]"):
        build_kernel("softmax", 8, m_rule="length")


@pytest.mark.parametrize("kind", ["softmax", "linear", "relative"])
def test_other_kinds_ignore_m(kind):
    kernel = build_kernel(kind, 8).double()
    q, k, v = random_qkv(1, 2, 6, 6, 8)
    for causal in (False, True):
        assert torch.equal(kernel(q, k, v, causal=causal)[0], kernel(q, k, v, causal=causal, m=3)[0])
