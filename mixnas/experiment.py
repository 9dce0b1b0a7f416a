"""An experiment config: task + data + model + training + evaluation, validated on load.

    task: classification            # or translation
    data: {name: digits, batch_size: 128}
    model: {arch: vit_digits_softmax, config: {patch_size: 2}}
    train: {max_updates: 300, lr: 0.002, lr_scheduler: cosine, warmup_updates: 30, save_dir: runs/x}
    eval: {split: test, average_last: 1}

`model.arch` is a preset name (mixnas/configs/archs/NAME.yaml) or a path to an arch.yaml
(bare, or the {"arch": ..., "config": ...} file of an exported model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from .dataconf import ConfigError, apply_overrides, from_dict, load_yaml, resolve_preset, to_dict
from .models import build_model
from .space.arch import Arch, arch_from_dict
from .tasks.translation.task import TranslationTask, TranslationTaskConfig
from .tasks.vision.task import ClassificationDataConfig, ClassificationTask
from .train import TrainConfig

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass
class ModelSection:
    arch: str  # preset name or path
    config: dict[str, Any] = field(default_factory=dict)  # TransformerConfig / ViTConfig fields


@dataclass
class EvalSection:
    split: str = "test"
    average_last: int = 1  # average the weights of the last K checkpoints (HAT/fairseq use 10)
    limit: int | None = None  # evaluate the first N examples only


@dataclass
class Experiment:
    task: Literal["translation", "classification"]
    model: ModelSection
    data: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_updates=1000))
    eval: EvalSection = field(default_factory=EvalSection)

    def data_config(self) -> TranslationTaskConfig | ClassificationDataConfig:
        return data_config_for(self.task, self.data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def data_config_for(task: str, data: dict[str, Any]) -> TranslationTaskConfig | ClassificationDataConfig:
    """The typed `data` section of an experiment or pipeline config for `task`."""
    cls = TranslationTaskConfig if task == "translation" else ClassificationDataConfig
    return from_dict(cls, data, "data")


def load_experiment(path_or_name: str, overrides: list[str] = ()) -> Experiment:
    path = resolve_preset(path_or_name, CONFIG_DIR / "experiments", "experiment config")
    exp = from_dict(Experiment, apply_overrides(load_yaml(path), list(overrides)))
    exp.data_config()  # validate the data section now, not after minutes of work
    return exp


def resolve_arch(name_or_path: str) -> Arch:
    path = Path(name_or_path)
    if not path.is_file():
        preset = CONFIG_DIR / "archs" / f"{name_or_path}.yaml"
        if not preset.is_file():
            names = sorted(p.stem for p in (CONFIG_DIR / "archs").glob("*.yaml"))
            raise ConfigError(f"model.arch {name_or_path!r} is neither a file nor a preset ({', '.join(names)})")
        path = preset
    data = load_yaml(path)
    return arch_from_dict(data["arch"] if "arch" in data and "type" not in data else data)


def build_task(exp: Experiment) -> TranslationTask | ClassificationTask:
    cfg = exp.data_config()
    return TranslationTask(cfg) if exp.task == "translation" else ClassificationTask(cfg)


def build_experiment_model(exp: Experiment, task, arch: Arch | None = None):
    """The model of `exp` (or of `arch`), initialised from the experiment's seed."""
    arch = arch or resolve_arch(exp.model.arch)
    if arch.task != task.kind:
        raise ConfigError(f"model.arch is a {type(arch).__name__} ({arch.task}) but the task is {task.kind}")
    torch.manual_seed(exp.train.seed)
    return build_model(arch, task.model_config(exp.model.config))
