"""The real Multi30k En-De files flow through vocabulary, encoding, batching and decoding."""

import pytest
import torch

from mixnas.families.transformer.task import UNK_ID, TranslationData, TranslationDataConfig, corpus_bleu
from translation_toy import SHARED_DATA

MULTI30K = SHARED_DATA / "multi30k"
WMT_SAMPLE = SHARED_DATA / "wmt14-sample"


@pytest.fixture(scope="module")
def multi30k(tmp_path_factory):
    if not (MULTI30K / "train.en").is_file():
        pytest.skip(f"Multi30k reference data not found at {MULTI30K.resolve()} (shared data is not on this machine)")
    config = TranslationDataConfig(
        data_dir=str(MULTI30K), vocab_size=1000, spm_max_lines=3000, cache_dir=str(tmp_path_factory.mktemp("m30k"))
    )
    return TranslationData(config)


def test_split_sizes_and_vocabulary(multi30k):
    assert multi30k.tokenizer.vocab_size == 1000
    assert [len(multi30k.split(s)) for s in ("train", "val", "test")] == [29000, 1014, 1000]
    test = multi30k.split("test")
    # character_coverage=1.0 on 3,000 lines per side: unknown pieces are rare.
    assert (test.tgt == UNK_ID).float().mean() < 0.002


def test_decoding_round_trips_to_the_references(multi30k):
    refs = multi30k.references("val")
    split = multi30k.split("val")
    decoded = [multi30k.tokenizer.decode(split[i][1]) for i in range(len(split))]
    exact = sum(d == r for d, r in zip(decoded, refs)) / len(refs)
    assert exact > 0.97  # the rest differ only by SentencePiece's whitespace normalisation or rare <unk>
    assert corpus_bleu(decoded, refs).score > 98.0


def test_batches_of_the_real_training_set(multi30k):
    batches = multi30k.batches("train", max_tokens=4096, max_positions=128, seed=1)
    assert batches.num_dropped == 0  # Multi30k sentences are short
    batches.set_epoch(1)
    count, tokens = 0, 0
    for batch in batches:
        assert len(batch) * max(batch.src.shape[1], batch.target.shape[1]) <= 4096
        assert bool((batch.src[torch.arange(len(batch)), batch.src_lengths - 1] == 2).all())
        count += len(batch)
        tokens += batch.n_tokens
    assert count == 29000
    assert tokens == int(multi30k.split("train").tgt_lengths.sum()) + 29000


def test_tokenized_wmt_sample_passes_validation(tmp_path):
    if not (WMT_SAMPLE / "train.en").is_file():
        pytest.skip(f"WMT sample not found at {WMT_SAMPLE.resolve()} (shared data is not on this machine)")
    data = TranslationData(
        TranslationDataConfig(
            data_dir=str(WMT_SAMPLE), vocab_size=500, model_type="bpe", spm_max_lines=1000, cache_dir=str(tmp_path)
        )
    )
    assert len(data.split("val")) == 50
    with pytest.raises(ValueError, match=r"missing split file .*test.en"):
        data.split("test")
