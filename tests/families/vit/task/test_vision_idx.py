"""IDX parsing (Fashion-MNIST's format): round trips, every malformed-file error, the real files."""

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mixnas.families.vit.task import load_fashion_mnist, load_image_splits, read_idx
from mixnas.families.vit.task.idx import DEFAULT_FASHION_MNIST_DIR

CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of `array`, written independently of the reader: header + big-endian values."""
    header = bytes([0, 0, CODES[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_of_every_type(tmp_path, gz):
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (3, 4, 5)).astype(np.uint8),
        rng.integers(-128, 128, (7,)).astype(np.int8),
        rng.integers(-30000, 30000, (2, 3)).astype(np.int16),
        rng.integers(-(2**31), 2**31 - 1, (4,)).astype(np.int32),
        rng.normal(size=(2, 2)).astype(np.float32),
        rng.normal(size=(3,)).astype(np.float64),
    ]
    for k, array in enumerate(arrays):
        loaded = read_idx(write_idx(tmp_path / f"a{k}", array, gz=gz))
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array)
    # The header is big-endian: 258 = 0x0102 must not come back as 0x0201.
    assert read_idx(write_idx(tmp_path / "big", np.array([258], dtype=np.int32)))[0] == 258


def test_malformed_files(tmp_path):
    good = idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    cases = {
        "not an IDX file (its first two bytes must be zero)": b"\x01\x00" + good[2:],
        "unknown IDX type code 0x07": good[:2] + b"\x07" + good[3:],
        "declares 0 dimensions": b"\x00\x00\x08\x00",
        "truncated inside its header": good[:6],
        "has 15 bytes but its header (shape (2, 3), uint8) needs 18": good[:15],
        "has 19 bytes but its header": good + b"\x00",
    }
    for message, data in cases.items():
        path = tmp_path / "bad-idx"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=r"bad-idx .*" + re.escape(message)):
            read_idx(path)
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(ValueError, match=r"bad.gz is a damaged gzip file"):
        read_idx(path)
    with pytest.raises(ValueError, match=r"IDX file .*absent does not exist"):
        read_idx(tmp_path / "absent")


def write_fashion(directory: Path, n_train: int = 12, n_test: int = 5) -> dict[str, np.ndarray]:
    """Tiny Fashion-MNIST files: training files gzipped, test files plain (both must load)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    for name, array in arrays.items():
        gz = name.startswith("train")
        write_idx(directory / (name + ".gz" if gz else name), array, gz=gz)
    return arrays


def test_fashion_mnist_from_tiny_files(tmp_path):
    arrays = write_fashion(tmp_path)
    train_x, train_y, test_x, test_y, names = load_fashion_mnist(tmp_path)
    assert train_x.shape == (12, 1, 28, 28) and train_x.dtype == torch.uint8 and train_y.dtype == torch.int64
    assert np.array_equal(train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert names[9] == "Ankle boot"


def test_fashion_mnist_errors(tmp_path):
    write_fashion(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte must hold 5 labels \(one per image\)"):
        load_fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2, 3, 10], dtype=np.uint8))
    with pytest.raises(ValueError, match=r"has labels outside 0..9"):
        load_fashion_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match=r"must hold uint8 images \(N, H, W\), got float32"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte\(.gz\) not found in .*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    with pytest.raises(ValueError, match=r"directory .*nowhere does not exist; install the Debian package"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_real_fashion_mnist():
    if not (DEFAULT_FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {DEFAULT_FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
    splits = load_image_splits("fashion-mnist")
    assert [len(splits[s]) for s in ("train", "val", "test")] == [54000, 6000, 10000]
    test = splits["test"]
    assert (test.image_size, test.channels, test.num_classes) == (28, 1, 10)
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10  # the test set is balanced
    # Published Fashion-MNIST training statistics: mean 0.2860, std 0.3530 (over all 60,000 images).
    assert splits["train"].mean[0] == pytest.approx(0.2860, abs=0.002)
    assert splits["train"].std[0] == pytest.approx(0.3530, abs=0.002)
