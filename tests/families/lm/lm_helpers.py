"""Shared helpers of the LM family's tests: a tiny config and space, and a generated text."""
from __future__ import annotations

import random
from pathlib import Path

from mixnas.attention import kinds
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.config import LMConfig
from mixnas.families.lm.space import LMSpace

SHAKESPEARE = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "tinyshakespeare"
VOCAB = "\n !',.:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def tiny_config(context: int = 12, **kw) -> LMConfig:
    return LMConfig(vocab=VOCAB[:14], context=context, **kw)


def tiny_space(attention: tuple[str, ...] | None = None) -> LMSpace:
    """Every registered attention kind, widths small enough for float64 checks."""
    return LMSpace(embed_dim=(12, 16), layers=(1, 2, 3), ffn_dim=(8, 20), heads=(1, 2),
                   attention=tuple(attention or kinds()), head_dim=4, name="tiny_lm")


def uniform_arch(kind: str, depth: int = 2, embed: int = 16, heads: int = 2, head_dim: int = 4) -> LMArch:
    return LMArch(embed_dim=embed, layers=(LMLayerArch(ffn_dim=20, heads=heads, attention=kind),) * depth,
                  head_dim=head_dim)


WORDS = ("thou", "art", "the", "king", "of", "my", "heart", "and", "shall", "not", "be", "so", "good",
         "lord", "what", "say", "you", "sweet", "love", "death", "night", "come", "hither", "fair")
NAMES = ("ROMEO", "JULIET", "KING HENRY", "FIRST CITIZEN", "MENENIUS")


def write_text(directory: Path, chars: int = 20_000, seed: int = 0) -> Path:
    """A Shakespeare-like play of about `chars` characters in directory/input.txt."""
    rng = random.Random(seed)
    parts, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        block = f"{rng.choice(NAMES)}:\n{line[0].upper()}{line[1:]}{rng.choice('.,!?;')}\n\n"
        parts.append(block)
        size += len(block)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "input.txt").write_text("".join(parts))
    return directory
