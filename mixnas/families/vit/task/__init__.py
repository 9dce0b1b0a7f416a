"""Image classification task: CIFAR-10 (safe unpickling), Fashion-MNIST (IDX), scikit-learn digits.

Public API:
    load_image_dataset, load_image_splits, ImageDataset, DATASETS  - tensors + metadata per split
    ImageBatches, ImageBatch, Augment, default_augment             - resumable, shardable batches
    accuracy, count_correct                                        - top-1
    RestrictedUnpickler, restricted_load, read_idx                 - the safe file readers
"""

from mixnas.families.vit.task.batching import (
    NO_AUGMENT,
    Augment,
    ImageBatch,
    ImageBatches,
    accuracy,
    count_correct,
    default_augment,
    random_crop,
    random_flip,
)
from mixnas.families.vit.task.cifar import RestrictedUnpickler, load_cifar10, restricted_load
from mixnas.families.vit.task.data import DATASETS, ImageDataset, channel_stats, load_image_dataset, load_image_splits
from mixnas.families.vit.task.idx import load_fashion_mnist, read_idx

__all__ = [
    "DATASETS",
    "NO_AUGMENT",
    "Augment",
    "ImageBatch",
    "ImageBatches",
    "ImageDataset",
    "RestrictedUnpickler",
    "accuracy",
    "channel_stats",
    "count_correct",
    "default_augment",
    "load_cifar10",
    "load_fashion_mnist",
    "load_image_dataset",
    "load_image_splits",
    "random_crop",
    "random_flip",
    "read_idx",
    "restricted_load",
]
