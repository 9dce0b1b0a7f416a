"""The standalone Transformer: shapes, teacher forcing == step-by-step decoding for every
attention kind (self and cross), padded sources, beam reordering, input errors."""
import math

import pytest
import torch

from mixnas.attention import kinds
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.transformer.model import Transformer, sinusoidal_positions

KINDS = kinds()
V = 40


def mixed_arch(enc_dim=16, dec_dim=24, qkv=16) -> TransformerArch:
    """Every kind appears as encoder self, decoder self and cross attention; cross_layers 1..3."""
    n = len(KINDS)
    enc = tuple(EncoderLayerArch(20 + 4 * i, 2 if i % 2 else 4, KINDS[i]) for i in range(n))
    dec = tuple(DecoderLayerArch(24 + 4 * i, 4 if i % 2 else 2, KINDS[i], 2 if i % 2 else 4,
                                 KINDS[(i + 1) % n], 1 + i % 3) for i in range(n))
    return TransformerArch(enc_dim, dec_dim, enc, dec, qkv_dim=qkv)


def padded_batch(b=3, s=7, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, V, (b, s), generator=g)
    src[1, 5:] = 0  # right-padded sources of different lengths
    src[2, 3:] = 0
    prev = torch.randint(3, V, (b, t), generator=g)
    prev[:, 0] = 1
    return src, prev


def config(**kw):
    return TransformerConfig(V, V, dropout=0.0, **kw)


@pytest.mark.parametrize("options", [{}, {"pre_norm": True, "tie_embeddings": False},
                                     {"shared_vocab": False}])
def test_step_by_step_decoding_equals_teacher_forcing(options):
    torch.manual_seed(0)
    model = Transformer(mixed_arch(), config(**options)).eval()
    src, prev = padded_batch()
    with torch.no_grad():
        full = model(src, prev)
        assert full.shape == (3, 6, V)
        enc = model.encode(src)
        steps, states = [], None
        for t in range(prev.shape[1]):
            logits, states = model.decode(prev[:, t:t + 1], enc, states=states, return_states=True)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert states.offset == prev.shape[1]


def test_prefix_then_steps_and_beam_reorder():
    torch.manual_seed(1)
    model = Transformer(mixed_arch(enc_dim=24, dec_dim=24), config()).eval()
    src, prev = padded_batch()
    index = torch.tensor([2, 2, 0])  # beam search keeps hypotheses 2, 2 and 0
    with torch.no_grad():
        enc = model.encode(src)
        _, states = model.decode(prev[:, :3], enc, return_states=True)
        states = model.reorder_states(states, index)
        enc = model.reorder_encoder_out(enc, index)
        logits, _ = model.decode(prev[index, 3:4], enc, states=states)
        full = model(src[index], prev[index, :4])
    torch.testing.assert_close(logits[:, 0], full[:, 3], atol=1e-5, rtol=1e-5)


def test_padding_does_not_change_outputs():
    """A source padded with extra pad tokens gives the same logits, also when a cross-attention
    of a positional kind reads the concatenation of several encoder layers."""
    torch.manual_seed(2)
    model = Transformer(mixed_arch(), config()).eval()
    src, prev = padded_batch()
    longer = torch.cat([src, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(longer, prev), model(src, prev), atol=1e-5, rtol=1e-5)


def test_shared_table_only_when_widths_match():
    same = Transformer(mixed_arch(enc_dim=16, dec_dim=16), config())
    assert same.decoder_embed is same.encoder_embed
    different = Transformer(mixed_arch(enc_dim=16, dec_dim=24), config())
    assert different.decoder_embed is not different.encoder_embed


def test_sinusoidal_positions_formula():
    table = sinusoidal_positions(5, 8)
    half = 4
    for pos in (0, 3):
        for i in range(half):
            freq = math.exp(-i * math.log(10000.0) / (half - 1))
            assert table[pos, i].item() == pytest.approx(math.sin(pos * freq), abs=1e-6)
            assert table[pos, half + i].item() == pytest.approx(math.cos(pos * freq), abs=1e-6)


def test_bad_inputs_give_clear_errors():
    model = Transformer(mixed_arch(), config(max_len=8))
    src, prev = padded_batch()
    with pytest.raises(ValueError, match="vocabulary"):
        model(src + V, prev)
    with pytest.raises(ValueError, match="max_len"):
        model(torch.ones(1, 9, dtype=torch.long), prev)
    with pytest.raises(ValueError, match="LongTensor"):
        model(src.float(), prev)
    bad = TransformerArch(16, 16, (EncoderLayerArch(8, 2, "softmax"),),
                          (DecoderLayerArch(8, 2, "softmax", 2, "softmax", 2),), qkv_dim=16)
    with pytest.raises(ValueError, match="cross_layers"):
        Transformer(bad, config())
    with pytest.raises(ValueError, match="shared_vocab"):
        TransformerConfig(10, 12)
