"""Loading search spaces: presets, YAML round trips, and clear errors for bad files."""
import copy
import random

import pytest
import yaml
from tiny_spaces import TINY_TRANSFORMER, TINY_VIT, tiny_transformer

from mixnas.attention import kinds
from mixnas.families.transformer.space import TransformerSpace
from mixnas.families.vit.space import ViTSpace
from mixnas.space import SearchSpace, arch_from_yaml, arch_to_yaml, load_arch, save_arch

PRESETS = ["cifar10_vit", "digits_vit", "fashion_mnist_vit", "hat_wmt14", "multi30k_small", "ranknas_large"]


def test_presets_are_listed():
    """mixnas/configs/spaces/ and every family's configs/spaces/ (e.g. the language models')."""
    assert set(PRESETS) <= set(SearchSpace.presets()) and SearchSpace.presets() == sorted(SearchSpace.presets())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_validates_its_own_samples(name):
    space = SearchSpace.load(name)
    assert space.name == name
    assert space.kind == ("vit" if name.endswith("_vit") else "transformer")
    rng = random.Random(0)
    for _ in range(30):
        arch = space.sample(rng)
        space.validate(arch)
        space.validate(space.mutate(arch, 0.3, rng))
    space.validate(space.largest())
    space.validate(space.smallest())
    assert isinstance(space.size(), int) and space.size() > 1


def test_hat_preset_matches_hat_space():
    space = SearchSpace.load("hat_wmt14")
    assert isinstance(space, TransformerSpace) and not space.tie_embed_dims
    assert space.qkv_dim == 512
    for stack in (space.encoder, space.decoder):
        assert set(stack.embed_dim) == {640, 512}
        assert set(stack.ffn_dim) == {3072, 2048, 1024}
        assert set(stack.heads) == {8, 4}
        assert set(stack.attention) == {"softmax", "cosformer"}
    assert space.encoder.layers == (6,)
    assert set(space.decoder.layers) == {1, 2, 3, 4, 5, 6}
    assert set(space.decoder.cross_heads) == {8, 4}
    assert set(space.decoder.cross_attention) == {"softmax", "cosformer"}
    assert set(space.decoder.cross_layers) == {1, 2, 3}
    # Dimensions a supernet is built from.
    assert (space.encoder.max_embed_dim, space.decoder.max_ffn_dim, space.decoder.max_heads) == (640, 3072, 8)
    assert (space.decoder.max_layers, space.decoder.max_cross_heads, space.decoder.max_cross_layers) == (6, 8, 3)
    assert space.attention_kinds == ("softmax", "cosformer")


def test_ranknas_and_cifar_presets():
    large = SearchSpace.load("ranknas_large")
    assert large.qkv_dim == 1024 and set(large.encoder.embed_dim) == {1024, 768, 640}
    assert set(large.decoder.ffn_dim) == {5120, 4096, 3072, 2048} and set(large.decoder.cross_heads) == {16, 8, 4}
    vit = SearchSpace.load("cifar10_vit")
    assert isinstance(vit, ViTSpace) and vit.head_dim == 64
    assert set(vit.embed_dim) == {320, 384, 448} and set(vit.layers) == {12, 13, 14}
    assert set(vit.ffn_dim) == {1792, 1568, 1344, 896, 672} and set(vit.heads) == {5, 6, 7}
    assert set(vit.attention_kinds) == {"cosformer", "softmax", "relative"}
    assert (vit.max_embed_dim, vit.max_layers, vit.max_ffn_dim, vit.max_heads) == (448, 14, 1792, 7)


@pytest.mark.parametrize("name", PRESETS)
def test_space_yaml_round_trip(name, tmp_path):
    space = SearchSpace.load(name)
    assert SearchSpace.from_yaml(space.to_yaml()) == space
    assert SearchSpace.from_dict(space.to_dict()) == space
    path = tmp_path / "space.yaml"
    space.save(path)
    assert SearchSpace.load(path) == space
    assert [p.name for p in tmp_path.iterdir()] == ["space.yaml"]  # no temporary left behind


@pytest.mark.parametrize("name", ["hat_wmt14", "digits_vit"])
def test_sampled_arch_yaml_round_trip(name, tmp_path):
    space, rng = SearchSpace.load(name), random.Random(1)
    for i in range(10):
        arch = space.sample(rng)
        again = arch_from_yaml(arch_to_yaml(arch))
        assert again == arch
        space.validate(again)
    save_arch(arch, tmp_path / "arch.yaml")
    assert load_arch(tmp_path / "arch.yaml") == arch


def test_load_by_path_defaults_name_to_file_stem(tmp_path):
    d = {k: v for k, v in TINY_VIT.items() if k != "name"}
    path = tmp_path / "my_space.yaml"
    path.write_text(yaml.safe_dump(d))
    assert SearchSpace.load(str(path)).name == "my_space"


def test_subclass_from_dict_checks_type():
    assert isinstance(ViTSpace.from_dict(TINY_VIT), ViTSpace)
    with pytest.raises(ValueError, match="has type 'transformer', expected 'vit'"):
        ViTSpace.from_dict(TINY_TRANSFORMER)


def test_tied_embed_dims_may_omit_decoder_embed_dim():
    d = copy.deepcopy(TINY_TRANSFORMER)
    del d["decoder"]["embed_dim"]
    space = SearchSpace.from_dict({**d, "tie_embed_dims": True})
    assert space.decoder.embed_dim == space.encoder.embed_dim
    rng = random.Random(0)
    for _ in range(20):
        arch = space.mutate(space.sample(rng), 0.5, rng)
        assert arch.encoder_embed_dim == arch.decoder_embed_dim


# ---------------------------------------------------------------- errors
def _bad(path, value):
    """TINY_TRANSFORMER with the key at `path` (a tuple) set to `value` (or removed if None)."""
    d = copy.deepcopy(TINY_TRANSFORMER)
    node = d
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, message", [
    (("colour",), "red", r"search space has unknown key\(s\) \['colour'\]; allowed keys: \['type', 'name'"),
    (("encoder", "width"), [4], r"search space.encoder: unknown key 'width' \(valid: embed_dim, layers"),
    (("decoder", "cross_layers"), None, r"search space.decoder.cross_layers: required key is missing"),
    (("encoder", "heads"), [], r"search space.encoder.heads must list at least one choice"),
    (("encoder", "ffn_dim"), [8, 8], r"search space.encoder.ffn_dim lists 8 more than once"),
    (("encoder", "ffn_dim"), [8, -16], r"search space.encoder.ffn_dim choices must be positive integers, got -16"),
    (("encoder", "ffn_dim"), [True], r"search space.encoder.ffn_dim\[0\]: expected an integer, got True"),
    (("encoder", "embed_dim"), "wide", r"search space.encoder.embed_dim\[0\]: expected an integer, got 'wide'"),
    (("type",), "rnn", r"search space needs 'type' in \[.*'transformer', 'vit'\], got 'rnn'"),
    (("qkv_dim",), None, r"search space is missing 'qkv_dim'"),
    (("qkv_dim",), 5, r"qkv_dim=5 is not divisible by encoder.heads choice\(s\) \[2\]; every head count must divide"),
    (("decoder", "cross_heads"), [3], r"qkv_dim=8 is not divisible by decoder.cross_heads choice\(s\) \[3\]"),
    (("tie_embed_dims",), "yes", r"tie_embed_dims must be true or false, got 'yes'"),
    (("encoder",), [1, 2], r"search space.encoder must be a mapping of gene -> list of choices"),
])
def test_bad_space_errors(path, value, message):
    with pytest.raises(ValueError, match=message):
        SearchSpace.from_dict(_bad(path, value))


def test_cross_layer_bound_error_when_encoder_too_shallow():
    d = _bad(("decoder", "cross_layers"), [2, 3])
    with pytest.raises(ValueError, match=r"decoder.cross_layers \[2, 3\] has no choice <= the encoder depth 1"):
        SearchSpace.from_dict(d)


def test_unknown_attention_kind_lists_registered_kinds():
    d = _bad(("decoder", "cross_attention"), ["softmax", "flash"])
    with pytest.raises(ValueError) as err:
        SearchSpace.from_dict(d)
    assert str(err.value) == ("search space.decoder.cross_attention: unknown attention kind 'flash'; "
                              f"registered kinds: {', '.join(kinds())}")
    assert "cosformer" in kinds() and "softmax" in kinds()


def test_tied_embed_dims_must_agree():
    d = _bad(("decoder", "embed_dim"), [4, 16])
    with pytest.raises(ValueError, match=r"tie_embed_dims is true but encoder.embed_dim \[4, 8\] != decoder.embed_dim \[4, 16\]"):
        SearchSpace.from_dict({**d, "tie_embed_dims": True})


def test_vit_errors():
    with pytest.raises(ValueError, match=r"search space is missing 'head_dim'"):
        SearchSpace.from_dict({k: v for k, v in TINY_VIT.items() if k != "head_dim"})
    with pytest.raises(ValueError, match=r"search space has unknown key\(s\) \['qkv_dim'\]"):
        SearchSpace.from_dict({**TINY_VIT, "qkv_dim": 8})
    with pytest.raises(ValueError, match=r"search space.attention: unknown attention kind 'Softmax'; registered kinds:"):
        SearchSpace.from_dict({**TINY_VIT, "attention": ["Softmax"]})


def test_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown search space 'hat'; presets: cifar10_vit, digits_vit, .*ranknas_large"):
        SearchSpace.load("hat")
    with pytest.raises(ValueError, match=r"search space file .*missing.yaml does not exist"):
        SearchSpace.load(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: vit\nembed_dim: [8, 16\n")
    with pytest.raises(ValueError, match=r"broken.yaml is not valid YAML"):
        SearchSpace.load(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match=r"list.yaml must be a mapping, got list"):
        SearchSpace.load(listed)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({**TINY_VIT, "depth": [2]}))
    with pytest.raises(ValueError, match=r"unknown.yaml has unknown key\(s\) \['depth'\]"):
        SearchSpace.load(unknown)


def test_probabilities_out_of_range():
    space, rng = tiny_transformer(), random.Random(0)
    arch = space.sample(rng)
    with pytest.raises(ValueError, match=r"mutation probability must be in \[0, 1\], got 1.5"):
        space.mutate(arch, 1.5, rng)
    with pytest.raises(ValueError, match=r"crossover probability must be in \[0, 1\], got -0.1"):
        space.crossover(arch, arch, rng, prob=-0.1)
