"""Latency protocol: the trimming and statistics arithmetic on given numbers, the clocks, the
recorded protocol, and a run on tiny models."""
import statistics
import time
from types import SimpleNamespace

import pytest
import torch
from cost_archs import TRANSLATION, VISION
from torch import nn

from mixnas.cost import (LatencyResult, check_clock, describe_protocol, latency_statistic, measure_latency,
                         protocol_differences, summarize, trimmed)
from mixnas.cost.latency import CLOCKS, DEFAULT_STAT, OnCpuClock, default_clock
from mixnas.families.vit.arch import ViTArch, ViTLayerArch

LINUX_SCHEDSTAT = CLOCKS["oncpu"].available()
from mixnas.families.transformer.model import Transformer
from mixnas.families.vit.model import ViT


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
    assert result.ms == latency_statistic(result.runs, result.protocol["stat"])


def test_translation_latency_on_a_tiny_model():
    arch, config, *_ = TRANSLATION["prenorm-shared-3-cross"]
    result = measure_latency(Transformer(arch, config), threads=1, warmup=1, runs=10, src_len=8,
                             tgt_len=5, beam=4)
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


# ---------------------------------------------------------------- statistics
RUNS = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 100.0]


def test_each_statistic_computes_what_it_says():
    assert latency_statistic(RUNS, "min") == 1.0
    assert latency_statistic(RUNS, "median") == 5.5  # even count: mean of the two middle runs
    assert latency_statistic(RUNS[:-1], "median") == 5.0
    assert latency_statistic(RUNS, "trimmed_mean") == statistics.fmean(range(2, 10))  # 1 and 100 dropped
    assert latency_statistic(RUNS, "trimmed_mean", trim=0.0) == statistics.fmean(RUNS)
    assert latency_statistic([3.0], "median") == latency_statistic([3.0], "min") == 3.0
    with pytest.raises(ValueError, match="stat must be one of min, median, trimmed_mean; got 'mean'"):
        latency_statistic(RUNS, "mean")
    with pytest.raises(ValueError, match="no timed runs"):
        latency_statistic([], "min")


# ---------------------------------------------------------------- clocks
class SleepyModel(nn.Module):
    """A "ViT" whose forward sleeps: it takes wall time but almost no CPU time."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.config = SimpleNamespace(in_channels=1, image_size=2)
        self.arch = ViTArch(embed_dim=2, layers=(ViTLayerArch(ffn_dim=2, heads=1, attention="softmax"),))  # its family

    def forward(self, images):
        time.sleep(self.seconds)
        return images


def test_cpu_clock_leaves_out_time_the_thread_does_not_run():
    model = SleepyModel(0.02)
    wall = measure_latency(model, clock="wall", stat="min", warmup=0, runs=3)
    cpu = measure_latency(model, clock="cpu", stat="min", warmup=0, runs=3)
    assert wall.protocol["clock"] == "wall" and cpu.protocol["clock"] == "cpu"
    assert min(wall.runs) >= 20.0
    assert max(cpu.runs) < 5.0  # a sleeping thread uses no CPU time


@pytest.mark.skipif(not LINUX_SCHEDSTAT, reason="needs Linux's /proc/thread-self/schedstat")
def test_oncpu_clock_counts_sleep_but_not_waiting_for_a_cpu():
    # a sleeping thread does not wait for a CPU: oncpu counts the sleep (inference never sleeps)
    oncpu = measure_latency(SleepyModel(0.02), clock="oncpu", stat="min", warmup=0, runs=2)
    assert oncpu.protocol["clock"] == "oncpu" and min(oncpu.runs) >= 20.0


def test_oncpu_clock_subtracts_the_recorded_wait(tmp_path):
    fake = tmp_path / "schedstat"
    fake.write_text("5 1000000000 3\n")
    clock = OnCpuClock(str(fake))
    assert clock.available()
    start = clock()
    fake.write_text("5 3000000000 4\n")  # the thread waited 2 s for a CPU
    elapsed = clock() - start
    assert -2e9 < elapsed < -2e9 + 0.5e9  # wall time of the test minus 2 s
    fake.write_text("5 0 0\n")  # not kept: no slice counted
    assert not clock.available() and not OnCpuClock(str(tmp_path / "missing")).available()


def test_default_clock_leaves_out_other_processes_on_cpu_and_is_wall_elsewhere():
    assert default_clock("cpu") == ("oncpu" if LINUX_SCHEDSTAT else "cpu")
    assert default_clock("cuda") == default_clock("cuda:1") == "wall"
    arch, config = VISION["mean-pool"]
    result = measure_latency(ViT(arch, config), warmup=0, runs=2)
    assert result.protocol["clock"] == default_clock("cpu") and result.protocol["stat"] == DEFAULT_STAT == "min"


@pytest.mark.parametrize("clock", ["cpu", "oncpu"])
@pytest.mark.parametrize("threads", [2, None])
def test_thread_clocks_need_one_thread(clock, threads):
    arch, config = VISION["mean-pool"]
    with pytest.raises(ValueError, match=rf"clock '{clock}' counts the measuring thread's time only, so it needs "
                                         rf"exactly 1 intra-op thread \(got threads={threads}\)") as info:
        measure_latency(ViT(arch, config), clock=clock, threads=threads, runs=1)
    assert "\n" not in str(info.value)
    measure_latency(ViT(arch, config), clock="wall", threads=2, warmup=0, runs=1)  # the wall clock takes any


def test_cpu_clock_is_refused_on_cuda_and_unknown_clocks_everywhere():
    for clock in ("cpu", "oncpu"):
        with pytest.raises(ValueError, match=r"means nothing for work on device 'cuda' \(.*\); use clock 'wall' there"):
            check_clock(clock, 1, "cuda")
    check_clock("wall", None, "cuda")
    with pytest.raises(ValueError, match="clock must be one of cpu, oncpu, wall; got 'process'"):
        check_clock("process", 1)
    arch, config = VISION["mean-pool"]
    with pytest.raises(ValueError, match="stat must be one of"):
        measure_latency(ViT(arch, config), stat="mean", runs=1)


# ---------------------------------------------------------------- the recorded protocol
def test_protocol_records_how_it_was_measured():
    arch, config = VISION["mean-pool"]
    result = measure_latency(ViT(arch, config), clock="wall", stat="median", threads=1, warmup=2, runs=4)
    p = result.protocol
    assert (p["clock"], p["stat"], p["threads"], p["runs"], p["warmup"], p["device"]) == ("wall", "median", 1, 4, 2, "cpu")
    assert result.ms == statistics.median(result.runs)
    assert p["runtime"] == "pytorch"
    assert describe_protocol(p) == ("median of 4 timed runs after 2 warm-up, wall time, 1 thread on cpu, batch 1, "
                                    "runtime pytorch")
    assert describe_protocol({**p, "clock": "cpu", "stat": "min", "threads": 2}).startswith(
        "minimum of 4 timed runs after 2 warm-up, CPU time of the measuring thread, 2 threads")
    assert "wall time minus the measuring thread's waits for a CPU" in describe_protocol({**p, "clock": "oncpu"})


def test_protocol_differences_name_each_changed_setting():
    recorded = {"device": "cpu", "threads": 1, "clock": "cpu", "stat": "min", "warmup": 3, "runs": 10,
                "task": "classification"}
    same = {"device": "cpu", "threads": 1, "clock": "cpu", "stat": "min", "warmup": 3, "runs": 10}
    assert protocol_differences(recorded, **same) == []
    default = {**recorded, "clock": default_clock("cpu")}
    assert protocol_differences(default, **{**same, "clock": None}) == []  # the device's default clock
    assert protocol_differences({**recorded, "threads": 7}, **{**same, "threads": None}) == []  # torch's default
    assert protocol_differences(recorded, **{**same, "clock": "wall", "runs": 20}) == ["clock: cpu -> wall",
                                                                                      "runs: 10 -> 20"]
    assert protocol_differences(None, stat="min") == ["stat: unrecorded -> min"]
