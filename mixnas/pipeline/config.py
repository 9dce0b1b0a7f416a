"""A pipeline config: task + data + model config + supernet training + collection, validated on load.

    task: classification
    data: {name: digits, batch_size: 64}
    model: {config: {patch_size: 2, pool: mean}}
    run_dir: runs/digits          # supernet/ (checkpoints, supernet.pt, space.yaml), collect.csv
    seed: 1                       # one seed for everything: weights, data order, sampled archs
    supernet: {space: digits_vit, sandwich: false, early_stop_tau: 0.9, train: {max_updates: 600, ...}}
    collect: {num_archs: 2000, score_limit: 300, latency: true}
    predictor: {score: gbdt, latency: mlp, test_fraction: 0.2, score_options: {num_leaves: 30}}
    search: {objective: predicted, evolution: {generations: 30, population: 125}, constraints: {flops: 2.0e6}}
    retrain: {split: test, top_k: 1, train: {max_updates: 600, ...}}
    rank_check: {enabled: true, k: 8, updates: 300}   # inherited vs from-scratch ranking
    baselines: [vit_digits_softmax, vit_digits_cosformer]
    threads: 1                    # torch intra-op threads for every step (null: torch's default)

Loaded like experiments: a preset name (NAME.yaml under a family's configs/pipelines/) or a YAML path,
then `key=value` overrides (e.g. supernet.train.max_updates=50). The supernet's
`train.save_dir` and `train.seed` come from `run_dir` and `seed` (set those instead); so do
the retraining runs' (run_dir/retrain/<name>/).

Constraints: `latency_ms` is the latency predictor's value (batch 1, the collect step's
protocol and device); `flops` and `params` are analytic and count WITHOUT embeddings and the
output layer (for translation also without the output projection; for ViT without the patch
embedding and the classifier head), as HAT reports them. Each is optional (null: no limit).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..dataconf import ConfigError, ModelSection, apply_overrides, from_dict, load_yaml, resolve_preset, to_dict
from ..search.evolution import EvolutionConfig
from ..train import TrainConfig

_DEFAULT_TRAIN = TrainConfig(max_updates=1)  # only to detect save_dir/seed set by the user


@dataclass
class SupernetSection:
    space: str = "digits_vit"           # preset name (a family's configs/spaces) or a YAML path
    share_projections: bool = False     # False: each attention kind owns its projections (the paper)
    sandwich: bool = False              # per update: largest + smallest + random sub-network
    distill: bool = False               # in-place distillation (needs sandwich): smaller ones learn the largest's outputs
    early_stop_tau: float = 0.0         # RankNAS early stop: tau between consecutive rankings; 0 disables
    early_stop_archs: int = 200         # the fixed list of architectures ranked at each validation
    score_limit: int | None = 500       # validation examples (classification) / batches (translation)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_updates=1000))

    def validate(self) -> None:
        if self.distill and not self.sandwich:
            raise ConfigError("supernet.distill needs supernet.sandwich: true (the largest sub-network, trained "
                              "on the labels, is the teacher); set supernet.sandwich=true or supernet.distill=false")
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
    # oncpu: wall time minus the measuring thread's waits for a CPU (Linux schedstat); cpu: its CPU
    # time. Both need latency_threads: 1 and a CPU device, and leave out the time other processes
    # hold the cores; wall (HAT's; use it on CUDA) does not. See mixnas/cost/latency.py.
    latency_clock: Literal["oncpu", "cpu", "wall"] = "oncpu"
    latency_stat: Literal["min", "median", "trimmed_mean"] = "min"  # of the timed runs (HAT: trimmed_mean)
    # pytorch: the extracted model's modules; onnxruntime: its ONNX export in ONNX Runtime on the
    # CPU (the deployment runtime; latency_threads intra-op threads). See mixnas/cost/onnxruntime.py.
    latency_runtime: Literal["pytorch", "onnxruntime"] = "pytorch"
    # Sequence lengths at which each architecture's latency is also measured (latency_ms@L
    # columns); the latency predictor then takes the length as a feature, is validated on
    # held-out lengths, and predicts the latency at the pipeline's cost length. Empty: none.
    latency_lengths: list[int] = field(default_factory=list)
    chunk: int = 20                     # rows per atomic CSV write (a kill loses at most one chunk)

    def validate(self) -> None:
        if self.num_archs < 1:
            raise ConfigError(f"collect.num_archs must be >= 1, got {self.num_archs}")
        if self.latency_runs < 1 or self.latency_warmup < 0 or self.chunk < 1:
            raise ConfigError("collect.latency_runs and collect.chunk must be >= 1, collect.latency_warmup >= 0")
        if self.latency_threads is not None and self.latency_threads < 1:
            raise ConfigError(f"collect.latency_threads must be >= 1 (or null), got {self.latency_threads}")
        if len(set(self.latency_lengths)) != len(self.latency_lengths) or len(self.latency_lengths) == 1:
            raise ConfigError(f"collect.latency_lengths must be two or more distinct lengths (or empty), "
                              f"got {self.latency_lengths}")
        if self.latency_lengths and not self.latency:
            raise ConfigError("collect.latency_lengths needs collect.latency: true")
        if self.latency and self.latency_runtime == "onnxruntime" and self.latency_device.split(":")[0] != "cpu":
            raise ConfigError(f"collect.latency_runtime: onnxruntime runs on the CPU (CPUExecutionProvider), not on "
                              f"latency_device: {self.latency_device}; set collect.latency_device: cpu or "
                              f"collect.latency_runtime: pytorch")
        if self.latency and self.latency_clock != "wall":
            clock = f"collect.latency_clock: {self.latency_clock}"
            if self.latency_device.split(":")[0] != "cpu":
                raise ConfigError(f"{clock} (the host thread's time) means nothing on latency_device: "
                                  f"{self.latency_device}; set collect.latency_clock: wall")
            if self.latency_threads != 1:
                raise ConfigError(f"{clock} times the measuring thread only and needs collect.latency_threads: 1 "
                                  f"(got {self.latency_threads}); or set latency_clock: wall")
        if self.score_limit is not None and self.score_limit < 1:
            raise ConfigError(f"collect.score_limit must be >= 1 (or null for the whole split), got {self.score_limit}")

    def latency_options(self) -> dict[str, Any]:
        """The collect.latency_* protocol as keyword arguments of mixnas.cost.measure_latency."""
        return {"runtime": self.latency_runtime, "device": self.latency_device, "threads": self.latency_threads,
                "clock": self.latency_clock, "stat": self.latency_stat, "warmup": self.latency_warmup,
                "runs": self.latency_runs}


@dataclass
class PredictorSection:
    score: str = "gbdt"                        # a registered predictor kind; RankNAS: LightGBM gbdt
    latency: str = "mlp"                       # HAT: MLP; fitted on log(latency) (its log_target: true)
    test_fraction: float = 0.2                 # held out for tau / RMSE / MAPE
    # Hyper-parameters of each kind's Options (mixnas/predictors/<kind>.py), e.g. {num_leaves: 20}
    # for gbdt; empty: the defaults.
    score_options: dict[str, Any] = field(default_factory=dict)
    latency_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from ..predictors import predictor_kinds, predictor_options
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"predictor.test_fraction must be in (0, 1), got {self.test_fraction}")
        for which in ("score", "latency"):
            kind = getattr(self, which)
            if kind not in predictor_kinds():
                raise ConfigError(f"predictor.{which}: {kind!r} is not one of the registered predictor kinds: "
                                  f"{', '.join(predictor_kinds())}")
            predictor_options(kind, self.options(which), f"predictor.{which}_options")

    def options(self, which: str) -> dict[str, Any]:
        """The options the `score` or `latency` predictor is built with: the latency one fits
        log(latency) unless latency_options says log_target: false."""
        from ..predictors import get_predictor_class
        given = dict(getattr(self, f"{which}_options"))
        fields = {f.name for f in dataclasses.fields(get_predictor_class(getattr(self, which)).Options)}
        return {"log_target": True, **given} if which == "latency" and "log_target" in fields else given


@dataclass
class ConstraintsSection:
    """Limits stated at the pipeline's `cost` options (e.g. the sequence length)."""
    latency_ms: float | None = None   # predicted latency (needs collect.latency: true)
    flops: float | None = None        # forward FLOPs of one example, without embeddings
    params: float | None = None       # parameters without embeddings
    decode_state_bytes: float | None = None  # fp32 decoding state of one sequence (KV caches, linear sums)

    def validate(self) -> None:
        for name in LIMITS:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"search.constraints.{name} must be > 0 (or null for no limit), got {value}")

    def limits(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in LIMITS if getattr(self, k) is not None}


LIMITS = ("latency_ms", "flops", "params", "decode_state_bytes")


@dataclass
class RandomSearchSection:
    """The random-search control on the mixed space: same objective and constraints."""
    enabled: bool = True
    budget: int | None = None          # distinct archs to evaluate; null: as many as the mixed evolution search

    def validate(self) -> None:
        if self.budget is not None and self.budget < 1:
            raise ConfigError(f"search.random.budget must be >= 1 (or null for the evolution's count), "
                              f"got {self.budget}")


@dataclass
class NSGA2Section:
    """NSGA-II Pareto front of predicted score vs search.pareto_x; generations include the first."""
    enabled: bool = False
    population: int = 100
    generations: int = 30

    def validate(self) -> None:
        if self.population < 4 or self.generations < 1:
            raise ConfigError(f"search.nsga2.population must be >= 4 and search.nsga2.generations >= 1, "
                              f"got {self.population} and {self.generations}")


@dataclass
class SearchSection:
    objective: Literal["predicted", "inherited"] = "predicted"  # score predictor or supernet weights
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)  # HAT / RankNAS defaults; seed from `seed`
    constraints: ConstraintsSection = field(default_factory=ConstraintsSection)
    restricted: bool = True            # also search the single-kind sub-spaces of restricted_kinds
    restricted_kinds: list[str] = field(default_factory=lambda: ["softmax", "cosformer"])  # the paper's; those the space offers
    random: RandomSearchSection = field(default_factory=RandomSearchSection)
    nsga2: NSGA2Section = field(default_factory=NSGA2Section)
    pareto_x: Literal["flops", "latency"] = "flops"

    def validate(self) -> None:
        from ..attention import kinds
        unknown = [k for k in self.restricted_kinds if k not in kinds()]
        if unknown:
            raise ConfigError(f"search.restricted_kinds: {unknown[0]!r} is not a registered attention kind "
                              f"({', '.join(kinds())})")
        if self.evolution.seed != EvolutionConfig().seed:
            raise ConfigError("search.evolution.seed is derived from seed; set seed instead")


@dataclass
class RetrainSection:
    split: str = "test"                # where the retrained models are scored
    top_k: int = 1                     # best distinct archs of the mixed search to retrain
    seeds: int = 2                     # every row is retrained with seeds seed, seed+1, ...; mean ± std reported
    workers: int = 1                   # retrainings run at once, each in its own process with `threads` threads
    average_last: int = 1              # evaluate the average of the last K checkpoints (HAT: 10)
    # Sequence lengths at which every row's latency and decoding-state memory are also reported
    # (latency_by_length / memory_by_length), e.g. [256, 512, 1024, 2048, 4096]; empty: none.
    lengths: list[int] = field(default_factory=list)
    # The mixed search's best architecture retrained with softmax placed by fixed rules (rows
    # fixed-<pattern>, equal widths and depth; see pipeline/patterns.py), e.g. [1in2, 1in4,
    # first-last, all-softmax, all-linear]; `fixed_main` is the kind the rule places (softmax, or
    # relative where the space's full-attention layers are relative-position softmax),
    # `fixed_other` the kind everywhere else.
    fixed_patterns: list[str] = field(default_factory=list)
    fixed_main: str = "softmax"
    fixed_other: str = "linear"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_updates=1000))

    def validate(self) -> None:
        from ..attention import kinds
        from .patterns import check_pattern
        if self.top_k < 1:
            raise ConfigError(f"retrain.top_k must be >= 1, got {self.top_k}")
        for pattern in self.fixed_patterns:
            try:
                check_pattern(pattern)
            except ValueError as e:
                raise ConfigError(f"retrain.fixed_patterns: {e}") from None
        for key in ("fixed_main", "fixed_other"):
            if getattr(self, key) not in kinds():
                raise ConfigError(f"retrain.{key}: {getattr(self, key)!r} is not a registered attention kind "
                                  f"({', '.join(kinds())})")
        if self.seeds < 1:
            raise ConfigError(f"retrain.seeds must be >= 1, got {self.seeds}")
        if self.workers < 1:
            raise ConfigError(f"retrain.workers must be >= 1, got {self.workers}")


@dataclass
class RankCheckSection:
    """Does the supernet rank architectures like training from scratch? (pipeline/rank_check.py)"""
    enabled: bool = False              # a step of `mixnas run`
    k: int = 8                         # architectures, stratified over FLOPs and attention kinds
    updates: int = 300                 # training updates of each, from scratch

    def validate(self) -> None:
        if self.enabled and self.k < 2:
            raise ConfigError(f"rank_check.k must be >= 2 to rank architectures, got {self.k}")
        if self.updates < 1:
            raise ConfigError(f"rank_check.updates must be >= 1, got {self.updates}")


@dataclass
class PipelineConfig:
    task: str  # a registered family's task: translation, classification, ...
    data: dict[str, Any] = field(default_factory=dict)
    model: ModelSection = field(default_factory=ModelSection)
    run_dir: str = "runs/pipeline"
    seed: int = 1
    supernet: SupernetSection = field(default_factory=SupernetSection)
    collect: CollectSection = field(default_factory=CollectSection)
    predictor: PredictorSection = field(default_factory=PredictorSection)
    search: SearchSection = field(default_factory=SearchSection)
    retrain: RetrainSection = field(default_factory=RetrainSection)
    rank_check: RankCheckSection = field(default_factory=RankCheckSection)
    baselines: list[str] = field(default_factory=list)  # arch presets (a family's configs/archs) or paths
    threads: int | None = None  # torch.set_num_threads for every step; 1 for tiny CPU models
    # The family's cost options (`mixnas cost --option`) at which FLOPs, the decoding state,
    # latency and every constraint are stated, e.g. {seq_len: 2048}: a language model's cost per
    # generated token at a long context. Empty: the family's defaults (Family.cost_options).
    cost: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        from ..families import family_for_task
        family_for_task(self.task)  # one line naming the registered tasks
        if self.model.arch is not None:
            raise ConfigError("model.arch is not used by a pipeline (the search chooses architectures); remove it "
                              "and list fixed architectures under `baselines`")
        train = self.supernet.train
        for name, value in (("save_dir", self.supernet_dir), ("seed", self.seed)):
            given, default = getattr(train, name), getattr(_DEFAULT_TRAIN, name)
            if given != default and given != type(default)(value):
                top = "run_dir" if name == "save_dir" else "seed"
                raise ConfigError(f"supernet.train.{name} is derived from {top}; set {top} instead")
        self.supernet.train = dataclasses.replace(train, save_dir=str(self.supernet_dir), seed=self.seed)
        if self.retrain.train.save_dir != _DEFAULT_TRAIN.save_dir or self.retrain.train.seed != _DEFAULT_TRAIN.seed:
            raise ConfigError("retrain.train.save_dir and retrain.train.seed are derived from run_dir and seed; "
                              "set those instead")
        if self.search.constraints.latency_ms is not None and not self.collect.latency:
            raise ConfigError("search.constraints.latency_ms needs measured latencies for the latency predictor; "
                              "set collect.latency: true")
        if self.search.pareto_x == "latency" and not self.collect.latency:
            raise ConfigError("search.pareto_x: latency needs collect.latency: true (or use pareto_x: flops)")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or null for torch's default), got {self.threads}")
        family = family_for_task(self.task)
        try:
            family.options(self.cost)
        except ValueError as e:
            raise ConfigError(f"cost: {e}") from None
        for length in [*self.collect.latency_lengths, *self.retrain.lengths]:
            try:
                family.at_length(self.cost, length)
            except ValueError as e:
                raise ConfigError(f"collect.latency_lengths / retrain.lengths: {e}") from None
        if self.search.constraints.decode_state_bytes is not None and not family.decodes:
            raise ConfigError(f"search.constraints.decode_state_bytes: {family.name} models do not decode; remove it")
        unsupported = family_for_task(self.task).onnxruntime_error()
        if self.collect.latency and self.collect.latency_runtime == "onnxruntime" and unsupported:
            raise ConfigError(f"collect.latency_runtime: onnxruntime: {unsupported}")

    @property
    def supernet_dir(self) -> Path:
        return Path(self.run_dir) / "supernet"

    def cost_options(self, length: int | None = None) -> dict[str, int]:
        """`cost` with the family's defaults filled in, and the sequence length set to `length`
        when given (collect.latency_lengths, retrain.lengths)."""
        from ..families import family_for_task
        family = family_for_task(self.task)
        return family.options(self.cost) if length is None else family.at_length(self.cost, length)

    def data_config(self):
        from ..experiment import data_config_for  # lazy: experiment imports models and tasks
        return data_config_for(self.task, self.data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_pipeline_config(path_or_name: str, overrides: list[str] = ()) -> PipelineConfig:
    """A pipeline preset (a family's configs/pipelines) or YAML path, with `key=value`
    overrides (e.g. supernet.train.max_updates=50), typed and checked before any work starts."""
    from ..experiment import check_split_of  # lazy: experiment imports models and tasks
    from ..families import family_for_task
    from ..models.config import check_model_config
    path = resolve_preset(path_or_name, "pipelines", "pipeline config")
    cfg = from_dict(PipelineConfig, apply_overrides(load_yaml(path), list(overrides)))
    # Validate what can be checked without the data now, not after minutes of work.
    data = cfg.data_config()
    check_model_config(family_for_task(cfg.task).model_config_class, cfg.model.config)
    check_split_of(cfg.task, data, cfg.retrain.split, "retrain.split")
    return cfg
