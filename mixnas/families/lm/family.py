"""Decoder-only character language model: what the pipeline needs to know about it.

Architecture `LMArch`, space `LMSpace`, model `LM`, supernet `SupernetLM`, task
`LanguageModelingTask` (character-level text such as Tiny Shakespeare; the report's metric is
the test loss in nats per character, lower is better). Cost option `seq_len` (default 64):
forward FLOPs are of a causal (prefill) forward over seq_len tokens; decoding FLOPs, decoding
state and latency are of ONE incremental step at position seq_len - 1 (seq_len - 1 earlier
tokens in the attention state, batch 1): what a long context costs per generated token, where
a softmax layer's cache grows and a linear layer's sums do not. Latency is measured in PyTorch
only: on onnxruntime it is not supported yet, because the export has no incremental step.
"""
from __future__ import annotations

from typing import Any

from ..family import Family
from .arch import LMArch
from .config import LMConfig
from .data import LMDataConfig
from .space import LMSpace


class LMFamily(Family):
    name = "lm"
    task = "language-modeling"
    arch_class = LMArch
    space_class = LMSpace
    data_config_class = LMDataConfig
    model_config_class = LMConfig
    test_metric = "loss"
    test_higher_is_better = False
    val_metrics = ("loss", "bpc")
    cost_options = {"seq_len": 64}
    # Latency decodes seq_len tokens one at a time from a state; the export (`export_program`) is
    # the full causal forward only, and re-running it over the growing prefix per token would time
    # another (quadratic) workload than PyTorch's.
    onnxruntime_unsupported = ("its ONNX export is the full causal forward with no incremental decode step, so "
                               "ONNX Runtime cannot run the same token-by-token workload as PyTorch; use runtime "
                               "pytorch")

    def build_task(self, data_config: LMDataConfig):
        from .task import LanguageModelingTask
        return LanguageModelingTask(data_config)

    def build_model(self, arch: LMArch, config: LMConfig):
        from .model import LM
        return LM(arch, config)

    def build_supernet(self, space: LMSpace, config: LMConfig, share_projections: bool = False):
        from .supernet import SupernetLM
        return SupernetLM.from_space(space, config, share_projections=share_projections)

    def split_names(self, data_config: LMDataConfig) -> list[str]:
        return data_config.split_names()

    # ------------------------------------------------------------ using a trained model
    def inference(self, model, directory):
        """A `TextGenerator`: `.generate(prompt, tokens, temperature, top_k, seed)` (the model
        config holds the vocabulary: no asset to save)."""
        from .inference import TextGenerator
        return TextGenerator(model, directory)

    def export_program(self, model):
        """The full causal forward on (batch, length) int64 ids -> (batch, length, vocab) logits,
        dynamic batch and length (1 <= length <= context)."""
        import torch
        from torch.export import Dim

        from ..family import ExportProgram
        context = model.config.context
        tokens = torch.zeros(2, min(context, 4), dtype=torch.long)  # sizes 2+: not specialised as 1
        dims = {0: Dim("batch")}
        if context >= 2:
            dims[1] = Dim("length", max=context)
        return ExportProgram(model, (tokens,), (dims,), ("tokens",), ("logits",))

    # ------------------------------------------------------------ cost
    def params_breakdown(self, arch: LMArch, config: Any) -> dict[str, int]:
        from .cost import params_breakdown
        return params_breakdown(arch, config)

    def flops_breakdown(self, arch: LMArch, config: Any, **options: int) -> dict[str, int]:
        from .cost import flops_breakdown
        return flops_breakdown(arch, config, self.options(options)["seq_len"])

    def decode_flops_breakdown(self, arch: LMArch, config: Any, **options: int) -> dict[str, int]:
        from .cost import decode_flops_breakdown
        return decode_flops_breakdown(arch, config, self.options(options)["seq_len"])

    def decode_state_breakdown(self, arch: LMArch, config: Any, **options: int) -> dict[str, int]:
        """After seq_len tokens: what decoding the next one reads from each layer."""
        from .cost import decode_state_breakdown
        return decode_state_breakdown(arch, config, self.options(options)["seq_len"])

    def length_options(self, length: int) -> dict[str, int]:
        return {"seq_len": length}

    def latency_workload(self, model, generator, device, **options: int):
        """One decoding step at position seq_len - 1; the state of the seq_len - 1 tokens before
        it is built once, untimed (states are never modified, so every run times the same step)."""
        import torch
        seq_len = self.options(options)["seq_len"]
        context = model.config.context
        if seq_len > context:
            raise ValueError(f"latency seq_len={seq_len} exceeds the model's context of {context} tokens; "
                             f"pass --option seq_len=N with N <= {context}")
        tokens = torch.randint(0, model.config.vocab_size, (1, seq_len), generator=generator).to(device)
        states = None
        if seq_len > 1:
            with torch.inference_mode():
                _, states = model.step(tokens[:, :-1], None, 0)
        last = tokens[:, -1:]
        protocol = {"task": self.task, "batch": 1, "workload": "one decoding step", "decode_position": seq_len - 1}
        return (lambda: model.step(last, states, seq_len - 1)), protocol
