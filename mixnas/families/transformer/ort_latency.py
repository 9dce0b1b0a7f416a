"""HAT's translation latency workload on ONNX Runtime: `translation_step` (family.py) through the
exported encoder and decoder_step programs (export.py), so that the two runtimes time the same
work: the encoder once at batch 1, its outputs tiled to `beam` rows, then `steps` decoder steps
on `beam` hypotheses, each followed by a top-k over beam x vocabulary and the reordering of the
decoding states by the chosen rows, as beam search does. Arrays are NumPy's, as a deployment
driving the sessions from Python would hold them.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .export import decoder_state_names, empty_states


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """torch.log_softmax(logits.float(), dim=-1) in NumPy."""
    x = logits.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest of a 1-D array, largest first (torch.topk's order)."""
    part = np.argpartition(-values, k - 1)[:k] if k < values.size else np.arange(values.size)
    return part[np.argsort(-values[part], kind="stable")]


def onnxruntime_translation_step(model, sessions: dict[str, Any], src_tokens: np.ndarray, steps: int,
                                 beam: int) -> Callable[[], None]:
    """The function running one measured inference (as `translation_step(model, src, steps,
    beam)`) through `sessions` {"encoder", "decoder_step"}; `src_tokens` is (1, S) int64. The
    inputs that do not change between runs (names, the empty states) are prepared here, once."""
    encoder, step = sessions["encoder"], sessions["decoder_step"]
    encoder_outputs = [o.name for o in encoder.get_outputs()]
    state_inputs, _ = decoder_state_names(model)
    initial = {name: t.detach().cpu().numpy() for name, t in zip(state_inputs, empty_states(model, beam))}
    bos = model.config.bos_id
    src = {"src_tokens": np.ascontiguousarray(src_tokens, dtype=np.int64)}
    first_rows = np.zeros(beam, dtype=np.int64)

    def run() -> None:
        outputs = encoder.run(None, src)
        # tile every per-sentence output (encoder_out_*, the padding mask) to the beam; m is a scalar
        feeds = {name: np.take(a, first_rows, axis=0) if a.ndim else a for name, a in zip(encoder_outputs, outputs)}
        feeds.update(initial)
        tokens = np.full((beam, 1), bos, dtype=np.int64)
        scores = np.zeros(beam, dtype=np.float32)
        for position in range(steps):
            feeds["tokens"], feeds["position"] = tokens, np.array(position, dtype=np.int64)
            logits, *states = step.run(None, feeds)
            candidates = (scores[:, None] + log_softmax(logits)).reshape(-1)  # (beam * V,)
            chosen = top_k(candidates, beam)
            rows, tokens = chosen // logits.shape[-1], (chosen % logits.shape[-1])[:, None]
            scores = candidates[chosen]
            feeds.update((name, np.take(s, rows, axis=0)) for name, s in zip(state_inputs, states))

    return run
