"""Decoder-only character language model: what the pipeline needs to know about it.

Architecture `LMArch`, space `LMSpace`, model `LM`, supernet `SupernetLM`, task
`LanguageModelingTask` (character-level text such as Tiny Shakespeare; the report's metric is
the test loss in nats per character, lower is better). Cost option `seq_len` (default 64):
forward FLOPs are of a causal (prefill) forward over seq_len tokens; decoding FLOPs, decoding
state and latency are of ONE incremental step at position seq_len - 1 (seq_len - 1 earlier
tokens in the attention state, batch 1): what a long context costs per generated token, where
a softmax layer's cache grows and a linear layer's sums do not; on onnxruntime the same step
runs through the exported decode_step program (mixnas/families/lm/export.py).
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
    onnxruntime_unsupported = None

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
        """Two programs (mixnas/families/lm/export.py): "forward", the full causal forward on
        (batch, length) int64 ids -> (batch, length, vocab) logits (dynamic batch and length
        <= context), and "decode_step", one token from the attention states as tensors."""
        from .export import export_programs
        return export_programs(model)

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
        last, states, position, protocol = self._decode_setup(model, generator, device, options)
        return (lambda: model.step(last, states, position)), protocol

    def onnxruntime_workload(self, model, open_sessions, generator, **options: int):
        """The same step (same tokens, the state built in PyTorch, untimed) through the exported
        decode_step program."""
        import numpy as np

        from .export import empty_states, states_as_tensors, step_state_names
        last, states, position, protocol = self._decode_setup(model, generator, "cpu", options)
        tensors = empty_states(model, 1) if states is None else states_as_tensors(states)
        feeds = {name: t.detach().numpy() for name, t in zip(step_state_names(model)[0], tensors)}
        feeds.update(tokens=last.numpy(), position=np.array(position, dtype=np.int64))
        session = open_sessions()["decode_step"]
        return (lambda: session.run(None, feeds)), protocol

    def _decode_setup(self, model, generator, device, options: dict[str, int]):
        """(last token (1, 1), the states of the tokens before it or None, its position, protocol)."""
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
        protocol = {"task": self.task, "batch": 1, "workload": "one decoding step", "decode_position": seq_len - 1}
        return tokens[:, -1:], states, seq_len - 1, protocol
