"""Export of a language model as two programs: the full causal forward and one decoding step.

    forward:     tokens (B, T) int64, 1 <= T <= context  ->  logits (B, T, V)
    decode_step: tokens (B, 1) int64, position () int64 (the token's index, 0 for the first),
                 and per layer i its attention state (mixnas/attention/export_step.py):
                 softmax: past_key_i, past_value_i (B, H, P, d), P = position (0 at the start)
                 cosformer / linear: state_kv_i (B, H, D, d), state_z_i (B, H, D) (zeros at the start)
                 -> logits (B, V) and the new states: present_key_i, present_value_i
                    (B, H, P + 1, d) or new_state_kv_i, new_state_z_i.

The step runs the model's own modules (`LMBlock.finish` after the attention, the same norms,
position table and tied output layer as `LM.step`), with only the attention taking its state
as tensors; cosFormer's M is the model's context, as in every call of the model. A runtime
decodes a prompt by feeding it one token at a time from `empty_states`, and must keep
position < context (the position table's size; nothing checks it in the graph).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ...attention import export_step
from ...attention.export_step import causal_step, check_kind, dynamic_state_shapes, state_tensors

MODELS = "language models"


class DecodeStepProgram(nn.Module):
    """One token per sequence + the states -> logits + new states (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        for block in model.blocks_active():
            check_kind(block.attn, MODELS)

    def forward(self, tokens: Tensor, position: Tensor, *states: Tensor):
        model = self.model
        x = model.embed_tokens(tokens) + model.embed_positions(position.reshape(1))  # (B, 1, E)
        new_states = []
        for i, block in enumerate(model.blocks_active()):
            h, new = causal_step(block.attn, block.attn_norm(x), (states[2 * i], states[2 * i + 1]), position,
                                 model.config.context)
            x = block.finish(x, h)
            new_states.extend(new)
        return (model.output_logits(x)[:, 0], *new_states)


def empty_states(model, batch: int, past: int = 0) -> list[Tensor]:
    """The decode step's state inputs before the first token (KV caches of length `past`)."""
    return export_step.empty_states(_attentions(model), batch, past)


def step_state_names(model) -> tuple[list[str], list[str]]:
    """(input names, output names) of the decode step's states, two per layer."""
    return export_step.state_names(_attentions(model))


def _attentions(model) -> list:
    return [block.attn for block in model.blocks_active()]


def states_as_tensors(states) -> list[Tensor]:
    """`LM.step`'s LMStates as the decode step's state inputs."""
    return [t for layer in states.layers for t in state_tensors(layer)]


def export_programs(model) -> dict:
    """{"forward": ExportProgram, "decode_step": ExportProgram} of a standalone LM."""
    from torch.export import Dim

    from ..family import ExportProgram
    context = model.config.context
    batch = Dim("batch")
    tokens = torch.zeros(2, min(context, 4), dtype=torch.long)  # sizes 2+: not specialised as 1
    dims = {0: batch}
    if context >= 2:
        dims[1] = Dim("length", max=context)
    forward = ExportProgram(model, (tokens,), (dims,), ("tokens",), ("logits",))

    step = DecodeStepProgram(model)
    past = Dim("past", min=0, max=max(context - 1, 1))
    past_example = min(3, context - 1)
    args = (torch.zeros(2, 1, dtype=torch.long), torch.tensor(past_example), *empty_states(model, 2, past_example))
    dyn = ({0: batch}, None, tuple(dynamic_state_shapes(_attentions(model), batch, past)))
    ins, outs = step_state_names(model)
    decode = ExportProgram(step, args, dyn, ("tokens", "position", *ins), ("logits", *outs))
    return {"forward": forward, "decode_step": decode}
