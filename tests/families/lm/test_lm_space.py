"""LM architectures and spaces: YAML round trips, presets, validation errors, search operations."""
import random

import pytest

from mixnas.experiment import resolve_arch
from mixnas.families import family_named, family_of
from mixnas.families.lm.arch import LMArch
from mixnas.families.lm.config import LMConfig
from mixnas.families.lm.space import LMSpace
from mixnas.space import SearchSpace, arch_from_yaml, arch_to_yaml
from lm_helpers import tiny_space


def test_arch_yaml_round_trip_and_presets():
    for name in ("gpt_shakespeare_softmax", "gpt_shakespeare_cosformer"):
        arch = resolve_arch(name)
        assert isinstance(arch, LMArch) and len(arch.layers) == 4 and arch.embed_dim == 128
        assert arch_from_yaml(arch_to_yaml(arch)) == arch and arch.to_dict()["type"] == "lm"
        assert family_of(arch) is family_named("lm")


@pytest.mark.parametrize("bad, message", [
    ({"type": "lm", "embed_dim": 8, "layers": []}, "non-empty list"),
    ({"type": "lm", "embed_dim": "wide", "layers": [{"ffn_dim": 4, "heads": 1, "attention": "softmax"}]}, "embed_dim"),
    ({"type": "lm", "embed_dim": 8, "layers": [{"ffn_dim": 4, "heads": 1}]}, "attention"),
    ({"type": "lm", "embed_dim": 8, "layers": [{"ffn_dim": 4, "heads": 1, "attention": "softmax", "x": 1}]}, "'x'"),
])
def test_arch_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        arch_from_yaml(arch_to_yaml(type("A", (), {"to_dict": lambda self: bad})()))


def test_space_presets_round_trip_and_operations():
    for name in ("shakespeare_lm", "micro_lm"):
        space = SearchSpace.load(name)
        assert isinstance(space, LMSpace) and space.attention[0] == "softmax"
        assert SearchSpace.from_yaml(space.to_yaml()) == space
    space = tiny_space()
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(20)]
    for a, b in zip(archs, archs[1:]):
        space.validate(space.mutate(a, 0.5, rng))
        space.validate(space.crossover(a, b, rng))
        assert len(space.encode(a)) == len(space.feature_names())
    assert space.size() == 2 * sum((2 * 2 * len(space.attention)) ** d for d in (1, 2, 3))
    assert space.largest().embed_dim == 16 and len(space.smallest().layers) == 1


def test_space_and_config_errors():
    space = tiny_space(("softmax",))
    with pytest.raises(ValueError, match="embed_dim=64 is not in search space"):
        space.validate(LMArch(embed_dim=64, layers=space.largest().layers, head_dim=4))
    with pytest.raises(ValueError, match="unknown attention kind 'flash'"):
        SearchSpace.from_dict({**space.to_dict(), "attention": ["flash"]})
    with pytest.raises(ValueError, match="unknown key"):
        SearchSpace.from_dict({**space.to_dict(), "qkv_dim": 8})
    with pytest.raises(ValueError, match="distinct characters"):
        LMConfig(vocab="aab")
    with pytest.raises(ValueError, match="model.config.context"):
        LMConfig.from_dict({"vocab": "ab", "context": 0})
    with pytest.raises(ValueError, match=r"'\?' are not in"):
        LMConfig(vocab="ab").encode("ab?")
