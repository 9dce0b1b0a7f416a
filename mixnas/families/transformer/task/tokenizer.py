"""Joint SentencePiece vocabulary for both languages of a translation task.

One model is trained on the training split of the source and target sides together, so the
encoder embedding, the decoder embedding and the output projection can share one matrix.
The special ids are fixed, whatever the data:

    PAD_ID = 0   padding (batches are right-padded with it)
    BOS_ID = 1   begin of sentence, first token of the decoder input `prev_output_tokens`
    EOS_ID = 2   end of sentence, last token of every source and of every target
    UNK_ID = 3   characters never seen in training

The trained model is cached under `cache_dir/spm-<key>/spm.model`, where the key hashes the
contents of the two training files and every training setting, so a second run with unchanged
data and settings reuses it, and any change trains a new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Sequence

import sentencepiece as spm

from mixnas.fileio import atomic_write_bytes, file_sha256
from mixnas.families.transformer.task.corpus import read_parallel

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
MODEL_TYPES = ("unigram", "bpe")


class SentencePieceTokenizer:
    """Encode text to ids (no specials added) and decode ids back to detokenized text."""

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID

    def __init__(self, model_path: str | os.PathLike) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ValueError(f"SentencePiece model {self.model_path} does not exist; build it with build_tokenizer()")
        # A SentencePiece model is a protobuf message: loading it never runs code.
        try:
            self.processor = spm.SentencePieceProcessor(model_file=str(self.model_path))
        except (RuntimeError, OSError) as error:  # truncated or overwritten: "could not parse ModelProto"
            cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(corrupt_cache_message(self.model_path, cause)) from None
        got = (self.processor.pad_id(), self.processor.bos_id(), self.processor.eos_id(), self.processor.unk_id())
        if got != (PAD_ID, BOS_ID, EOS_ID, UNK_ID):
            raise ValueError(
                f"SentencePiece model {self.model_path} has pad/bos/eos/unk ids {got}, expected "
                f"{(PAD_ID, BOS_ID, EOS_ID, UNK_ID)}; rebuild it with build_tokenizer()"
            )

    @property
    def vocab_size(self) -> int:
        return self.processor.vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.processor.encode(text)

    def encode_lines(self, lines: Sequence[str]) -> list[list[int]]:
        return self.processor.encode(list(lines))

    def decode(self, ids: Sequence[int]) -> str:
        """Text for `ids`: stops at the first EOS, drops BOS and PAD (a hypothesis ends at EOS)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        pieces = []
        for token in ids:
            if token == EOS_ID:
                break
            if token not in (PAD_ID, BOS_ID):
                pieces.append(int(token))
        return self.processor.decode(pieces)


def corrupt_cache_message(path: Path, cause: str) -> str:
    """One line for a damaged file in a tokenizer cache directory: name it, and how to recover."""
    return (f"cached SentencePiece file {path} is corrupt ({cause}); delete the cache directory "
            f"{path.parent} and it is rebuilt from the training data")


def _cached_tokenizer(model_path: Path, vocab_size: int) -> SentencePieceTokenizer:
    """The cached model, checked against the checksum and vocabulary size recorded beside it."""
    settings_path = model_path.with_name("settings.json")
    try:
        recorded = json.loads(settings_path.read_bytes()) if settings_path.is_file() else {}
    except (ValueError, OSError) as error:  # bad JSON or bytes that are not UTF-8
        raise ValueError(corrupt_cache_message(settings_path, type(error).__name__)) from None
    expected = recorded.get("model_sha256") if isinstance(recorded, dict) else None
    if expected is not None and file_sha256(model_path) != expected:  # absent in caches of older versions
        raise ValueError(corrupt_cache_message(model_path, "its checksum differs from settings.json"))
    tokenizer = SentencePieceTokenizer(model_path)
    if tokenizer.vocab_size != vocab_size:
        raise ValueError(corrupt_cache_message(model_path, f"{tokenizer.vocab_size} pieces, expected {vocab_size}"))
    return tokenizer


def _vocab_error(message: str, vocab_size: int, where: str) -> ValueError:
    limit = re.search(r"value <= (\d+)", message)
    hint = f"use vocab_size <= {limit.group(1)}" if limit else "lower vocab_size"
    return ValueError(f"vocab_size={vocab_size} is too large for the training data in {where}; {hint}")


def build_tokenizer(
    src_file: str | os.PathLike,
    tgt_file: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    max_lines: int | None = None,
) -> SentencePieceTokenizer:
    """Train (or reuse from `cache_dir`) a joint SentencePiece model on two parallel training files.

    `max_lines` trains on the first `max_lines` lines of each side (deterministic; quick tests),
    None uses all of them. Training itself is deterministic (no sentence sampling, one thread).
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type={model_type!r} is not supported; use one of {MODEL_TYPES}")
    if vocab_size <= UNK_ID + 1:
        raise ValueError(f"vocab_size={vocab_size} is too small; it must exceed the {UNK_ID + 1} special tokens")
    src_lines, tgt_lines = read_parallel(src_file, tgt_file)  # validates even on a cache hit
    settings = {
        "vocab_size": int(vocab_size),
        "model_type": model_type,
        "character_coverage": float(character_coverage),
        "max_lines": max_lines,
        "sentencepiece": spm.__version__,
        "src_sha256": file_sha256(Path(src_file)),
        "tgt_sha256": file_sha256(Path(tgt_file)),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    model_path = Path(cache_dir) / f"spm-{key}" / "spm.model"
    if model_path.is_file():
        return _cached_tokenizer(model_path, vocab_size)

    take = slice(None) if max_lines is None else slice(0, max_lines)
    sentences = [line for line in src_lines[take] + tgt_lines[take] if line.strip()]
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            unk_id=UNK_ID,
            input_sentence_size=0,  # use every sentence: sampling would make the model run-dependent
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as error:
        if "Vocabulary size" in str(error):
            raise _vocab_error(str(error), vocab_size, f"{src_file} + {tgt_file}") from None
        raise ValueError(f"SentencePiece training on {src_file} + {tgt_file} failed: {error}") from None
    # The checksum (not part of the cache key) lets a later run tell a damaged model from a good one.
    recorded = {**settings, "model_sha256": hashlib.sha256(model.getvalue()).hexdigest()}
    atomic_write_bytes(model_path.with_name("settings.json"), json.dumps(recorded, indent=1).encode())
    atomic_write_bytes(model_path, model.getvalue())
    return SentencePieceTokenizer(model_path)
