"""The translation supernet runs an architecture exactly like the standalone model extracted
from it: forward, step-by-step decoding, gradients (only the slice), save/load."""
import pytest
import torch

from mixnas.families.transformer.arch import EncoderLayerArch, TransformerArch
from mixnas.models import load_model, save_model
from mixnas.supernet import front, weight_pairs
from transformer_supernet_cases import VOCAB, transformer_archs, transformer_supernet


def batch(seed=0, b=3, s=7, t=5):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (b, s), generator=g)
    src[1, 4:] = 0  # padded sources
    src[2, 2:] = 0
    return src, torch.randint(3, VOCAB, (b, t), generator=g)


def decode_steps(model, src, prev):
    enc = model.encode(src)
    out, states = [], None
    for t in range(prev.shape[1]):
        logits, states = model.decode(prev[:, t:t + 1], enc, states=states, return_states=True)
        out.append(logits)
    return torch.cat(out, dim=1)


LENGTH = {"attention_options": {"cosformer": {"m_rule": "length"}}}  # cosformer's M = the batch's length


@pytest.mark.parametrize("share_projections,options", [
    (False, {}), (True, {}), (False, {"pre_norm": True, "tie_embeddings": False}),
    (True, {"shared_vocab": False}), (False, LENGTH), (True, {"pre_norm": True, **LENGTH})])
def test_supernet_equals_extracted(share_projections, options):
    torch.manual_seed(0)
    supernet = transformer_supernet(share_projections, **options).eval()
    src, prev = batch()
    for arch in transformer_archs(seed=len(options) + share_projections):
        supernet.set_arch(arch)
        model = supernet.extract(arch).eval()
        with torch.no_grad():
            full = supernet(src, prev)
            torch.testing.assert_close(full, model(src, prev), atol=1e-5, rtol=1e-5)
            steps = decode_steps(supernet, src, prev)
            torch.testing.assert_close(steps, decode_steps(model, src, prev), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)
            if options is LENGTH:  # an explicit M reaches the supernet's attentions as the model's
                torch.testing.assert_close(supernet(src, prev, m=9), model(src, prev, m=9), atol=1e-5, rtol=1e-5)
                if "cosformer" in {a.attention for a in arch.encoder_layers + arch.decoder_layers}:
                    assert (supernet(src, prev, m=9) - full).abs().max() > 1e-5


def test_extracted_weights_are_copies():
    supernet = transformer_supernet().eval()
    arch = transformer_archs(seed=3)[0]
    model = supernet.extract(arch).eval()
    src, prev = batch()
    with torch.no_grad():
        before = model(src, prev)
        for p in supernet.parameters():
            p.add_(1.0)
        torch.testing.assert_close(model(src, prev), before, atol=0, rtol=0)


@pytest.mark.parametrize("share_projections", [False, True])
def test_gradients_only_reach_the_slice(share_projections):
    """Supernet gradients are the extracted model's gradients placed in the front slice
    (summed where several standalone weights share one supernet tensor), zero elsewhere; an
    SGD step leaves every weight outside the slice unchanged."""
    torch.manual_seed(1)
    supernet = transformer_supernet(share_projections, shared_vocab=True)
    src, prev = batch(seed=1)
    for arch in transformer_archs(seed=7, n=2):
        supernet.set_arch(arch)
        model = supernet.extract(arch)
        supernet.zero_grad(set_to_none=True)
        supernet(src, prev).logsumexp(-1).sum().backward()
        model(src, prev).logsumexp(-1).sum().backward()
        expected = {id(p): torch.zeros_like(p) for p in supernet.parameters()}
        seen = set()
        for _, p, source in weight_pairs(supernet, model):
            if id(p) not in seen:  # a standalone parameter listed under two names counts once
                seen.add(id(p))
                front(expected[id(source)], p.shape).add_(p.grad)
        for name, p in supernet.named_parameters():
            got = torch.zeros_like(p) if p.grad is None else p.grad
            torch.testing.assert_close(got, expected[id(p)], atol=1e-5, rtol=1e-4, msg=name)
        before = {n: p.detach().clone() for n, p in supernet.named_parameters()}
        torch.optim.SGD(supernet.parameters(), lr=0.1).step()
        for name, p in supernet.named_parameters():
            outside = expected[id(p)] == 0
            assert torch.equal(p.detach()[outside], before[name][outside]), name


def test_extracted_save_load_round_trip(tmp_path):
    supernet = transformer_supernet(pre_norm=True).eval()
    arch = transformer_archs(seed=5)[1]
    supernet.set_arch(arch)
    save_model(supernet.extract(arch), tmp_path)
    loaded = load_model(tmp_path).eval()
    src, prev = batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(src, prev), supernet(src, prev), atol=1e-5, rtol=1e-5)


def test_set_arch_errors():
    supernet = transformer_supernet(share_projections=False)
    with pytest.raises(ValueError, match="set_arch"):
        supernet(*batch())
    arch = transformer_archs(seed=0)[0]
    with pytest.raises(ValueError, match="encoder_embed_dim=32 exceeds"):
        supernet.set_arch(TransformerArch(32, 16, arch.encoder_layers, arch.decoder_layers, qkv_dim=16))
    with pytest.raises(ValueError, match="encoder_layers\\[0\\].ffn_dim=64 exceeds"):
        supernet.set_arch(TransformerArch(16, 16, (EncoderLayerArch(64, 2, "softmax"),) * 3,
                                          arch.decoder_layers[:1], qkv_dim=16))
    with pytest.raises(ValueError, match="not registered|unknown attention kind|not in the supernet"):
        supernet.set_arch(TransformerArch(16, 16, (EncoderLayerArch(8, 2, "nope"),),
                                          arch.decoder_layers[:1], qkv_dim=16))
