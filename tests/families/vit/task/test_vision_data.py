"""Digits, split/statistics conventions, image batches (normalise, augment, resume, shard), accuracy."""

import pytest
import torch
import torch.nn.functional as F

from mixnas.families.vit.task import (
    NO_AUGMENT,
    Augment,
    ImageBatches,
    accuracy,
    channel_stats,
    count_correct,
    default_augment,
    load_image_dataset,
    load_image_splits,
    random_crop,
    random_flip,
)


@pytest.fixture(scope="module")
def digits():
    return load_image_splits("digits")


def test_digits_splits(digits):
    sizes = {name: len(split) for name, split in digits.items()}
    assert sizes == {"train": 1258, "val": 180, "test": 359} and sum(sizes.values()) == 1797
    train = digits["train"]
    assert (train.image_size, train.channels, train.num_classes) == (8, 1, 10)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255  # 16 -> 255
    # Deterministic: a second load returns the same examples in each split.
    again = load_image_dataset("digits", split="val")
    assert torch.equal(again.images, digits["val"].images) and torch.equal(again.labels, digits["val"].labels)
    # Disjoint: no image of the test split is also (with its label) in train or val.
    def rows(split):
        return {(tuple(x.flatten().tolist()), int(y)) for x, y in zip(split.images, split.labels)}

    assert not rows(digits["test"]) & rows(digits["train"])


def test_statistics_come_from_train(digits):
    train = digits["train"]
    pixels = train.images.double() / 255
    assert train.mean[0] == pytest.approx(float(pixels.mean()), abs=1e-12)
    assert train.std[0] == pytest.approx(float(pixels.std(unbiased=False)), abs=1e-12)
    assert digits["test"].mean == train.mean and digits["val"].std == train.std
    rgb = torch.randint(0, 256, (5, 3, 4, 4), dtype=torch.uint8)
    means, stds = channel_stats(rgb)
    for c in range(3):
        assert means[c] == pytest.approx(float((rgb[:, c].double() / 255).mean()))
        assert stds[c] == pytest.approx(float((rgb[:, c].double() / 255).std(unbiased=False)))


def test_entry_point_errors():
    with pytest.raises(ValueError, match=r"unknown image dataset 'mnist'; choose one of digits, fashion-mnist, cifar10"):
        load_image_dataset("mnist")
    with pytest.raises(ValueError, match=r"unknown split 'dev'"):
        load_image_dataset("digits", split="dev")
    with pytest.raises(ValueError, match=r"digits is embedded in scikit-learn and takes no data_dir"):
        load_image_dataset("digits", data_dir="/tmp")
    with pytest.raises(ValueError, match=r"val_fraction must be between 0 and 1"):
        load_image_dataset("digits", val_fraction=1.5)


def test_batches_normalise_and_cover(digits):
    train = digits["train"]
    batches = ImageBatches(train, 100, seed=4, shuffle=True)
    batches.set_epoch(1)
    seen = []
    mean, std = train.mean[0], train.std[0]
    for batch in batches:
        expected = (train.images[batch.ids].float() / 255 - mean) / std
        assert torch.allclose(batch.images, expected, atol=1e-6)
        assert torch.equal(batch.labels, train.labels[batch.ids])
        seen += batch.ids.tolist()
    assert sorted(seen) == list(range(len(train))) and len(batches) == 13
    dropped = ImageBatches(train, 100, drop_last=True)
    dropped.set_epoch(1)
    assert [len(b) for b in dropped] == [100] * 12


def test_random_crop_matches_explicit_padding_and_slicing():
    images = torch.rand(6, 3, 5, 7)
    cropped = random_crop(images, 2, torch.Generator().manual_seed(11))
    replay = torch.Generator().manual_seed(11)
    dy = torch.randint(0, 5, (6,), generator=replay)
    dx = torch.randint(0, 5, (6,), generator=replay)
    for i in range(6):
        padded = F.pad(images[i], (2, 2, 2, 2))
        assert torch.equal(cropped[i], padded[:, dy[i] : dy[i] + 5, dx[i] : dx[i] + 7])
    assert torch.equal(random_crop(images, 0, replay), images)


def test_random_flip_mirrors_about_half():
    images = torch.rand(400, 1, 2, 3)
    flipped = random_flip(images, torch.Generator().manual_seed(0))
    mirrored = [bool(torch.equal(f, x.flip(-1))) and not torch.equal(f, x) for f, x in zip(flipped, images)]
    kept = [bool(torch.equal(f, x)) for f, x in zip(flipped, images)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 150 < sum(mirrored) < 250


def test_default_augmentation_choices():
    assert default_augment("cifar10") == Augment(crop_padding=4, flip=True)
    assert default_augment("fashion-mnist").flip
    assert default_augment("digits") == Augment(crop_padding=1, flip=False)  # mirrored digits are not digits
    with pytest.raises(ValueError, match=r"no default augmentation for 'imagenet'"):
        default_augment("imagenet")


def _epoch(batches, epoch):
    batches.set_epoch(epoch)
    return [(b.ids, b.images) for b in batches]


def test_augmented_batches_are_deterministic_resumable_and_shard_consistent(digits):
    train, augment = digits["train"], default_augment("digits")
    make = lambda: ImageBatches(train, 64, seed=9, augment=augment)  # noqa: E731
    full = _epoch(make(), 2)
    assert not torch.allclose(full[0][1], _epoch(ImageBatches(train, 64, seed=9), 2)[0][1]), "augmentation acts"
    again = _epoch(make(), 2)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(full, again))

    interrupted = make()
    interrupted.set_epoch(2)
    for _ in range(7):
        next(interrupted)
    resumed = make()
    resumed.load_state_dict(interrupted.state_dict())
    rest = [(b.ids, b.images) for b in resumed]
    assert len(rest) == len(full) - 7
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(rest, full[7:]))

    # Rank r of 2 sees global batches r, r + 2, ... with the very same augmentation.
    for rank in range(2):
        part = make()
        part.shard(rank, 2)
        shard = _epoch(part, 2)
        expected = full[rank::2][: len(full) // 2]
        assert len(shard) == len(expected)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(shard, expected))


def test_no_augment_for_evaluation(digits):
    test = digits["test"]
    batches = ImageBatches(test, 50, shuffle=False, augment=NO_AUGMENT)
    first, second = _epoch(batches, 1), _epoch(batches, 2)
    assert torch.equal(torch.cat([ids for ids, _ in first]), torch.arange(len(test)))
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, second))


def test_accuracy_by_hand():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [9.0, 0.0, 1.0]])
    labels = torch.tensor([0, 2, 2, 1])
    assert count_correct(logits, labels) == 2
    assert accuracy(logits, labels) == 0.5
    with pytest.raises(ValueError, match=r"expected logits \(N, classes\) and labels \(N,\), got \(4, 3\) and \(3,\)"):
        accuracy(logits, labels[:3])
    with pytest.raises(ValueError, match=r"empty batch"):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"batch_size must be positive"):
        ImageBatches(load_image_dataset("digits", split="val"), 0)
