"""cosFormer's length rule (attention_options: {cosformer: {m_rule: length}}) in the standalone
Transformer: one M per batch reaches every attention, decoding equals teacher forcing, the rule
for M, and the rule kept by save/load. (The ViT's: tests/families/vit/test_vit_cosformer_length.py.)"""
import pytest
import torch

from mixnas.attention.cosformer import CosformerKernel
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.model import Transformer, length_rule_m, max_output_lengths
from mixnas.models import load_model, save_model
from test_transformer_model import V, mixed_arch, padded_batch

LENGTH = {"cosformer": {"m_rule": "length"}}


def config(attention_options=LENGTH, **kw):
    return TransformerConfig(V, V, dropout=0.0, attention_options=attention_options, **kw)


def decode_steps(model, src, prev, m=None):
    enc = model.encode(src, m=m)
    steps, states = [], None
    for t in range(prev.shape[1]):
        logits, states = model.decode(prev[:, t:t + 1], enc, states=states, return_states=True)
        steps.append(logits)
    return torch.cat(steps, dim=1), enc


def test_length_rule_m():
    src = torch.tensor([[5, 6, 7, 8, 9, 4, 2], [5, 6, 7, 2, 0, 0, 0]])
    assert length_rule_m(src, 0) == 18  # int(1.2 * 7 + 10)
    assert length_rule_m(src, 0, tgt_len=25) == 25  # a longer training target widens M
    assert length_rule_m(src, 0, max_len_a=0.0, max_len_b=3) == 7  # never below the source length
    assert length_rule_m(src[1:], 0, max_len_a=2.0, max_len_b=1) == 9  # 2 * 4 + 1 from the non-pad length
    assert max_output_lengths(torch.tensor([7, 4])).tolist() == [18, 14]


@pytest.mark.parametrize("options", [{}, {"pre_norm": True, "tie_embeddings": False}, {"shared_vocab": False}])
def test_step_by_step_decoding_equals_teacher_forcing(options):
    torch.manual_seed(0)
    model = Transformer(mixed_arch(), config(**options)).eval()
    src, prev = padded_batch()
    m = length_rule_m(src, 0)
    with torch.no_grad():
        full = model(src, prev)  # default M: the same rule, prev (6) is shorter than M (18)
        steps, enc = decode_steps(model, src, prev)
        assert enc.m == m == 18
        torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
        # any explicit M decodes exactly like the teacher-forced forward with that M
        steps, enc = decode_steps(model, src, prev, m=11)
        assert enc.m == 11
        torch.testing.assert_close(steps, model(src, prev, m=11), atol=1e-5, rtol=1e-5)


def test_prefix_then_steps_and_beam_reorder():
    torch.manual_seed(1)
    model = Transformer(mixed_arch(enc_dim=24, dec_dim=24), config()).eval()
    src, prev = padded_batch()
    index = torch.tensor([2, 2, 0])
    with torch.no_grad():
        enc = model.encode(src, m=25)
        _, states = model.decode(prev[:, :3], enc, return_states=True)
        states = model.reorder_states(states, index)
        enc = model.reorder_encoder_out(enc, index)
        assert enc.m == 25
        logits, _ = model.decode(prev[index, 3:4], enc, states=states)
        full = model(src[index], prev[index, :4], m=25)
    torch.testing.assert_close(logits[:, 0], full[:, 3], atol=1e-5, rtol=1e-5)


def test_every_attention_gets_the_batch_m():
    """With m = 30 the length-rule model equals the same weights with every cosformer built for
    a fixed max_len = 30 (encoder self, decoder self and cross attention alike)."""
    torch.manual_seed(2)
    model = Transformer(mixed_arch(), config()).eval()
    fixed = Transformer(mixed_arch(), config({"cosformer": {"max_len": 30, "m_rule": "fixed"}})).eval()
    fixed.load_state_dict(model.state_dict())
    src, prev = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(model(src, prev, m=30), fixed(src, prev), atol=1e-6, rtol=1e-6)
        assert (model(src, prev, m=30) - model(src, prev, m=19)).abs().max() > 1e-4
        default = Transformer(mixed_arch(), config({"cosformer": {"m_rule": "fixed"}})).eval()  # m is ignored
        default.load_state_dict(model.state_dict())
        assert torch.equal(default(src, prev, m=30), default(src, prev))


def test_errors():
    model = Transformer(mixed_arch(), config()).eval()
    src, prev = padded_batch()
    with pytest.raises(ValueError, match=r"cosformer position 7 is beyond M=7.*pass a larger m"):
        model(src, torch.ones(3, 8, dtype=torch.long), m=7)
    enc = model.encode(src, m=8)
    _, states = model.decode(prev, enc, return_states=True)  # positions 0..5
    _, states = model.decode(prev[:, :2], enc, states=states)  # 6, 7
    with pytest.raises(ValueError, match=r"cosformer position 8 is beyond M=8"):
        model.decode(prev[:, :1], enc, states=states)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"m must be a positive integer"):
            model.encode(src, m=bad)


def test_save_load_keeps_the_rule(tmp_path):
    torch.manual_seed(3)
    model = Transformer(mixed_arch(), config()).eval()
    save_model(model, tmp_path)
    loaded = load_model(tmp_path).eval()
    assert loaded.config.attention_options == LENGTH
    src, prev = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, prev), model(src, prev), atol=0, rtol=0)


def test_option_from_config_dict():
    """`attention_options: {cosformer: {m_rule: length}}` in a config dict reaches every cosformer
    kernel of the built model."""
    cfg = TransformerConfig.from_dict({"src_vocab": V, "tgt_vocab": V, "attention_options": LENGTH})
    kernels = [m for m in Transformer(mixed_arch(), cfg).modules() if isinstance(m, CosformerKernel)]
    assert len(kernels) == 3 and all(k.m_rule == "length" for k in kernels)
