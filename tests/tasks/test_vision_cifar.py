"""CIFAR-10 python batches: exact-format files load; anything that would run code is refused unrun."""

import os
import pickle
import struct

import numpy as np
import pytest
import torch

from mixnas.tasks.vision import load_cifar10, load_image_splits, restricted_load
from mixnas.tasks.vision.cifar import TRAIN_FILES, load_batch

CLASSES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


class Python2StylePickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for CIFAR-10: str as BINSTRING, numpy.core paths.

    Python 3 writes bytes at protocol 2 as `_codecs.encode(...)` calls; Python 2 strings were
    raw BINSTRING opcodes, which `encoding="bytes"` turns back into bytes.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        module, name = obj.__module__, name or obj.__qualname__
        module = {"numpy._core.multiarray": "numpy.core.multiarray"}.get(module, module)
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    def reducer_override(self, obj):
        if isinstance(obj, np.dtype):  # Python 2 numpy: ('u1', 0, 1) and '|' as str -> bytes
            cls, args, state = obj.__reduce__()
            encode = lambda x: x.encode() if isinstance(x, str) else x  # noqa: E731
            return cls, tuple(encode(a) if isinstance(a, str) else int(a) for a in args), tuple(map(encode, state))
        return NotImplemented


def _batch(n: int, seed: int, label: bytes) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": label,
        b"labels": [int(y) for y in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def write_cifar(directory, n: int = 4, python2: bool = False):
    """A complete cifar-10-batches-py directory in the exact format, n images per batch."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: _batch(n, k, f"training batch {k + 1} of 5".encode()) for k, name in enumerate(TRAIN_FILES)}
    files["test_batch"] = _batch(n, 99, b"testing batch 1 of 1")
    files["batches.meta"] = {b"num_cases_per_batch": n, b"label_names": CLASSES, b"num_vis": 3072}
    for name, content in files.items():
        with open(directory / name, "wb") as handle:
            (Python2StylePickler(handle, protocol=2) if python2 else pickle.Pickler(handle, protocol=2)).dump(content)
    return files


@pytest.mark.parametrize("python2", [False, True], ids=["python3-protocol2", "python2-style"])
def test_reads_the_exact_format(tmp_path, python2):
    files = write_cifar(tmp_path / "cifar-10-batches-py", python2=python2)
    if python2:
        raw = (tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes()
        assert b"numpy.core.multiarray\n_reconstruct" in raw and b"_codecs" not in raw
    train_x, train_y, test_x, test_y, names = load_cifar10(tmp_path)  # the parent directory works too
    assert train_x.shape == (20, 3, 32, 32) and train_x.dtype == torch.uint8
    assert test_x.shape == (4, 3, 32, 32)
    assert names[0] == "airplane" and names[9] == "truck"
    first = files["data_batch_1"]
    # Row layout: 1024 red, then green, then blue values, each 32x32 row-major.
    assert torch.equal(train_x[1, 1].flatten(), torch.from_numpy(first[b"data"][1, 1024:2048]))
    assert train_x[2, 2, 3, 5] == first[b"data"][2, 2048 + 3 * 32 + 5]
    assert train_y[:4].tolist() == first[b"labels"]
    assert test_y.tolist() == files["test_batch"][b"labels"]
    assert restricted_load(tmp_path / "cifar-10-batches-py" / "data_batch_3")[b"filenames"][0] == b"img_2_0.png"


def test_image_dataset_entry_point(tmp_path):
    write_cifar(tmp_path, n=10)
    splits = load_image_splits("cifar10", tmp_path, val_fraction=0.1)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [45, 5, 10]
    meta = splits["test"].metadata()
    assert (meta["image_size"], meta["channels"], meta["num_classes"]) == (32, 3, 10)
    assert len(meta["mean"]) == 3


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Evals:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


def test_payload_is_real_under_plain_pickle(tmp_path):
    # Control: the same kind of payload does run under pickle.load, so refusing it means something.
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps({b"data": _RunsShell(marker)}, protocol=2))
    assert marker.exists()


@pytest.mark.parametrize("payload", [_RunsShell, _Evals], ids=["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    directory = tmp_path / "cifar"
    write_cifar(directory)
    evil = _batch(4, 0, b"training batch 1 of 5")
    evil[b"labels"] = payload(marker)
    with open(directory / "data_batch_1", "wb") as handle:
        pickle.dump(evil, handle, protocol=2)
    with pytest.raises(ValueError, match=r"data_batch_1: refusing to unpickle (posix|os|nt|builtins|__builtin__)\.(system|eval)"):
        load_cifar10(directory)
    assert not marker.exists()


def test_codecs_encode_is_limited_to_latin1(tmp_path):
    import _codecs

    class Zlib:
        def __reduce__(self):
            return _codecs.encode, (b"x" * 10, "zlib")

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Zlib()}, protocol=2))
    with pytest.raises(ValueError, match=r"only latin-1 is allowed"):
        restricted_load(path)


def test_bad_batches(tmp_path):
    def write(content, name="data_batch_1"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(content, protocol=2))
        return path

    good = _batch(3, 0, b"x")
    with pytest.raises(ValueError, match=r"'data' must be a uint8 array of shape \(N, 3072\), got object"):
        load_batch(write({**good, b"data": good[b"data"].astype(object)}))
    with pytest.raises(ValueError, match=r"got uint8 \(3, 1024\)"):
        load_batch(write({**good, b"data": good[b"data"][:, :1024].copy()}))
    with pytest.raises(ValueError, match=r"'labels' must be ints in 0..9"):
        load_batch(write({**good, b"labels": [0, 10, 1]}))
    with pytest.raises(ValueError, match=r"'labels' must be a list of 3 ints"):
        load_batch(write({**good, b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"lacks the 'labels' entry .*CIFAR-100"):
        load_batch(write({b"data": good[b"data"], b"fine_labels": [0, 1, 2]}))
    with pytest.raises(ValueError, match=r"holds a list, expected the dict"):
        load_batch(write([1, 2, 3]))
    truncated = tmp_path / "data_batch_2"
    truncated.write_bytes(pickle.dumps(good, protocol=2)[:100])
    with pytest.raises(ValueError, match=r"data_batch_2 is not a valid CIFAR-10 pickle"):
        load_batch(truncated)


def test_missing_files_and_directory(tmp_path):
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").unlink()
    with pytest.raises(ValueError, match=r"lacks data_batch_4; extract cifar-10-python.tar.gz"):
        load_cifar10(tmp_path / "c")
    with pytest.raises(ValueError, match=r"does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"cifar10 needs data_dir="):
        load_cifar10(None)
