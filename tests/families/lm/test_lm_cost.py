"""Analytic params and FLOPs of the LM equal the model's parameters and FlopCounterMode's counts."""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mixnas.attention import kinds
from mixnas.cost import count_params
from mixnas.families import family_named
from mixnas.families.lm.model import LM
from lm_helpers import tiny_config, uniform_arch
from test_lm_model import mixed_arch

FAMILY = family_named("lm")


def counted(fn) -> int:
    """FLOPs as FlopCounterMode counts them; MATH backend so the softmax kernel is visible (as tests/cost)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("kind", [*kinds(), "mixed"])
@pytest.mark.parametrize("seq_len", [1, 7, 12])
def test_flops_and_params_are_exact(kind, seq_len):
    config = tiny_config(context=12)
    arch = mixed_arch() if kind == "mixed" else uniform_arch(kind, depth=2)
    model = LM(arch, config).eval()
    assert count_params(arch, config) == sum(p.numel() for p in model.parameters())
    tokens = torch.randint(0, config.vocab_size, (1, seq_len))
    assert counted(lambda: model(tokens)) == sum(FAMILY.flops_breakdown(arch, config, seq_len=seq_len).values())
    prefix = None if seq_len == 1 else model.step(tokens[:, :-1], None, 0)[1]
    decode = counted(lambda: model.step(tokens[:, -1:], prefix, seq_len - 1))
    assert decode == sum(FAMILY.decode_flops_breakdown(arch, config, seq_len=seq_len).values())


def test_cost_report_and_embedding_parts():
    config = tiny_config(context=12)
    arch = uniform_arch("softmax")
    report = FAMILY.cost_report(arch, config, seq_len=12)
    forward = FAMILY.flops_breakdown(arch, config, seq_len=12)
    assert report["flops"] - report["flops_without_embeddings"] == forward["output_projection"]
    assert report["decode_flops"] > report["decode_flops_without_embeddings"] > 0
    params = FAMILY.params_breakdown(arch, config)
    assert params["embed_tokens"] == (config.vocab_size + config.context) * arch.embed_dim
    assert count_params(arch, config, include_embeddings=False) == count_params(arch, config) - params["embed_tokens"]
    assert FAMILY.cost_report(arch, config)["seq_len"] == 64  # the default option
    with pytest.raises(ValueError, match="no cost option 'beam'"):
        FAMILY.flops_breakdown(arch, config, beam=4)


@pytest.mark.parametrize("kind", ["softmax", "cosformer", "mixed"])
def test_latency_workload_is_one_decoding_step_at_the_length(kind):
    config = tiny_config(context=12)
    arch = mixed_arch() if kind == "mixed" else uniform_arch(kind)
    model = LM(arch, config).eval()
    fn, protocol = FAMILY.latency_workload(model, torch.Generator().manual_seed(0), "cpu", seq_len=12)
    assert protocol == {"task": "language-modeling", "batch": 1, "workload": "one decoding step", "decode_position": 11}
    # It runs exactly the decoding FLOPs of the cost model, and twice the same step: the state is not consumed.
    assert counted(fn) == sum(FAMILY.decode_flops_breakdown(arch, config, seq_len=12).values())
    with torch.inference_mode():
        first, again = fn()[0], fn()[0]
    assert torch.equal(first, again)
    # The step continues the same 11 tokens as the full forward over 12 does.
    tokens = torch.randint(0, config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(first[:, -1], model(tokens)[:, -1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        FAMILY.latency_workload(model, torch.Generator(), "cpu", seq_len=13)
