"""Checkpoint files: atomic writing, safe loading, RNG state capture, pruning, averaging.

A training checkpoint is a dict of tensors and plain Python values only, so it loads with
`torch.load(weights_only=True)`, which never runs code from the file:

    {"format": "mixnas-train", "version": 1, "step": int, "epoch": int, "world_size": int,
     "model": state_dict, "optimizer": ..., "scheduler": ..., "batches": iterator state,
     "rng": [per-rank RNG state], "elapsed": seconds trained, "config": dict, "task": dict}

Files are named `checkpoint_{step:08d}.pt` in the run directory. Writing goes to a hidden
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
_NAME = re.compile(r"^checkpoint_(\d{8})\.pt$")


def checkpoint_path(save_dir: str | Path, step: int) -> Path:
    return Path(save_dir) / f"checkpoint_{step:08d}.pt"


def list_checkpoints(save_dir: str | Path) -> list[Path]:
    """Complete checkpoints in `save_dir`, oldest (lowest step) first."""
    save_dir = Path(save_dir)
    if not save_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in save_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(save_dir: str | Path) -> Path | None:
    found = list_checkpoints(save_dir)
    return found[-1] if found else None


def remove_stale_temporaries(save_dir: str | Path) -> None:
    """Delete half-written temporaries left by a process killed inside `atomic_torch_save`."""
    save_dir = Path(save_dir)
    if save_dir.is_dir():
        for tmp in save_dir.glob(".checkpoint_*.pt.*.tmp"):
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


def prune_checkpoints(save_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` checkpoints (keep_last <= 0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(save_dir)[:-keep_last]:
        old.unlink(missing_ok=True)


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
    taken as they are. Evaluate translation models on the average of the last 10 checkpoints
    (`list_checkpoints(run_dir)[-10:]`), as HAT and fairseq do.
    """
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint path")
    sums: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    first_path = paths[0]
    for path in paths:
        model = load_checkpoint(path)["model"]
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
