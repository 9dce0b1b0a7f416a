"""The analytic decoding-state size equals the values the models' decoding states really hold,
for every attention kind, at several lengths: a KV cache grows with the tokens seen, linear
attention sums do not."""
import sys
from pathlib import Path

import pytest
import torch

from cost_archs import TRANSLATION, tokens
from mixnas.attention import kinds
from mixnas.attention.state import KVCache, LinearState
from mixnas.families import family_named
from mixnas.families.lm.model import LM
from mixnas.families.transformer.model import Transformer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "families" / "lm"))
from lm_helpers import tiny_config, uniform_arch  # noqa: E402
from test_lm_model import mixed_arch  # noqa: E402


def held(state) -> int:
    """Float values in one layer's decoding state (masks are not counted)."""
    if isinstance(state, KVCache):
        return state.k[0].numel() + state.v[0].numel()  # one sequence
    assert isinstance(state, LinearState)
    return state.kv[0].numel() + state.z[0].numel()


@pytest.mark.parametrize("kind", [*kinds(), "mixed"])
def test_lm_state_after_each_length_is_what_the_model_keeps(kind):
    config = tiny_config(context=12)
    arch = mixed_arch() if kind == "mixed" else uniform_arch(kind, depth=2)
    model = LM(arch, config).eval()
    family = family_named("lm")
    prompt = torch.randint(0, config.vocab_size, (2, 12))
    states = None
    with torch.no_grad():
        for position in range(12):
            _, states = model.step(prompt[:, position:position + 1], states, position)
            want = family.decode_state_breakdown(arch, config, seq_len=position + 1)
            assert want == {f"layers.{i}": held(s) for i, s in enumerate(states.layers)}
    report = family.cost_report(arch, config, seq_len=12)
    assert report["decode_state_bytes"] == 4 * sum(held(s) for s in states.layers)


def test_softmax_state_grows_linearly_and_linear_state_is_constant():
    config = tiny_config(context=12)
    family = family_named("lm")
    soft = [sum(family.decode_state_breakdown(uniform_arch("softmax"), config, seq_len=n).values())
            for n in (256, 1024, 4096)]
    assert soft[1] == 4 * soft[0] and soft[2] == 16 * soft[0]
    for kind in ("cosformer", "linear"):
        sizes = {sum(family.decode_state_breakdown(uniform_arch(kind), config, seq_len=n).values())
                 for n in (256, 1024, 4096)}
        assert len(sizes) == 1


@pytest.mark.parametrize("name", TRANSLATION)
def test_translation_state_after_decoding_is_what_the_model_keeps(name):
    arch, config, src_len, tgt_len = TRANSLATION[name]
    torch.manual_seed(0)
    model = Transformer(arch, config).eval()
    family = family_named("transformer")
    src = tokens(config.src_vocab, 1, src_len)
    with torch.no_grad():
        enc = model.encode(src)
        states, prev = None, torch.full((1, 1), config.bos_id)
        for step in range(tgt_len):
            _, states = model.decode(prev, enc, states=states, return_states=True)
            want = family.decode_state_breakdown(arch, config, src_len=src_len, tgt_len=step + 1)
            got = {f"decoder.{i}": held(self_state) + held(cross_state)
                   for i, (self_state, cross_state) in enumerate(states.layers)}
            assert got == want


def test_families_without_decoding_say_so():
    from cost_archs import VISION
    arch, config = VISION["mean-pool"]
    vit = family_named("vit")
    with pytest.raises(ValueError, match="do not decode"):
        vit.decode_state_breakdown(arch, config)
    with pytest.raises(ValueError, match="no sequence length"):
        vit.length_options(256)
    assert "decode_state_bytes" not in vit.cost_report(arch, config)
