"""Exported models on disk: a directory with `arch.yaml` ({"arch": ..., "config": ...}) and
`model.pt` (a state_dict). Loading rebuilds the model from the YAML and reads the weights with
`weights_only=True`, so it never executes code from the file."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import nn

from ..dataconf import load_yaml
from ..fileio import atomic_torch_save, atomic_write, safe_torch_load
from ..families import family_of
from ..space.arch import arch_from_dict


def build_model(arch, config) -> nn.Module:
    """The standalone model of `arch` (any registered family) with its family's model config."""
    family = family_of(arch)
    if not isinstance(config, family.model_config_class):
        raise ValueError(f"architecture {type(arch).__name__} does not go with config {type(config).__name__}; "
                         f"use a {family.model_config_class.__name__}")
    return family.build_model(arch, config)


def save_model(model: nn.Module, directory: str | Path) -> Path:
    """Write `arch.yaml` and `model.pt` into `directory` (created if missing)."""
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
    return d


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
