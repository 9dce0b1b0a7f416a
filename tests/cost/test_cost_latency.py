"""Latency protocol: the trimming arithmetic on given numbers, and a run on tiny models."""
import statistics

import pytest
import torch
from cost_archs import TRANSLATION, VISION

from mixnas.cost import LatencyResult, measure_latency, summarize, trimmed
from mixnas.models.transformer import Transformer
from mixnas.models.vit import ViT


def test_trimming_drops_ten_percent_at_each_end():
    times = [float(x) for x in (7, 20, 1, 13, 5, 19, 2, 11, 8, 17, 3, 14, 6, 18, 4, 16, 9, 15, 10, 12)]
    kept = trimmed(times)  # HAT: 20 runs, the 2 slowest and 2 fastest dropped
    assert kept == [float(x) for x in range(3, 19)]
    mean, std = summarize(times)
    assert mean == 10.5
    assert std == pytest.approx(statistics.pstdev(range(3, 19)))


def test_trimming_edge_cases():
    assert trimmed([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]  # floor(0.3) = 0: nothing to drop
    assert trimmed([5.0, 100.0, 1.0, 2.0, 3.0, 4.0, 0.5, 6.0, 7.0, 8.0]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert trimmed([4.0, 1.0, 3.0, 2.0], trim=0.25) == [2.0, 3.0]
    with pytest.raises(ValueError, match="trim must be in"):
        trimmed([1.0], trim=0.5)
    with pytest.raises(ValueError, match="no timed runs"):
        trimmed([])


def check_result(result: LatencyResult, runs: int, kept: int):
    assert len(result.runs) == runs and all(t > 0 for t in result.runs)
    assert result.protocol["kept"] == kept
    assert result.ms_mean == pytest.approx(statistics.fmean(trimmed(result.runs)))
    assert min(result.runs) <= result.ms_mean <= max(result.runs) and result.ms_std >= 0


def test_translation_latency_on_a_tiny_model():
    arch, config, *_ = TRANSLATION["prenorm-shared-3-cross"]
    result = measure_latency(Transformer(arch, config), threads=1, warmup=1, runs=10, src_len=8,
                             steps=5, beam=4)
    check_result(result, runs=10, kept=8)
    assert result.protocol["task"] == "translation" and result.protocol["beam"] == 4
    assert result.protocol["decoder_steps"] == 5 and result.protocol["threads"] == 1


def test_vit_latency_on_a_tiny_model():
    arch, config = VISION["cls-all-kinds"]
    result = measure_latency(ViT(arch, config), warmup=1, runs=5)
    check_result(result, runs=5, kept=5)
    assert result.protocol["task"] == "classification" and result.protocol["batch"] == 1


def test_bad_protocol_settings():
    arch, config = VISION["mean-pool"]
    with pytest.raises(ValueError, match="need runs >= 1"):
        measure_latency(ViT(arch, config), runs=0)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            measure_latency(ViT(arch, config), device="cuda", runs=1)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        measure_latency(ViT(arch, config), threads=0, runs=1)
