"""`TransformerConfig`: the settings of a translation model that the search does not choose
(vocabularies and special ids, norms, dropout, positions, attention kernel options)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...models.config import (BOOL, KERNEL_OPTIONS, POSITIVE_INT, RATE, TOKEN_ID, FieldError, Rule, _check_fields,
                              _load, with_default_kernel_options)


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
        _check_fields(self, TRANSFORMER_RULES)
        self.attention_options = with_default_kernel_options(self.attention_options)
        if self.shared_vocab and self.src_vocab != self.tgt_vocab:
            raise FieldError("TransformerConfig", "shared_vocab",
                             f"needs src_vocab == tgt_vocab, got {self.src_vocab} and {self.tgt_vocab}; "
                             f"set shared_vocab: false for separate vocabularies")
        size = min(self.src_vocab, self.tgt_vocab)
        for name in ("pad_id", "bos_id", "eos_id"):
            if getattr(self, name) >= size:
                raise FieldError("TransformerConfig", name,
                                 f"expected an id inside the vocabulary (< {size}), got {getattr(self, name)}")

    def kernel_options(self, kind: str) -> dict[str, Any]:
        """Options for `build_kernel(kind, ...)`: attention dropout, overridden per kind."""
        return {"dropout": self.attention_dropout, **self.attention_options.get(kind, {})}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "model.config") -> "TransformerConfig":
        """Typed and range-checked; errors name `path`.key (the experiment's model.config by default)."""
        return _load(cls, d, path)


TRANSFORMER_RULES: dict[str, Rule] = {
    "src_vocab": POSITIVE_INT, "tgt_vocab": POSITIVE_INT, "pad_id": TOKEN_ID, "bos_id": TOKEN_ID,
    "eos_id": TOKEN_ID, "shared_vocab": BOOL, "tie_embeddings": BOOL, "pre_norm": BOOL, "dropout": RATE,
    "attention_dropout": RATE, "max_len": POSITIVE_INT, "attention_options": KERNEL_OPTIONS,
}
TransformerConfig.RULES = TRANSFORMER_RULES
