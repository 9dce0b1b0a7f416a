"""Small architectures for the cost-model tests: together they cover every attention kind in
encoder self-, decoder causal self- and cross-attention, cross_layers 1..3, separate and shared
embeddings, pre- and post-norm, chunked causal linear attention over several (padded) chunks,
and ViT with class-token and mean pooling."""
from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mixnas.attention.extension import reference_path
from mixnas.families.transformer.arch import DecoderLayerArch, EncoderLayerArch, TransformerArch
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.vit.arch import ViTArch, ViTLayerArch
from mixnas.families.vit.config import ViTConfig

ENC, DEC, VIT = EncoderLayerArch, DecoderLayerArch, ViTLayerArch

# name -> (arch, config, src_len, tgt_len)
TRANSLATION = {
    "mixed-separate-embeddings": (
        TransformerArch(32, 24, (ENC(40, 4, "softmax"), ENC(24, 2, "cosformer")),
                        (DEC(36, 4, "linear", 2, "relative", 2), DEC(20, 2, "cosformer", 4, "softmax", 1)),
                        qkv_dim=16),
        TransformerConfig(src_vocab=37, tgt_vocab=29, shared_vocab=False, tie_embeddings=False),
        11, 9),
    "prenorm-shared-3-cross": (
        TransformerArch(24, 24, (ENC(32, 2, "relative"), ENC(16, 4, "linear"), ENC(48, 2, "softmax")),
                        (DEC(24, 2, "softmax", 4, "cosformer", 3), DEC(16, 4, "relative", 2, "linear", 2)),
                        qkv_dim=32),
        TransformerConfig(src_vocab=41, tgt_vocab=41, pre_norm=True,
                          attention_options={"relative": {"max_relative_position": 3}}),
        7, 6),
    "linear-kinds-many-chunks": (  # causal lengths span several chunks, the last one padded
        TransformerArch(16, 24, (ENC(24, 2, "cosformer"),),
                        (DEC(24, 2, "cosformer", 2, "linear", 1), DEC(32, 4, "linear", 4, "cosformer", 1)),
                        qkv_dim=16),
        TransformerConfig(src_vocab=23, tgt_vocab=23, attention_options={"cosformer": {"chunk": 8},
                                                                         "linear": {"chunk": 5}}),
        13, 21),
}

# name -> (arch, config)
VISION = {
    "cls-all-kinds": (ViTArch(24, (VIT(32, 2, "softmax"), VIT(16, 3, "cosformer"), VIT(40, 1, "relative"),
                                   VIT(24, 2, "linear")), head_dim=8),
                      ViTConfig(image_size=16, patch_size=4, in_channels=3, num_classes=7, pool="cls")),
    "mean-pool": (ViTArch(16, (VIT(24, 2, "relative"), VIT(16, 1, "cosformer")), head_dim=4),
                  ViTConfig(image_size=12, patch_size=3, in_channels=1, num_classes=5, pool="mean",
                            attention_options={"relative": {"max_relative_position": 2}})),
}


def measured_flops(fn) -> int:
    """FLOPs as FlopCounterMode counts them; MATH backend so the softmax kernel is visible, and
    the linear kinds' PyTorch path (the fused C++ kernel is opaque to the counter)."""
    with sdpa_kernel(SDPBackend.MATH), reference_path(), FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def tokens(vocab: int, batch: int, length: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (batch, length), generator=gen)
