"""A tiny synthetic parallel corpus for translation data tests (writes {split}.{lang} files)."""

from __future__ import annotations

import random
from pathlib import Path

EN_WORDS = "a the man woman dog cat runs sits on in red blue big small street park ball with".split()
DE_WORDS = "ein der mann frau hund katze läuft sitzt auf im rot blau groß klein straße park ball mit".split()
SHARED_DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


def toy_pairs(n: int, seed: int, max_words: int = 12) -> list[tuple[str, str]]:
    """`n` aligned sentence pairs of 1..max_words words (word i of English maps to word i of German)."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        picks = [rng.randrange(len(EN_WORDS)) for _ in range(rng.randint(1, max_words))]
        pairs.append((" ".join(EN_WORDS[i] for i in picks) + ".", " ".join(DE_WORDS[i] for i in picks) + "."))
    return pairs


def write_corpus(directory: Path, sizes: dict[str, int] | None = None) -> Path:
    """Write train/val/test .en/.de files of toy pairs into `directory` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed, (split, n) in enumerate((sizes or {"train": 300, "val": 40, "test": 30}).items()):
        pairs = toy_pairs(n, seed)
        (directory / f"{split}.en").write_text("".join(en + "\n" for en, _ in pairs), encoding="utf-8")
        (directory / f"{split}.de").write_text("".join(de + "\n" for _, de in pairs), encoding="utf-8")
    return directory
