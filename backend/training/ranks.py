"""Which process this is under ``torchrun`` / ``accelerate launch``, and who writes the run folder.

Every rank trains; only rank 0 writes run files (status, metrics, the final
adapter).  Single-process runs are rank 0 of a world of 1.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from backend import runs


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed): only it writes run files."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """How many processes train this run (set by ``torchrun`` / ``accelerate launch``; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    import torch.distributed as dist
    if world_size() > 1 and dist.is_available() and dist.is_initialized():
        dist.barrier()


def on_any_rank(flag: bool, device) -> bool:
    """``flag`` OR-ed over all processes, so every rank stops at the same step (else the others hang)."""
    import torch.distributed as dist
    if world_size() <= 1 or not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


@contextlib.contextmanager
def local_main_first(device_kind: str):
    """Run the block on local rank 0 first, then on the other processes of the node.

    Under ``torchrun`` this starts the process group early (the same accelerate
    ``PartialState`` the Trainer uses, which reuses it) so that one process per
    node converts a GGUF / default model into the cache while the others wait.
    """
    if world_size() <= 1:
        yield
        return
    from datetime import timedelta

    from accelerate import PartialState
    state = PartialState(cpu=device_kind == "cpu", timeout=timedelta(seconds=1800))
    with state.local_main_process_first():
        yield


def write_status(run_dir: Path, status: str, **extra: Any) -> None:
    """Atomically replace ``status.json`` (rank 0 only; see :func:`backend.runs.write_status`)."""
    if is_main_process():
        runs.write_status(run_dir, status, **extra)

