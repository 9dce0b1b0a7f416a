"""What a model family is: everything specific to one model shape, behind one small interface.

A family bundles the architecture type, its search space, the standalone model and the
supernet (which share one forward), the cost formulas, the latency workload, and the task glue
(data, loss, metric). The pipeline, `mixnas train/evaluate/cost`, the report and the searches
talk to a family only through `Family` and the task object it builds, and never branch on
which family it is. A family is a package under `mixnas/families/` whose `__init__.py` calls
`register(TheFamily())`; its presets live in its own `configs/{archs,spaces,experiments,
pipelines}` folders. `mixnas/families/lm/` is the worked example of adding one.

The task object a family builds (`build_task`) provides:
    model_config(overrides: dict) -> config   model.config completed from the data (vocabulary...)
    training_task(model, seed, *, validate_split="val", before_step=None) -> TrainingTask
    score_metrics(model, limit) -> dict       validation metrics on a fixed head of the val split
    score_key() -> (metric name, higher_is_better)   what a search optimises among score_metrics
    evaluate(model, split, limit) -> dict     the full evaluation; holds `Family.test_metric`
    distill_mask(batch) -> bool Tensor | None which output positions count in distillation

A trained model is used through `save_assets` (what `save_model(model, dir, task=task)` writes
beside the weights so the model needs no data, cache or run directory: a tokenizer, the
normalisation...) and `inference` (the object `mixnas.load(dir)` returns: `translate`, `predict`,
`generate`...). Both have safe defaults: nothing to save, no inference API.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar


@dataclass(frozen=True)
class ExportProgram:
    """What `mixnas export` traces (`Family.export_program`): `module(*args)` with example
    `args`, `dynamic_shapes` as torch.export takes them (one entry per argument) and the names of
    the inputs and outputs in the ONNX graph."""

    module: Any
    args: tuple
    dynamic_shapes: tuple
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


class Family:
    """Subclass, set the class attributes and implement the methods that raise below."""

    name: ClassVar[str]                  # the `type:` key of its architectures and search spaces
    task: ClassVar[str]                  # the `task:` key of experiment and pipeline configs
    arch_class: ClassVar[type]           # typed architecture: to_dict() / from_dict(d)
    space_class: ClassVar[type]          # a mixnas.space.SearchSpace subclass
    data_config_class: ClassVar[type]    # the typed `data:` section (a dataclass)
    model_config_class: ClassVar[type]   # the typed `model.config` (a dataclass with from_dict, RULES)
    test_metric: ClassVar[str]           # the report's metric of a retrained model (a key of evaluate)
    test_higher_is_better: ClassVar[bool] = True
    val_metrics: ClassVar[tuple[str, ...]] = ("loss",)  # score_metrics keys kept by `collect`
    # A task variant: another task for the SAME models. It subclasses a registered family, keeps
    # its `name` and model side (arch, space, model, supernet, cost, export) and sets only the
    # task side (`task`, data_config_class, test_metric, test_higher_is_better, val_metrics,
    # build_task, split_names; presets in its own configs/). The registry gives the base for a
    # name or a model (`family_named`, `family_of`) and the variant for its task (`family_for_task`).
    variant: ClassVar[bool] = False
    # Options of FLOPs and latency (sequence lengths, beam...): name -> default. `mixnas cost
    # --option name=value` and the latency protocol take them.
    cost_options: ClassVar[dict[str, int]] = {}
    # Why latency cannot be measured on ONNX Runtime (`measure_latency(runtime="onnxruntime")`);
    # None for a family whose `onnxruntime_workload` runs its latency workload. A class
    # attribute, so the pipeline config refuses collect.latency_runtime: onnxruntime before any work.
    onnxruntime_unsupported: ClassVar[str | None] = "no ONNX Runtime latency workload is written for it"

    # ------------------------------------------------------------ building
    def build_task(self, data_config: Any) -> Any:
        raise NotImplementedError

    def build_model(self, arch: Any, config: Any) -> Any:
        """The standalone model (an nn.Module with `.arch` and `.config`)."""
        raise NotImplementedError

    def build_supernet(self, space: Any, config: Any, share_projections: bool = False) -> Any:
        """The weight-sharing supernet of `space`: set_arch(arch), extract(arch), forward as the model."""
        raise NotImplementedError

    def split_names(self, data_config: Any) -> list[str] | None:
        """The splits `evaluate` accepts (None while they cannot be known yet)."""
        return ["train", "val", "test"]

    # ------------------------------------------------------------ using a trained model
    def save_assets(self, task: Any, directory: Any) -> None:
        """Write into the model directory `directory` (a Path, already holding arch.yaml and
        model.pt) what turns raw inputs into the model's inputs and back, taken from `task`.
        Default: nothing (the model config holds all a model needs)."""

    def inference(self, model: Any, directory: Any) -> Any:
        """The family's inference object for `model` (loaded from `directory`, whose assets
        `save_assets` wrote). Assets missing in `directory`: a ValueError naming the file."""
        raise ValueError(f"no inference API for this family ({self.name} models, task {self.task})")

    def export_program(self, model: Any) -> ExportProgram:
        """What `mixnas export` writes of `model` (a standalone model in eval mode): the
        module, example inputs and dynamic dimensions; or {part name: ExportProgram} for a model
        exported as several programs (each written to `<stem>.<part><suffix>`). Traced inside
        `mixnas.attention.export_mode()`. Default: not supported (a one-line ValueError)."""
        raise ValueError(f"export is not supported for {self.name} models yet")

    # ------------------------------------------------------------ cost
    def params_breakdown(self, arch: Any, config: Any) -> dict[str, int]:
        """Parameters of the standalone model per named part (mixnas.cost.EMBEDDING_PARTS are
        the embedding parts that `include_embeddings=False` leaves out)."""
        raise NotImplementedError

    def flops_breakdown(self, arch: Any, config: Any, **options: int) -> dict[str, int]:
        """Forward FLOPs of one example per named part (2 x multiply-adds of matrix products,
        as torch's FlopCounterMode counts), at `cost_options` (defaults filled in)."""
        raise NotImplementedError

    def cost_report(self, arch: Any, config: Any, **options: int) -> dict[str, Any]:
        """The FLOPs entries of `mixnas cost` at `options` (params are added by the caller);
        for a family that decodes (defines `decode_flops_breakdown`), also the FLOPs of its
        decoding workload and the bytes of its fp32 decoding state."""
        from mixnas.cost.flops import total
        o = self.options(options)
        parts = self.flops_breakdown(arch, config, **o)
        report = {**o, "flops": total(parts, True), "flops_without_embeddings": total(parts, False)}
        if self.decodes:
            decode = self.decode_flops_breakdown(arch, config, **o)
            report.update(decode_flops=total(decode, True), decode_flops_without_embeddings=total(decode, False),
                          decode_state_bytes=self.decode_state_bytes(arch, config, **o))
        return report

    @property
    def decodes(self) -> bool:
        """Whether the family decodes token by token (defines `decode_flops_breakdown`)."""
        return hasattr(self, "decode_flops_breakdown")

    def decode_state_bytes(self, arch: Any, config: Any, **options: int) -> int | None:
        """Bytes of one sequence's fp32 decoding state at `options`; None for a family that
        does not decode."""
        return 4 * sum(self.decode_state_breakdown(arch, config, **options).values()) if self.decodes else None

    def decode_state_breakdown(self, arch: Any, config: Any, **options: int) -> dict[str, int]:
        """Values (fp32 numbers) one sequence's decoding state holds per named part at
        `cost_options` (e.g. after seq_len tokens): KV caches grow with the length, linear
        attention sums do not. Default: the family does not decode (a one-line ValueError)."""
        raise ValueError(f"{self.name} models do not decode token by token: they have no decoding state")

    def length_options(self, length: int) -> dict[str, int]:
        """The cost options that put a model at sequence length `length` (`mixnas cost
        --lengths`). Default: the family has no variable length (a one-line ValueError)."""
        raise ValueError(f"{self.name} models have no sequence length to vary")

    def at_length(self, options: dict[str, int], length: int) -> dict[str, int]:
        """Cost `options` (defaults filled in) with the sequence length set to `length`."""
        return self.options({**options, **self.length_options(length)})

    def length_of(self, options: dict[str, int]) -> int:
        """The sequence length that cost `options` put a model at (`length_options` read
        backwards); a one-line ValueError when its length options disagree (src_len != tgt_len)."""
        o = self.options(options)
        values = {o[key] for key in self.length_options(1)}
        if len(values) != 1:
            raise ValueError(f"cost options {o} set no single sequence length ({', '.join(self.length_options(1))} "
                             f"differ); set them equal")
        return values.pop()

    def latency_workload(self, model: Any, generator: Any, device: Any,
                         **options: int) -> tuple[Callable[[], Any], dict[str, Any]]:
        """(function running one measured inference at batch 1, its protocol description)."""
        raise NotImplementedError

    def onnxruntime_workload(self, model: Any, open_sessions: Callable[[], dict], generator: Any,
                             **options: int) -> tuple[Callable[[], Any], dict[str, Any]]:
        """`latency_workload` on ONNX Runtime: the SAME inference (inputs drawn from `generator`
        alike, the same protocol description) through the model's exported programs.
        `open_sessions()` exports the model and returns {part: onnxruntime.InferenceSession}
        (part None for a one-program family, else `export_program`'s names); it is a function so
        that nothing is exported before the options are checked. Default: a one-line ValueError."""
        raise ValueError(self.onnxruntime_error())

    def onnxruntime_error(self) -> str | None:
        """The one-line reason latency on onnxruntime is refused for this family, or None."""
        if self.onnxruntime_unsupported is None:
            return None
        return f"{self.name} latency on onnxruntime is not supported yet: {self.onnxruntime_unsupported}"

    # ------------------------------------------------------------ helpers for subclasses
    def options(self, given: dict[str, int]) -> dict[str, int]:
        """`cost_options` with `given` applied; unknown names and non-positive values are errors."""
        unknown = sorted(set(given) - set(self.cost_options))
        if unknown:
            allowed = ", ".join(self.cost_options) or "none"
            raise ValueError(f"{self.name} models take no cost option {unknown[0]!r} (options: {allowed})")
        merged = {**self.cost_options, **given}
        for key, value in merged.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"cost option {key} must be a positive integer, got {value!r}")
        return merged

    def __repr__(self) -> str:
        return f"<family {self.name!r} (task {self.task!r})>"
