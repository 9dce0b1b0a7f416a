"""Analytic parameter counts and FLOPs against the standalone models: parameters against
sum(p.numel()), FLOPs against FlopCounterMode, both exactly."""
import pytest
import torch
from cost_archs import TRANSLATION, VISION, measured_flops, tokens

from mixnas.cost import count_decode_flops, count_flops, count_params
from mixnas.families.transformer.family import translation_step
from mixnas.families.transformer.model import Transformer
from mixnas.families.vit.model import ViT

EMBEDDING_PARAMS = ("encoder_embed.", "decoder_embed.", "output_projection.",
                    "patch_embed.", "cls_token", "pos_embed", "head.")


def build(name):
    if name in TRANSLATION:
        arch, config, *_ = TRANSLATION[name]
        model = Transformer(arch, config)
    else:
        arch, config = VISION[name]
        model = ViT(arch, config)
    torch.manual_seed(0)
    return arch, config, model.eval()


def body_params(model):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(EMBEDDING_PARAMS))


@pytest.mark.parametrize("name", [*TRANSLATION, *VISION])
def test_params_match_the_model(name):
    arch, config, model = build(name)
    assert count_params(arch, config) == sum(p.numel() for p in model.parameters())
    assert count_params(arch, config, include_embeddings=False) == body_params(model)


@pytest.mark.parametrize("name", TRANSLATION)
def test_translation_forward_flops(name):
    arch, config, model = build(name)
    _, _, src_len, tgt_len = TRANSLATION[name]
    src, prev = tokens(config.src_vocab, 1, src_len), tokens(config.tgt_vocab, 1, tgt_len, 1)
    total = count_flops(arch, config, src_len=src_len, tgt_len=tgt_len)
    assert total == measured_flops(lambda: model(src, prev))
    # Without embeddings = minus the output projection, measured on its own.
    hidden = torch.zeros(1, tgt_len, arch.decoder_embed_dim)
    output = measured_flops(lambda: model.output_logits(hidden))
    assert count_flops(arch, config, src_len=src_len, tgt_len=tgt_len, include_embeddings=False) == total - output


@pytest.mark.parametrize("name", TRANSLATION)
@pytest.mark.parametrize("beam", [1, 3])
def test_incremental_decoding_flops(name, beam):
    arch, config, model = build(name)
    _, _, src_len, tgt_len = TRANSLATION[name]
    src = tokens(config.src_vocab, 1, src_len)
    measured = measured_flops(lambda: translation_step(model, src, tgt_len, beam))
    assert count_decode_flops(arch, config, src_len=src_len, tgt_len=tgt_len, beam=beam) == measured
    hidden = torch.zeros(beam, 1, arch.decoder_embed_dim)
    output = tgt_len * measured_flops(lambda: model.output_logits(hidden))
    assert count_decode_flops(arch, config, src_len=src_len, tgt_len=tgt_len, beam=beam,
                              include_embeddings=False) == measured - output


@pytest.mark.parametrize("name", VISION)
def test_vit_flops(name):
    arch, config, model = build(name)
    images = torch.randn(1, config.in_channels, config.image_size, config.image_size)
    total = count_flops(arch, config)
    assert total == measured_flops(lambda: model(images))
    embedding = measured_flops(lambda: model.patch_embed(images))
    classifier = measured_flops(lambda: model.head(torch.zeros(1, arch.embed_dim)))
    assert count_flops(arch, config, include_embeddings=False) == total - embedding - classifier


def test_flops_grow_as_the_formulas_say():
    """With only linear kinds (chunk sizes dividing both lengths) the cost is linear in length."""
    arch, config, *_ = TRANSLATION["linear-kinds-many-chunks"]
    short = count_flops(arch, config, src_len=64, tgt_len=64, include_embeddings=False)
    long = count_flops(arch, config, src_len=128, tgt_len=128, include_embeddings=False)
    assert long == 2 * short


def test_bad_inputs_give_clear_errors():
    arch, config, *_ = TRANSLATION["mixed-separate-embeddings"]
    vit_arch, vit_config = VISION["mean-pool"]
    with pytest.raises(ValueError, match="src_len must be a positive integer"):
        count_flops(arch, config, src_len=0)
    with pytest.raises(ValueError, match="a ViT has no sequence lengths"):
        count_flops(vit_arch, vit_config, src_len=30)
    with pytest.raises(ValueError, match="vit models have no decoding"):
        count_decode_flops(vit_arch, vit_config)
    with pytest.raises(ValueError, match="belongs to no registered model family"):
        count_params({"type": "vit"}, vit_config)
    bad = type(arch)(arch.encoder_embed_dim, arch.decoder_embed_dim, arch.encoder_layers,
                     arch.decoder_layers, qkv_dim=18)
    with pytest.raises(ValueError, match="not divisible by heads=4"):
        count_params(bad, config)


def test_hat_published_subtransformer():
    """HAT's WMT'14 En-De SubTransformer 'titanxp@208.1ms' (its arch file in HAT's repository)
    is reported as 49.4M parameters and 3.09 GFLOPs without embeddings (design.md)."""
    from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
    from mixnas.families.transformer.config import TransformerConfig
    encoder = tuple(EncoderLayerArch(3072, h, "softmax") for h in (8, 4, 8, 8, 8, 4))
    decoder = tuple(DecoderLayerArch(ffn, h, "softmax", ch, "softmax", cross)
                    for ffn, h, ch, cross in zip((2048, 2048, 3072, 3072, 3072), (8, 8, 8, 4, 8),
                                                 (4, 8, 8, 8, 8), (1, 2, 2, 2, 1)))
    arch = TransformerArch(512, 512, encoder, decoder, qkv_dim=512)
    config = TransformerConfig(src_vocab=32768, tgt_vocab=32768)
    assert round(count_params(arch, config, include_embeddings=False) / 1e6, 1) == 49.4
    assert round(count_flops(arch, config, include_embeddings=False) / 1e9, 2) == 3.09
