"""IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

Layout: two zero bytes, a type code, the number of dimensions n, then n big-endian uint32
sizes, then the values big-endian in row-major order. Type codes: 0x08 uint8, 0x09 int8,
0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64. Gzip is detected from the content (the
1f 8b magic), not from the file name.

Fashion-MNIST as the Debian package `dataset-fashion-mnist` installs it:
/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file; ValueError naming the file for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"{path} is a damaged gzip file ({error}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (its first two bytes must be zero); is it the right file?")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _DTYPES:
        raise ValueError(f"{path} has unknown IDX type code {type_code:#04x}; expected one of {sorted(_DTYPES)}")
    if ndim == 0:
        raise ValueError(f"{path} declares 0 dimensions; an IDX file needs at least one")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[type_code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(
            f"{path} has {len(raw)} bytes but its header (shape {shape}, {dtype.name}) needs {expected}; "
            "the file is truncated or corrupt"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    raise ValueError(
        f"Fashion-MNIST file {stem}(.gz) not found in {directory}; install the Debian package "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass data_dir="
    )


def _images_and_labels(directory: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = _find(directory, f"{prefix}-images-idx3-ubyte"), _find(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path} must hold uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{labels_path} must hold {len(images)} labels (one per image), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= 10):
        raise ValueError(f"{labels_path} has labels outside 0..9")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(data_dir: str | os.PathLike | None = None):
    """(train images, train labels, test images, test labels, class names); images uint8 (N, 1, 28, 28)."""
    directory = Path(data_dir) if data_dir is not None else DEFAULT_FASHION_MNIST_DIR
    if not directory.is_dir():
        raise ValueError(
            f"Fashion-MNIST directory {directory} does not exist; install the Debian package "
            "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass data_dir="
        )
    train_images, train_labels = _images_and_labels(directory, "train")
    test_images, test_labels = _images_and_labels(directory, "t10k")
    return train_images, train_labels, test_images, test_labels, FASHION_MNIST_CLASSES
