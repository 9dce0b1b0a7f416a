"""Data-parallel training across processes started by `torchrun`.

Gradients are averaged by hand with one `all_reduce` per update instead of wrapping the model
in `DistributedDataParallel`. Why:
  * Supernet updates train one sub-network, so most weights get no gradient. DDP then needs
    `find_unused_parameters=True` (an extra autograd-graph walk every step) and fills unused
    gradients with zeros, which Adam would turn into real updates of untrained weights. Here a
    parameter that no rank touched keeps `grad = None` and the optimizer skips it, exactly as
    in a single process; one that only some ranks touched gets zeros from the others.
  * With gradient accumulation, one reduction per update is what DDP's `no_sync` achieves,
    with no wrapper to unwrap: tasks receive the plain model.
  * The trainer divides by the sample count summed over ranks (fairseq's normalisation),
    which DDP's fixed 1/world average cannot express for token batches of unequal size.
The price is no overlap of communication with the backward pass, which matters little for
the model sizes trained here. Buffers (e.g. BatchNorm statistics) are not synchronised;
the models in mixnas use LayerNorm only.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device=cuda requested but no CUDA device is available; use device=cpu")
        return torch.device("cuda", local_rank)
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR, MASTER_PORT); a plain single process when WORLD_SIZE is unset or 1.
    The backend is nccl on CUDA and gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if target.type == "cuda":
            torch.cuda.set_device(target)
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo", init_method="env://")
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=target)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if info.distributed:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def sum_gradients(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum `.grad` over ranks in place; parameters without a gradient on every rank keep None."""
    if not info.distributed:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                            device=info.device)
    dist.all_reduce(has_grad, op=dist.ReduceOp.SUM)
    active = [p for p, used in zip(params, has_grad.tolist()) if used > 0]
    for p in active:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    # One flat buffer per dtype: a single collective instead of one per parameter.
    for dtype in {p.grad.dtype for p in active}:
        group = [p for p in active if p.grad.dtype == dtype]
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        offset = 0
        for p in group:
            n = p.grad.numel()
            p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
            offset += n


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """Collect one picklable object per rank on rank 0 (a list indexed by rank); None elsewhere.
    Pickling here only crosses our own processes; nothing is read from files."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any, info: DistInfo) -> Any:
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
