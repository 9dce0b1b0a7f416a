"""Shared by the export tests: an ONNX Runtime session called like the exported program."""
from __future__ import annotations

import torch


def session_function(session):
    """A function of tensors (the session's inputs, in order) returning its outputs as tensors:
    the tensor itself for a one-output program, else the list."""
    names = [i.name for i in session.get_inputs()]

    def run(*args):
        assert len(args) == len(names)
        outputs = [torch.from_numpy(a) for a in session.run(None, {n: a.numpy() for n, a in zip(names, args)})]
        return outputs[0] if len(outputs) == 1 else outputs
    return run
