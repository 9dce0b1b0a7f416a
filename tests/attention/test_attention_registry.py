"""The registry: built-in kinds are present, and a new kind is one class plus one registration."""
import pytest
import torch
import torch.nn.functional as F

from attention_reference import linear_weights, random_qkv, visible
from mixnas.attention import AttentionSpec, LinearKernel, MultiheadAttention, build_kernel, get_spec, kinds, register
from mixnas.attention import registry


def test_builtin_kinds():
    assert {"softmax", "cosformer", "linear", "relative"} <= set(kinds())
    assert get_spec("cosformer").linear_complexity and not get_spec("softmax").linear_complexity
    assert get_spec("cosformer").options["max_len"] == 1024


def test_registering_twice_is_an_error():
    with pytest.raises(ValueError, match=r"attention kind 'softmax' is already registered"):
        register(get_spec("softmax"))


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, restored after the test, so a toy kind never leaks out."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_new_kind_is_one_class_and_one_registration(scratch_registry):
    # --- the whole new kind: a feature map and a registration -------------------------------
    class SoftplusKernel(LinearKernel):
        def features(self, x, positions):
            return F.softplus(x)

    register(AttentionSpec("toy_softplus", SoftplusKernel, linear_complexity=True,
                           summary="softplus(q) softplus(k)^T v", options={"eps": 1e-6, "chunk": 4}))
    # -----------------------------------------------------------------------------------------
    assert "toy_softplus" in kinds()
    torch.manual_seed(0)
    attn = MultiheadAttention(8, 2, "toy_softplus").double()
    x = torch.randn(2, 10, 8, dtype=torch.float64)
    out, _ = attn(x, causal=True)

    # The same computation from the formula: weights softplus(q_i).softplus(k_j) over j <= i.
    q = attn.q_proj(x).view(2, 10, 2, 4).transpose(1, 2)
    k = attn.k_proj(x).view(2, 10, 2, 4).transpose(1, 2)
    v = attn.v_proj(x).view(2, 10, 2, 4).transpose(1, 2)
    weights = linear_weights(F.softplus(q) @ F.softplus(k).transpose(-1, -2), visible(10, 10, True, None, 0, 2), 1e-6)
    expected = attn.out_proj((weights @ v).transpose(1, 2).reshape(2, 10, 8))
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)

    # It decodes like every other kind, for free.
    state, steps = None, []
    for t in range(10):
        step, state = attn(x[:, t:t + 1], causal=True, state=state, return_state=True)
        steps.append(step)
    torch.testing.assert_close(torch.cat(steps, dim=1), out, atol=1e-10, rtol=1e-10)


def test_toy_kind_did_not_leak():
    assert "toy_softplus" not in kinds()
    with pytest.raises(ValueError, match="unknown attention kind 'toy_softplus'"):
        build_kernel("toy_softplus", 4)


def test_kernels_are_modules_with_the_documented_call(scratch_registry):
    q, k, v = random_qkv(1, 1, 3, 3, 4)
    for kind in kinds():
        kernel = build_kernel(kind, 4)
        assert isinstance(kernel, torch.nn.Module)
        out, state = kernel(q, k, v, causal=True, key_padding_mask=None, state=None, return_state=True)
        assert out.shape == q.shape and state.offset == 3
