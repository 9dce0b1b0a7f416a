"""`LMConfig`: the settings of a language model that the search does not choose.

The vocabulary travels with the model: `vocab` is the string of its characters in id order
(character vocab[i] has id i), so an exported model's arch.yaml holds its tokenizer and
`mixnas sample` needs nothing but the model directory.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...dataconf import ConfigError, from_dict
from ...models.config import KERNEL_OPTIONS, POSITIVE_INT, RATE, FieldError, Rule, with_default_kernel_options


def _is_vocab(v: Any) -> bool:
    return isinstance(v, str) and len(v) >= 1 and len(set(v)) == len(v)


VOCAB: Rule = (_is_vocab, "a non-empty string of distinct characters (the vocabulary in id order)")


@dataclass
class LMConfig:
    vocab: str                        # the characters, in id order
    context: int = 64                 # block size: the learned positions cover 0..context-1
    dropout: float = 0.0              # on the embeddings and every residual branch
    attention_options: dict = field(default_factory=dict)  # kind -> build_kernel options

    def __post_init__(self):
        for key, (ok, expected) in LM_RULES.items():
            if not ok(getattr(self, key)):
                raise FieldError("LMConfig", key, f"expected {expected}, got {getattr(self, key)!r}")
        self.attention_options = with_default_kernel_options(self.attention_options)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def kernel_options(self, kind: str) -> dict[str, Any]:
        return dict(self.attention_options.get(kind, {}))

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`; characters outside the vocabulary are a one-line error."""
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"character(s) {', '.join(map(repr, unknown))} are not in the model's "
                             f"{self.vocab_size}-character vocabulary")
        return [index[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "model.config") -> "LMConfig":
        """Typed and range-checked; errors name `path`.key (the experiment's model.config by default)."""
        try:
            return from_dict(cls, d, path)
        except FieldError as e:
            raise ConfigError(f"{path}.{e.key}: {e.detail}") from None


LM_RULES: dict[str, Rule] = {"vocab": VOCAB, "context": POSITIVE_INT, "dropout": RATE,
                             "attention_options": KERNEL_OPTIONS}
LMConfig.RULES = LM_RULES

__all__ = ["FieldError", "LMConfig", "LM_RULES"]
