"""What machine a timing was taken on: cores, CPU model, torch, and a matmul GFLOP/s reading.

Machines differ from session to session (the same Multi30k budget made 702 updates on one and
446 on another), so every committed timing carries this record; compare timings as ratios
measured side by side, and budgets in updates, never in minutes.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any


def matmul_gflops(n: int = 1024, repeats: int = 5, threads: int | None = 1) -> float:
    """Median wall-clock GFLOP/s of an n x n fp32 matmul on `threads` intra-op threads."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / statistics.median(times) / 1e9


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import torch

    return {"cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "torch": torch.__version__,
            "matmul_gflops_1_thread": round(matmul_gflops(), 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
