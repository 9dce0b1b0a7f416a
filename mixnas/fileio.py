"""Atomic file writes, used for every artifact mixnas writes (checkpoints, models, tables,
search state, configs): a reader, or a run resumed after SIGKILL, sees either the old file or
the complete new one, never half of one. Reading back: `read_json`, and `safe_torch_load` for
tensor files (weights only, one-line errors)."""
from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp_path), fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; give what open() would give
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """`torch.save` of `obj` to `path`, atomically. Serialised in memory first, then written by
    Python: torch's own file writer turns a full disk into an opaque "unexpected pos" error,
    Python's write raises OSError(ENOSPC), which the CLI reports as one line."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def disk_usage(path: str | Path) -> str:
    """The size of the files under `path` (a file or a directory), e.g. '81.2 MB'."""
    p = Path(path)
    files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file() and not f.is_symlink()]
    size = float(sum(f.stat().st_size for f in files))
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, streamed: large corpora need not fit in memory."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: str | Path, obj: Any, allow_nan: bool = False) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, allow_nan=allow_nan, default=str) + "\n")


def read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}); delete it or point to another file") from None


def safe_torch_load(path: str | Path, what: str, fix: str = "retrain or restore the file",
                    map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)` of `path`; any failure becomes one ValueError line that
    names `what` and `path` and ends with `fix`. torch's own message advises retrying with
    weights_only=False, which is the wrong advice for a file of unknown origin, so it is dropped."""
    import torch  # here, not at the top: fileio is imported by modules that do not need torch

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist; {fix}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise beside the error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, bad pickle opcodes, unsafe globals, huge sizes...
        raise ValueError(_torch_load_message(error, path, what, fix)) from None


# Lines of torch's weights_only error that are advice (retry unsafely, allowlist globals), not the cause.
_TORCH_ADVICE = ("weights_only", "Weights only load failed", "trust", "Check the documentation",
                 "Please file an issue", "safe_globals")


def _torch_load_message(error: Exception, path: Path, what: str, fix: str) -> str:
    text = str(error)
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:  # the file names a Python callable or class: a pickle payload, not saved tensors
        return (f"cannot read {what} {path}: it holds Python objects outside the safe set ({unsafe.group(1)}; "
                f"refused: loading it could run code); it was not written by mixnas; {fix}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = next((line for line in lines if not any(a in line for a in _TORCH_ADVICE)), "")
    if "WeightsUnpickler error:" in cause:
        cause = cause.split("WeightsUnpickler error:", 1)[1].strip()
    cause = cause.split(". ")[0].rstrip(".")  # torch appends paragraphs of guesses after the cause
    if not cause or isinstance(error, KeyError):
        cause = f"{type(error).__name__} {cause}".strip()
    if path.stat().st_size == 0:
        cause = "the file is empty"
    return f"cannot read {what} {path}: it is truncated or corrupt ({cause}); {fix}"
