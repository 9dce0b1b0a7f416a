"""CIFAR-10 python batches: exact-format files load; anything that would run code is refused unrun."""

import os
import pickle
import struct

import numpy as np
import pytest
import torch

from mixnas.families.vit.task import load_cifar10, load_image_splits, restricted_load
from mixnas.families.vit.task.cifar import TRAIN_FILES, load_batch

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
    with pytest.raises(ValueError, match=r"refusing numpy dtype 'O8'"):  # refused before the array exists
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


def _push(obj) -> bytes:
    """The protocol-2 opcodes that push `obj` (a pickle without its PROTO header and STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _bytes(data: bytes) -> bytes:
    """Python 2's str opcode (bytes under encoding="bytes"); protocol 2 would pickle b"" as a call."""
    return pickle.SHORT_BINSTRING + bytes([len(data)]) + data


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _call(module: str, name: str, *args) -> bytes:
    return _global(module, name) + _push(args) + pickle.REDUCE


def _huge_array_state(shape) -> bytes:
    """An array whose BUILD state claims `shape` (uint8) but carries no bytes."""
    dtype = _call("numpy", "dtype", "u1", False, True) + _push((3, "|", None, None, None, -1, -1, 0)) + pickle.BUILD
    array = _global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray") + _push((0,)) \
        + _bytes(b"b") + pickle.TUPLE3 + pickle.REDUCE
    state = pickle.MARK + _push(1) + _push(shape) + dtype + pickle.NEWFALSE + _bytes(b"") + pickle.TUPLE
    return array + state + pickle.BUILD


HUGE = 2**40  # a terabyte of uint8: allocating it fails with MemoryError (or worse, succeeds lazily)


@pytest.mark.parametrize("body, message", [
    (_global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray") + _push((HUGE,))
     + _bytes(b"b") + pickle.TUPLE3 + pickle.REDUCE, "refusing numpy _reconstruct with shape"),
    (_global("numpy", "ndarray") + _push(((HUGE,), "u1")) + pickle.REDUCE, "refusing to call numpy.ndarray"),
    (_huge_array_state((HUGE,)), r"refusing numpy array shape \(1099511627776,\)"),
    (_huge_array_state((60001, 3072)), r"refusing numpy array of shape \(60001, 3072\): more than"),
    (_huge_array_state((2**62, 4)), "refusing numpy array shape"),  # a product that overflows int64
    (_huge_array_state((2, 3)), r"numpy array of shape \(2, 3\) needs 6 bytes of data, got 0"),
], ids=["reconstruct-shape", "ndarray-call", "state-shape", "state-over-limit", "state-overflow", "state-no-bytes"])
def test_huge_arrays_are_refused_before_allocation(tmp_path, body, message):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + body + pickle.STOP)
    with pytest.raises(ValueError, match="data_batch_1: " + message) as error:
        restricted_load(path)
    assert "\n" not in str(error.value)


def test_the_crafted_state_is_a_real_array_when_its_bytes_are_there(tmp_path):
    # Control for the cases above: the same hand-written opcodes with the bytes present load.
    body = _huge_array_state((2, 3)).replace(_bytes(b""), _bytes(bytes(range(6))))
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02" + body + pickle.STOP)
    assert restricted_load(path).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_dtype_state_cannot_change_numpys_shared_dtype(tmp_path):
    # np.dtype("u1", False, False) is numpy's process-wide uint8 dtype; BUILD would modify it.
    path = tmp_path / "data_batch_1"
    flags = _call("numpy", "dtype", "u1", False, False) + _push((3, "|", None, None, None, -1, -1, 16)) + pickle.BUILD
    path.write_bytes(b"\x80\x02" + flags + pickle.STOP)
    with pytest.raises(ValueError, match=r"refusing numpy dtype state"):
        restricted_load(path)
    assert np.dtype("u1").flags == 0


def test_oversized_file_is_refused_unread(tmp_path, monkeypatch):
    from mixnas.families.vit.task import cifar

    write_cifar(tmp_path, n=4)
    monkeypatch.setattr(cifar, "MAX_FILE_BYTES", 1000)
    with pytest.raises(ValueError, match=r"data_batch_1 is larger than 1000 bytes"):
        restricted_load(tmp_path / "data_batch_1")


def test_huge_array_gives_one_line_in_the_cli(tmp_path, capsys):
    from mixnas.cli import main

    write_cifar(tmp_path, n=4)
    (tmp_path / "data_batch_2").write_bytes(b"\x80\x02" + _huge_array_state((HUGE,)) + pickle.STOP)
    rc = main(["train", "--config", "digits_vit", "data.name=cifar10", f"data.dir={tmp_path}", "train.max_updates=2",
               "train.warmup_updates=1", f"train.save_dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "data_batch_2" in err and "refusing numpy array" in err, err
