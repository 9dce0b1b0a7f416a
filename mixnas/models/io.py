"""Exported models on disk: a directory with `arch.yaml` ({"arch": ..., "config": ...}) and
`model.pt` (a state_dict). Loading rebuilds the model from the YAML and reads the weights with
`weights_only=True`, so it never executes code from the file.

Saved with its task (`save_model(model, dir, task=task)`, as `mixnas train` does), the directory
is self-contained: it also holds the task's preprocessing (the family's `save_assets`: a
SentencePiece model, image normalisation...) and `model.json` (family, task, test metric, eval
results, training command, mixnas version and git commit). `load_inference` (`mixnas.load`)
returns the family's inference object for such a directory.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..dataconf import load_yaml
from ..fileio import atomic_torch_save, atomic_write, read_json, safe_torch_load, write_json
from ..families import families, family_for_task, family_of
from ..space.arch import arch_from_dict


def build_model(arch, config) -> nn.Module:
    """The standalone model of `arch` (any registered family) with its family's model config."""
    family = family_of(arch)
    if not isinstance(config, family.model_config_class):
        raise ValueError(f"architecture {type(arch).__name__} does not go with config {type(config).__name__}; "
                         f"use a {family.model_config_class.__name__}")
    return family.build_model(arch, config)


METADATA_FILE = "model.json"
MISSING_ASSET_FIX = ("retrain the model with this version of mixnas, or save it with its task: "
                     "save_model(model, directory, task=task)")


def save_model(model: nn.Module, directory: str | Path, task: Any = None,
               metadata: dict[str, Any] | None = None) -> Path:
    """Write `arch.yaml` and `model.pt` into `directory` (created if missing). With `task` (the
    task object the model was trained on) also the task's preprocessing (the family's
    `save_assets`) and `model.json`; `metadata` adds to or overrides model.json's entries
    (e.g. {"eval": {...}, "command": "mixnas train ..."})."""
    arch = getattr(model, "arch", None)
    if arch is None or hasattr(model, "set_arch"):  # a supernet has set_arch; a standalone model does not
        raise ValueError(f"save_model expects a standalone model, got {type(model).__name__}; "
                         f"extract a sub-network from a supernet first")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    meta = {"arch": model.arch.to_dict(), "config": model.config.to_dict()}
    atomic_write(d / "arch.yaml", lambda p: p.write_text(yaml.safe_dump(meta, sort_keys=False)))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save(state, d / "model.pt")
    if task is not None or metadata is not None:
        family = family_of(model)
        if task is not None:
            kind = getattr(task, "kind", family.task)
            tasks = _tasks_of(family)
            if kind not in tasks:
                raise ValueError(f"save_model: a {family.name} model goes with a {' or '.join(tasks)} task, "
                                 f"not a {kind} task")
            family = family_for_task(kind)
            family.save_assets(task, d)
        write_json(d / METADATA_FILE, {**default_metadata(family), **(metadata or {})})
    return d


def _tasks_of(family) -> list[str]:
    """The tasks a family's models are trained on: its own and its task variants'."""
    return [f.task for f in families() if f.name == family.name]


def default_metadata(family) -> dict[str, Any]:
    """model.json's entries before the caller's: what the model is and which code made it."""
    from .. import __version__
    return {"family": family.name, "task": family.task, "test_metric": family.test_metric,
            "test_higher_is_better": family.test_higher_is_better, "eval": None, "command": None,
            "mixnas_version": __version__, "git_commit": git_commit()}


def read_metadata(directory: str | Path) -> dict[str, Any] | None:
    """model.json of a saved model directory (None if it has none)."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        return None
    data = read_json(path, "model metadata")
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no JSON object; it was not written by save_model")
    return data


def update_metadata(directory: str | Path, **values: Any) -> None:
    """Set entries of the model.json written by save_model (e.g. eval= once known)."""
    path = Path(directory) / METADATA_FILE
    write_json(path, {**(read_metadata(directory) or {}), **values})


def git_commit() -> str | None:
    """The commit of the git checkout mixnas runs from (None when installed, or git is missing)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def model_directory(path: str | Path) -> Path:
    """A saved model directory, given it or the training run directory holding it in model/."""
    d = Path(path)
    if not (d / "model.pt").is_file() and (d / "model" / "model.pt").is_file():
        return d / "model"  # a run directory
    return d


def asset_file(directory: str | Path, name: str) -> Path:
    """`directory/name`, a file save_assets wrote; missing: one ValueError naming it and the fix."""
    path = Path(directory) / name
    if not path.is_file():
        raise ValueError(f"{path} does not exist: the model was saved without its task's preprocessing; "
                         f"{MISSING_ASSET_FIX}")
    return path


def read_asset_json(directory: str | Path, name: str) -> dict[str, Any]:
    """A JSON object written by save_assets (missing or damaged: one ValueError naming it)."""
    path = asset_file(directory, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object (damaged?); {MISSING_ASSET_FIX}")
    return data


def load_inference(directory: str | Path, device: str | torch.device = "cpu", task: str | None = None) -> Any:
    """The inference object of the model saved in `directory` (or a run directory's model/):
    the family's `inference(model, directory)`, the model on `device` in eval mode. `task`
    (e.g. "translation") refuses models of other tasks."""
    d = model_directory(directory)
    model = load_model(d)
    family = family_of(model)
    saved_task = (read_metadata(d) or {}).get("task")
    if saved_task != family.task and saved_task in _tasks_of(family):
        family = family_for_task(saved_task)  # a task variant's model (e.g. mqar)
    if task is not None and family.task != task:
        raise ValueError(f"{directory} holds a {family.name} model (task {family.task}), not a {task} model")
    model.to(device).eval()
    return family.inference(model, d)


def load_model(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """The standalone model saved in `directory` by save_model (any registered family), its
    weights read with weights_only=True."""
    d = Path(directory)
    arch_file, weights = d / "arch.yaml", d / "model.pt"
    for f in (arch_file, weights):
        if not f.is_file():
            raise ValueError(f"{f} does not exist; a saved model directory holds arch.yaml and model.pt")
    meta = load_yaml(arch_file)
    if set(meta) != {"arch", "config"}:
        raise ValueError(f"{arch_file} must hold exactly the keys 'arch' and 'config'")
    arch = arch_from_dict(meta["arch"])
    config_cls = family_of(arch).model_config_class
    model = build_model(arch, config_cls.from_dict(meta["config"], f"{arch_file}: config"))
    state = safe_torch_load(weights, "model weights", "retrain the model or restore the file", map_location)
    _load_state(model, state, weights)
    return model


def _load_state(model: nn.Module, state: dict, where: Path) -> None:
    if not isinstance(state, dict):  # a readable file of something else (a tensor, a list...)
        raise ValueError(f"{where} holds a {type(state).__name__}, not a state_dict; it was not written by save_model")
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch
        raise ValueError(f"{where} does not match arch.yaml: {str(e).splitlines()[-1].strip()}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{where} does not match arch.yaml: missing {result.missing_keys[:3]}, "
                         f"unexpected {result.unexpected_keys[:3]}")
