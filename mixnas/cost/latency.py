"""Latency measurement following HAT's protocol.

Translation: batch 1, source length 30; the encoder runs once, then 30 incremental decoder
steps on beam 4 hypotheses, with the decoding states reordered after every step as beam
search does (top-k over beam x vocabulary). ViT: one forward of a batch-1 image.
Each measurement: a few warm-up runs, then `runs` timed runs; the slowest and fastest
`trim` fraction (10%) are dropped and the rest averaged, in milliseconds.

The model needs `config` (TransformerConfig / ViTConfig of mixnas/models/config.py) and, for
translation, the `encode` / `decode(tokens, enc, states, return_states=True)` /
`reorder_states` / `reorder_encoder_out` API of mixnas/models/transformer.py.
"""
from __future__ import annotations

import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn


@dataclass(frozen=True)
class LatencyResult:
    ms_mean: float  # mean of the kept (trimmed) runs
    ms_std: float  # population standard deviation of the kept runs
    runs: tuple[float, ...]  # every timed run in ms, in measurement order (before trimming)
    protocol: dict[str, Any] = field(default_factory=dict)


def trimmed(times: list[float] | tuple[float, ...], trim: float = 0.1) -> list[float]:
    """Sorted times without the floor(trim * n) slowest and floor(trim * n) fastest ones."""
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    if not times:
        raise ValueError("no timed runs to trim")
    k = math.floor(trim * len(times) + 1e-9)  # 1e-9: 0.1 * 20 is 2, not 1.9999
    ordered = sorted(times)
    return ordered[k:len(ordered) - k]


def summarize(times: list[float], trim: float = 0.1) -> tuple[float, float]:
    """(mean, population std) of the trimmed times."""
    kept = trimmed(times, trim)
    return statistics.fmean(kept), statistics.pstdev(kept)


@contextmanager
def _threads(n: int | None):
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _time_ms(fn: Callable[[], None], device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1000.0


def _first_token_id(config: Any) -> int:
    """Smallest id that is not a special token, so random sources contain no padding."""
    return max(config.pad_id, config.bos_id, config.eos_id) + 1


def translation_step(model: nn.Module, src_tokens: torch.Tensor, steps: int, beam: int) -> None:
    """Encoder once, then `steps` decoder steps on `beam` hypotheses with beam reordering."""
    cfg = model.config
    enc = model.encode(src_tokens)
    enc = model.reorder_encoder_out(enc, torch.zeros(beam, dtype=torch.long, device=src_tokens.device))
    tokens = torch.full((beam, 1), cfg.bos_id, dtype=torch.long, device=src_tokens.device)
    scores = torch.zeros(beam, device=src_tokens.device)
    states = None
    for _ in range(steps):
        logits, states = model.decode(tokens, enc, states=states, return_states=True)
        lprobs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (beam, V)
        vocab = lprobs.shape[-1]
        top, idx = (scores[:, None] + lprobs).view(-1).topk(beam)
        rows, tokens = idx // vocab, (idx % vocab)[:, None]
        scores = top
        states = model.reorder_states(states, rows)


def measure_latency(model: nn.Module, *, device: str | torch.device = "cpu", threads: int | None = None,
                    warmup: int = 5, runs: int = 20, trim: float = 0.1, src_len: int = 30,
                    steps: int = 30, beam: int = 4, seed: int = 0) -> LatencyResult:
    """Latency of a translation Transformer (if it has `encode`/`decode`) or a ViT, batch 1.

    The model is moved to `device` and put in eval mode. `threads` sets torch's intra-op
    threads for the measurement only (None: leave as is).
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use device='cpu'")
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    cfg = model.config
    if hasattr(model, "encode") and hasattr(model, "decode"):
        if min(src_len, steps, beam) < 1:
            raise ValueError(f"src_len, steps and beam must be >= 1, got {src_len}, {steps}, {beam}")
        low = _first_token_id(cfg)
        if cfg.src_vocab <= low:
            raise ValueError(f"src_vocab={cfg.src_vocab} has no ordinary tokens beyond the special ids")
        src = torch.randint(low, cfg.src_vocab, (1, src_len), generator=gen).to(device)
        fn = lambda: translation_step(model, src, steps, beam)  # noqa: E731
        protocol = {"task": "translation", "batch": 1, "src_len": src_len, "decoder_steps": steps,
                    "beam": beam}
    else:
        images = torch.randn(1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=gen).to(device)
        fn = lambda: model(images)  # noqa: E731
        protocol = {"task": "classification", "batch": 1, "image_size": cfg.image_size}
    with _threads(threads), torch.inference_mode():
        for _ in range(warmup):
            fn()
        times = [_time_ms(fn, device) for _ in range(runs)]
    mean, std = summarize(times, trim)
    protocol.update(warmup=warmup, runs=runs, trim=trim, kept=len(trimmed(times, trim)),
                    device=str(device), threads=torch.get_num_threads() if threads is None else threads)
    return LatencyResult(ms_mean=mean, ms_std=std, runs=tuple(times), protocol=protocol)
