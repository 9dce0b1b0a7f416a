"""Bad input gives a one-line ValueError that names the problem, never a deep torch traceback."""
import pytest
import torch

from attention_reference import random_qkv
from mixnas.attention import MultiheadAttention, build_kernel, kinds


def qkv(lq=4, lk=4, dim=8, dtype=torch.float32):
    return random_qkv(2, 2, lq, lk, dim, dtype=dtype)


@pytest.mark.parametrize("kind", kinds())
def test_bad_tensors(kind):
    kernel = build_kernel(kind, 8)
    q, k, v = qkv()
    cases = [
        ((q[0], k, v), {}, r"query must have shape \(batch, heads, length, head_dim\), got \(2, 4, 8\)"),
        ((q, k.unsqueeze(0), v), {}, r"key must have shape"),
        ((q, k, v.double()), {}, r"query, key and value must share a dtype"),
        ((q.long(), k.long(), v.long()), {}, r"query must be a floating-point tensor"),
        ((q, k, v[:, :, :3]), {}, r"batch/heads/length mismatch"),
        ((q, k[..., :4], v), {}, r"query and key head_dim differ: 8 vs 4"),
        ((q, k, v), {"key_padding_mask": torch.zeros(2, 5, dtype=torch.bool)},
         r"key_padding_mask must have shape \(batch, key_length\) = \(2, 4\), got \(2, 5\)"),
        ((q, k, v), {"key_padding_mask": torch.zeros(2, 4)}, r"key_padding_mask must be bool"),
        ((q[:, :, :2], k, v), {"causal": True}, r"causal self-attention needs equal query and key lengths"),
        ((q, None, None), {}, r"key and value are required"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            kernel(*args, **kwargs)


@pytest.mark.parametrize("kind", kinds())
def test_head_dim_too_large(kind):
    kernel = build_kernel(kind, 4)
    with pytest.raises(ValueError, match=r"head_dim 8 exceeds the kernel's head_dim=4"):
        kernel(*qkv())


def test_unknown_kind_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown attention kind 'performer'; registered kinds: .*cosformer"):
        build_kernel("performer", 8)
    with pytest.raises(ValueError, match=r"unknown attention kind 'performer'"):
        MultiheadAttention(16, 2, "performer")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"attention kind 'softmax' has no option\(s\) \['max_len'\]; valid: \['dropout'\]"):
        build_kernel("softmax", 8, max_len=10)
    with pytest.raises(ValueError, match=r"'cosformer' has no option\(s\) \['bogus'\]; valid: .*'max_len'"):
        MultiheadAttention(16, 2, "cosformer", bogus=1)


def test_cosformer_position_beyond_max_len():
    kernel = build_kernel("cosformer", 8, max_len=6)
    q, k, v = qkv(lq=4, lk=4)
    with pytest.raises(ValueError, match=r"cosformer position 6 is beyond max_len=6; build the attention with a larger max_len"):
        kernel(*qkv(lq=7, lk=7), causal=True)
    _, state = kernel(q, k, v, causal=True, return_state=True)  # positions 0..3 are fine
    _, state = kernel(q[:, :, :2], k[:, :, :2], v[:, :, :2], causal=True, state=state)  # 4, 5
    with pytest.raises(ValueError, match=r"cosformer position 6 is beyond max_len=6"):
        kernel(q[:, :, :1], k[:, :, :1], v[:, :, :1], causal=True, state=state)


def test_growing_state_needs_causal():
    kernel = build_kernel("softmax", 8)
    q, k, v = qkv()
    _, state = kernel(q, k, v, causal=True, return_state=True)
    with pytest.raises(ValueError, match=r"a growing decoding state needs causal=True"):
        kernel(q, k, v, state=state)


def test_multihead_bad_input():
    with pytest.raises(ValueError, match=r"qkv_dim=10 is not divisible by num_heads=4"):
        MultiheadAttention(16, 4, "softmax", qkv_dim=10)
    attn = MultiheadAttention(16, 2, "cosformer")
    with pytest.raises(ValueError, match=r"input must have shape \(batch, length, 16\), got \(3, 12\)"):
        attn(torch.randn(3, 12))
    with pytest.raises(ValueError, match=r"input must have shape \(batch, length, 16\), got \(1, 3, 12\)"):
        attn(torch.randn(1, 3, 12))
