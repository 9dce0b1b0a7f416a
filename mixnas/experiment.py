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
from .models.config import check_model_config
from .space.arch import Arch, arch_from_dict
from .tasks.translation.task import TranslationTask, TranslationTaskConfig
from .tasks.vision.data import SPLITS as IMAGE_SPLITS
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
    # Validate what can be checked without the data now, not after minutes of training.
    exp.data_config()
    check_model_config(exp.task, exp.model.config)
    check_split(exp.eval.split, exp)
    return exp


def check_split(split: str, exp: Experiment, key: str = "eval.split") -> str:
    """`split` if the experiment's data has it, else a ConfigError naming `key` and the splits."""
    return check_split_of(exp.task, exp.data_config(), split, key)


def check_split_of(task: str, data: TranslationTaskConfig | ClassificationDataConfig, split: str, key: str) -> str:
    """The same for a task and its typed data section (experiments and pipeline configs)."""
    names = split_names(task, data)
    if names is not None and split not in names:
        where = f" in {data.dir}" if task == "translation" else ""
        raise ConfigError(f"{key}: {split!r} is not a split of this data ({', '.join(names) or 'none'}{where})")
    return split


def split_names(task: str, data: TranslationTaskConfig | ClassificationDataConfig) -> list[str] | None:
    """The splits a task can evaluate on: train/val/test for classification; for translation the
    `{split}.{src_lang}` files in data.dir (None while that directory does not exist: the data
    loader reports that itself, with its fix)."""
    if task == "classification":
        return list(IMAGE_SPLITS)
    directory = Path(data.dir)
    if not directory.is_dir():
        return None
    return sorted(p.name[: -len(data.src_lang) - 1] for p in directory.glob(f"*.{data.src_lang}")
                  if p.is_file() and not p.name.startswith("."))


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
