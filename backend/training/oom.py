"""Out of memory during training: halve the micro-batch, double accumulation, continue from the last checkpoint."""

from __future__ import annotations

import gc
from typing import Callable

from backend import events as ev
from backend import runs
from backend.errors import TrainingError
from backend.fsutil import atomic_write_json
from backend.training.ranks import is_main_process, world_size


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (torch's, or one whose message says so)."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


def free_memory() -> None:
    """Collect garbage and give cached CUDA memory back (after a run or an OOM)."""
    gc.collect()
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def train_with_oom_retry(train_once: Callable, run_dir, cfg, checkpoint, emit, should_stop, should_pause, metrics):
    """Run ``train_once(run_dir, cfg, checkpoint, emit, should_stop, should_pause)``; after an OOM, retry smaller.

    Each retry halves the micro-batch and doubles gradient accumulation (the
    same effective batch), saves that config, trims ``metrics.jsonl`` back to
    the latest complete checkpoint and continues from it.

    Raises
    ------
    TrainingError
        Out of memory at micro-batch 1 (with what to change).
    """
    while True:
        try:
            return train_once(run_dir, cfg, checkpoint, emit, should_stop, should_pause)
        except Exception as e:
            if not is_oom(e) or not cfg.training.oom_retry or world_size() > 1:
                raise  # (distributed: one rank cannot restart alone; the launcher stops the job)
            free_memory()
            bs, ga = cfg.training.batch_size, cfg.training.gradient_accumulation
            if bs <= 1:
                raise TrainingError(
                    "out of memory even at micro-batch 1", field="training.batch_size",
                    hint="lower data.max_length, turn on training.gradient_checkpointing, use 4-bit (QLoRA) "
                         "or a smaller base model") from None
            cfg = cfg.with_overrides({"training.batch_size": bs // 2,
                                      "training.gradient_accumulation": ga * 2})
            if is_main_process():
                atomic_write_json(runs.config_path(run_dir), cfg.to_dict())
            checkpoint = runs.latest_checkpoint(run_dir)
            if metrics is not None:
                metrics.trim_after(runs.checkpoint_step(checkpoint) if checkpoint else 0)
            emit(ev.event(ev.OOM_RETRY, step=runs.checkpoint_step(checkpoint) if checkpoint else 0,
                          batch_size=bs // 2, gradient_accumulation=ga * 2,
                          message=f"Out of memory: micro-batch {bs} -> {bs // 2}, gradient accumulation "
                                  f"{ga} -> {ga * 2} (same effective batch); continuing from "
                                  f"{checkpoint.name if checkpoint else 'the start'}"))

