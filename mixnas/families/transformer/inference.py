"""Using a trained translation model: its saved SentencePiece model and beam settings.

    translator = mixnas.load("runs/multi30k_hat/model")
    translator.translate(["A man is riding a bike.", "Two dogs play."])   # -> two German sentences

`save_assets` copies the task's SentencePiece model into the model directory (`spm.model`) and
writes `preprocessing.json` (languages, vocabulary size, the model file's checksum and the beam
settings the task trained and evaluated with). `Translator.translate` encodes sources exactly
as the task's batches do (tokens then EOS, right-padded with PAD, see task/batching.py), runs
the task's beam search (task/beam.py) and decodes the best hypothesis with the tokenizer.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

PREPROCESSING_FILE = "preprocessing.json"
TOKENIZER_FILE = "spm.model"
DEFAULT_BATCH_SIZE = 32


def save_translation_assets(task, directory: Path) -> None:
    """spm.model (the task's SentencePiece model) and preprocessing.json into `directory`."""
    from ...fileio import atomic_write_bytes, file_sha256, write_json
    tokenizer = task.data.tokenizer
    atomic_write_bytes(directory / TOKENIZER_FILE, tokenizer.model_path.read_bytes())
    config = task.config
    write_json(directory / PREPROCESSING_FILE, {
        "tokenizer": TOKENIZER_FILE, "tokenizer_sha256": file_sha256(directory / TOKENIZER_FILE),
        "vocab_size": tokenizer.vocab_size, "src_lang": config.src_lang, "tgt_lang": config.tgt_lang,
        "source": "SentencePiece pieces of the raw line, then EOS; batches right-padded with PAD",
        "beam": dataclasses.asdict(config.beam)})


class Translator:
    """A translation model with its tokenizer and beam settings (`mixnas.load` builds it).

    `model` (the nn.Module), `tokenizer` (SentencePieceTokenizer), `beam` (the BeamConfig it
    was trained with), `src_lang`, `tgt_lang`."""

    def __init__(self, model, directory: str | Path) -> None:
        from ...fileio import file_sha256
        from ...models.io import MISSING_ASSET_FIX, asset_file, read_asset_json
        from .task.beam import BeamConfig
        from .task.tokenizer import SentencePieceTokenizer
        directory = Path(directory)
        prep = read_asset_json(directory, PREPROCESSING_FILE)
        where = directory / PREPROCESSING_FILE
        spm_file = asset_file(directory, str(prep.get("tokenizer", TOKENIZER_FILE)))
        expected = prep.get("tokenizer_sha256")
        if expected is not None and file_sha256(spm_file) != expected:
            raise ValueError(f"{spm_file} differs from the SentencePiece model the model was saved with "
                             f"(checksum in {where}); restore it, or {MISSING_ASSET_FIX}")
        self.tokenizer = SentencePieceTokenizer(spm_file)
        if self.tokenizer.vocab_size != model.config.src_vocab:
            raise ValueError(f"{spm_file} has {self.tokenizer.vocab_size} pieces but the model's vocabulary has "
                             f"{model.config.src_vocab}; {MISSING_ASSET_FIX}")
        try:
            self.beam = BeamConfig(**prep.get("beam", {}))
        except TypeError as error:
            raise ValueError(f"{where}: beam settings are not BeamConfig's ({error}); {MISSING_ASSET_FIX}") from None
        self.model, self.directory = model, directory
        self.src_lang, self.tgt_lang = prep.get("src_lang"), prep.get("tgt_lang")

    def encode(self, sentences: Sequence[str]):
        """(B, S) source tokens of `sentences` as the task's batches hold them: SentencePiece
        pieces, EOS, right-padding with PAD."""
        from .task.batching import source_rows
        return source_rows(self.tokenizer.encode_lines(list(sentences)))

    def translate(self, sentences: Sequence[str], beam: int | None = None, lenpen: float | None = None,
                  max_len_a: float | None = None, max_len_b: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> list[str]:
        """The detokenized translation of each sentence, in order. Beam settings default to the
        ones the model was trained with (`self.beam`); beam=1 is greedy decoding. Sentences are
        decoded `batch_size` at a time, in the order given."""
        import torch

        from .task.beam import translate as beam_translate
        if isinstance(sentences, str):
            raise ValueError("translate takes a list of sentences, not one string; pass [sentence]")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cfg = self.settings(beam=beam, lenpen=lenpen, max_len_a=max_len_a, max_len_b=max_len_b)
        sentences = list(sentences)
        device = next(self.model.parameters()).device
        out: list[str] = []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(sentences), batch_size):
                src = self.encode(sentences[start:start + batch_size]).to(device)
                out += [self.tokenizer.decode(tokens) for tokens in beam_translate(self.model, src, cfg)]
        return out

    def settings(self, **overrides: Any):
        """The BeamConfig of `self.beam` with the given non-None values replaced, checked."""
        cfg = dataclasses.replace(self.beam, **{k: v for k, v in overrides.items() if v is not None})
        if cfg.beam < 1:
            raise ValueError(f"beam must be >= 1, got {cfg.beam}")
        if cfg.max_len_a < 0 or cfg.max_len_b < 0:
            raise ValueError(f"max_len_a and max_len_b must be >= 0, got {cfg.max_len_a} and {cfg.max_len_b}")
        return cfg

    def __repr__(self) -> str:
        return f"<Translator {self.src_lang}->{self.tgt_lang} of {self.directory}, {self.beam}>"
