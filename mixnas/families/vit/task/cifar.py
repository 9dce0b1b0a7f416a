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
no globals at all. Sizes are bounded before anything is allocated: files over MAX_FILE_BYTES are
refused unread, arrays hold at most MAX_ELEMENTS values of a plain integer dtype, and each
array's state must carry exactly the bytes its shape needs.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import struct
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


# Size limits, checked before anything is allocated: all 60000 CIFAR-10 images in one array at
# most (a real batch holds 10000 x 3072 bytes, about 30 MB), and a file no larger than that
# plus room for the labels, file names and pickle overhead.
MAX_ELEMENTS = 60000 * 3072
MAX_FILE_BYTES = MAX_ELEMENTS + (16 << 20)
ARRAY_DTYPES = ("|u1", "<i8", "<i4")  # the images; integer labels if a tool re-saved them as arrays


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    # Python 3 pickles bytes at protocol <= 2 as _codecs.encode(str, "latin1"); any other
    # codec (zlib, base64, ...) is not something a CIFAR batch needs, so refuse it.
    if codecs.lookup(encoding).name != "iso8859-1" or not isinstance(text, str):
        raise ValueError(f"pickle asks for _codecs.encode with encoding {encoding!r}; only latin-1 is allowed")
    return text.encode("latin1", errors)


class _NDArrayClass:
    """Stands for numpy.ndarray in a pickle: numpy names the class only as the first argument of
    `_reconstruct`; calling it directly (ndarray(shape)) would allocate whatever shape asks for."""

    def __call__(self, *args, **kwargs):
        raise ValueError("refusing to call numpy.ndarray: numpy's own pickles never do")


_NDARRAY = _NDArrayClass()


def _empty_array(subtype, shape, dtype) -> np.ndarray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") followed by BUILD with the real
    # shape, dtype and bytes (checked in RestrictedUnpickler.load_build); a non-empty shape here
    # could only serve to allocate memory.
    if subtype is not _NDARRAY or shape not in ((0,), [0]):
        raise ValueError(f"refusing numpy _reconstruct with shape {shape!r}: numpy pickles start from an empty array")
    return _reconstruct(np.ndarray, (0,), b"b")


def _plain_dtype(spec, align=False, copy=True) -> np.dtype:
    # copy=True always: np.dtype("u1", False, False) is numpy's shared uint8 dtype, which the
    # following BUILD would modify for the whole process.
    name = spec.decode("latin1") if isinstance(spec, bytes) else spec
    if not isinstance(name, str) or np.dtype(name).str not in ARRAY_DTYPES:
        raise ValueError(f"refusing numpy dtype {spec!r}: a CIFAR-10 batch holds uint8 images "
                         f"({', '.join(ARRAY_DTYPES)})")
    return np.dtype(name, False, True)


def _element_count(shape) -> int:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) > 4 or \
            not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape):
        raise ValueError(f"refusing numpy array shape {shape!r}: expected up to 4 sizes of at most {MAX_ELEMENTS}")
    count = 1
    for n in shape:
        count *= n
    if count > MAX_ELEMENTS:
        raise ValueError(f"refusing numpy array of shape {tuple(shape)}: more than {MAX_ELEMENTS} elements "
                         "(all of CIFAR-10 is 60000 x 3072)")
    return count


def _array_state(state) -> tuple:
    """The state of a BUILD on an array, checked: allowed dtype, bounded shape, and exactly the
    bytes that shape needs (numpy compares the length too, but only after other work)."""
    if isinstance(state, tuple) and len(state) == 4:  # numpy before 1.0 had no version field
        state = (1, *state)
    if not isinstance(state, tuple) or len(state) != 5:
        raise ValueError("refusing a numpy array state that is not (version, shape, dtype, fortran, bytes)")
    version, shape, dtype, fortran, raw = state
    if not isinstance(dtype, np.dtype) or dtype.str not in ARRAY_DTYPES or dtype.names or dtype.subdtype:
        raise ValueError(f"refusing numpy array of dtype {dtype!r}: a CIFAR-10 batch holds uint8 images")
    dtype = np.dtype(dtype.str)  # a fresh plain dtype: nothing the pickle did to its own copy survives
    count = _element_count(shape)
    if not isinstance(raw, (bytes, str)) or len(raw) != count * dtype.itemsize:
        raise ValueError(f"numpy array of shape {tuple(shape)} needs {count * dtype.itemsize} bytes of data, "
                         f"got {len(raw) if isinstance(raw, (bytes, str)) else type(raw).__name__}")
    return version, tuple(shape), dtype, bool(fortran), raw


def _dtype_state(state) -> tuple:
    # A plain dtype's state is (3, byte order, None, None, None, -1, -1, 0): no sub-array, no
    # fields, no flags (flags such as "holds objects" would make numpy read bytes as pointers).
    if not isinstance(state, tuple) or len(state) != 8 or state[2:5] != (None, None, None) or state[7] != 0:
        raise ValueError(f"refusing numpy dtype state {state!r}: only plain numeric dtypes are allowed")
    return state


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _empty_array,
    ("numpy._core.multiarray", "_reconstruct"): _empty_array,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler that rebuilds only plain containers, strings, numbers and numpy arrays of
    bounded size. The Python implementation (pickle._Unpickler) because its BUILD step can be
    checked: the C one would hand any state straight to ndarray.__setstate__."""

    dispatch = pickle._Unpickler.dispatch.copy()

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

    def load_build(self):
        state, inst = self.stack.pop(), self.stack[-1]
        if isinstance(inst, np.ndarray):
            inst.__setstate__(_array_state(state))
        elif isinstance(inst, np.dtype):
            inst.__setstate__(_dtype_state(state))
        else:  # dicts, lists and strings never need BUILD
            raise ValueError(f"refusing to set the state of a {type(inst).__name__}: a CIFAR-10 batch never does")

    dispatch[pickle.BUILD[0]] = load_build


def restricted_load(path: str | os.PathLike):
    """Unpickle `path` with RestrictedUnpickler (encoding="bytes" for Python 2 pickles)."""
    path = Path(path)
    with open(path, "rb") as handle:  # read at most the limit, even from a file that keeps growing
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes, more than all of CIFAR-10; "
                         "it is not a CIFAR-10 batch file")
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
            MemoryError, RecursionError, struct.error) as error:
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
