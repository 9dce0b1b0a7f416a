"""Language-modeling task: data splits, loss wiring, metrics, resumable batches, configs."""
import math

import pytest
import torch
import torch.nn.functional as F

from mixnas.dataconf import ConfigError, from_dict
from mixnas.families import family_for_task
from mixnas.families.lm.data import LMDataConfig, RandomWindows, WindowSchedule, windows
from mixnas.families.lm.model import LM
from mixnas.train.protocol import BatchIterator
from lm_helpers import SHAKESPEARE, uniform_arch, write_text

FAMILY = family_for_task("language-modeling")


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    directory = write_text(tmp_path_factory.mktemp("text"), chars=6000)
    return FAMILY.build_task(LMDataConfig(dir=str(directory), context=16, batch_size=4, eval_batch_size=5,
                                          val_fraction=0.1, test_fraction=0.1, batches_per_epoch=7))


def test_splits_vocabulary_and_model_config(task):
    text = (task.config.dir and open(f"{task.config.dir}/input.txt").read())
    assert task.vocab == "".join(sorted(set(text)))
    sizes = {k: len(v) for k, v in task.corpus.splits.items()}
    assert sum(sizes.values()) == len(text) and sizes["train"] == int(len(text) * 0.8)
    assert FAMILY.split_names(task.config) == ["train", "val", "test"]
    config = task.model_config({"dropout": 0.1})
    assert (config.vocab, config.context, config.dropout) == (task.vocab, 16, 0.1)
    with pytest.raises(ValueError, match="set data.context instead"):
        task.model_config({"context": 32})
    with pytest.raises(ValueError, match="model.config.vocab does not match"):
        task.model_config({"vocab": "abc"})


def test_loss_is_summed_cross_entropy_and_metrics_are_means(task):
    torch.manual_seed(0)
    model = LM(uniform_arch("softmax"), task.model_config()).eval()
    batch = next(iter(task.train_batches(seed=3)))
    assert batch.inputs.shape == batch.targets.shape == (4, 16)
    assert torch.equal(batch.inputs[:, 1:], batch.targets[:, :-1])
    loss, stats = task.loss(model, batch)
    logits = model(batch.inputs)
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))
    assert stats["sample_size"] == 64
    torch.testing.assert_close(loss / stats["sample_size"], expected)
    metrics = task.evaluate(model, "val", limit=3)
    assert metrics["characters"] == 3 * 16
    assert metrics["bpc"] == pytest.approx(metrics["loss"] / math.log(2))
    full = task.evaluate(model, "test")
    assert full["characters"] == (len(task.corpus.splits["test"]) - 1) // 16 * 16
    assert task.score_metrics(model, 3) == metrics and task.score_key() == ("loss", False)
    shifted = batch._replace(inputs=batch.inputs[:, :5], targets=batch.targets[:, :5], offset=7)
    loss, stats = task.loss(model, shifted)  # a warm-up window at position 7 of the table
    expected = F.cross_entropy(model(shifted.inputs, 7).reshape(-1, logits.shape[-1]), shifted.targets.reshape(-1),
                               reduction="sum")
    torch.testing.assert_close(loss, expected)
    assert stats["sample_size"] == 20
    assert task.distill_mask(batch) is None


def test_batches_resume_exactly_and_shard_evenly(task):
    batches = task.train_batches(seed=5)
    assert isinstance(batches, BatchIterator) and len(batches) == 7
    batches.set_epoch(2)
    for _ in range(3):
        next(batches)
    state = batches.state_dict()
    rest = [b.inputs for b in batches]
    fresh = task.train_batches(seed=5)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b.inputs) for a, b in zip(rest, fresh, strict=True))
    other = task.train_batches(seed=5)
    other.set_epoch(3)
    batches.set_epoch(3)
    assert torch.equal(next(other).inputs, next(batches).inputs)  # a pure function of (seed, epoch)
    counts = []
    for rank in range(3):
        shard = task.train_batches(seed=5)
        shard.shard(rank, 3)
        counts.append(len(list(shard)))
    assert counts == [2, 2, 2]


def test_data_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.dir is required for language-modeling"):
        from_dict(LMDataConfig, {}, "data")
    with pytest.raises(ValueError, match="val_fraction \\+ data.test_fraction"):
        LMDataConfig(dir="x", val_fraction=0.5, test_fraction=0.5).validate()
    with pytest.raises(ValueError, match="does not exist"):
        FAMILY.build_task(LMDataConfig(dir=str(tmp_path)))
    (tmp_path / "input.txt").write_text("abc" * 10)
    with pytest.raises(ValueError, match="fewer than data.context"):
        FAMILY.build_task(LMDataConfig(dir=str(tmp_path), context=8))
    with pytest.raises(ValueError, match="characters cannot hold a window"):
        RandomWindows(torch.arange(5), 8, 2, 2)


@pytest.mark.skipif(not (SHAKESPEARE / "input.txt").is_file(),
                    reason=f"Tiny Shakespeare not found at {SHAKESPEARE} (../shared/data beside the repository)")
def test_tiny_shakespeare_splits_like_nanogpt():
    task = FAMILY.build_task(LMDataConfig(dir=str(SHAKESPEARE)))
    n = 1_115_394
    assert len(task.vocab) == 65
    assert len(task.corpus.splits["train"]) == int(n * 0.9) and len(task.corpus.splits["val"]) == n - int(n * 0.9)


def test_warmup_windows_double_up_to_the_context_with_constant_characters(task):
    schedule = WindowSchedule(16, warmup_context=4, warmup_batches=6)
    assert schedule.stages == 2
    assert [schedule.length(b) for b in range(8)] == [4, 4, 4, 8, 8, 8, 16, 16]
    data = task.corpus.splits["train"]
    batches = RandomWindows(data, 16, 4, 5, seed=2, schedule=schedule)   # the warm-up spans two epochs
    seen, offsets = [], []
    for epoch in (1, 2):
        batches.set_epoch(epoch)
        for b in batches:
            seen.append(tuple(b.inputs.shape))
            assert torch.equal(b.inputs[:, 1:], b.targets[:, :-1])
            assert 0 <= b.offset <= 16 - b.inputs.shape[1]  # placed inside the position table
            offsets.append(b.offset)
    assert seen == [(16, 4)] * 3 + [(8, 8)] * 3 + [(4, 16)] * 4
    assert offsets[-4:] == [0] * 4 and len(set(offsets[:6])) > 1  # short windows anywhere, full ones at 0


def test_warmup_resumes_exactly_and_leaves_runs_without_it_unchanged(task):
    config = LMDataConfig(**{**task.config.__dict__, "warmup_context": 4, "warmup_batches": 9})
    warm = FAMILY.build_task(config)
    batches = warm.train_batches(seed=5)
    next(batches), next(batches)
    batches.set_epoch(2)
    next(batches)
    state = batches.state_dict()
    rest = [(b.inputs, b.targets, b.offset) for b in batches]
    fresh = warm.train_batches(seed=5)
    fresh.load_state_dict(state)
    assert [b.inputs.shape[1] for b in fresh] == [8, 16, 16, 16, 16, 16]  # batches 8.. of 7 per epoch
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b.inputs) and torch.equal(t, b.targets) and o == b.offset
               for (a, t, o), b in zip(rest, fresh, strict=True))
    # No warm-up: the starts of one (batches_per_epoch, batch_size) draw per epoch, as before it existed.
    plain = task.train_batches(seed=5)
    plain.set_epoch(3)
    generator = torch.Generator().manual_seed(5 * 1_000_003 + 3)
    starts = torch.randint(0, len(task.corpus.splits["train"]) - 16, (7, 4), generator=generator)
    for row, batch in zip(starts, plain, strict=True):
        assert torch.equal(batch.inputs, windows(task.corpus.splits["train"], row, 16).inputs)


@pytest.mark.parametrize("fields, message", [
    ({"warmup_context": 4}, "go together"),
    ({"warmup_batches": 10}, "go together"),
    ({"warmup_context": 16, "warmup_batches": 10}, "divided by a power of two"),
    ({"warmup_context": 6, "warmup_batches": 10}, "divided by a power of two"),
    ({"context": 24, "warmup_context": 4, "warmup_batches": 10}, "divided by a power of two"),
    ({"warmup_context": -4, "warmup_batches": 10}, "integer >= 0"),
])
def test_warmup_config_errors_name_the_fields(fields, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(LMDataConfig, {"dir": "x", "context": 16, **fields}, "data")
