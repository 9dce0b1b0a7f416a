"""An experiment config: task + data + model + training + evaluation, validated on load.

    task: classification            # or translation
    data: {name: digits, batch_size: 128}
    model: {arch: vit_digits_softmax, config: {patch_size: 2}}
    train: {max_updates: 300, lr: 0.002, lr_scheduler: cosine, warmup_updates: 30, save_dir: runs/x}
    eval: {split: test, average_last: 1}

`model.arch` is a preset name (NAME.yaml under a family's configs/archs/) or a path to an arch.yaml
(bare, or the {"arch": ..., "config": ...} file of an exported model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .dataconf import (ConfigError, ModelSection, apply_overrides, from_dict, load_yaml, preset_names,
                       resolve_preset, to_dict)
from .families import Family, family_for_task, family_of
from .models import build_model
from .models.config import check_model_config
from .space.arch import Arch, arch_from_dict
from .train import TrainConfig



@dataclass
class EvalSection:
    split: str = "test"
    average_last: int = 1  # average the weights of the last K checkpoints (HAT/fairseq use 10)
    limit: int | None = None  # evaluate the first N examples only


@dataclass
class Experiment:
    task: str  # a registered family's task: translation, classification, ...
    model: ModelSection
    data: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_updates=1000))
    eval: EvalSection = field(default_factory=EvalSection)

    def validate(self) -> None:
        family_for_task(self.task)  # a ConfigError naming the registered tasks
        if not self.model.arch:
            raise ConfigError("model.arch: required key is missing (an arch preset or the path of an arch.yaml)")

    @property
    def family(self) -> Family:
        return family_for_task(self.task)

    def data_config(self):
        return data_config_for(self.task, self.data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def data_config_for(task: str, data: dict[str, Any]):
    """The typed `data` section of an experiment or pipeline config for `task` (its family's)."""
    return from_dict(family_for_task(task).data_config_class, data, "data")


def load_experiment(path_or_name: str, overrides: list[str] = ()) -> Experiment:
    """An experiment preset (a family's configs/experiments) or YAML path, with
    `key=value` overrides, typed and checked before any data is read."""
    path = resolve_preset(path_or_name, "experiments", "experiment config")
    exp = from_dict(Experiment, apply_overrides(load_yaml(path), list(overrides)))
    # Validate what can be checked without the data now, not after minutes of training.
    exp.data_config()
    check_model_config(exp.family.model_config_class, exp.model.config)
    check_split(exp.eval.split, exp)
    return exp


def check_split(split: str, exp: Experiment, key: str = "eval.split") -> str:
    """`split` if the experiment's data has it, else a ConfigError naming `key` and the splits."""
    return check_split_of(exp.task, exp.data_config(), split, key)


def check_split_of(task: str, data: Any, split: str, key: str) -> str:
    """The same for a task and its typed data section (experiments and pipeline configs)."""
    names = family_for_task(task).split_names(data)
    if names is not None and split not in names:
        where = f" in {data.dir}" if getattr(data, "dir", None) else ""
        raise ConfigError(f"{key}: {split!r} is not a split of this data ({', '.join(names) or 'none'}{where})")
    return split


def resolve_arch(name_or_path: str) -> Arch:
    """An arch preset (e.g. vit_digits_softmax) or the path of an arch.yaml (bare, or the
    {"arch": ..., "config": ...} file of an exported model)."""
    try:
        path = resolve_preset(name_or_path, "archs", "architecture")
    except ConfigError:
        raise ConfigError(f"model.arch {name_or_path!r} is neither a file nor a preset "
                          f"({', '.join(preset_names('archs'))})") from None
    data = load_yaml(path)
    return arch_from_dict(data["arch"] if "arch" in data and "type" not in data else data)


def build_task(exp: Experiment):
    return exp.family.build_task(exp.data_config())


def build_experiment_model(exp: Experiment, task, arch: Arch | None = None):
    """The model of `exp` (or of `arch`), initialised from the experiment's seed."""
    arch = arch or resolve_arch(exp.model.arch)
    if family_of(arch).name != exp.family.name:  # the task's family, or the base of a task variant
        raise ConfigError(f"model.arch is a {type(arch).__name__} ({family_of(arch).task}) but the task is {exp.task}")
    torch.manual_seed(exp.train.seed)
    return build_model(arch, task.model_config(exp.model.config))
