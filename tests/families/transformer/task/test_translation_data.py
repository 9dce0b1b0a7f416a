"""Joint SentencePiece vocabulary, its cache, the encoded-split cache and decoding."""

import os

import pytest
import sentencepiece as spm
import torch

from mixnas.families.transformer.task import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    EncodedSplit,
    TranslationData,
    TranslationDataConfig,
    read_parallel,
)
from translation_toy import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("toy") / "corpus")


@pytest.fixture(scope="module")
def data(corpus, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=48, cache_dir=str(cache)))


def test_special_ids_are_fixed(data):
    proc = data.tokenizer.processor
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert (proc.pad_id(), proc.bos_id(), proc.eos_id(), proc.unk_id()) == (0, 1, 2, 3)
    assert [proc.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert data.tokenizer.vocab_size == 48


def test_vocabulary_is_joint(data):
    # Pieces for both languages live in the one model: German-only characters are not <unk>.
    for text in ("the dog runs in the park.", "der hund läuft im park."):
        ids = data.tokenizer.encode(text)
        assert UNK_ID not in ids
        assert data.tokenizer.decode(ids) == text


def test_decode_strips_specials_and_stops_at_eos(data):
    ids = data.tokenizer.encode("ein rot ball.")
    padded = [BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID]
    assert data.tokenizer.decode(padded) == "ein rot ball."
    assert data.tokenizer.decode(torch.tensor([*ids, EOS_ID, *ids])) == "ein rot ball."
    assert data.tokenizer.decode([PAD_ID, *ids]) == "ein rot ball."


def test_encoded_split_matches_the_text(data):
    src_lines, tgt_lines = read_parallel(data.path("val", "en"), data.path("val", "de"))
    split = data.split("val")
    assert len(split) == len(src_lines) == 40
    for i in (0, 17, 39):
        src, tgt = split[i]
        assert src.tolist() == data.tokenizer.encode(src_lines[i])
        assert tgt.tolist() == data.tokenizer.encode(tgt_lines[i])
    assert data.references("val") == tgt_lines


def test_tokenizer_and_splits_are_cached(corpus, tmp_path, monkeypatch):
    config = TranslationDataConfig(data_dir=str(corpus), vocab_size=48, cache_dir=str(tmp_path))
    first = TranslationData(config)
    first.split("train")
    cached = sorted(p.name for p in first.tokenizer.model_path.parent.iterdir())
    assert cached == ["settings.json", "spm.model", next(n for n in cached if n.startswith("train.en-de."))]
    assert not [p for p in tmp_path.rglob("*.tmp")], "atomic writes leave no temporary files"

    # A second load must neither train SentencePiece nor re-encode: make both impossible.
    def refuse(*args, **kwargs):
        raise AssertionError("cache miss: SentencePiece was called again")

    monkeypatch.setattr(spm.SentencePieceTrainer, "train", refuse)
    second = TranslationData(config)
    monkeypatch.setattr(second.tokenizer, "encode_lines", refuse)
    assert second.tokenizer.model_path == first.tokenizer.model_path
    reloaded = second.split("train")
    assert torch.equal(reloaded.src, first.split("train").src)
    assert torch.equal(reloaded.tgt_offsets, first.split("train").tgt_offsets)


def test_cache_invalidated_by_data_or_settings(corpus, tmp_path):
    base = TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=48, cache_dir=str(tmp_path)))
    other_size = TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=40, cache_dir=str(tmp_path)))
    other_type = TranslationData(
        TranslationDataConfig(data_dir=str(corpus), vocab_size=48, model_type="bpe", cache_dir=str(tmp_path))
    )
    changed = write_corpus(tmp_path / "changed", {"train": 300, "val": 40, "test": 30})
    with open(changed / "train.en", "a", encoding="utf-8") as f_en, open(changed / "train.de", "a", encoding="utf-8") as f_de:
        f_en.write("the cat.\n")
        f_de.write("die katze.\n")
    other_data = TranslationData(TranslationDataConfig(data_dir=str(changed), vocab_size=48, cache_dir=str(tmp_path)))
    paths = {d.tokenizer.model_path for d in (base, other_size, other_type, other_data)}
    assert len(paths) == 4
    assert other_size.tokenizer.vocab_size == 40


def test_encoded_split_file_is_plain_tensors(data):
    data.split("test")
    files = list(data.tokenizer.model_path.parent.glob("test.en-de.*.pt"))
    assert len(files) == 1
    loaded = torch.load(files[0], weights_only=True)  # no pickled code needed to read it
    assert set(loaded) == {"src", "src_offsets", "tgt", "tgt_offsets"}
    assert all(isinstance(t, torch.Tensor) for t in loaded.values())
    assert torch.equal(EncodedSplit.load(files[0]).tgt, data.split("test").tgt)


def test_vocab_size_too_large(corpus, tmp_path):
    config = TranslationDataConfig(data_dir=str(corpus), vocab_size=5000, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"vocab_size=5000 is too large for the training data in .*train.en.*; use vocab_size <= \d+"):
        TranslationData(config)
    assert not list(tmp_path.rglob("spm.model")), "a failed training must not leave a model behind"


def test_bad_settings(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"model_type='word' is not supported"):
        TranslationData(TranslationDataConfig(data_dir=str(corpus), model_type="word", cache_dir=str(tmp_path)))
    with pytest.raises(ValueError, match=r"vocab_size=3 is too small"):
        TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=3, cache_dir=str(tmp_path)))


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    from mixnas.families.transformer.task import default_cache_dir

    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "translation"
    monkeypatch.delenv("MIXNAS_CACHE")
    assert default_cache_dir() == type(tmp_path).home() / ".cache" / "mixnas" / "translation"
    assert os.fspath(default_cache_dir()).endswith(os.path.join(".cache", "mixnas", "translation"))


def _fresh_cache(corpus, cache):
    """A tokenizer cache of its own (the tests damage it); returns (model path, encoded val path)."""
    built = TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=48, cache_dir=str(cache)))
    built.split("val")
    model = built.tokenizer.model_path
    return model, next(model.parent.glob("val.en-de.*.pt"))


def _reload(corpus, cache):
    data = TranslationData(TranslationDataConfig(data_dir=str(corpus), vocab_size=48, cache_dir=str(cache)))
    return data.split("val")


def _assert_one_line_naming(error, path):
    text = str(error.value)
    assert str(path) in text and "\n" not in text and "weights_only" not in text
    assert f"delete the cache directory {path.parent}" in text or f"or the cache directory {path.parent}" in text


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"its checksum differs from settings.json"),
    ("old-truncated", r"is corrupt \(INTERNAL: could not parse ModelProto"),  # a cache without the checksum
    ("bad-settings", r"settings.json is corrupt \(JSONDecodeError\)"),
])
def test_corrupt_tokenizer_cache_is_one_line(corpus, tmp_path, damage, message):
    model, _ = _fresh_cache(corpus, tmp_path)
    settings = model.with_name("settings.json")
    if damage == "old-truncated":
        settings.write_text(settings.read_text().replace('"model_sha256"', '"unused"'))
    if damage.endswith("truncated"):
        model.write_bytes(model.read_bytes()[:1000])
    else:
        settings.write_text("{")
    with pytest.raises(ValueError, match=message) as error:
        _reload(corpus, tmp_path)
    _assert_one_line_naming(error, settings if damage == "bad-settings" else model)


def test_deleting_the_named_cache_directory_rebuilds_it(corpus, tmp_path):
    model, _ = _fresh_cache(corpus, tmp_path)
    good = model.read_bytes()
    model.write_bytes(good[:1000])
    with pytest.raises(ValueError, match="delete the cache directory"):
        _reload(corpus, tmp_path)
    for path in model.parent.iterdir():
        path.unlink()
    model.parent.rmdir()
    assert len(_reload(corpus, tmp_path)) == 40 and model.read_bytes() == good


class _Payload:
    def __reduce__(self):
        return os.system, ("true",)


@pytest.mark.parametrize("damage, message", [
    ("truncated", r"cannot read encoded split cache .*: it is truncated or corrupt"),
    ("payload", r"holds Python objects outside the safe set"),
    ("offsets", r"encoded split cache .* is corrupt \(src offsets do not index its \d+ tokens\)"),
    ("ids", r"is corrupt \(tgt holds token ids outside the vocabulary of 48 pieces\)"),
    ("keys", r"is corrupt \(expected a dict of tensors src, src_offsets, tgt, tgt_offsets\)"),
])
def test_corrupt_encoded_split_cache_is_one_line(corpus, tmp_path, damage, message):
    _, encoded = _fresh_cache(corpus, tmp_path)
    tensors = torch.load(encoded, weights_only=True)
    if damage == "truncated":
        encoded.write_bytes(encoded.read_bytes()[:-200])
    elif damage == "payload":
        torch.save({**tensors, "src": _Payload()}, encoded)
    elif damage == "offsets":
        torch.save({**tensors, "src_offsets": tensors["src_offsets"] + 1}, encoded)
    elif damage == "ids":
        torch.save({**tensors, "tgt": tensors["tgt"] + 1000}, encoded)
    else:
        torch.save({"src": tensors["src"]}, encoded)
    with pytest.raises(ValueError, match=message) as error:
        _reload(corpus, tmp_path)
    _assert_one_line_naming(error, encoded)


def test_corrupt_cache_in_the_train_command(corpus, tmp_path, capsys):
    from mixnas.cli import main

    model, _ = _fresh_cache(corpus, tmp_path / "cache")
    model.write_bytes(model.read_bytes()[:1000])
    rc = main(["train", "--config", "multi30k_transformer", f"data.dir={corpus}", "data.vocab_size=48",
               f"data.cache_dir={tmp_path / 'cache'}", f"train.save_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and f"{model} is corrupt" in err, err
