"""The search space of the encoder-decoder Transformer family (HAT's space): per-stack gene
choices of the encoder (`StackChoices`) and of the decoder (`DecoderChoices`, with the
cross-attention genes), a fixed `qkv_dim`, optionally tied embedding widths.

Sampling, mutation, crossover, counting and the feature encoding are the gene-wise operations
of mixnas.space.genes, walking the fields of `EncoderLayerArch` and `DecoderLayerArch`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from ...space import genes as g
from ...space.arch import Arch
from ...space.genes import StackChoices
from ...space.search_space import SearchSpace, _check_prob, _unique
from .arch import DecoderLayerArch, EncoderLayerArch, TransformerArch


@dataclass(frozen=True)
class DecoderChoices(StackChoices):
    cross_heads: tuple[int, ...]
    cross_attention: tuple[str, ...]
    # Arbitrary encoder-decoder attention: attend to the last 1, 2 or 3 encoder layers' outputs.
    cross_layers: tuple[int, ...]

    @property
    def max_cross_heads(self) -> int:
        return max(self.cross_heads)

    @property
    def max_cross_layers(self) -> int:
        return max(self.cross_layers)


@dataclass(frozen=True)
class TransformerSpace(SearchSpace):
    """HAT-style encoder-decoder space. `qkv_dim` is fixed (head size = qkv_dim // heads).
    With `tie_embed_dims` one gene sets both embedding widths (encoder.embed_dim choices)."""

    encoder: StackChoices
    decoder: DecoderChoices
    qkv_dim: int
    tie_embed_dims: bool = False
    name: str = "custom"

    kind: ClassVar[str] = "transformer"

    @classmethod
    def _parse(cls, d: dict, source: str) -> "TransformerSpace":
        g.check_keys(d, ["type", "name", "qkv_dim", "tie_embed_dims", "encoder", "decoder"], source)
        tie = d.get("tie_embed_dims", False)
        if not isinstance(tie, bool):
            raise ValueError(f"{source}.tie_embed_dims must be true or false, got {tie!r}")
        enc = StackChoices(**g.parse_choices(StackChoices, d.get("encoder"), f"{source}.encoder"))
        dec_d = d.get("decoder")
        if tie and isinstance(dec_d, dict) and "embed_dim" not in dec_d:
            dec_d = {**dec_d, "embed_dim": list(enc.embed_dim)}
        dec = DecoderChoices(**g.parse_choices(DecoderChoices, dec_d, f"{source}.decoder"))
        qkv_dim = g.positive_int(d, "qkv_dim", source)
        if tie and set(dec.embed_dim) != set(enc.embed_dim):
            raise ValueError(f"{source}: tie_embed_dims is true but encoder.embed_dim {list(enc.embed_dim)} != "
                             f"decoder.embed_dim {list(dec.embed_dim)}; give one list (or omit decoder.embed_dim)")
        for where, heads in (("encoder.heads", enc.heads), ("decoder.heads", dec.heads),
                             ("decoder.cross_heads", dec.cross_heads)):
            bad = [h for h in heads if qkv_dim % h]
            if bad:
                raise ValueError(f"{source}: qkv_dim={qkv_dim} is not divisible by {where} choice(s) {bad}; "
                                 f"every head count must divide qkv_dim")
        if min(dec.cross_layers) > min(enc.layers):
            raise ValueError(f"{source}: decoder.cross_layers {list(dec.cross_layers)} has no choice <= the "
                             f"encoder depth {min(enc.layers)}; add a smaller choice")
        name = d.get("name", "custom")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{source}.name must be a non-empty string, got {name!r}")
        return cls(encoder=enc, decoder=dec, qkv_dim=qkv_dim, tie_embed_dims=tie, name=name)

    def to_dict(self) -> dict[str, Any]:
        def plain(c: StackChoices) -> dict[str, list]:
            return {f.name: list(getattr(c, f.name)) for f in fields(c)}

        return {"type": self.kind, "name": self.name, "qkv_dim": self.qkv_dim,
                "tie_embed_dims": self.tie_embed_dims, "encoder": plain(self.encoder), "decoder": plain(self.decoder)}

    # ------------------------------------------------------------ genes per stack
    def _encoder_genes(self) -> g.Genes:
        return self.encoder.layer_genes(EncoderLayerArch)

    def _decoder_genes(self, encoder_depth: int | None = None) -> g.Genes:
        """Decoder layer genes; with `encoder_depth`, cross_layers is capped by it."""
        genes = self.decoder.layer_genes(DecoderLayerArch)
        if encoder_depth is not None:
            genes["cross_layers"] = tuple(c for c in genes["cross_layers"] if c <= encoder_depth)
        return genes

    def _arch(self, enc_embed: int, dec_embed: int, enc: tuple, dec: tuple) -> TransformerArch:
        return TransformerArch(encoder_embed_dim=enc_embed, decoder_embed_dim=enc_embed if self.tie_embed_dims else dec_embed,
                               encoder_layers=enc, decoder_layers=dec, qkv_dim=self.qkv_dim)

    # ------------------------------------------------------------ operations
    def sample(self, rng: random.Random) -> TransformerArch:
        enc_embed, dec_embed = rng.choice(self.encoder.embed_dim), rng.choice(self.decoder.embed_dim)
        enc = g.sample_layers(EncoderLayerArch, self._encoder_genes(), self.encoder.layers, rng)
        dec = g.sample_layers(DecoderLayerArch, self._decoder_genes(len(enc)), self.decoder.layers, rng)
        return self._arch(enc_embed, dec_embed, enc, dec)

    def mutate(self, arch: TransformerArch, prob: float, rng: random.Random) -> TransformerArch:
        _check_prob(prob, "mutation")
        self.validate(arch)
        enc_embed = g.mutate_gene(arch.encoder_embed_dim, self.encoder.embed_dim, prob, rng)
        dec_embed = g.mutate_gene(arch.decoder_embed_dim, self.decoder.embed_dim, prob, rng)
        enc = g.mutate_layers(arch.encoder_layers, EncoderLayerArch, self._encoder_genes(), self.encoder.layers, prob, rng)
        dec = g.mutate_layers(arch.decoder_layers, DecoderLayerArch, self._decoder_genes(len(enc)),
                              self.decoder.layers, prob, rng)
        return self._arch(enc_embed, dec_embed, enc, dec)

    def crossover(self, a: TransformerArch, b: TransformerArch, rng: random.Random, prob: float = 0.5) -> TransformerArch:
        _check_prob(prob, "crossover")
        self.validate(a)
        self.validate(b)
        enc_embed = g.inherit_gene(a.encoder_embed_dim, b.encoder_embed_dim, self.encoder.embed_dim, prob, rng)
        dec_embed = g.inherit_gene(a.decoder_embed_dim, b.decoder_embed_dim, self.decoder.embed_dim, prob, rng)
        enc = g.crossover_layers(a.encoder_layers, b.encoder_layers, EncoderLayerArch, self._encoder_genes(),
                                 self.encoder.layers, prob, rng)
        dec = g.crossover_layers(a.decoder_layers, b.decoder_layers, DecoderLayerArch, self._decoder_genes(len(enc)),
                                 self.decoder.layers, prob, rng)
        return self._arch(enc_embed, dec_embed, enc, dec)

    def validate(self, arch: Arch) -> None:
        if not isinstance(arch, TransformerArch):
            raise ValueError(f"search space {self.name!r} holds transformer architectures, got {type(arch).__name__}")
        g.check_gene("encoder_embed_dim", arch.encoder_embed_dim, self.encoder.embed_dim, self.name)
        g.check_gene("decoder_embed_dim", arch.decoder_embed_dim, self.decoder.embed_dim, self.name)
        if self.tie_embed_dims and arch.decoder_embed_dim != arch.encoder_embed_dim:
            raise ValueError(f"decoder_embed_dim={arch.decoder_embed_dim} must equal encoder_embed_dim="
                             f"{arch.encoder_embed_dim}: search space {self.name!r} ties the embedding widths")
        g.check_gene("qkv_dim", arch.qkv_dim, (self.qkv_dim,), self.name)
        g.check_layers(arch.encoder_layers, EncoderLayerArch, self._encoder_genes(), self.encoder.layers,
                       "encoder_layers", self.name)
        depth = len(arch.encoder_layers)
        g.check_layers(arch.decoder_layers, DecoderLayerArch, self._decoder_genes(depth), self.decoder.layers,
                       "decoder_layers", self.name, notes={"cross_layers": f" with encoder depth {depth}"})

    def size(self) -> int:
        embeds = len(self.encoder.embed_dim) * (1 if self.tie_embed_dims else len(self.decoder.embed_dim))
        enc_layer = g.count_layer(self._encoder_genes())
        total = 0
        for enc_depth in self.encoder.layers:  # cross_layers choices depend on the encoder depth
            dec_layer = g.count_layer(self._decoder_genes(enc_depth))
            total += enc_layer ** enc_depth * sum(dec_layer ** d for d in self.decoder.layers)
        return embeds * total

    def _extreme(self, pick) -> TransformerArch:
        enc = g.extreme_layers(EncoderLayerArch, self._encoder_genes(), pick(self.encoder.layers), pick)
        dec = g.extreme_layers(DecoderLayerArch, self._decoder_genes(len(enc)), pick(self.decoder.layers), pick)
        return self._arch(pick(self.encoder.embed_dim), pick(self.decoder.embed_dim), enc, dec)

    def largest(self) -> TransformerArch:
        """Max of every width, depth and cross_layers; the first listed attention kinds."""
        return self._extreme(max)

    def smallest(self) -> TransformerArch:
        return self._extreme(min)

    def feature_names(self) -> list[str]:
        return (["enc.embed_dim", "dec.embed_dim", "enc.layers", "dec.layers"]
                + g.layer_feature_names("enc", self._encoder_genes(), self.encoder.max_layers)
                + g.layer_feature_names("dec", self._decoder_genes(), self.decoder.max_layers))

    def _features(self, arch: TransformerArch) -> list[float]:
        return ([g.normalise(arch.encoder_embed_dim, self.encoder.embed_dim),
                 g.normalise(arch.decoder_embed_dim, self.decoder.embed_dim),
                 g.normalise(len(arch.encoder_layers), self.encoder.layers),
                 g.normalise(len(arch.decoder_layers), self.decoder.layers)]
                + g.layer_features(arch.encoder_layers, self._encoder_genes(), self.encoder.max_layers)
                + g.layer_features(arch.decoder_layers, self._decoder_genes(), self.decoder.max_layers))

    @property
    def attention_kinds(self) -> tuple[str, ...]:
        return _unique(self.encoder.attention, self.decoder.attention, self.decoder.cross_attention)
