"""Parallel text files: every bad-data case gives a one-line ValueError naming the file and the fix."""

from pathlib import Path

import pytest

from mixnas.families.transformer.task import TranslationData, TranslationDataConfig, read_lines, read_parallel
from translation_toy import write_corpus


def _config(data_dir: Path, cache: Path, **kw) -> TranslationDataConfig:
    return TranslationDataConfig(data_dir=str(data_dir), vocab_size=48, cache_dir=str(cache), **kw)


def test_lines_split_on_newline_only(tmp_path):
    path = tmp_path / "x.en"
    # BOM dropped, CRLF handled, U+2028 / U+0085 kept inside the sentence, final newline optional.
    path.write_bytes("\ufeffone\r\ntwo\u2028half\nthree\x85x".encode("utf-8"))
    assert read_lines(path) == ["one", "two\u2028half", "three\x85x"]
    path.write_text("a\n\nb\n", encoding="utf-8")
    assert read_lines(path) == ["a", "", "b"]


def test_mismatched_line_counts(tmp_path):
    (tmp_path / "train.en").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "train.de").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.en has 3 lines but .*train.de has 2; .*aligned line by line"):
        read_parallel(tmp_path / "train.en", tmp_path / "train.de")


def test_empty_file(tmp_path):
    (tmp_path / "train.en").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.en is empty"):
        read_lines(tmp_path / "train.en")
    (tmp_path / "train.en").write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train.en is empty"):
        read_lines(tmp_path / "train.en")


def test_undecodable_bytes_report_the_line(tmp_path):
    path = tmp_path / "train.de"
    path.write_bytes("erste Zeile\nzweite Zeile\n".encode() + "dritte Größe\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"train.de line 3 is not valid UTF-8 \(byte 0xf6 .*re-encode"):
        read_lines(path)


def test_missing_directory(tmp_path):
    with pytest.raises(ValueError, match=r"translation data directory .*nowhere does not exist; pass data_dir="):
        TranslationData(_config(tmp_path / "nowhere", tmp_path / "cache"))


def test_missing_split_file(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "val.de").unlink()
    data = TranslationData(_config(corpus, tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"missing split file .*val.de; the directory holds .*'val.en'"):
        data.split("val")
    with pytest.raises(ValueError, match=r"missing split file .*train.fr"):
        TranslationData(_config(corpus, tmp_path / "cache", tgt_lang="fr"))


def test_same_language_twice(tmp_path):
    with pytest.raises(ValueError, match=r"src_lang and tgt_lang are both 'en'"):
        TranslationData(_config(write_corpus(tmp_path / "c"), tmp_path / "cache", tgt_lang="en"))


def test_errors_surface_through_the_data_object(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    with open(corpus / "train.de", "a", encoding="utf-8") as handle:
        handle.write("eine Zeile zu viel\n")
    with pytest.raises(ValueError, match=r"train.en has 300 lines but .*train.de has 301"):
        TranslationData(_config(corpus, tmp_path / "cache"))
