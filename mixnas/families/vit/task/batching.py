"""Image batches: shuffling, augmentation, normalisation; resumable and shardable; top-1 accuracy.

Augmentation choices (default_augment):
* cifar10: random crop 32x32 from the image zero-padded by 4, and horizontal flip - the
  standard CIFAR recipe; natural photos are mirror-symmetric in meaning.
* fashion-mnist: random crop with padding 2 and horizontal flip: a mirrored shirt, shoe or bag
  is still the same class.
* digits: random crop with padding 1 only; no flip, because a mirrored digit is not a digit
  (and mirrored 2/5 would teach the wrong shapes).
Padding is with black (0) pixels, before normalisation, as torchvision's RandomCrop does.

Each batch's augmentation draws from a generator seeded by (seed, epoch, global batch number),
so it is identical on resume and whatever the sharding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mixnas.train.batches import EpochBatches
from mixnas.families.vit.task.data import ImageDataset


@dataclass(frozen=True)
class Augment:
    crop_padding: int = 0  # random crop of the original size from the zero-padded image
    flip: bool = False  # horizontal flip with probability 1/2


NO_AUGMENT = Augment()
_DEFAULT_AUGMENT = {
    "cifar10": Augment(crop_padding=4, flip=True),
    "fashion-mnist": Augment(crop_padding=2, flip=True),
    "digits": Augment(crop_padding=1, flip=False),
}


def default_augment(name: str) -> Augment:
    """The training augmentation for dataset `name` (see the module doc for why)."""
    if name not in _DEFAULT_AUGMENT:
        raise ValueError(f"no default augmentation for {name!r}; choose one of {', '.join(_DEFAULT_AUGMENT)}")
    return _DEFAULT_AUGMENT[name]


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Crop each (C, H, W) image at a random offset from its copy zero-padded by `padding`."""
    if padding == 0:
        return images
    batch, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    rows = (dy[:, None] + torch.arange(height))[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(width))[:, None, None, :]  # (B, 1, 1, W)
    batch_idx = torch.arange(batch)[:, None, None, None]
    channel_idx = torch.arange(images.shape[1])[None, :, None, None]
    return padded[batch_idx, channel_idx, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


@dataclass
class ImageBatch:
    ids: torch.Tensor  # (B,) example indices in the split
    images: torch.Tensor  # (B, C, H, W) float32, normalised
    labels: torch.Tensor  # (B,) int64

    def to(self, device: torch.device | str) -> "ImageBatch":
        return ImageBatch(self.ids.to(device), self.images.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return len(self.labels)


class ImageBatches(EpochBatches):
    """Batches of an ImageDataset for the trainer (mixnas.train.protocol's BatchIterator).

    The example order is EpochBatches.over_examples' (a (seed, epoch) permutation when shuffling,
    in order otherwise; epochs 1-based; resume and sharding as EpochBatches documents). Each
    planned item also carries its (epoch, global batch number) so augmentation can be seeded
    by them instead of the global RNG.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        augment: Augment = NO_AUGMENT,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset, self.seed, self.augment = dataset, seed, augment
        self._mean = torch.tensor(dataset.mean, dtype=torch.float32)[:, None, None]
        self._std = torch.tensor(dataset.std, dtype=torch.float32)[:, None, None]
        order = EpochBatches.over_examples(len(dataset), batch_size, seed=seed, shuffle=shuffle, drop_last=drop_last)

        def plan(epoch: int) -> list[tuple[int, int, list[int]]]:
            return [(epoch, number, indices) for number, indices in enumerate(order.plan(epoch))]

        super().__init__(plan, self._make_batch)

    def _make_batch(self, item: tuple[int, int, list[int]]) -> ImageBatch:
        epoch, number, indices = item
        indices = torch.tensor(indices, dtype=torch.int64)
        images = self.dataset.images[indices].float() / 255.0
        if self.augment != NO_AUGMENT:
            generator = _batch_generator(self.seed, epoch, number)
            images = random_crop(images, self.augment.crop_padding, generator)
            if self.augment.flip:
                images = random_flip(images, generator)
        images = (images - self._mean) / self._std
        return ImageBatch(indices, images, self.dataset.labels[indices])


def _batch_generator(seed: int, epoch: int, number: int) -> torch.Generator:
    # One stream per (seed, epoch, batch): the same on every rank and after a resume.
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + number) % 2**63)


def count_correct(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """Number of rows whose arg-max class equals the label."""
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits (N, classes) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    return int((logits.argmax(dim=1) == labels).sum())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    if labels.numel() == 0:
        raise ValueError("accuracy of an empty batch is undefined; pass at least one example")
    return count_correct(logits, labels) / labels.shape[0]
