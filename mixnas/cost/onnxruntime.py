"""Latency on the deployment runtime: a model's programs exported to ONNX (mixnas/export.py) and
run in ONNX Runtime sessions, timed by `measure_latency(..., runtime="onnxruntime")` with the
same clocks, statistics and workload as in PyTorch.

Why a second runtime: a searched architecture is deployed as an exported graph, whose
operators (fused by ONNX Runtime's graph optimizations, without Python between them) cost
differently from PyTorch's eager modules; a latency predictor fitted on PyTorch numbers can rank
attention kinds differently from what the deployed model shows.

Sessions run on CPUExecutionProvider with `intra_op_num_threads = threads`: with 1, ONNX Runtime
creates no intra-op thread pool and runs every operator on the calling thread, so the thread
clocks ("oncpu", "cpu") count the whole inference as they do for PyTorch; inter-op threads are 1
and execution is sequential, so no other thread does any of the work either.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

from mixnas.families import family_of

PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # export (onnx, onnxscript) and run (onnxruntime)
INSTALL = "pip install onnx onnxscript onnxruntime"


def require_onnxruntime():
    """The onnxruntime module, or a one-line ValueError naming the missing packages and the fix."""
    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"latency on onnxruntime needs the package(s) {', '.join(missing)}: {INSTALL}")
    import onnxruntime
    return onnxruntime


def session_options(threads: int | None):
    """SessionOptions of a measurement: `threads` intra-op threads (None: ONNX Runtime's default,
    one per physical core), 1 inter-op thread, sequential execution."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 0 if threads is None else threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: no warnings about unused initializers
    return options


def open_sessions(model, directory: str | Path, threads: int | None = 1) -> dict[str | None, Any]:
    """{part: InferenceSession} of `model`'s programs, exported as ONNX into `directory`
    (part None for a one-program family; translation: "encoder" and "decoder_step")."""
    from mixnas.export import export_parts
    ort = require_onnxruntime()
    paths = export_parts(model, Path(directory) / "model.onnx", "onnx")
    options = session_options(threads)
    return {part: ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            for part, path in paths.items()}


def onnxruntime_workload(model, generator, directory: str | Path, threads: int | None,
                         **options: int) -> tuple[Callable[[], Any], dict[str, Any]]:
    """(one measured inference on ONNX Runtime, its protocol) from the model's family
    (`Family.onnxruntime_workload`); a family that has none fails before anything is exported."""
    family = family_of(model)
    reason = family.onnxruntime_error()
    if reason:
        raise ValueError(reason)
    ort = require_onnxruntime()
    fn, protocol = family.onnxruntime_workload(model, lambda: open_sessions(model, directory, threads),
                                               generator, **options)
    protocol.update(onnxruntime=ort.__version__)
    return fn, protocol
