"""Checkpoint files: atomic writing, safe loading, RNG state capture, pruning, averaging.

A training checkpoint is a dict of tensors and plain Python values only, so it loads with
`torch.load(weights_only=True)`, which never runs code from the file:

    {"format": "mixnas-train", "version": 1, "step": int, "epoch": int, "world_size": int,
     "model": state_dict, "optimizer": ..., "scheduler": ..., "batches": iterator state,
     "rng": [per-rank RNG state], "elapsed": seconds trained, "config": dict, "task": dict}

Files are named `checkpoint_{step:08d}.pt` in the run directory. Only the newest `keep_last`
(default 1: all that resume needs) are kept whole; with `keep_weights` K > 0, the older ones
are thinned to their model weights, `weights_{step:08d}.pt` (a third of an Adam checkpoint:
no optimizer moments), so that the newest K snapshots (`averaging_sources`) can be averaged
(`average_checkpoints`, fairseq/HAT's average of the last 10) at a fraction of the disk.

Writing goes to a hidden
temporary file in the same directory, which is flushed and fsync'ed, then renamed over the
final name with `os.replace` (atomic on POSIX) and the directory fsync'ed: a crash at any
moment leaves either the previous set of checkpoints or the new complete one, never a
truncated file under a checkpoint name.
"""
from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mixnas.fileio import atomic_torch_save, safe_torch_load  # noqa: F401 (atomic_torch_save: re-exported)

FORMAT = "mixnas-train"
WEIGHTS_FORMAT = "mixnas-weights"  # {"format", "version", "step", "model"}: a thinned checkpoint
_NAME = re.compile(r"^checkpoint_(\d{8})\.pt$")
_WEIGHTS_NAME = re.compile(r"^weights_(\d{8})\.pt$")


def checkpoint_path(save_dir: str | Path, step: int) -> Path:
    return Path(save_dir) / f"checkpoint_{step:08d}.pt"


def weights_path(save_dir: str | Path, step: int) -> Path:
    return Path(save_dir) / f"weights_{step:08d}.pt"


def _by_step(save_dir: str | Path, *patterns: re.Pattern) -> list[Path]:
    """The files of `save_dir` named by `patterns` (step in group 1), oldest first; where two
    share a step, the later pattern's file."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = {}
    for pattern in patterns:
        found.update({int(m.group(1)): p for p in save_dir.iterdir() if (m := pattern.match(p.name))})
    return [found[step] for step in sorted(found)]


def list_checkpoints(save_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `save_dir`, oldest (lowest step) first."""
    return _by_step(save_dir, _NAME)


def list_weight_files(save_dir: str | Path) -> list[Path]:
    """The thinned `weights_*.pt` files in `save_dir`, oldest first."""
    return _by_step(save_dir, _WEIGHTS_NAME)


def averaging_sources(save_dir: str | Path) -> list[Path]:
    """Every snapshot whose weights can be averaged, oldest first: the full checkpoints and the
    weight files thinned from older ones (the full checkpoint where a step has both)."""
    return _by_step(save_dir, _WEIGHTS_NAME, _NAME)


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    found = list_checkpoints(save_dir)
    return found[-1] if found else None


def remove_stale_temporaries(save_dir: str | Path) -> None:
    """Delete half-written temporaries left by a process killed inside `atomic_torch_save`."""
    save_dir = Path(save_dir)
    if save_dir.is_dir():
        for pattern in (".checkpoint_*.pt.*.tmp", ".weights_*.pt.*.tmp"):
            for tmp in save_dir.glob(pattern):
                tmp.unlink(missing_ok=True)


# Keys every trainer checkpoint holds; later versions may add more (read those with .get).
REQUIRED_KEYS = ("step", "epoch", "world_size", "elapsed", "skipped", "stopped_by_task", "model",
                 "optimizer", "scheduler", "batches", "rng", "config", "task")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a trainer checkpoint without executing code; one-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    fix = "delete it to resume from the previous checkpoint, or start a new run in another save_dir"
    ckpt = safe_torch_load(path, "checkpoint", fix, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a mixnas training checkpoint (no format tag {FORMAT!r}); "
                         f"pass a checkpoint_*.pt written by the mixnas trainer")
    _check_checkpoint(ckpt, path, fix)
    return ckpt


def _check_checkpoint(ckpt: dict[str, Any], path: Path, fix: str) -> None:
    """The keys the trainer reads unconditionally, so a damaged file fails here, not mid-resume."""
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {', '.join(missing)}; it is incomplete or not written by "
                         f"the mixnas trainer; {fix}")
    for key, low in (("step", 0), ("epoch", 0), ("world_size", 1)):
        value = ckpt[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"checkpoint {path}: {key} must be an integer >= {low}, got {value!r}; {fix}")
    if not isinstance(ckpt["model"], dict):
        raise ValueError(f"checkpoint {path}: model must be a state_dict, got {type(ckpt['model']).__name__}; {fix}")
    if not isinstance(ckpt["rng"], (list, tuple)) or len(ckpt["rng"]) != ckpt["world_size"]:
        raise ValueError(f"checkpoint {path}: rng must hold one state per process ({ckpt['world_size']}); {fix}")


def prune_checkpoints(save_dir: str | Path, keep_last: int, keep_weights: int = 0) -> None:
    """Keep the newest `keep_last` checkpoints whole (keep_last <= 0 keeps everything); thin
    older ones to `weights_*.pt` while they are among the newest `keep_weights` snapshots, and
    delete the rest. Each weight file is written (atomically) before its checkpoint goes."""
    if keep_last <= 0:
        return
    keep_steps = {_step_of(p) for p in averaging_sources(save_dir)[-keep_weights:]} if keep_weights > 0 else set()
    for old in list_checkpoints(save_dir)[:-keep_last]:
        step = _step_of(old)
        if step in keep_steps and not weights_path(save_dir, step).is_file():
            model = load_checkpoint(old)["model"]
            atomic_torch_save({"format": WEIGHTS_FORMAT, "version": 1, "step": step, "model": model},
                              weights_path(save_dir, step))
        old.unlink(missing_ok=True)
    for weights in list_weight_files(save_dir):
        if _step_of(weights) not in keep_steps:
            weights.unlink(missing_ok=True)


def _step_of(path: Path) -> int:
    return int(path.stem.split("_")[1])


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state_dict of a training checkpoint or of a thinned weight file."""
    path = Path(path)
    if _WEIGHTS_NAME.match(path.name):
        fix = "delete it (it only serves checkpoint averaging) or retrain with --restart"
        data = safe_torch_load(path, "weight snapshot", fix, "cpu")
        if not isinstance(data, dict) or data.get("format") != WEIGHTS_FORMAT or not isinstance(data.get("model"), dict):
            raise ValueError(f"{path} is not a mixnas weight snapshot (no format tag {WEIGHTS_FORMAT!r}); {fix}")
        return data["model"]
    return load_checkpoint(path)["model"]


# --- RNG state as tensors and plain values (no pickled objects) ----------------------------

def capture_rng_state() -> dict[str, Any]:
    version, mt_state, gauss_next = random.getstate()
    kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
        "numpy": {"kind": kind, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # This process's device only: get_rng_state_all() would open a context on every GPU
        # from every rank. The trainer uses one device per process.
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["gauss"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- averaging (fairseq's scripts/average_checkpoints.py, same arithmetic) -----------------

def average_checkpoints(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Mean of the model weights of several checkpoints, ready for `model.load_state_dict`.

    Floating-point tensors are summed in float64 and divided by the count, then cast back to
    their dtype; other tensors (integer buffers, counters) must be equal in every file and are
    taken as they are. `paths` may mix training checkpoints and thinned weight files. Evaluate
    translation models on the average of the last 10 snapshots (`averaging_sources(run_dir)[-10:]`,
    with train.keep_weights >= 10), as HAT and fairseq do.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint path")
    sums: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    first_path = paths[0]
    for path in paths:
        model = load_weights(path)
        if not sums:
            dtypes = {k: v.dtype for k, v in model.items()}
            sums = {k: v.double() if v.is_floating_point() else v.clone() for k, v in model.items()}
            continue
        if model.keys() != sums.keys():
            diff = sorted(set(model) ^ set(sums))
            raise ValueError(f"{path} and {first_path} hold different parameters: {diff[:5]}")
        for key, value in model.items():
            if value.shape != sums[key].shape:
                raise ValueError(f"{key} has shape {tuple(value.shape)} in {path} but "
                                 f"{tuple(sums[key].shape)} in {first_path}")
            if value.is_floating_point():
                sums[key] += value.double()
            elif not torch.equal(value, sums[key]):
                raise ValueError(f"non-float tensor {key} differs between {path} and {first_path}")
    return {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v
            for k, v in sums.items()}
