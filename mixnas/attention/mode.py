"""Export mode: every attention kind runs as plain tensor operations.

    with mixnas.attention.export_mode():
        program = torch.export.export(model, args, dynamic_shapes=...)

Inside the context the kernels take their inference form: no custom autograd Function (the
linear kinds' hand-written backwards), no Python branch on tensor *values* (a cosFormer
position check, softmax's "some row sees no key" fix-up, an LM's vocabulary check), and no
Python loop over a length-dependent number of chunks. The outputs equal the normal forward
(up to float rounding); gradients still flow through the plain operations, but slower and with
more memory than the training path, so use it for tracing and exporting only.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

_depth = 0


@contextmanager
def export_mode() -> Iterator[None]:
    """Run the attention kernels (and models' input checks) in their traceable inference form."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def exporting() -> bool:
    """True inside `export_mode()`."""
    return _depth > 0


__all__ = ["export_mode", "exporting"]
