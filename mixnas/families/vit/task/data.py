"""Image classification datasets behind one entry point.

    splits = load_image_splits("fashion-mnist")            # {"train", "val", "test"} -> ImageDataset
    test = load_image_dataset("cifar10", "/data/cifar-10-batches-py", split="test")

Names: "digits" (scikit-learn's embedded 8x8 digits, no download, the default for tests),
"fashion-mnist" (IDX files, by default from the Debian package dataset-fashion-mnist),
"cifar10" (python-batch format, data_dir required).

Images are kept as uint8 (N, C, H, W); batches convert and normalise them (batching.py).
Splits: "val" is a fixed `val_fraction` of the official training set (a permutation with a
fixed seed, independent of the training seed), "train" the rest, "test" the official test set.
Digits has no official split: a fixed permutation gives test 20 %, val `val_fraction`, train the rest.
Normalisation statistics (per-channel mean and std, in [0, 1] pixel units) always come from the
"train" split, and every split carries them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mixnas.families.vit.task.cifar import load_cifar10
from mixnas.families.vit.task.idx import load_fashion_mnist

DATASETS = ("digits", "fashion-mnist", "cifar10")
SPLITS = ("train", "val", "test")
SPLIT_SEED = 0  # fixed: the same examples are held out whatever seed training uses
DIGITS_TEST_FRACTION = 0.2


@dataclass
class ImageDataset:
    name: str
    split: str
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: tuple[str, ...]
    mean: tuple[float, ...]  # per-channel mean of the train split, pixel values scaled to [0, 1]
    std: tuple[float, ...]  # per-channel standard deviation of the train split, same units

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    def __len__(self) -> int:
        return len(self.labels)

    def metadata(self) -> dict[str, object]:
        return {
            "name": self.name,
            "image_size": self.image_size,
            "channels": self.channels,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
        }


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std of uint8 images in [0, 1] units, from value histograms.

    A 256-bin count per channel is exact and avoids a float copy of the whole training set.
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1).long(), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(max(float(var.sqrt()), 1e-6))  # a constant channel must not divide by zero
    return tuple(means), tuple(stds)


def _load_digits():
    from sklearn.datasets import load_digits  # scikit-learn ships these 1,797 images inside the package

    digits = load_digits()
    # Pixel values are 0..16; map them onto 0..255 so every dataset shares the uint8 pipeline.
    images = torch.round(torch.as_tensor(digits.images, dtype=torch.float64) * 255.0 / 16.0).to(torch.uint8)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = round(DIGITS_TEST_FRACTION * len(labels))
    test, rest = order[:n_test], order[n_test:]
    return images[rest].unsqueeze(1), labels[rest], images[test].unsqueeze(1), labels[test], tuple(str(d) for d in range(10))


def load_image_splits(name: str, data_dir: str | os.PathLike | None = None, val_fraction: float = 0.1) -> dict[str, ImageDataset]:
    """All three splits of dataset `name` (see the module doc)."""
    if name not in DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if name == "digits":
        if data_dir is not None:
            raise ValueError("digits is embedded in scikit-learn and takes no data_dir; drop data_dir=")
        train_images, train_labels, test_images, test_labels, class_names = _load_digits()
        n_val = round(val_fraction * (len(train_labels) + len(test_labels)))
    elif name == "fashion-mnist":
        train_images, train_labels, test_images, test_labels, class_names = load_fashion_mnist(data_dir)
        n_val = round(val_fraction * len(train_labels))
    else:
        train_images, train_labels, test_images, test_labels, class_names = load_cifar10(data_dir)
        n_val = round(val_fraction * len(train_labels))

    order = torch.randperm(len(train_labels), generator=torch.Generator().manual_seed(SPLIT_SEED + 1))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ValueError(f"val_fraction={val_fraction} leaves an empty train or val split of {name}; use a value nearer 0.1")
    mean, std = channel_stats(train_images[train_idx])
    parts = {
        "train": (train_images[train_idx], train_labels[train_idx]),
        "val": (train_images[val_idx], train_labels[val_idx]),
        "test": (test_images, test_labels),
    }
    return {split: ImageDataset(name, split, x, y, class_names, mean, std) for split, (x, y) in parts.items()}


def load_image_dataset(
    name: str, data_dir: str | os.PathLike | None = None, split: str = "train", val_fraction: float = 0.1
) -> ImageDataset:
    """One split of dataset `name`; its images, labels and metadata (image_size, channels, num_classes)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return load_image_splits(name, data_dir, val_fraction)[split]
