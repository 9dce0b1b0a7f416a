"""`LMConfig`: the settings of a language model that the search does not choose.

The vocabulary travels with the model, in one of two forms; exactly one defines its size:
  - `vocab`: the string of its characters in id order (character vocab[i] has id i), so an
    exported model's arch.yaml holds its tokenizer and `mixnas sample` needs nothing but the
    model directory (character-level text);
  - `vocab_size` alone (`vocab: ""`): plain integer token ids 0..vocab_size-1 with no
    characters (synthetic tasks such as MQAR); `encode`/`decode` refuse such a config.
`vocab_size` is the attribute every other module reads; with `vocab` it is len(vocab) (a
given vocab_size must then agree). `to_dict` writes only the defining key, so the saved
arch.yaml of a character model is unchanged.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...dataconf import ConfigError, from_dict
from ...models.config import KERNEL_OPTIONS, POSITIVE_INT, RATE, FieldError, Rule, with_default_kernel_options


def _is_vocab(v: Any) -> bool:
    return isinstance(v, str) and len(set(v)) == len(v)


VOCAB: Rule = (_is_vocab, "a string of distinct characters (the vocabulary in id order), or '' with vocab_size")
VOCAB_SIZE: Rule = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                    "an integer >= 0 (the number of token ids; 0: len(vocab))")


@dataclass
class LMConfig:
    vocab: str = ""                   # the characters, in id order ("" : ids only, see vocab_size)
    vocab_size: int = 0               # token ids 0..vocab_size-1; 0 with vocab: len(vocab)
    context: int = 64                 # block size: the learned positions cover 0..context-1
    dropout: float = 0.0              # on the embeddings and every residual branch
    attention_options: dict = field(default_factory=dict)  # kind -> build_kernel options

    def __post_init__(self):
        for key, (ok, expected) in LM_RULES.items():
            if not ok(getattr(self, key)):
                raise FieldError("LMConfig", key, f"expected {expected}, got {getattr(self, key)!r}")
        if self.vocab and self.vocab_size not in (0, len(self.vocab)):
            raise FieldError("LMConfig", "vocab_size", f"{self.vocab_size} disagrees with the {len(self.vocab)} "
                                                       f"characters of vocab; give one of them")
        if not self.vocab and self.vocab_size < 1:
            raise FieldError("LMConfig", "vocab", "expected the characters (vocab) or a positive vocab_size, got neither")
        self.vocab_size = self.vocab_size or len(self.vocab)
        self.attention_options = with_default_kernel_options(self.attention_options)

    def kernel_options(self, kind: str) -> dict[str, Any]:
        return dict(self.attention_options.get(kind, {}))

    def encode(self, text: str) -> list[int]:
        """Character ids of `text`; characters outside the vocabulary are a one-line error."""
        self._check_characters()
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"character(s) {', '.join(map(repr, unknown))} are not in the model's "
                             f"{self.vocab_size}-character vocabulary")
        return [index[c] for c in text]

    def decode(self, ids) -> str:
        self._check_characters()
        return "".join(self.vocab[int(i)] for i in ids)

    def _check_characters(self) -> None:
        if not self.vocab:
            raise ValueError(f"this model's {self.vocab_size} token ids have no characters (vocab_size only): "
                             f"it takes and gives token ids, not text")

    def to_dict(self) -> dict[str, Any]:
        """The fields, with only the key that defines the vocabulary (vocab, else vocab_size)."""
        d = asdict(self)
        del d["vocab_size" if self.vocab else "vocab"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "model.config") -> "LMConfig":
        """Typed and range-checked; errors name `path`.key (the experiment's model.config by default)."""
        try:
            return from_dict(cls, d, path)
        except FieldError as e:
            raise ConfigError(f"{path}.{e.key}: {e.detail}") from None


LM_RULES: dict[str, Rule] = {"vocab": VOCAB, "vocab_size": VOCAB_SIZE, "context": POSITIVE_INT, "dropout": RATE,
                             "attention_options": KERNEL_OPTIONS}
LMConfig.RULES = LM_RULES

__all__ = ["FieldError", "LMConfig", "LM_RULES"]
