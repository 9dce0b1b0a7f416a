"""Search-space operations: sampling, mutation, crossover, validation, counting, encoding."""
import random
from collections import Counter
from dataclasses import fields, replace
from itertools import product

import numpy as np
import pytest
from tiny_spaces import TINY_TRANSFORMER, TINY_VIT, tiny_transformer, tiny_vit

from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.space import SearchSpace


# ---------------------------------------------------------------- brute-force references
def all_transformer_archs(d: dict) -> set:
    """Every architecture of a transformer space dict, enumerated directly from the choices."""
    enc, dec = d["encoder"], d["decoder"]
    tied = d.get("tie_embed_dims", False)
    embeds = [(e, e) for e in enc["embed_dim"]] if tied else list(product(enc["embed_dim"], dec["embed_dim"]))
    enc_layers = [EncoderLayerArch(*g) for g in product(enc["ffn_dim"], enc["heads"], enc["attention"])]
    archs = set()
    for enc_depth in enc["layers"]:
        dec_layers = [DecoderLayerArch(*g) for g in product(dec["ffn_dim"], dec["heads"], dec["attention"],
                                                            dec["cross_heads"], dec["cross_attention"],
                                                            dec["cross_layers"]) if g[-1] <= enc_depth]
        for enc_stack in product(enc_layers, repeat=enc_depth):
            for dec_depth in dec["layers"]:
                for dec_stack in product(dec_layers, repeat=dec_depth):
                    for e, de in embeds:
                        archs.add(TransformerArch(e, de, enc_stack, dec_stack, qkv_dim=d["qkv_dim"]))
    return archs


def all_vit_archs(d: dict) -> set:
    layers = [ViTLayerArch(*g) for g in product(d["ffn_dim"], d["heads"], d["attention"])]
    return {ViTArch(e, stack, head_dim=d["head_dim"])
            for e in d["embed_dim"] for depth in d["layers"] for stack in product(layers, repeat=depth)}


def test_size_matches_brute_force_count_and_every_enumerated_arch_validates():
    space = tiny_transformer()
    archs = all_transformer_archs(TINY_TRANSFORMER)
    assert space.size() == len(archs) == 19072
    for arch in archs:
        space.validate(arch)
    tied = {**TINY_TRANSFORMER, "tie_embed_dims": True}
    assert SearchSpace.from_dict(tied).size() == len(all_transformer_archs(tied))
    vit_archs = all_vit_archs(TINY_VIT)
    assert tiny_vit().size() == len(vit_archs) == 2 * (12 + 12 ** 2)
    for arch in vit_archs:
        tiny_vit().validate(arch)


def test_size_of_hat_space_by_hand():
    # 2 x 2 embedding widths; 6 encoder layers of 3 FFN x 2 heads x 2 kinds; decoder layers of
    # 3 FFN x 2 heads x 2 kinds x 2 cross heads x 2 cross kinds x 3 cross_layers, depth 1..6.
    expected = 4 * 12 ** 6 * sum(144 ** d for d in range(1, 7))
    assert SearchSpace.load("hat_wmt14").size() == expected


# ---------------------------------------------------------------- sampling
def test_sampling_is_seeded():
    space = SearchSpace.load("hat_wmt14")
    a, b = random.Random(7), random.Random(7)
    assert [space.sample(a) for _ in range(5)] == [space.sample(b) for _ in range(5)]


def test_sample_covers_every_choice_uniformly():
    space, rng = SearchSpace.load("multi30k_small"), random.Random(0)
    archs = [space.sample(rng) for _ in range(3000)]
    counts = {
        "encoder_embed_dim": Counter(a.encoder_embed_dim for a in archs),
        "decoder_embed_dim": Counter(a.decoder_embed_dim for a in archs),
        "decoder depth": Counter(len(a.decoder_layers) for a in archs),
    }
    for i in range(space.encoder.max_layers):
        for gene in ("ffn_dim", "heads", "attention"):
            counts[f"enc.{i}.{gene}"] = Counter(getattr(a.encoder_layers[i], gene) for a in archs)
    for gene in ("ffn_dim", "heads", "attention", "cross_heads", "cross_attention", "cross_layers"):
        counts[f"dec.0.{gene}"] = Counter(getattr(a.decoder_layers[0], gene) for a in archs)
        counts[f"dec.2.{gene}"] = Counter(getattr(a.decoder_layers[2], gene) for a in archs if len(a.decoder_layers) == 3)
    allowed = {"encoder_embed_dim": space.encoder.embed_dim, "decoder_embed_dim": space.decoder.embed_dim,
               "decoder depth": space.decoder.layers}
    for name, counter in counts.items():
        choices = allowed.get(name) or getattr(space.encoder if name.startswith("enc") else space.decoder,
                                               name.split(".")[-1])
        assert set(counter) == set(choices), name
        expected = sum(counter.values()) / len(choices)
        for value, n in counter.items():
            assert 0.8 * expected < n < 1.2 * expected, (name, value, n, expected)


def test_sample_caps_cross_layers_by_encoder_depth():
    space, rng = tiny_transformer(), random.Random(0)
    seen = Counter()
    for _ in range(500):
        arch = space.sample(rng)
        for layer in arch.decoder_layers:
            seen[len(arch.encoder_layers), layer.cross_layers] += 1
    assert set(seen) == {(1, 1), (2, 1), (2, 2)}


# ---------------------------------------------------------------- mutation
@pytest.mark.parametrize("space", [SearchSpace.load("hat_wmt14"), SearchSpace.load("digits_vit"), tiny_transformer()],
                         ids=["hat", "digits", "tiny"])
def test_mutation_with_prob_zero_is_identity(space):
    rng = random.Random(0)
    for _ in range(50):
        arch = space.sample(rng)
        assert space.mutate(arch, 0.0, rng) == arch


def test_mutation_with_prob_one_resamples_every_gene():
    space, rng = SearchSpace.load("hat_wmt14"), random.Random(0)
    changed, embed_changed, ffn_changed, n = 0, 0, 0, 600
    for _ in range(n):
        arch = space.sample(rng)
        child = space.mutate(arch, 1.0, rng)
        space.validate(child)
        changed += child != arch
        embed_changed += child.encoder_embed_dim != arch.encoder_embed_dim
        ffn_changed += child.encoder_layers[0].ffn_dim != arch.encoder_layers[0].ffn_dim
    assert changed == n
    # Uniform resampling: a gene with k choices changes with probability 1 - 1/k.
    assert 0.42 < embed_changed / n < 0.58
    assert 0.59 < ffn_changed / n < 0.74


def test_mutation_probability_is_per_gene_and_new_layers_are_sampled():
    space, rng = SearchSpace.load("digits_vit"), random.Random(1)
    kept, total, grown = 0, 0, 0
    for _ in range(2000):
        arch = space.sample(rng)
        child = space.mutate(arch, 0.3, rng)
        space.validate(child)
        kept += child.layers[0].ffn_dim == arch.layers[0].ffn_dim
        total += 1
        grown += len(child.layers) > len(arch.layers)
    # unchanged with probability 0.7 + 0.3 / 3 choices = 0.8
    assert 0.77 < kept / total < 0.83
    assert grown > 0


def test_mutation_repairs_cross_layers_when_encoder_gets_shallower():
    space, rng = tiny_transformer(), random.Random(3)
    for _ in range(300):
        space.validate(space.mutate(space.sample(rng), 0.5, rng))


# ---------------------------------------------------------------- crossover
def _from_parent(child, a, b):
    """Every gene of `child` equals the same gene of `a` or of `b` (layers by index)."""
    for f in fields(child):
        cv, av, bv = getattr(child, f.name), getattr(a, f.name), getattr(b, f.name)
        if isinstance(cv, tuple):
            assert len(cv) in (len(av), len(bv))
            for i, layer in enumerate(cv):
                parents = [p[i] for p in (av, bv) if i < len(p)]
                for g in fields(layer):
                    assert getattr(layer, g.name) in [getattr(p, g.name) for p in parents], (f.name, i, g.name)
        else:
            assert cv in (av, bv), f.name


@pytest.mark.parametrize("name", ["hat_wmt14", "digits_vit"])
def test_crossover_genes_come_from_a_parent(name):
    space, rng = SearchSpace.load(name), random.Random(0)
    from_b = 0
    for _ in range(300):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        space.validate(child)
        _from_parent(child, a, b)
        assert space.crossover(a, b, rng, prob=0.0) == a
        assert space.crossover(a, b, rng, prob=1.0) == b
        top = "encoder_embed_dim" if space.kind == "transformer" else "embed_dim"
        from_b += getattr(child, top) == getattr(b, top) != getattr(a, top)
    # embed genes differ in about half the pairs and then come from b half the time
    assert 40 < from_b < 110


def test_crossover_with_different_encoder_depths_stays_valid():
    space, rng = tiny_transformer(), random.Random(5)
    for _ in range(500):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        space.validate(child)
        assert space.crossover(a, b, rng, prob=1.0) == b


# ---------------------------------------------------------------- largest / smallest
def test_largest_and_smallest():
    hat = SearchSpace.load("hat_wmt14")
    big, small = hat.largest(), hat.smallest()
    assert (big.encoder_embed_dim, big.decoder_embed_dim, len(big.decoder_layers)) == (640, 640, 6)
    assert set(big.decoder_layers) == {DecoderLayerArch(3072, 8, "softmax", 8, "softmax", 3)}
    assert set(big.encoder_layers) == {EncoderLayerArch(3072, 8, "softmax")} and len(big.encoder_layers) == 6
    assert (small.encoder_embed_dim, len(small.encoder_layers), len(small.decoder_layers)) == (512, 6, 1)
    assert small.decoder_layers == (DecoderLayerArch(1024, 4, "softmax", 4, "softmax", 1),)
    tiny = tiny_transformer()
    # cross_layers of the largest is capped by its encoder depth (2), the first listed kind wins
    assert tiny.largest().decoder_layers[0] == DecoderLayerArch(8, 2, "cosformer", 2, "softmax", 2)
    assert len(tiny.smallest().encoder_layers) == 1
    vit = SearchSpace.load("cifar10_vit")
    assert vit.largest() == ViTArch(448, (ViTLayerArch(1792, 7, "softmax"),) * 14, head_dim=64)
    assert vit.smallest() == ViTArch(320, (ViTLayerArch(672, 5, "softmax"),) * 12, head_dim=64)


# ---------------------------------------------------------------- validation messages
def _hat_arch():
    return SearchSpace.load("hat_wmt14").largest()


@pytest.mark.parametrize("change, message", [
    (lambda a: replace(a, encoder_embed_dim=768),
     "encoder_embed_dim=768 is not in search space 'hat_wmt14'; allowed values: [640, 512]"),
    (lambda a: replace(a, qkv_dim=256), "qkv_dim=256 is not in search space 'hat_wmt14'; allowed values: [512]"),
    (lambda a: replace(a, encoder_layers=a.encoder_layers[:2] + (replace(a.encoder_layers[2], attention="linear"),)
                       + a.encoder_layers[3:]),
     "encoder_layers[2].attention='linear' is not in search space 'hat_wmt14'; allowed values: ['softmax', 'cosformer']"),
    (lambda a: replace(a, decoder_layers=a.decoder_layers + a.decoder_layers[:1]),
     "len(decoder_layers)=7 is not in search space 'hat_wmt14'; allowed values: [1, 2, 3, 4, 5, 6]"),
    (lambda a: replace(a, encoder_layers=a.encoder_layers[:5]),
     "len(encoder_layers)=5 is not in search space 'hat_wmt14'; allowed values: [6]"),
    (lambda a: replace(a, decoder_layers=(replace(a.decoder_layers[0], cross_heads=2),) + a.decoder_layers[1:]),
     "decoder_layers[0].cross_heads=2 is not in search space 'hat_wmt14'; allowed values: [8, 4]"),
    (lambda a: replace(a, decoder_layers=(replace(a.decoder_layers[0], ffn_dim=True),) + a.decoder_layers[1:]),
     "decoder_layers[0].ffn_dim=True is not in search space 'hat_wmt14'; allowed values: [3072, 2048, 1024]"),
    (lambda a: ViTArch(64, (ViTLayerArch(128, 4, "softmax"),), head_dim=16),
     "search space 'hat_wmt14' holds transformer architectures, got ViTArch"),
])
def test_validation_errors_name_gene_value_and_choices(change, message):
    space = SearchSpace.load("hat_wmt14")
    with pytest.raises(ValueError) as err:
        space.validate(change(_hat_arch()))
    assert str(err.value) == message


def test_validation_errors_cross_layers_tied_and_vit():
    space = tiny_transformer()
    arch = space.largest()
    bad = replace(arch, decoder_layers=(replace(arch.decoder_layers[0], cross_layers=3),))
    with pytest.raises(ValueError) as err:
        space.validate(bad)
    assert str(err.value) == ("decoder_layers[0].cross_layers=3 is not in search space 'tiny' with encoder depth 2; "
                              "allowed values: [1, 2]")
    tied = tiny_transformer(tie_embed_dims=True)
    with pytest.raises(ValueError, match=r"decoder_embed_dim=4 must equal encoder_embed_dim=8: search space 'tiny' ties"):
        tied.validate(replace(tied.largest(), decoder_embed_dim=4))
    digits = SearchSpace.load("digits_vit")
    with pytest.raises(ValueError) as err:
        digits.validate(replace(digits.largest(), head_dim=64))
    assert str(err.value) == "head_dim=64 is not in search space 'digits_vit'; allowed values: [16]"
    big = digits.largest()
    with pytest.raises(ValueError) as err:
        digits.validate(replace(big, layers=big.layers[:1] + (replace(big.layers[1], heads=3),) + big.layers[2:]))
    assert str(err.value) == "layers[1].heads=3 is not in search space 'digits_vit'; allowed values: [1, 2, 4]"
    with pytest.raises(ValueError, match="search space 'digits_vit' holds vit architectures"):
        digits.validate(_hat_arch())
    with pytest.raises(ValueError, match="encoder_embed_dim=768"):
        SearchSpace.load("hat_wmt14").encode(replace(_hat_arch(), encoder_embed_dim=768))


# ---------------------------------------------------------------- encoding
@pytest.mark.parametrize("name", ["cifar10_vit", "digits_vit", "fashion_mnist_vit", "hat_wmt14", "multi30k_small",
                                  "ranknas_large"])
def test_encoding_shape_range_and_names(name):
    space, rng = SearchSpace.load(name), random.Random(0)
    names = space.feature_names()
    assert len(names) == len(set(names))
    for _ in range(20):
        x = space.encode(space.sample(rng))
        assert x.shape == (len(names),) and x.dtype == np.float64
        assert x.min() >= 0.0 and x.max() <= 1.0


def test_encoding_by_hand_on_tiny_vit():
    space = tiny_vit()
    arch = ViTArch(16, (ViTLayerArch(8, 2, "relative"),), head_dim=4)
    slot = ["present", "ffn_dim", "heads", "attention=softmax", "attention=cosformer", "attention=relative"]
    assert space.feature_names() == ["embed_dim", "layers"] + [f"layer.{i}.{s}" for i in range(2) for s in slot]
    expected = [1.0, 0.0] + [1, 0, 1, 0, 0, 1] + [0, 0, 0, 0, 0, 0]
    assert space.encode(arch).tolist() == expected


def test_encoding_names_per_layer_attention_kind():
    space = SearchSpace.load("hat_wmt14")
    arch = space.smallest()
    layer = replace(arch.decoder_layers[0], cross_attention="cosformer")
    arch = replace(arch, decoder_layers=(layer,) * 4)
    x = dict(zip(space.feature_names(), space.encode(arch)))
    assert x["dec.3.present"] == 1.0 and x["dec.4.present"] == 0.0
    assert x["dec.3.cross_attention=cosformer"] == 1.0 and x["dec.3.cross_attention=softmax"] == 0.0
    assert x["dec.3.attention=softmax"] == 1.0 and x["dec.layers"] == pytest.approx(3 / 5)
    assert x["enc.embed_dim"] == 0.0 and x["dec.0.cross_layers"] == 0.0 and x["enc.5.ffn_dim"] == 0.0


def _one_gene_variants(space, arch):
    """Architectures of `space` that differ from `arch` in exactly one gene."""
    def others(value, allowed):
        return [v for v in allowed if v != value]

    def layer_variants(layers, genes, depths, rebuild):
        for i, layer in enumerate(layers):
            for gene, allowed in genes.items():
                for v in others(getattr(layer, gene), allowed):
                    yield rebuild(layers[:i] + (replace(layer, **{gene: v}),) + layers[i + 1:])
        if len(layers) - 1 in depths:
            yield rebuild(layers[:-1])

    if isinstance(arch, ViTArch):
        yield from (replace(arch, embed_dim=v) for v in others(arch.embed_dim, space.embed_dim))
        genes = {"ffn_dim": space.ffn_dim, "heads": space.heads, "attention": space.attention}
        yield from layer_variants(arch.layers, genes, space.layers, lambda ls: replace(arch, layers=ls))
        return
    yield from (replace(arch, encoder_embed_dim=v) for v in others(arch.encoder_embed_dim, space.encoder.embed_dim))
    yield from (replace(arch, decoder_embed_dim=v) for v in others(arch.decoder_embed_dim, space.decoder.embed_dim))
    enc = {"ffn_dim": space.encoder.ffn_dim, "heads": space.encoder.heads, "attention": space.encoder.attention}
    for variant in layer_variants(arch.encoder_layers, enc, space.encoder.layers, lambda ls: replace(arch, encoder_layers=ls)):
        # a shallower encoder is a one-gene change only if no decoder layer reaches beyond it
        if all(layer.cross_layers <= len(variant.encoder_layers) for layer in arch.decoder_layers):
            yield variant
    dec = {g: getattr(space.decoder, g) for g in ("ffn_dim", "heads", "attention", "cross_heads", "cross_attention")}
    dec["cross_layers"] = tuple(c for c in space.decoder.cross_layers if c <= len(arch.encoder_layers))
    yield from layer_variants(arch.decoder_layers, dec, space.decoder.layers, lambda ls: replace(arch, decoder_layers=ls))


@pytest.mark.parametrize("space", [SearchSpace.load("hat_wmt14"), SearchSpace.load("digits_vit"), tiny_transformer()],
                         ids=["hat", "digits", "tiny"])
def test_encoding_equal_for_equal_archs_and_differs_in_any_single_gene(space):
    rng = random.Random(0)
    for _ in range(5):
        arch = space.largest() if _ == 0 else space.sample(rng)
        x = space.encode(arch)
        copy = type(arch).from_dict(arch.to_dict())
        assert copy is not arch and np.array_equal(space.encode(copy), x)
        n = 0
        for variant in _one_gene_variants(space, arch):
            space.validate(variant)
            assert not np.array_equal(space.encode(variant), x), variant
            n += 1
        assert n > 0
