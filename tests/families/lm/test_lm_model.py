"""LM and SupernetLM: supernet slice == extracted model, incremental decoding == full forward."""
import random

import pytest
import torch

from mixnas.attention import kinds
from mixnas.families.lm.model import LM
from mixnas.families.lm.supernet import SupernetLM
from lm_helpers import tiny_config, tiny_space, uniform_arch

torch.set_num_threads(1)


@pytest.mark.parametrize("share", [False, True])
def test_supernet_slice_equals_extracted_model(share):
    torch.manual_seed(0)
    space, config = tiny_space(), tiny_config()
    supernet = SupernetLM.from_space(space, config, share_projections=share).double().eval()
    tokens = torch.randint(0, config.vocab_size, (3, config.context))
    rng = random.Random(1)
    archs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(8)]
    archs += [uniform_arch(k, depth=3, embed=12, heads=1) for k in kinds()]
    for arch in archs:
        supernet.set_arch(arch)
        model = supernet.extract(arch).eval()
        assert isinstance(model, LM) and model.arch == arch
        expected = supernet(tokens)
        assert expected.shape == (3, config.context, config.vocab_size)
        torch.testing.assert_close(model(tokens), expected, rtol=0, atol=1e-10)


def test_extracted_output_projection_is_tied_to_the_sliced_token_table():
    space, config = tiny_space(), tiny_config()
    supernet = SupernetLM.from_space(space, config)
    model = supernet.extract(space.smallest())
    assert torch.equal(model.embed_tokens.weight, supernet.embed_tokens.weight[:, :12])
    assert not any(name.startswith("output") for name, _ in model.named_parameters())


def test_supernet_rejects_archs_outside_it():
    space, config = tiny_space(("softmax",)), tiny_config()
    supernet = SupernetLM.from_space(space, config)
    with pytest.raises(ValueError, match="before running"):
        supernet(torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="embed_dim=64 exceeds"):
        supernet.set_arch(uniform_arch("softmax", embed=64))
    with pytest.raises(ValueError, match="not in the supernet"):
        supernet.set_arch(uniform_arch("cosformer"))


def mixed_arch():
    from mixnas.families.lm.arch import LMArch, LMLayerArch
    layers = tuple(LMLayerArch(ffn_dim=20, heads=1 + i % 2, attention=k) for i, k in enumerate(kinds()))
    return LMArch(embed_dim=16, layers=layers, head_dim=4)


@pytest.mark.parametrize("kind", [*kinds(), "mixed"])
def test_incremental_steps_equal_the_full_causal_forward(kind):
    torch.manual_seed(0)
    config = tiny_config()
    arch = mixed_arch() if kind == "mixed" else uniform_arch(kind)
    model = LM(arch, config).double().eval()
    tokens = torch.randint(0, config.vocab_size, (2, config.context))
    full = model(tokens)
    states, steps = None, []
    for t in range(config.context):
        logits, states = model.step(tokens[:, t:t + 1], states, t)
        steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-10)
    # A primed prefix, then single steps: the same logits.
    logits, states = model.step(tokens[:, :5], None, 0)
    torch.testing.assert_close(logits, full[:, :5], rtol=0, atol=1e-10)
    logits, states = model.step(tokens[:, 5:6], states, 5)
    torch.testing.assert_close(logits[:, 0], full[:, 5], rtol=0, atol=1e-10)
    # A prefix scored alone equals its positions inside the longer window (M is the context).
    torch.testing.assert_close(model(tokens[:, :7]), full[:, :7], rtol=0, atol=1e-10)



@pytest.mark.parametrize("kind", [*kinds(), "mixed"])
def test_a_window_at_an_offset_reads_those_rows_of_the_position_table(kind):
    """model(tokens, offset) == the same model with its position table shifted up by offset;
    the supernet's forward at an offset equals the extracted model's."""
    torch.manual_seed(0)
    config = tiny_config()
    arch = mixed_arch() if kind == "mixed" else uniform_arch(kind)
    model = LM(arch, config).double().eval()
    tokens = torch.randint(0, config.vocab_size, (2, 5))
    shifted = LM(arch, config).double().eval()
    shifted.load_state_dict(model.state_dict())
    with torch.no_grad():
        shifted.embed_positions.weight[:5] = model.embed_positions.weight[7:12]
    torch.testing.assert_close(model(tokens, 7), shifted(tokens), rtol=0, atol=1e-12)
    assert not torch.allclose(model(tokens, 7), model(tokens))
    with pytest.raises(ValueError, match="position 12 is beyond the model's context of 12"):
        model(tokens, 8)
    space = tiny_space()
    supernet = SupernetLM.from_space(space, config).double().eval()
    sub = space.sample(random.Random(3))
    supernet.set_arch(sub)
    torch.testing.assert_close(supernet(tokens, 7), supernet.extract(sub).double().eval()(tokens, 7), rtol=0, atol=1e-10)


def test_linear_kinds_keep_a_constant_size_state_and_softmax_a_growing_cache():
    config = tiny_config()
    tokens = torch.randint(0, config.vocab_size, (1, 6))
    for kind, grows in (("softmax", True), ("cosformer", False), ("linear", False)):
        model = LM(uniform_arch(kind, depth=1), config).eval()
        _, s3 = model.step(tokens[:, :3], None, 0)
        _, s6 = model.step(tokens[:, 3:], s3, 3)
        size = lambda s: sum(t.numel() for t in vars(s.layers[0]).values() if isinstance(t, torch.Tensor))  # noqa: E731
        assert (size(s6) > size(s3)) == grows and s6.offset == 6


def test_generate_samples_past_the_context_and_is_seeded():
    config = tiny_config(context=8)
    model = LM(mixed_arch(), config)
    prompt = torch.tensor([[1, 2, 3]])
    a = model.generate(prompt, 20, temperature=0.9, top_k=4, generator=torch.Generator().manual_seed(3))
    b = model.generate(prompt, 20, temperature=0.9, top_k=4, generator=torch.Generator().manual_seed(3))
    assert a.shape == (1, 23) and torch.equal(a, b) and torch.equal(a[:, :3], prompt)
    assert model.training  # generate restores the mode
    greedy = model.eval().generate(prompt, 3, temperature=0)
    x = prompt
    for _ in range(3):  # greedy by hand: argmax of the full forward's last position
        x = torch.cat([x, model(x)[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy, x)


def test_model_input_errors():
    config = tiny_config(context=8)
    model = LM(uniform_arch("softmax"), config)
    with pytest.raises(ValueError, match="beyond the model's context of 8"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.full((1, 3), config.vocab_size))
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="does not continue"):
        model.step(torch.zeros(1, 1, dtype=torch.long), None, 2)
