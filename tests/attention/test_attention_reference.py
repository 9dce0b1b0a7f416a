"""Every registered kind against its explicit quadratic reference, in every mode."""
import pytest
import torch

from attention_reference import options_for, random_padding, random_qkv, reference_attention
from mixnas.attention import build_kernel, kinds

# (mode, causal, query length, key length). Linear kinds use chunk=16 here (options_for), so
# 37 and 150 are not multiples of the chunk and span several chunks; 16 is exactly one chunk.
CASES = [
    ("self", False, 1, 1), ("self", False, 37, 37), ("self", False, 150, 150),
    ("causal", True, 1, 1), ("causal", True, 16, 16), ("causal", True, 37, 37), ("causal", True, 150, 150),
    ("cross", False, 5, 23), ("cross", False, 41, 9), ("cross", False, 70, 130),
]
ATOL = RTOL = 1e-5


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("mode,causal,lq,lk", CASES)
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
def test_matches_reference_float64(kind, mode, causal, lq, lk, padded):
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = random_qkv(2, 3, lq, lk, 8, seed=lq * 1000 + lk)
    mask = random_padding(2, lk, seed=lk) if padded else None
    out, state = kernel(q, k, v, causal=causal, key_padding_mask=mask)
    ref = reference_attention(kind, kernel, q, k, v, causal=causal, key_padding_mask=mask)
    assert state is None
    assert out.shape == (2, 3, lq, 8)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("causal", [False, True])
def test_matches_reference_float32_default_options(kind, causal):
    """The production dtype and default options (chunk 64, M = 1024): 200 spans 4 chunks."""
    kernel = build_kernel(kind, 16)
    q, k, v = random_qkv(1, 2, 200, 200, 16, dtype=torch.float32, seed=7)
    mask = random_padding(1, 200, seed=3)
    out, _ = kernel(q, k, v, causal=causal, key_padding_mask=mask)
    ref = reference_attention(kind, kernel.double(), q.double(), k.double(), v.double(),
                              causal=causal, key_padding_mask=mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", [kind for kind in kinds() if "chunk" in options_for(kind)])
@pytest.mark.parametrize("chunk", [1, 5, 64, 500])
def test_causal_chunk_size_does_not_change_the_result(kind, chunk):
    """Chunk 1 is the pure recurrence, 500 > length a single masked block."""
    kernel = build_kernel(kind, 8, **{**options_for(kind), "chunk": chunk}).double()
    q, k, v = random_qkv(2, 2, 77, 77, 8, seed=11)
    mask = random_padding(2, 77, seed=5)
    out, _ = kernel(q, k, v, causal=True, key_padding_mask=mask)
    ref = reference_attention(kind, kernel, q, k, v, causal=True, key_padding_mask=mask)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
def test_smaller_head_than_built_for(kind):
    """A supernet runs a kernel built for head_dim 16 on 8-dim heads (relative slices aK/aV)."""
    kernel = build_kernel(kind, 16, **options_for(kind)).double()
    q, k, v = random_qkv(1, 2, 30, 30, 8, seed=2)
    out, _ = kernel(q, k, v, causal=True)
    torch.testing.assert_close(out, reference_attention(kind, kernel, q, k, v, causal=True), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("causal,lq,lk", [(False, 9, 9), (True, 9, 9), (False, 4, 9)])
def test_fully_padded_rows_give_zeros_and_finite_gradients(kind, causal, lq, lk):
    kernel = build_kernel(kind, 8, **options_for(kind)).double()
    q, k, v = (t.requires_grad_() for t in random_qkv(3, 2, lq, lk, 8, seed=4))
    mask = random_padding(3, lk, seed=9, fully_padded_row=1)
    mask[2, 0] = True  # causal: the first query of row 2 sees only a padded key
    out, _ = kernel(q, k, v, causal=causal, key_padding_mask=mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    if causal:
        assert torch.equal(out[2, :, 0], torch.zeros_like(out[2, :, 0]))
    out.square().sum().backward()
    for t in (q, k, v):
        assert torch.isfinite(t.grad).all()
    torch.testing.assert_close(out, reference_attention(kind, kernel, q, k, v, causal=causal, key_padding_mask=mask),
                               atol=ATOL, rtol=RTOL)
