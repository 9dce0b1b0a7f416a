"""Encoder-decoder supernet (HAT's design) with a per-layer choice of attention kind.

    supernet = SupernetTransformer.from_space(SearchSpace.load("multi30k_small"), config)
    supernet.set_arch(arch)            # any architecture of the space
    logits = supernet(src, prev)       # exactly the standalone Transformer's forward/encode/decode
    model = supernet.extract(arch)     # a standalone mixnas.models.Transformer, weights copied

Elastic: encoder and decoder embedding widths, depths (the first n layers), per-layer FFN
width, heads, qkv width and attention kind for self and cross attention, and which encoder
layers a decoder layer attends to (`cross_layers`). The forward logic is the standalone
model's (`EncoderDecoder`), run on elastic modules.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
import torch.nn.functional as F

from ...supernet.elastic import (ElasticEmbedding, ElasticLayerNorm, ElasticLinear, ElasticMultiheadAttention,
                                 copy_weights)
from .arch import TransformerArch
from .config import TransformerConfig
from .model import DecoderLayer, EncoderDecoder, EncoderLayer, Transformer, check_transformer_arch, init_embedding


class SupernetTransformer(EncoderDecoder):
    def __init__(self, config: TransformerConfig, *, encoder_embed_dim: int, decoder_embed_dim: int,
                 encoder_layers: int, decoder_layers: int, encoder_ffn_dim: int, decoder_ffn_dim: int,
                 qkv_dim: int, kinds: Sequence[str], decoder_kinds: Sequence[str] | None = None,
                 cross_kinds: Sequence[str] | None = None, min_heads: int = 1,
                 share_projections: bool = False):
        """Largest dimensions of the space. `kinds` are the encoder self-attention kinds
        (and, unless given, the decoder self- and cross-attention kinds). `min_heads` sizes
        the per-head parameters of positional kinds (largest head = qkv_dim // min_heads)."""
        super().__init__()
        c = self.config = config
        self.share_projections = share_projections
        self.kinds = {"encoder": tuple(kinds), "decoder": tuple(decoder_kinds or kinds),
                      "cross": tuple(cross_kinds or kinds)}
        self.max_qkv_dim = qkv_dim
        head = qkv_dim // min_heads

        # With a shared vocabulary one table, as wide as the wider side, serves both sides;
        # each side reads its own active width.
        width = max(encoder_embed_dim, decoder_embed_dim) if c.shared_vocab else encoder_embed_dim
        self.encoder_embed = ElasticEmbedding(c.src_vocab, width, c.pad_id)
        if c.shared_vocab:
            self.decoder_embed = ElasticEmbedding(c.tgt_vocab, width, c.pad_id, weight=self.encoder_embed.weight)
        else:
            self.decoder_embed = ElasticEmbedding(c.tgt_vocab, decoder_embed_dim, c.pad_id)
            init_embedding(self.decoder_embed.weight, c.pad_id)
        init_embedding(self.encoder_embed.weight, c.pad_id)
        self.output_projection = None
        if not c.tie_embeddings:
            self.output_projection = ElasticLinear(decoder_embed_dim, c.tgt_vocab, bias=False)
            init_embedding(self.output_projection.weight, c.pad_id)

        def attn(embed, kinds, kv_dim=None):
            return ElasticMultiheadAttention(embed, qkv_dim, kinds, head, c.kernel_options, kv_dim=kv_dim,
                                             share_projections=share_projections)

        e, d = encoder_embed_dim, decoder_embed_dim
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(attn(e, self.kinds["encoder"]), ElasticLayerNorm(e), ElasticLinear(e, encoder_ffn_dim),
                         ElasticLinear(encoder_ffn_dim, e), ElasticLayerNorm(e), c.pre_norm, c.dropout)
            for _ in range(encoder_layers))
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(attn(d, self.kinds["decoder"]), ElasticLayerNorm(d),
                         attn(d, self.kinds["cross"], kv_dim=e), ElasticLayerNorm(d),
                         ElasticLinear(d, decoder_ffn_dim), ElasticLinear(decoder_ffn_dim, d), ElasticLayerNorm(d),
                         1, c.pre_norm, c.dropout)
            for _ in range(decoder_layers))
        self.encoder_norm = ElasticLayerNorm(e) if c.pre_norm else None
        self.decoder_norm = ElasticLayerNorm(d) if c.pre_norm else None
        self.arch: TransformerArch | None = None

    @classmethod
    def from_space(cls, space, config: TransformerConfig, share_projections: bool = False) -> "SupernetTransformer":
        """The supernet holding every architecture of a `TransformerSpace`."""
        if getattr(space, "kind", None) != "transformer":
            raise ValueError(f"SupernetTransformer needs a transformer search space, got {getattr(space, 'kind', space)!r}")
        enc, dec = space.encoder, space.decoder
        return cls(config, encoder_embed_dim=enc.max_embed_dim, decoder_embed_dim=dec.max_embed_dim,
                   encoder_layers=enc.max_layers, decoder_layers=dec.max_layers,
                   encoder_ffn_dim=enc.max_ffn_dim, decoder_ffn_dim=dec.max_ffn_dim, qkv_dim=space.qkv_dim,
                   kinds=enc.attention, decoder_kinds=dec.attention, cross_kinds=dec.cross_attention,
                   min_heads=min(*enc.heads, *dec.heads, *dec.cross_heads), share_projections=share_projections)

    # ------------------------------------------------------------------ architecture
    def set_arch(self, arch: TransformerArch) -> None:
        """Make the supernet run `arch` (until the next set_arch)."""
        self._check_fits(arch)
        self.encoder_embed.active_dim = arch.encoder_embed_dim
        self.decoder_embed.active_dim = arch.decoder_embed_dim
        for layer, a in zip(self.encoder_layers, arch.encoder_layers):
            layer.self_attn.set_active(a.attention, a.heads, arch.qkv_dim, arch.encoder_embed_dim)
            _set_ffn(layer, a.ffn_dim, arch.encoder_embed_dim)
        for layer, a in zip(self.decoder_layers, arch.decoder_layers):
            layer.self_attn.set_active(a.attention, a.heads, arch.qkv_dim, arch.decoder_embed_dim)
            layer.cross_attn.set_active(a.cross_attention, a.cross_heads, arch.qkv_dim, arch.decoder_embed_dim)
            layer.cross_layers = a.cross_layers
            _set_ffn(layer, a.ffn_dim, arch.decoder_embed_dim)
        self.arch = arch

    def _check_fits(self, arch: TransformerArch) -> None:
        check_transformer_arch(arch)
        limits = [("encoder_embed_dim", arch.encoder_embed_dim, self.encoder_layers[0].fc1.in_features),
                  ("decoder_embed_dim", arch.decoder_embed_dim, self.decoder_layers[0].fc1.in_features),
                  ("encoder depth", len(arch.encoder_layers), len(self.encoder_layers)),
                  ("decoder depth", len(arch.decoder_layers), len(self.decoder_layers)),
                  ("qkv_dim", arch.qkv_dim, self.max_qkv_dim)]
        limits += [(f"encoder_layers[{i}].ffn_dim", a.ffn_dim, self.encoder_layers[0].fc1.out_features)
                   for i, a in enumerate(arch.encoder_layers)]
        limits += [(f"decoder_layers[{i}].ffn_dim", a.ffn_dim, self.decoder_layers[0].fc1.out_features)
                   for i, a in enumerate(arch.decoder_layers)]
        for what, value, limit in limits:
            if value > limit:
                raise ValueError(f"architecture {what}={value} exceeds the supernet's {limit}")
        for where, key, values in (("encoder", "encoder", [a.attention for a in arch.encoder_layers]),
                                   ("decoder", "decoder", [a.attention for a in arch.decoder_layers]),
                                   ("decoder cross", "cross", [a.cross_attention for a in arch.decoder_layers])):
            bad = sorted(set(values) - set(self.kinds[key]))
            if bad:
                raise ValueError(f"{where} attention kind(s) {bad} are not in the supernet's {list(self.kinds[key])}")

    def _require_arch(self) -> TransformerArch:
        if self.arch is None:
            raise ValueError("call set_arch(arch) before running the supernet")
        return self.arch

    def encoder_layers_active(self):
        return self.encoder_layers[:len(self._require_arch().encoder_layers)]

    def decoder_layers_active(self):
        return self.decoder_layers[:len(self._require_arch().decoder_layers)]

    def output_logits(self, x: Tensor) -> Tensor:
        if self.output_projection is not None:
            return self.output_projection(x)
        return F.linear(x, self.decoder_embed.active_weight())

    def extract(self, arch: TransformerArch) -> Transformer:
        """A standalone Transformer for `arch` with copies of its slice of the weights."""
        self._check_fits(arch)
        ref = self.encoder_embed.weight
        model = Transformer(arch, self.config).to(device=ref.device, dtype=ref.dtype)
        copy_weights(self, model)
        return model.train(self.training)


def _set_ffn(layer, ffn_dim: int, embed_dim: int) -> None:
    layer.fc1.active_out = ffn_dim
    layer.fc2.active_out = embed_dim
