"""What every fused C++ attention kernel shares: building the extension at first use, the
switch that turns fused paths off, and the one-line notice when one cannot run.

A kernel module (fused.py for the linear kinds, fused_relative.py) declares
    EXT = CppExtension("mixnas_fused_linear", "fused_linear.cpp", ...)
and, before each call, asks `ready(what, unavailable_reason, *tensors)` (its own
`unavailable_reason`: `tensor_reason` or the build's error); when that is False it returns
None and the caller runs its PyTorch path. Sources live in ./csrc; they are compiled with
torch.utils.cpp_extension.load (portable -O3, no -march=native) and cached in the torch
extensions directory ($TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions).

Environment: MIXNAS_FUSED=0 (or false/off/no) disables every fused path, silently.
`reference_path()` disables them in one block of one thread (FlopCounterMode cannot see inside
a C++ kernel, so the FLOP-count tests use it; tests compare fast paths against it).
"""
from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

CSRC = Path(__file__).with_name("csrc")
# Portable (no -march=native: the cache may be shared by different CPUs). -fno-trapping-math and
# -fno-math-errno are PyTorch's own build flags; without them gcc will not vectorise loops'
# compare-and-select. -fopenmp: ATen's OpenMP backend of at::parallel_for lives in its headers
# (`#pragma omp parallel` in ParallelOpenMP.h); compiled without it the pragma is dropped and
# every parallel_for of an extension runs on one thread (while marking itself a parallel region,
# so the matmuls inside run on one thread too). At run time the extension shares torch's libgomp.
FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-fopenmp"]
LDFLAGS = ["-fopenmp"]


class FusedFallbackWarning(UserWarning):
    """A fused attention kernel could not be used; the PyTorch path ran instead."""


_reference = threading.local()  # set by reference_path(): this thread runs the PyTorch paths
_warned: set[str] = set()


def enabled() -> bool:
    """False when MIXNAS_FUSED is "0" (or "false", "off", "no"), or inside `reference_path()`."""
    if getattr(_reference, "active", False):
        return False
    return os.environ.get("MIXNAS_FUSED", "1").strip().lower() not in ("0", "false", "off", "no")


def applicable() -> bool:
    """Whether a fused kernel may run now: `enabled()`, not exporting (an exported graph must hold
    the PyTorch ops), and no TorchDispatchMode active (FlopCounterMode and other modes see a
    C++ kernel as one opaque op, so the FLOPs they count or the graph they trace would miss the
    attention). Otherwise the PyTorch path runs, silently."""
    from torch.utils._python_dispatch import is_in_torch_dispatch_mode

    from .mode import exporting
    return enabled() and not exporting() and not is_in_torch_dispatch_mode()


def ready(what: str, unavailable, *tensors: Tensor) -> bool:
    """Whether the fused kernel `what` runs on these tensors: `applicable()` and
    `unavailable(*tensors)` gives no reason (the first reason per process and kernel warns)."""
    if not applicable():
        return False
    reason = unavailable(*tensors)
    if reason is not None:
        notice(what, reason)
        return False
    return True


@contextmanager
def reference_path():
    """Run the PyTorch paths in this block (to count their FLOPs, or to compare against them)."""
    before = getattr(_reference, "active", False)
    _reference.active = True
    try:
        yield
    finally:
        _reference.active = before


def notice(what: str, reason: str) -> None:
    """Warn once per process and kernel that `what` (e.g. "fused linear attention") fell back."""
    if what not in _warned:
        _warned.add(what)
        warnings.warn(f"mixnas: {what} not used: {reason}; using the PyTorch path "
                      f"(set MIXNAS_FUSED=0 to silence this)", FusedFallbackWarning, stacklevel=4)


class CppExtension:
    """A C++ extension in ./csrc registering torch.ops, built or loaded once per process."""

    def __init__(self, name: str, *sources: str):
        self.name = name
        self.sources = [str(CSRC / s) for s in sources]
        self._lock = threading.Lock()
        self._loaded = False
        self._error: str | None = None

    def load(self) -> str | None:
        """Build (first call) or load the extension; None on success, else why it failed."""
        with self._lock:
            if self._loaded or self._error is not None:
                return self._error
            try:
                from torch.utils.cpp_extension import load
                load(name=self.name, sources=self.sources, extra_cflags=FLAGS, extra_ldflags=LDFLAGS,
                     is_python_module=False, verbose=False)
                self._loaded = True
            except Exception as e:  # no compiler, no headers, a compile error: fall back
                lines = str(e).strip().splitlines() or [type(e).__name__]
                self._error = f"the C++ extension could not be built ({type(e).__name__}: {lines[0][:200]})"
            return self._error


def tensor_reason(*tensors: Tensor) -> str | None:
    """Why a CPU fp32/fp64 kernel cannot take these tensors (None: it can)."""
    t = tensors[0]
    if t.device.type != "cpu":
        return f"it runs on CPU only, the inputs are on {t.device.type}"
    if t.dtype not in (torch.float32, torch.float64):
        return f"it supports float32/float64 only, the inputs are {t.dtype}"
    return None
