"""mixnas/attention/export_step.py: one token of causal self-attention from states held as plain
tensors equals the module's own incremental step and the full causal forward, for every kind
whose state is a KV cache or linear sums, in float64, inside export mode and out."""
from __future__ import annotations

import pytest
import torch

from mixnas.attention import MultiheadAttention, export_mode, kinds
from mixnas.attention.export_step import causal_step, check_kind, empty_states, state_names, state_tensors
from mixnas.attention.kernels import KVCacheKernel, LinearKernel

M = 24  # cosFormer's M: a fixed bound on the positions, as a language model passes its context


def decodable_kinds() -> list[str]:
    out = []
    for kind in kinds():
        if isinstance(MultiheadAttention(8, 2, kind).kernel, (KVCacheKernel, LinearKernel)):
            out.append(kind)
    return out


@pytest.mark.parametrize("exporting", [False, True], ids=["eager", "export-mode"])
@pytest.mark.parametrize("kind", decodable_kinds())
def test_steps_from_tensor_states_equal_the_full_causal_forward(kind, exporting):
    torch.manual_seed(0)
    attn = MultiheadAttention(16, 2, kind).double().eval()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    with torch.no_grad():
        full, _ = attn(x, causal=True, m=M)
        _, prefix = attn(x[:, :4], causal=True, return_state=True, m=M)  # the module's own state after 4 tokens
        state = empty_states([attn], 3)
        with export_mode() if exporting else torch.no_grad():
            for t in range(9):
                out, state = causal_step(attn, x[:, t:t + 1], state, torch.tensor(t), torch.tensor(M))
                torch.testing.assert_close(out[:, 0], full[:, t], atol=1e-10, rtol=1e-10)
            out, _ = causal_step(attn, x[:, 4:5], tuple(state_tensors(prefix)), torch.tensor(4), M)
        torch.testing.assert_close(out[:, 0], full[:, 4], atol=1e-10, rtol=1e-10)
    grows = isinstance(attn.kernel, KVCacheKernel)
    assert state[0].shape[2] == (9 if grows else state[0].shape[2])  # a cache grows, sums do not
    assert state_names([attn] * 4)[0][6:] == (["past_key_3", "past_value_3"] if grows else ["state_kv_3", "state_z_3"])


def test_errors_are_one_line():
    class Other:
        kernel, kind = object(), "toy"
    with pytest.raises(ValueError, match="^export does not support attention kind 'toy' in language models$"):
        check_kind(Other(), "language models")
    attn = MultiheadAttention(8, 2, "softmax")
    _, padded = attn(torch.randn(2, 3, 8), causal=True, key_padding_mask=torch.tensor([[False] * 3, [True, False, False]]),
                     return_state=True)
    with pytest.raises(ValueError, match="padded keys has no exported form"):
        state_tensors(padded)
