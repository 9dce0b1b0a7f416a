"""Incremental decoding equals the full forward: causal self-attention token by token and in
multi-token steps, cross-attention from a cached (static) state, with padding, beam reordering,
and through MultiheadAttention."""
import pytest
import torch

from attention_reference import options_for, random_padding, random_qkv, reference_attention
from mixnas.attention import KVCache, LinearState, MultiheadAttention, build_kernel, get_spec, kinds

ATOL = RTOL = 1e-5
STEP_PATTERNS = {"token_by_token": [1] * 23, "multi_token": [3, 1, 7, 1, 5, 6]}  # both sum to 23


def decode_self(kernel, q, k, v, steps, mask=None):
    """Feed the sequence in pieces of the given sizes; return the concatenated outputs."""
    outs, state, start = [], None, 0
    for n in steps:
        piece = slice(start, start + n)
        step_mask = None if mask is None else mask[:, piece]
        out, state = kernel(q[:, :, piece], k[:, :, piece], v[:, :, piece], causal=True,
                            key_padding_mask=step_mask, state=state, return_state=True)
        assert state.offset == start + n and not state.static
        outs.append(out)
        start += n
    return torch.cat(outs, dim=2), state


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("pattern", list(STEP_PATTERNS))
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_causal_decoding_equals_full_forward(kind, pattern, padded):
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = random_qkv(2, 2, 23, 23, 8, seed=3)
    mask = random_padding(2, 23, seed=6) if padded else None
    full, _ = kernel(q, k, v, causal=True, key_padding_mask=mask)
    stepped, state = decode_self(kernel, q, k, v, STEP_PATTERNS[pattern], mask)
    torch.testing.assert_close(stepped, full, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(full, reference_attention(kind, kernel, q, k, v, causal=True, key_padding_mask=mask),
                               atol=ATOL, rtol=RTOL)
    if get_spec(kind).linear_complexity:  # constant-size recurrent state
        feature_dim = kernel.features(q[:, :, :1], torch.zeros(1, dtype=torch.long)).shape[-1]
        assert isinstance(state, LinearState)
        assert state.kv.shape == (2, 2, feature_dim, 8) and state.z.shape == (2, 2, feature_dim)
    else:
        assert isinstance(state, KVCache) and state.k.shape[2] == 23


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_full_causal_forward_after_a_prefix_state(kind, padded):
    """One call over the first 10 tokens, then one chunked call for the remaining 30."""
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = random_qkv(2, 2, 40, 40, 8, seed=8)
    mask = random_padding(2, 40, seed=2) if padded else None
    full, _ = kernel(q, k, v, causal=True, key_padding_mask=mask)
    stepped, _ = decode_self(kernel, q, k, v, [10, 30], mask)
    torch.testing.assert_close(stepped, full, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_cross_attention_static_state(kind, padded):
    """First call caches the memory; state-only calls (k = v = None) continue at the right
    query offsets and equal the full cross-attention forward."""
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = random_qkv(2, 2, 12, 17, 8, seed=5)
    mask = random_padding(2, 17, seed=4) if padded else None
    full, _ = kernel(q, k, v, key_padding_mask=mask)
    torch.testing.assert_close(full, reference_attention(kind, kernel, q, k, v, key_padding_mask=mask),
                               atol=ATOL, rtol=RTOL)
    first, state = kernel(q[:, :, :3], k, v, key_padding_mask=mask, return_state=True)
    assert state.static and state.offset == 3
    outs = [first]
    for start, stop in [(3, 4), (4, 9), (9, 12)]:
        out, state = kernel(q[:, :, start:stop], None, None, state=state)
        assert state.offset == stop
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs, dim=2), full, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
def test_state_reorder_for_beam_search(kind):
    """Decode 8 tokens of a batch of 3, reorder rows [2, 0, 0], decode 6 more: equals the
    full causal forward of the reordered sequences."""
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = random_qkv(3, 2, 14, 14, 8, seed=12)
    mask = random_padding(3, 14, seed=1)
    index = torch.tensor([2, 0, 0])
    _, state = decode_self(kernel, q[:, :, :8], k[:, :, :8], v[:, :, :8], [8], mask[:, :8])
    state = state.reorder(index)
    tail = slice(8, 14)
    out, _ = kernel(q[index][:, :, tail], k[index][:, :, tail], v[index][:, :, tail], causal=True,
                    key_padding_mask=mask[index][:, tail], state=state)
    full, _ = kernel(q[index], k[index], v[index], causal=True, key_padding_mask=mask[index])
    torch.testing.assert_close(out, full[:, :, tail], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
def test_multihead_self_and_cross_decoding(kind):
    """A decoder layer's two attentions through MultiheadAttention: step-by-step equals full."""
    torch.manual_seed(0)
    self_attn = MultiheadAttention(16, 2, kind, **options_for(kind)).double().eval()
    cross_attn = MultiheadAttention(16, 2, kind, kv_dim=12, qkv_dim=24, **options_for(kind)).double().eval()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    memory = torch.randn(2, 7, 12, dtype=torch.float64)
    src_mask = random_padding(2, 7, seed=3)
    src_mask[:, 0] = False
    full_self, _ = self_attn(x, causal=True)
    full_cross, _ = cross_attn(full_self, memory, key_padding_mask=src_mask)
    self_state = cross_state = None
    outs = []
    for start, stop in [(0, 1), (1, 2), (2, 6), (6, 7), (7, 11)]:
        h, self_state = self_attn(x[:, start:stop], causal=True, state=self_state, return_state=True)
        h, cross_state = cross_attn(h, memory if cross_state is None else None, key_padding_mask=src_mask,
                                    state=cross_state, return_state=True)
        outs.append(h)
    torch.testing.assert_close(torch.cat(outs, dim=1), full_cross, atol=ATOL, rtol=RTOL)
    reordered = self_state.reorder(torch.tensor([1, 1]))
    x_next = torch.randn(2, 1, 16, dtype=torch.float64)
    step, _ = self_attn(x_next, causal=True, state=reordered)
    full_next, _ = self_attn(torch.cat([x[[1, 1]], x_next], dim=1), causal=True)
    torch.testing.assert_close(step, full_next[:, -1:], atol=ATOL, rtol=RTOL)
