"""Fixed hybrid patterns: where softmax goes, widths untouched, bad names one line."""
import pytest

from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.patterns import apply_pattern, check_pattern, pattern_archs
from mixnas.pipeline.search_step import attention_code

LM6 = LMArch(embed_dim=32, layers=tuple(LMLayerArch(ffn_dim=16 * (i + 1), heads=2, attention="cosformer")
                                        for i in range(6)), head_dim=8)


@pytest.mark.parametrize("pattern, code", [
    ("1in2", "L S L S L S"), ("1in4", "L L L S L L"), ("1in8", "L L L L L L"), ("1in1", "S S S S S S"),
    ("first-last", "S L L L L S"), ("all-softmax", "S S S S S S"), ("all-linear", "L L L L L L"),
])
def test_patterns_place_softmax_and_keep_the_widths(pattern, code):
    arch = apply_pattern(LM6, pattern)
    assert attention_code(arch) == code
    assert [layer.ffn_dim for layer in arch.layers] == [layer.ffn_dim for layer in LM6.layers]
    assert arch.embed_dim == LM6.embed_dim and arch.head_dim == LM6.head_dim


def test_every_stack_and_both_attentions_of_a_decoder_layer():
    enc = tuple(EncoderLayerArch(32, 2, "softmax") for _ in range(2))
    dec = tuple(DecoderLayerArch(32, 2, "softmax", 2, "softmax", 1) for _ in range(3))
    arch = apply_pattern(TransformerArch(16, 16, enc, dec, qkv_dim=16), "first-last", other="cosformer")
    assert attention_code(arch) == "enc S S | dec S:S C:C S:S"
    assert [name for name, _ in pattern_archs(["1in2", "all-softmax"], "linear", LM6)] == [
        "fixed-1in2", "fixed-all-softmax"]


def test_the_main_kind_can_be_relative_position_softmax():
    assert attention_code(apply_pattern(LM6, "1in2", main="relative")) == "L R L R L R"
    assert [attention_code(a) for _, a in pattern_archs(["first-last"], "linear", LM6, "relative")] == ["R L L L L R"]
    assert load_pipeline_config("micro", ["retrain.fixed_main=relative"]).retrain.fixed_main == "relative"


@pytest.mark.parametrize("override, message", [
    ("retrain.fixed_patterns=[1in0]", "is not a pattern"),
    ("retrain.fixed_patterns=[all-flash]", "is not a pattern"),
    ("retrain.fixed_other=flash", "retrain.fixed_other: 'flash' is not a registered attention kind"),
    ("retrain.fixed_main=flash", "retrain.fixed_main: 'flash' is not a registered attention kind"),
])
def test_bad_patterns_are_one_line_errors(override, message):
    with pytest.raises(ValueError, match=message):
        load_pipeline_config("micro", [override])
    with pytest.raises(ValueError, match="is not a pattern"):
        check_pattern("every-other")
