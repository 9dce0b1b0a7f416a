"""Per-kind attention-core FLOPs formulas against FlopCounterMode on the kernels themselves."""
import pytest
import torch
from cost_archs import measured_flops

from mixnas.attention import build_kernel, kinds
from mixnas.cost import attention_cost, core_flops, covered_kinds, register_attention_cost
from mixnas.cost.attention import AttentionCost, kernel_params

HEADS, HEAD_DIM = 2, 6
OPTIONS = {"cosformer": {"chunk": 4}, "linear": {"chunk": 3}, "relative": {"max_relative_position": 2}}


def kernel(kind):
    return build_kernel(kind, HEAD_DIM, **OPTIONS.get(kind, {})).eval()


def qkv(length, seed=0):
    return torch.randn(1, HEADS, length, HEAD_DIM, generator=torch.Generator().manual_seed(seed))


def expected(kind, mode, **kw):
    return core_flops(kind, mode, heads=HEADS, head_dim=HEAD_DIM, attention_options=OPTIONS, **kw)


def test_every_registered_kind_has_a_cost_formula():
    assert covered_kinds() == kinds()


@pytest.mark.parametrize("kind", kinds())
def test_kernel_params(kind):
    assert kernel_params(kind, HEAD_DIM, OPTIONS) == sum(p.numel() for p in kernel(kind).parameters())


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("lq,lk", [(1, 1), (5, 9), (9, 5)])
def test_non_causal(kind, lq, lk):
    q, k = qkv(lq), qkv(lk, 1)
    assert measured_flops(lambda: kernel(kind)(q, k, k)) == expected(kind, "full", lq=lq, lk=lk)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("n", [1, 2, 4, 7, 12])  # one step, within a chunk, exact and padded chunks
def test_causal(kind, n):
    x = qkv(n)
    assert measured_flops(lambda: kernel(kind)(x, x, x, causal=True)) == expected(kind, "causal", lq=n)


@pytest.mark.parametrize("kind", kinds())
def test_decoding_steps_and_cached_cross_attention(kind):
    attn, x = kernel(kind), qkv(1)
    _, state = attn(x, x, x, causal=True, return_state=True)
    for past in range(1, 4):
        assert measured_flops(lambda: attn(x, x, x, causal=True, state=state)) == \
            expected(kind, "causal", lq=1, past=past)
        _, state = attn(x, x, x, causal=True, state=state)
    memory = qkv(7, 2)
    _, cross = attn(x, memory, memory, return_state=True)
    assert measured_flops(lambda: attn(x, None, None, state=cross)) == expected(kind, "cached", lq=1, lk=7)


def test_unknown_kind_and_mode_errors():
    with pytest.raises(ValueError, match="unknown attention kind 'nope'"):
        attention_cost("nope")
    with pytest.raises(ValueError, match="unknown attention cost mode"):
        core_flops("softmax", "sideways", heads=1, head_dim=4, lq=1, lk=1)
    with pytest.raises(ValueError, match="already has a cost formula"):
        register_attention_cost("softmax", AttentionCost(*(lambda *a: 0,) * 3))


def test_kind_without_formula_is_named(monkeypatch):
    import mixnas.cost.attention as cost_attention
    monkeypatch.delitem(cost_attention._COSTS, "linear")
    with pytest.raises(ValueError, match="'linear' has no FLOPs formula; register one"):
        core_flops("linear", "full", heads=1, head_dim=4, lq=1, lk=1)
