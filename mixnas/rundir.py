"""Run directories that one process owns at a time and never reuse results of another config.

Two mechanisms, used by `mixnas train` and by every step of `mixnas run`:

- **Lock.** `hold_lock(directory)` takes an exclusive `flock` on `directory/.mixnas.lock` for
  the life of the run and writes the holder's PID, command and start time into it. The kernel
  drops a flock when its process dies, SIGKILL included, so a lock of a dead process is never
  in the way (its file is just overwritten). A second run on the same directory stops at once
  with a one-line error naming the holder's PID. Locks are re-entrant within one process
  (`mixnas run` holds run_dir and then each retraining holds its own directory).

- **Fingerprint.** Each step records `fingerprint.json` (the flattened config values, data file
  digests and code version that determine its result) BEFORE it writes any output. A later run
  compares: equal means the outputs (finished or half-done) are reused or resumed; different
  means a one-line error naming the changed keys (`supernet.train.lr: 0.002 -> 0.001`) unless
  the user asked to start that step over, in which case only then are its outputs removed.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import UsageError
from .fileio import file_sha256, write_json

LOCK_FILE = ".mixnas.lock"
FINGERPRINT_FILE = "fingerprint.json"
_held: dict[str, tuple[int, int]] = {}  # resolved directory -> (fd, depth) held by this process


class RunDirBusy(UsageError):
    """Another live process holds the directory's lock."""


class ConfigChanged(UsageError):
    """A step's recorded fingerprint differs from the current config."""


# ---------------------------------------------------------------- lock
@contextmanager
def hold_lock(directory: str | Path, what: str = "run directory") -> Iterator[Path]:
    """Hold the exclusive lock of `directory` (created if missing) for the `with` block."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = str(directory.resolve())
    if key in _held:  # re-entrant: the same process already owns it
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield directory
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe_holder(fd)
        os.close(fd)
        raise RunDirBusy(f"{what} {directory} is in use by {holder}; wait for it to finish (or stop it), "
                         f"or choose another directory") from None
    except BaseException:
        os.close(fd)
        raise
    info = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    _held[key] = (fd, 1)
    try:
        yield directory
    finally:
        del _held[key]
        os.close(fd)  # releases the flock; the file stays (removing it would race a new holder)


def _describe_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"process {info['pid']} (started {info['started']}: {info['command']})"
    except (ValueError, KeyError, OSError):
        return "another process"


# ---------------------------------------------------------------- fingerprints
def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves (JSON-normalised)."""
    if isinstance(values, dict):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: json.loads(json.dumps(values, default=str))}


def without(values: dict[str, Any], *suffixes: str) -> dict[str, Any]:
    """Flattened values minus keys ending in one of `suffixes` (settings that change no result)."""
    return {k: v for k, v in values.items() if not any(k == s or k.endswith("." + s) for s in suffixes)}


# Trainer settings that change how a run is logged or saved, never what it computes.
TRAIN_NON_RESULT = ("progress", "tensorboard", "log_every", "keep_last", "keep_weights", "checkpoint_every", "resume")


def digest(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


_file_digests: dict[tuple[str, int, int], str] = {}


def data_digests(directory: str | Path | None, limit: int = 200) -> dict[str, str]:
    """sha256 (16 hex) of every data file under `directory` (two levels, hidden files and the
    tokenizer cache skipped); {} when there is no such directory. Cached per (path, size, mtime)."""
    if not directory or not Path(directory).is_dir():
        return {}
    root = Path(directory)
    files = sorted(p for p in [*root.glob("*"), *root.glob("*/*")]
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))
    out = {}
    for path in files[:limit]:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _file_digests:
            _file_digests[key] = file_sha256(path)[:16]
        out[str(path.relative_to(root))] = _file_digests[key]
    return out


def code_version() -> str:
    from . import __version__
    return __version__


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key that differs (missing shown as <unset>)."""
    unset = "<unset>"
    return [f"{k}: {json.dumps(old.get(k, unset))} -> {json.dumps(new.get(k, unset))}"
            for k in sorted(old.keys() | new.keys()) if old.get(k, unset) != new.get(k, unset)]


def read_fingerprint(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        return dict(data["values"])
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path} is not a mixnas fingerprint file (corrupt?); restore it, or start that step over "
                         f"(remove its outputs or pass the restart flag)") from None


def same_values(recorded: dict[str, Any] | None, values: dict[str, Any], defaults: dict[str, Any] | None) -> bool:
    """Equal, where a key missing on one side counts as its default value: a newer mixnas that
    adds a setting at its default does not invalidate the step that owns the setting. (Later
    pipeline steps still see a new upstream digest, steps.py's "after" key, and are refused:
    a known limit, kept so that fingerprints already recorded stay valid.)"""
    if recorded is None:
        return False
    defaults = defaults or {}
    missing = object()
    return all(recorded.get(k, defaults.get(k, missing)) == values.get(k, defaults.get(k, missing))
               for k in recorded.keys() | values.keys())


def mismatch(name: str, fingerprint_path: Path, values: dict[str, Any], outputs: list[Path],
             restart_flag: str, defaults: dict[str, Any] | None = None) -> str | None:
    """None when the step may run or be reused as it is: its recorded fingerprint equals
    `values` (see same_values), or none of its outputs exist yet. Else the one-line reason.
    Outputs without a fingerprint (an older mixnas, or files put there by hand) are refused
    too: nothing says which config made them."""
    recorded = read_fingerprint(fingerprint_path)
    if same_values(recorded, values, defaults):
        return None
    existing = [p for p in outputs if _has_content(p) and p != fingerprint_path]
    if not existing:  # nothing made yet (e.g. the last attempt failed on a config error): no work to protect
        return None
    if recorded is None:
        shown = ", ".join(str(p) for p in existing[:3])
        return (f"{name}: {shown} exist(s) without a fingerprint of the config that made them (an older "
                f"mixnas?); pass {restart_flag} to start {name} over, or choose another directory")
    diff = changed_keys(recorded, values)
    more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
    return (f"{name} in {fingerprint_path.parent} was made with another config: {'; '.join(diff[:3])}{more}; "
            f"pass {restart_flag} to start {name} over with the new config, or choose another directory")


def _has_content(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def check_step(name: str, fingerprint_path: Path, values: dict[str, Any], outputs: list[Path],
               restart: bool, restart_flag: str, defaults: dict[str, Any] | None = None) -> str:
    """Guard one step before it runs: "same" (reuse or resume its outputs), "new" (fingerprint
    recorded now, before any output), or "restarted" (with `restart`: outputs removed, new
    fingerprint recorded). A mismatch without `restart` raises ConfigChanged."""
    reason = mismatch(name, fingerprint_path, values, outputs, restart_flag, defaults)
    if reason is None:
        if same_values(read_fingerprint(fingerprint_path), values, defaults):
            return "same"
        write_fingerprint(fingerprint_path, name, values)
        return "new"
    if not restart:
        raise ConfigChanged(reason)
    for path in outputs:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists() and path != fingerprint_path:
            path.unlink()
    write_fingerprint(fingerprint_path, name, values)
    return "restarted"


def write_fingerprint(path: Path, name: str, values: dict[str, Any]) -> None:
    write_json(path, {"step": name, "digest": digest(values), "values": values})


def write_if_changed(path: str | Path, data: bytes) -> bool:
    """Atomically write `data` unless the file already holds exactly it (a finished run rerun
    changes no file). Returns whether it wrote."""
    from .fileio import atomic_write_bytes
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write_bytes(path, data)
    return True
