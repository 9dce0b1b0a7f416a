"""Task-level settings of a model that the search does NOT choose (vocabulary, norms, dropout...).

An exported model is `arch.yaml` = {"arch": arch.to_dict(), "config": config.to_dict()} plus
`model.pt`; these dataclasses are the "config" half.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _from_dict(cls, d: Any, name: str):
    if not isinstance(d, dict):
        raise ValueError(f"{name} must be a mapping, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"{name} has unknown field(s) {sorted(unknown)}; expected some of {sorted(known)}")
    return cls(**d)


def _check_attention_options(options: Any) -> None:
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise ValueError("attention_options must map an attention kind to a dict of kernel options, "
                         f"e.g. {{'cosformer': {{'max_len': 1024}}}}; got {options!r}")


@dataclass
class TransformerConfig:
    src_vocab: int
    tgt_vocab: int
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    shared_vocab: bool = True  # one token table for source and target (needs src_vocab == tgt_vocab)
    tie_embeddings: bool = True  # output projection = decoder token embedding
    pre_norm: bool = False  # fairseq default is post-norm
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_len: int = 1024  # longest sequence the sinusoidal positions cover
    attention_options: dict = field(default_factory=dict)  # kind -> build_kernel options

    def __post_init__(self):
        for name in ("src_vocab", "tgt_vocab", "max_len"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TransformerConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.shared_vocab and self.src_vocab != self.tgt_vocab:
            raise ValueError(f"shared_vocab needs src_vocab == tgt_vocab, got {self.src_vocab} and "
                             f"{self.tgt_vocab}; set shared_vocab: false for separate vocabularies")
        for name in ("pad_id", "bos_id", "eos_id"):
            if not 0 <= getattr(self, name) < min(self.src_vocab, self.tgt_vocab):
                raise ValueError(f"TransformerConfig.{name}={getattr(self, name)} is outside the vocabulary")
        _check_attention_options(self.attention_options)

    def kernel_options(self, kind: str) -> dict[str, Any]:
        """Options for `build_kernel(kind, ...)`: attention dropout, overridden per kind."""
        return {"dropout": self.attention_dropout, **self.attention_options.get(kind, {})}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TransformerConfig":
        return _from_dict(cls, d, "TransformerConfig")


@dataclass
class ViTConfig:
    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 3
    num_classes: int = 10
    pool: str = "cls"  # "cls": class token; "mean": average of the patch tokens
    dropout: float = 0.0
    attention_options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"ViTConfig.pool must be 'cls' or 'mean', got {self.pool!r}")
        if self.patch_size < 1 or self.image_size % self.patch_size:
            raise ValueError(f"ViTConfig.image_size={self.image_size} must be a multiple of "
                             f"patch_size={self.patch_size}")
        _check_attention_options(self.attention_options)

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        return self.num_patches + (1 if self.pool == "cls" else 0)

    def kernel_options(self, kind: str) -> dict[str, Any]:
        return dict(self.attention_options.get(kind, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
        return _from_dict(cls, d, "ViTConfig")
