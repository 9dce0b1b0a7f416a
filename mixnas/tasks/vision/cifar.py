"""CIFAR-10 in its standard python-batch format, read without executing pickled code.

The extracted `cifar-10-batches-py/` directory holds `data_batch_1` .. `data_batch_5`,
`test_batch` and `batches.meta`. Each is a Python 2 pickle of a dict (loaded with
encoding="bytes", so keys and strings come back as bytes):

    data_batch_k / test_batch: b"data" uint8 numpy array (N, 3072) - 1024 red, 1024 green,
        1024 blue values of a 32x32 image, row-major; b"labels" list of N ints in 0..9;
        b"filenames" list of N strings; b"batch_label" a string.
    batches.meta: b"label_names" list of 10 strings; b"num_cases_per_batch"; b"num_vis".

`pickle.load` would import and call whatever the file names, so a doctored file could run
arbitrary code. `RestrictedUnpickler.find_class` resolves only the few callables such a file
needs to rebuild numpy arrays (numpy's `_reconstruct`, `ndarray`, `dtype`, and `_codecs.encode`,
which Python 3 pickles of bytes use at protocol 2, restricted to latin-1) and refuses every
other global with a ValueError naming it. Dicts, lists, tuples, strings, bytes and numbers need
no globals at all.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2 moved the implementation; old pickles name numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(str, "latin1"); any other
    # codec (zlib, base64, ...) is not something a CIFAR batch needs, so refuse it.
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise ValueError(f"pickle asks for _codecs.encode with encoding {encoding!r}; only latin-1 is allowed")
    return text.encode("latin1", errors)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds only plain containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise ValueError(
                f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only numpy arrays, lists, "
                "strings and numbers, so this file is not one (it could run code if loaded with pickle)"
            )
        return allowed

    def persistent_load(self, pid):
        raise ValueError("refusing to unpickle a persistent id: a CIFAR-10 batch has none")


def restricted_load(path: str | os.PathLike):
    """Unpickle `path` with RestrictedUnpickler (encoding="bytes" for Python 2 pickles)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"{path} is not a valid CIFAR-10 pickle ({type(error).__name__}: {error})") from None


def _text_keys(obj: dict, path: Path) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected the dict of a CIFAR-10 batch")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def load_batch(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> (images uint8 (N, 3, 32, 32), labels int64 (N,)), validated."""
    path = Path(path)
    batch = _text_keys(restricted_load(path), path)
    for key in ("data", "labels"):
        if key not in batch:
            raise ValueError(f"{path} lacks the {key!r} entry of a CIFAR-10 batch; is it a CIFAR-100 or other file?")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {got}")
    if not isinstance(labels, (list, tuple)) or len(labels) != len(data):
        raise ValueError(f"{path}: 'labels' must be a list of {len(data)} ints, one per image")
    if not all(isinstance(y, int) and 0 <= y < 10 for y in labels):
        raise ValueError(f"{path}: 'labels' must be ints in 0..9")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.tensor(labels, dtype=torch.int64)


def find_cifar_dir(data_dir: str | os.PathLike | None) -> Path:
    """The directory holding the batch files: `data_dir` itself or its `cifar-10-batches-py/`."""
    if data_dir is None:
        raise ValueError(
            "cifar10 needs data_dir=: the extracted cifar-10-batches-py directory "
            "(from cifar-10-python.tar.gz at https://www.cs.toronto.edu/~kriz/cifar.html)"
        )
    directory = Path(data_dir)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    if not directory.is_dir():
        raise ValueError(f"CIFAR-10 directory {directory} does not exist; pass the extracted cifar-10-batches-py")
    missing = [name for name in (*TRAIN_FILES, TEST_FILE, META_FILE) if not (directory / name).is_file()]
    if missing:
        raise ValueError(f"CIFAR-10 directory {directory} lacks {', '.join(missing)}; extract cifar-10-python.tar.gz there")
    return directory


def load_cifar10(data_dir: str | os.PathLike | None):
    """(train images, train labels, test images, test labels, class names) of CIFAR-10."""
    directory = find_cifar_dir(data_dir)
    train = [load_batch(directory / name) for name in TRAIN_FILES]
    test_images, test_labels = load_batch(directory / TEST_FILE)
    meta = _text_keys(restricted_load(directory / META_FILE), directory / META_FILE)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise ValueError(f"{directory / META_FILE}: 'label_names' must be a list of 10 class names")
    class_names = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    return (
        torch.cat([images for images, _ in train]),
        torch.cat([labels for _, labels in train]),
        test_images,
        test_labels,
        class_names,
    )
