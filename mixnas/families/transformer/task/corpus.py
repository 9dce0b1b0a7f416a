"""Reading parallel plain-text files with clear errors for the usual ways they go wrong.

A corpus directory holds `{split}.{lang}` files, one sentence per line, the two languages
aligned by line number (the layout of Multi30k). Lines are split on "\\n" only (a trailing "\\r"
is dropped): `str.splitlines` would also split on U+2028, U+0085 and friends, which occur inside
real sentences and would silently misalign the two sides.
"""

from __future__ import annotations

import os
from pathlib import Path


def split_path(data_dir: str | os.PathLike, split: str, lang: str) -> Path:
    """`data_dir/{split}.{lang}`, with clear errors when the directory or the file is missing."""
    directory = Path(data_dir)
    if not directory.is_dir():
        raise ValueError(
            f"translation data directory {directory} does not exist; pass data_dir= a directory "
            "holding {split}.{lang} files such as train.en / train.de"
        )
    path = directory / f"{split}.{lang}"
    if not path.is_file():
        present = sorted(p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
        raise ValueError(
            f"missing split file {path}; the directory holds {present or 'no files'} "
            f"(expected {split}.{lang}: check the split name and language codes)"
        )
    return path


def read_lines(path: str | os.PathLike) -> list[str]:
    """The UTF-8 lines of `path`; ValueError for an empty file or undecodable bytes (with line number)."""
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"{path} is empty; a split file needs one sentence per line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path} line {line} is not valid UTF-8 (byte {data[error.start]:#04x} at offset {error.start}); "
            "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first sentence
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line does not start another one
    return [line.removesuffix("\r") for line in lines]


def read_parallel(src_path: str | os.PathLike, tgt_path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Both sides of a parallel split; ValueError when their line counts differ."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise ValueError(
            f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; the two sides of a "
            "parallel corpus must be aligned line by line (one sentence pair per line number)"
        )
    return src, tgt
