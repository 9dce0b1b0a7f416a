"""A pipeline config: task + data + model config + supernet training + collection, validated on load.

    task: classification
    data: {name: digits, batch_size: 64}
    model: {config: {patch_size: 2, pool: mean}}
    run_dir: runs/digits          # supernet/ (checkpoints, supernet.pt, space.yaml), collect.csv
    seed: 1                       # one seed for everything: weights, data order, sampled archs
    supernet: {space: digits_vit, sandwich: false, early_stop_tau: 0.9, train: {max_updates: 600, ...}}
    collect: {num_archs: 2000, score_limit: 300, latency: true}

Loaded like experiments: a preset name (mixnas/configs/pipelines/NAME.yaml) or a YAML path,
then `key=value` overrides (e.g. supernet.train.max_updates=50). The supernet's
`train.save_dir` and `train.seed` come from `run_dir` and `seed` (set those instead).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..dataconf import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from ..train import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
_DEFAULT_TRAIN = TrainConfig(max_updates=1)  # only to detect save_dir/seed set by the user


@dataclass
class ModelSection:
    config: dict[str, Any] = field(default_factory=dict)  # ViTConfig / TransformerConfig fields


@dataclass
class SupernetSection:
    space: str = "digits_vit"           # preset name (mixnas/configs/spaces) or a YAML path
    share_projections: bool = False     # False: each attention kind owns its projections (the paper)
    sandwich: bool = False              # per update: largest + smallest + random sub-network
    early_stop_tau: float = 0.0         # RankNAS early stop: tau between consecutive rankings; 0 disables
    early_stop_archs: int = 200         # the fixed list of architectures ranked at each validation
    score_limit: int | None = 500       # validation examples (classification) / batches (translation)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_updates=1000))

    def validate(self) -> None:
        if self.early_stop_tau and self.early_stop_archs < 2:
            raise ConfigError(f"supernet.early_stop_archs must be >= 2 to rank, got {self.early_stop_archs}")
        if self.score_limit is not None and self.score_limit < 1:
            raise ConfigError(f"supernet.score_limit must be >= 1 (or null for the whole split), got {self.score_limit}")


@dataclass
class CollectSection:
    num_archs: int = 2000               # random sub-networks scored with inherited weights
    score_limit: int | None = 500       # validation examples (classification) / batches (translation)
    latency: bool = True                # measure each extracted model (batch 1, HAT protocol)
    latency_runs: int = 20
    latency_warmup: int = 5
    latency_device: str = "cpu"
    latency_threads: int | None = 1     # fixed threads: timings comparable across runs
    chunk: int = 20                     # rows per atomic CSV write (a kill loses at most one chunk)

    def validate(self) -> None:
        if self.num_archs < 1:
            raise ConfigError(f"collect.num_archs must be >= 1, got {self.num_archs}")
        if self.latency_runs < 1 or self.latency_warmup < 0 or self.chunk < 1:
            raise ConfigError("collect.latency_runs and collect.chunk must be >= 1, collect.latency_warmup >= 0")
        if self.score_limit is not None and self.score_limit < 1:
            raise ConfigError(f"collect.score_limit must be >= 1 (or null for the whole split), got {self.score_limit}")


@dataclass
class PipelineConfig:
    task: Literal["translation", "classification"]
    data: dict[str, Any] = field(default_factory=dict)
    model: ModelSection = field(default_factory=ModelSection)
    run_dir: str = "runs/pipeline"
    seed: int = 1
    supernet: SupernetSection = field(default_factory=SupernetSection)
    collect: CollectSection = field(default_factory=CollectSection)

    def validate(self) -> None:
        train = self.supernet.train
        for name, value in (("save_dir", self.supernet_dir), ("seed", self.seed)):
            given, default = getattr(train, name), getattr(_DEFAULT_TRAIN, name)
            if given != default and given != type(default)(value):
                top = "run_dir" if name == "save_dir" else "seed"
                raise ConfigError(f"supernet.train.{name} is derived from {top}; set {top} instead")
        self.supernet.train = dataclasses.replace(train, save_dir=str(self.supernet_dir), seed=self.seed)

    @property
    def supernet_dir(self) -> Path:
        return Path(self.run_dir) / "supernet"

    def data_config(self):
        from ..tasks.translation.task import TranslationTaskConfig
        from ..tasks.vision.task import ClassificationDataConfig
        cls = TranslationTaskConfig if self.task == "translation" else ClassificationDataConfig
        return from_dict(cls, self.data, "data")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_pipeline_config(path_or_name: str, overrides: list[str] = ()) -> PipelineConfig:
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / "pipelines" / f"{path_or_name}.yaml"
        if not path.is_file():
            names = sorted(p.stem for p in (CONFIG_DIR / "pipelines").glob("*.yaml"))
            raise ConfigError(f"no pipeline config {path_or_name!r}: give a YAML path or one of {', '.join(names)}")
    cfg = from_dict(PipelineConfig, apply_overrides(load_yaml(path), list(overrides)))
    cfg.data_config()  # validate the data section now, not after minutes of work
    return cfg
