"""One code path for a single process and for `torchrun` (PyTorch DDP).

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the run is a world of one and every
collective below is a no-op. Backend: nccl on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and prints (nanoGPT's `master_process`)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device = {preference!r} but CUDA is not available here")
    return device


_joined_group = False  # set by `setup` once this process has joined a process group


def setup(device_preference: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the process group when launched by torchrun; otherwise a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = resolve_device(device_preference, int(os.environ.get("LOCAL_RANK", "0")))
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        global _joined_group
        _joined_group = True
    return DistContext(rank=rank, world_size=world_size, device=device)


def end_process(code: int) -> int:
    """Return ``code``, or, in a process that joined a process group, exit with it right here.

    gloo's worker threads outlive destroy_process_group and may still be releasing the last
    collective's tensors at interpreter shutdown, which can abort the process (SIGABRT) after every
    file was written; skipping the shutdown avoids that (stdio is flushed here). `rectifiers.cli.main`
    calls it; a script that calls `fit` under torchrun may too.
    """
    if not _joined_group:
        return code
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (in place when distributed; returned either way)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_objects(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (a one-element list without a process group)."""
    if dist.is_available() and dist.is_initialized():
        gathered: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, value)
        return gathered
    return [value]


def broadcast_object(value: Any) -> Any:
    """Rank 0's `value` on every rank."""
    if dist.is_available() and dist.is_initialized():
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    return value


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (e.g. a stop request)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value).item() > 0)
