"""Latency measurement following HAT's protocol, with a clock that survives a shared machine.

Translation: batch 1, source length 30; the encoder runs once, then 30 incremental decoder
steps on beam 4 hypotheses, with the decoding states reordered after every step as beam
search does (top-k over beam x vocabulary). ViT: one forward of a batch-1 image.
Each measurement: a few warm-up runs, then `runs` timed runs, summarized by `stat`.

Clock (`clock`); all but "wall" need ONE intra-op thread (every operator then runs on the
measuring thread, whose time they count) and a CPU device (on CUDA the host thread only launches
kernels and waits):
- "oncpu" (default on Linux CPUs): wall time minus the time the measuring thread waited for a
  CPU while other threads or processes held the cores (`run_delay` of
  /proc/thread-self/schedstat). Reading it is a file read that leaves the scheduler alone.
- "cpu" (default where there is no schedstat): the measuring thread's CPU time
  (`time.thread_time_ns`). Time spent sleeping or blocked is not counted either. Reading it is
  a system call on whose return the scheduler (Linux's EEVDF) switches to a waiting process as
  soon as the thread's slice is used up, so under load sub-millisecond runs are interrupted,
  and start with cold caches, more often than with the other clocks.
- "wall": elapsed time (`time.perf_counter_ns`, CUDA synchronized before and after), HAT's
  clock and the only meaningful one on a GPU; it includes every wait for a core.

Statistic (`stat`): "min" (default: the fastest run), "median", or "trimmed_mean" (HAT: the
slowest and fastest `trim` fraction, 10%, dropped and the rest averaged). `LatencyResult.ms`
is that statistic in milliseconds; `ms_mean` / `ms_std` are always HAT's trimmed mean and
population std, and `protocol` records how the numbers were measured (clock, stat, threads,
runs, warm-up, device, input shape).

Why oncpu + min (benchmarks/latency_under_load.py: 2 shared cores, a 2- or 8-thread matmul loop
beside, ratios loaded / quiet over 40-120 digits architectures): HAT's wall trimmed mean grew
1.6-3x and a latency predictor fitted on quiet numbers missed loaded ones by 40-65% (MAPE).
Medians of every clock grew 1.1-1.4x: these 0.6 ms runs often start right after a switch,
with cold caches. Minima grew 1.02-1.07x (oncpu), 1.01-1.08x (wall), 1.05-1.11x (cpu, see
above). For ~6 ms runs (48x48 inputs), interrupted in every run, the wall minimum grew up to
4.4x, the oncpu and cpu minima 1.0-1.3x: the rest is the other process slowing the shared
caches and memory, which no clock removes.

Runtime (`runtime`): "pytorch" (default) runs the model's own modules; "onnxruntime" exports its
programs to ONNX and times the SAME workload in ONNX Runtime sessions on the CPU, one intra-op
thread by default (mixnas/cost/onnxruntime.py). Protocols recorded before the runtime was
recorded were measured in PyTorch, and compare as "pytorch".

The model needs `config` (its family's model config, e.g. TransformerConfig / ViTConfig) and, for
translation, the `encode` / `decode(tokens, enc, states, return_states=True)` /
`reorder_states` / `reorder_encoder_out` API of mixnas/families/transformer/model.py.
"""
from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import nn

from mixnas.families import family_of

Clock = Literal["oncpu", "cpu", "wall"]
Stat = Literal["min", "median", "trimmed_mean"]
SCHEDSTAT = "/proc/thread-self/schedstat"  # Linux: "<ns on cpu> <ns waiting on a runqueue> <slices>"


class OnCpuClock:
    """Nanosecond counter: wall time minus the time the calling thread has spent waiting for a CPU
    (run_delay of Linux's schedstat). Reading it is a file read, which, unlike the system call
    behind `time.thread_time_ns`, does not make the scheduler check the thread's time slice."""

    def __init__(self, path: str = SCHEDSTAT):
        self.path, self._local = path, threading.local()

    def available(self) -> bool:
        """Whether this thread's schedstat exists and is kept (a running thread has had >= 1 slice)."""
        try:
            fields = self._read(self._fd()).split()
            return len(fields) >= 3 and int(fields[2]) > 0
        except (OSError, ValueError):
            return False

    def _fd(self) -> int:
        # /proc/thread-self names the thread that opens it: one descriptor per thread, reopened in
        # a forked child (which inherits the parent thread's descriptor)
        owner = (os.getpid(), threading.get_native_id())
        if getattr(self._local, "owner", None) != owner:
            self._local.fd, self._local.owner = os.open(self.path, os.O_RDONLY), owner
        return self._local.fd

    @staticmethod
    def _read(fd: int) -> bytes:
        return os.pread(fd, 128, 0)

    def __call__(self) -> int:
        fd = self._fd()
        waited = int(self._read(fd).split()[1])
        for _ in range(8):  # a switch between the two reads would pair a wall time with a stale wait
            now = time.perf_counter_ns()
            again = int(self._read(fd).split()[1])
            if again == waited:
                break
            waited = again
        return now - waited


# Nanosecond counters; a latency is the difference of two readings around a run.
CLOCKS: dict[str, Callable[[], int]] = {"cpu": time.thread_time_ns, "oncpu": OnCpuClock(),
                                        "wall": time.perf_counter_ns}
THREAD_CLOCKS = ("cpu", "oncpu")  # time the measuring thread only: one intra-op thread, CPU device
CLOCK_DESCRIPTIONS = {"cpu": "CPU time of the measuring thread",
                      "oncpu": "wall time minus the measuring thread's waits for a CPU", "wall": "wall time"}
STATS = ("min", "median", "trimmed_mean")
DEFAULT_STAT: Stat = "min"
RUNTIMES = ("pytorch", "onnxruntime")
DEFAULT_RUNTIME = "pytorch"
# The settings of measure_latency that `protocol` records and `protocol_differences` compares.
SETTINGS = ("runtime", "device", "threads", "clock", "stat", "warmup", "runs")
# What a protocol recorded before a setting existed was measured with.
UNRECORDED_DEFAULTS = {"runtime": DEFAULT_RUNTIME}


@dataclass(frozen=True)
class LatencyResult:
    ms: float  # the latency: protocol["stat"] of the timed runs, on protocol["clock"]
    ms_mean: float  # HAT's number: mean of the kept (trimmed) runs
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


def latency_statistic(times: list[float] | tuple[float, ...], stat: str = DEFAULT_STAT, trim: float = 0.1) -> float:
    """`stat` of the timed runs: their median, their minimum, or their `trim`-trimmed mean."""
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}; got {stat!r}")
    if not times:
        raise ValueError("no timed runs")
    if stat == "median":
        return statistics.median(times)
    if stat == "min":
        return min(times)
    return statistics.fmean(trimmed(times, trim))


def default_clock(device: str | torch.device = "cpu") -> str:
    """"oncpu" on a CPU device where Linux's schedstat is kept, else "cpu"; "wall" on other devices
    (where the host thread's time means nothing)."""
    if torch.device(device).type != "cpu":
        return "wall"
    return "oncpu" if CLOCKS["oncpu"].available() else "cpu"


def check_clock(clock: str, threads: int | None, device: str | torch.device = "cpu") -> None:
    """One-line ValueError unless `clock` can time work on `device` with `threads` intra-op threads."""
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(sorted(CLOCKS))}; got {clock!r}")
    if clock not in THREAD_CLOCKS:
        return
    kind = torch.device(device).type
    if kind != "cpu":
        raise ValueError(f"clock {clock!r} counts the host thread's time, which means nothing for work on "
                         f"device {kind!r} (the thread only launches kernels and waits); use clock 'wall' there")
    if threads != 1:
        raise ValueError(f"clock {clock!r} counts the measuring thread's time only, so it needs exactly 1 "
                         f"intra-op thread (got threads={threads}); use threads 1 or clock 'wall'")
    if clock == "oncpu" and not CLOCKS["oncpu"].available():
        raise ValueError(f"clock 'oncpu' needs Linux's per-thread scheduler statistics ({SCHEDSTAT}), which this "
                         f"system does not keep; use clock 'cpu'")


def protocol_differences(protocol: dict[str, Any] | None, **settings: Any) -> list[str]:
    """The `SETTINGS` given (as passed to measure_latency) that `protocol` (a LatencyResult's)
    was not measured with, as 'name: recorded -> wanted'; empty when it matches. threads=None
    (torch's default, whatever it is) matches any recorded count; clock=None the device's default;
    a protocol without `runtime` (recorded before it was) was measured in PyTorch."""
    protocol = {**UNRECORDED_DEFAULTS, **(protocol or {})} if protocol else {}
    wanted = dict(settings)
    if "device" in wanted:
        wanted["device"] = str(torch.device(wanted["device"]))
    if wanted.get("clock", "") is None:
        wanted["clock"] = default_clock(wanted.get("device", "cpu"))
    if wanted.get("threads", 0) is None:
        del wanted["threads"]
    return [f"{name}: {protocol.get(name, 'unrecorded')} -> {value}" for name, value in wanted.items()
            if name in SETTINGS and protocol.get(name) != value]


def describe_protocol(protocol: dict[str, Any]) -> str:
    """One line, e.g. 'median of 20 timed runs after 5 warm-up, CPU time of the measuring thread,
    1 thread on cpu, batch 1, runtime onnxruntime 1.20.1' (runtime pytorch when not recorded)."""
    stat = protocol.get("stat", "trimmed_mean")
    stat_text = {"median": "median", "min": "minimum",
                 "trimmed_mean": f"mean without the {protocol.get('trim', 0.1):.0%} slowest and fastest"}.get(stat, stat)
    clock = CLOCK_DESCRIPTIONS.get(protocol.get("clock", "wall"), protocol.get("clock"))
    threads = protocol.get("threads")
    threads_text = "default threads" if threads is None else f"{threads} thread{'' if threads == 1 else 's'}"
    runtime = protocol.get("runtime", DEFAULT_RUNTIME)
    runtime_text = " ".join(str(x) for x in (runtime, protocol.get(runtime)) if x)  # with its version if recorded
    return (f"{stat_text} of {protocol.get('runs')} timed runs after {protocol.get('warmup')} warm-up, {clock}, "
            f"{threads_text} on {protocol.get('device')}, batch {protocol.get('batch', 1)}, runtime {runtime_text}")


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


def time_ms(fn: Callable[[], Any], clock: str = "wall", device: str | torch.device = "cpu") -> float:
    """Milliseconds of one call of `fn` on `clock` (CUDA synchronized before and after)."""
    now = CLOCKS[clock]
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = now()
    fn()
    sync()
    return (now() - start) / 1e6


def measure_latency(model: nn.Module, *, device: str | torch.device = "cpu", threads: int | None = 1,
                    clock: str | None = None, stat: str = DEFAULT_STAT, warmup: int = 5, runs: int = 20,
                    trim: float = 0.1, seed: int = 0, runtime: str = DEFAULT_RUNTIME, **options: int) -> LatencyResult:
    """Latency of a model at batch 1, on its family's workload (`Family.latency_workload`:
    translation runs the encoder once and `tgt_len` decoder steps on `beam` hypotheses; a ViT
    one image); `options` are that workload's (e.g. src_len=30, tgt_len=30, beam=4).

    The model is moved to `device` and put in eval mode. `threads` sets torch's intra-op
    threads for the measurement only (None: leave as is; the oncpu and cpu clocks need 1).
    `clock`: "oncpu", "cpu" or "wall" (None: `default_clock(device)`); `stat`: see
    `latency_statistic`. `runtime`: "pytorch" (the model's modules) or "onnxruntime" (its ONNX
    export in ONNX Runtime sessions with `threads` intra-op threads, None: ONNX Runtime's default;
    CPU only; `Family.onnxruntime_workload` runs the family's workload there)."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim must be in [0, 0.5), got {trim}")
    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}; got {stat!r}")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    device = torch.device(device)
    if runtime == "onnxruntime" and device.type != "cpu":
        raise ValueError(f"runtime 'onnxruntime' is measured on the CPU (CPUExecutionProvider); got device "
                         f"{str(device)!r}, use device='cpu'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use device='cpu'")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    clock = default_clock(device) if clock is None else clock
    check_clock(clock, threads, device)
    model = model.to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    with ExitStack() as stack:
        if runtime == "onnxruntime":
            from .onnxruntime import onnxruntime_workload
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="mixnas-onnxruntime-"))
            fn, protocol = onnxruntime_workload(model, gen, directory, threads, **options)
            recorded_threads = threads  # None: ONNX Runtime's default
        else:
            fn, protocol = family_of(model).latency_workload(model, gen, device, **options)
            recorded_threads = torch.get_num_threads() if threads is None else threads
        with _threads(threads), torch.inference_mode():
            for _ in range(warmup):
                fn()
            times = [time_ms(fn, clock, device) for _ in range(runs)]
    mean, std = summarize(times, trim)
    protocol.update(runtime=runtime, clock=clock, stat=stat, warmup=warmup, runs=runs, trim=trim,
                    kept=len(trimmed(times, trim)), device=str(device), threads=recorded_threads)
    return LatencyResult(ms=latency_statistic(times, stat, trim), ms_mean=mean, ms_std=std, runs=tuple(times),
                         protocol=protocol)
