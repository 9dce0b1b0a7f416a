"""Translation data: validated parallel files -> joint SentencePiece ids -> cached tensors.

    data = TranslationData(TranslationDataConfig(data_dir="../shared/data/multi30k", vocab_size=8000))
    train = data.batches("train", max_tokens=4096, max_positions=256, seed=1)
    for batch in train: ...              # TranslationBatch, see batching.py
    refs = data.references("test")       # raw target lines for sacreBLEU

Encoded splits are cached next to the SentencePiece model as plain tensors (torch.save, loaded
with weights_only=True), keyed by the tokenizer and a hash of the split's two files.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mixnas.families.transformer.task.batching import TokenBatches
from mixnas.families.transformer.task.corpus import read_parallel, split_path
from mixnas.fileio import atomic_write_bytes, safe_torch_load
from mixnas.fileio import file_sha256
from mixnas.families.transformer.task.tokenizer import SentencePieceTokenizer, build_tokenizer


def default_cache_dir() -> Path:
    """$MIXNAS_CACHE/translation, else ~/.cache/mixnas/translation (data dirs may be read-only)."""
    root = os.environ.get("MIXNAS_CACHE") or Path.home() / ".cache" / "mixnas"
    return Path(root).expanduser() / "translation"


class EncodedSplit:
    """Token ids of one split, stored flat with offsets; pair i is (src ids, tgt ids), no specials."""

    def __init__(self, src: torch.Tensor, src_offsets: torch.Tensor, tgt: torch.Tensor, tgt_offsets: torch.Tensor):
        if len(src_offsets) != len(tgt_offsets):
            raise ValueError("encoded split is corrupt: source and target pair counts differ; delete the cache")
        self.src, self.src_offsets, self.tgt, self.tgt_offsets = src, src_offsets, tgt, tgt_offsets

    @classmethod
    def from_ids(cls, src_ids: list[list[int]], tgt_ids: list[list[int]]) -> "EncodedSplit":
        def flatten(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = torch.tensor([len(row) for row in rows], dtype=torch.int64)
            offsets = torch.zeros(len(rows) + 1, dtype=torch.int64)
            offsets[1:] = torch.cumsum(lengths, 0)
            flat = torch.tensor([token for row in rows for token in row], dtype=torch.int32)
            return flat, offsets

        return cls(*flatten(src_ids), *flatten(tgt_ids))

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        s0, s1 = self.src_offsets[index], self.src_offsets[index + 1]
        t0, t1 = self.tgt_offsets[index], self.tgt_offsets[index + 1]
        return self.src[s0:s1], self.tgt[t0:t1]

    @property
    def src_lengths(self) -> torch.Tensor:
        """Token counts without EOS."""
        return self.src_offsets[1:] - self.src_offsets[:-1]

    @property
    def tgt_lengths(self) -> torch.Tensor:
        return self.tgt_offsets[1:] - self.tgt_offsets[:-1]

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        tensors = {"src": self.src, "src_offsets": self.src_offsets, "tgt": self.tgt, "tgt_offsets": self.tgt_offsets}
        torch.save(tensors, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path, vocab_size: int | None = None) -> "EncodedSplit":
        """A cached split, checked so that a damaged cache fails here and not inside batching
        (token ids also below `vocab_size` when given)."""
        path = Path(path)
        fix = f"delete it (or the cache directory {path.parent}) and it is rebuilt"
        tensors = safe_torch_load(path, "encoded split cache", fix)
        problem = _encoded_problem(tensors, vocab_size)
        if problem:
            raise ValueError(f"encoded split cache {path} is corrupt ({problem}); {fix}")
        return cls(tensors["src"], tensors["src_offsets"], tensors["tgt"], tensors["tgt_offsets"])


def _encoded_problem(tensors, vocab_size: int | None) -> str | None:
    """What is wrong with a loaded cache (None if nothing): four 1-D integer tensors of ids in
    the vocabulary, offsets starting at 0, never decreasing, ending at the token count."""
    keys = ("src", "src_offsets", "tgt", "tgt_offsets")
    if not isinstance(tensors, dict) or not all(isinstance(tensors.get(k), torch.Tensor) for k in keys):
        return f"expected a dict of tensors {', '.join(keys)}"
    for side in ("src", "tgt"):
        ids, offsets = tensors[side], tensors[f"{side}_offsets"]
        if ids.dim() != 1 or offsets.dim() != 1 or ids.is_floating_point() or offsets.is_floating_point():
            return f"{side} ids and offsets must be 1-D integer tensors"
        if len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids) or bool((offsets.diff() < 0).any()):
            return f"{side} offsets do not index its {len(ids)} tokens"
        if len(ids) and (ids.min() < 0 or (vocab_size is not None and ids.max() >= vocab_size)):
            return f"{side} holds token ids outside the vocabulary of {vocab_size} pieces"
    if len(tensors["src_offsets"]) != len(tensors["tgt_offsets"]):
        return "source and target pair counts differ"
    return None


@dataclass(frozen=True)
class TranslationDataConfig:
    """Where the parallel files are and how to build the shared vocabulary.

    data_dir: directory of `{split}.{lang}` files. vocab_size: joint SentencePiece vocabulary
    (specials included). model_type: "unigram" or "bpe". spm_max_lines: train SentencePiece on
    the first N training lines of each side (None: all). cache_dir: where the model and encoded
    tensors go (None: default_cache_dir()).
    """

    data_dir: str
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = 8000
    model_type: str = "unigram"
    character_coverage: float = 1.0
    spm_max_lines: int | None = None
    cache_dir: str | None = None


class TranslationData:
    """The shared tokenizer plus lazily encoded, cached splits of one parallel corpus."""

    def __init__(self, config: TranslationDataConfig) -> None:
        if config.src_lang == config.tgt_lang:
            raise ValueError(f"src_lang and tgt_lang are both {config.src_lang!r}; give two different languages")
        self.config = config
        self.cache_dir = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.tokenizer: SentencePieceTokenizer = build_tokenizer(
            self.path("train", config.src_lang),
            self.path("train", config.tgt_lang),
            cache_dir=self.cache_dir,
            vocab_size=config.vocab_size,
            model_type=config.model_type,
            character_coverage=config.character_coverage,
            max_lines=config.spm_max_lines,
        )
        self._splits: dict[str, EncodedSplit] = {}

    def path(self, split: str, lang: str) -> Path:
        return split_path(self.config.data_dir, split, lang)

    def raw(self, split: str) -> tuple[list[str], list[str]]:
        """Validated (source lines, target lines) of a split."""
        return read_parallel(self.path(split, self.config.src_lang), self.path(split, self.config.tgt_lang))

    def references(self, split: str) -> list[str]:
        """Raw target sentences, indexed like the examples (batch.ids) - the references for BLEU."""
        return self.raw(split)[1]

    def split(self, split: str) -> EncodedSplit:
        """Encoded split, from memory, else from the tensor cache, else encoded and cached."""
        if split in self._splits:
            return self._splits[split]
        src_path, tgt_path = self.path(split, self.config.src_lang), self.path(split, self.config.tgt_lang)
        key = hashlib.sha256(f"{file_sha256(src_path)} {file_sha256(tgt_path)}".encode()).hexdigest()[:20]
        cached = self.tokenizer.model_path.parent / f"{split}.{self.config.src_lang}-{self.config.tgt_lang}.{key}.pt"
        if cached.is_file():
            encoded = EncodedSplit.load(cached, self.tokenizer.vocab_size)
        else:
            src_lines, tgt_lines = read_parallel(src_path, tgt_path)
            encoded = EncodedSplit.from_ids(self.tokenizer.encode_lines(src_lines), self.tokenizer.encode_lines(tgt_lines))
            encoded.save(cached)
        self._splits[split] = encoded
        return encoded

    def batches(
        self,
        split: str,
        max_tokens: int,
        *,
        max_positions: int | None = None,
        max_sentences: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
    ) -> TokenBatches:
        """Token-budget batches of a split (see TokenBatches for the exact conventions)."""
        return TokenBatches(
            self.split(split),
            max_tokens=max_tokens,
            max_positions=max_positions,
            max_sentences=max_sentences,
            shuffle=shuffle,
            seed=seed,
        )
