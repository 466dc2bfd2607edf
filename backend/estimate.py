"""Memory and time estimate for a configuration, with warnings in words.

The Configure page shows the estimate, and the Train page and ``tune train``
show its warnings (likely out of memory, rows longer than the model's context…)
before a run starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


# Process start, imports, model load and data preparation before the first step: `tune train` measured
# 17.2 s to its first logged step on the idle 2-core machine, about 2.5 s of it the step (bench/results.json).
STARTUP_SECONDS = 15.0


@dataclass
class RunEstimate:
    """What a run will roughly cost."""

    memory: Any                   # backend.models.MemoryEstimate
    step_seconds: float
    steps: int | None             # optimizer steps (None: rows unknown yet)
    total_seconds: float | None   # start-up and every step
    train_rows: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def likely_oom(self) -> bool:
        """The memory estimate leaves no headroom on the device."""
        return not self.memory.fits


def planned_steps(cfg, train_rows: int | None) -> int | None:
    """Optimizer steps the run will take (``max_steps``, or epochs over the rows)."""
    t = cfg.training
    if t.max_steps > 0:
        return t.max_steps
    if not train_rows:
        return None
    per_epoch = math.ceil(train_rows / max(1, t.batch_size * t.gradient_accumulation))
    return max(1, math.ceil(per_epoch * t.epochs))


def estimate_run(cfg, info, device, train_rows: int | None = None,
                 mean_tokens: float | None = None) -> RunEstimate:
    """Estimate memory and time of ``cfg`` (RunConfig) for a model and device.

    ``mean_tokens`` (the data's mean row length) makes the time estimate follow
    the real rows rather than ``max_length``; memory stays the worst case.
    """
    from backend.models import estimate_memory, estimate_step_seconds

    mem = estimate_memory(cfg, info, device)
    time_cfg = cfg
    if mean_tokens and mean_tokens < cfg.data.max_length:
        time_cfg = cfg.with_overrides({"data.max_length": max(16, math.ceil(mean_tokens))})
    step_s = estimate_step_seconds(time_cfg, info, device)
    steps = planned_steps(cfg, train_rows)
    total = STARTUP_SECONDS + steps * step_s if steps else None
    warnings = []
    if not mem.fits:
        warnings.append(
            f"Likely to run out of memory: about {mem.total_gb:.1f} GB needed, {mem.available_gb:.1f} GB on "
            f"{device.kind.upper()}. Lower the batch size or max length, turn on gradient checkpointing, or "
            "use a smaller model.")
    if info.max_positions and cfg.data.max_length > info.max_positions:
        warnings.append(f"Max length {cfg.data.max_length:,} is longer than the model's context "
                        f"({info.max_positions:,} tokens).")
    eff = cfg.training.batch_size * cfg.training.gradient_accumulation
    if train_rows and eff > train_rows:
        warnings.append(f"The effective batch ({eff} rows) is larger than the training set ({train_rows} rows).")
    if cfg.method.method == "full" and info.parameters > 1e9 and device.kind == "cpu":
        warnings.append("Full fine-tuning of a model this size on a CPU will take very long; LoRA is "
                        "usually as good for adapting style and facts.")
    return RunEstimate(mem, step_s, steps, total, train_rows, warnings)


def start_warnings(cfg, *, train_rows: int | None = None, mean_tokens: float | None = None,
                   on_event=None) -> list[str]:
    """The warnings the Train page shows before a start, for a run that has not resolved its model yet.

    Resolves the base model (converting a GGUF once, as training would) and
    detects the device, so it imports torch: for ``tune train``, not the GUI
    thread (the GUI computes :func:`estimate_run` from facts it already has).

    Returns
    -------
    list[str]
        Empty for a hub id that is not downloaded yet (no facts to estimate from).

    Raises
    ------
    ModelError
        When the model cannot be resolved (training would fail the same way).
    """
    from pathlib import Path

    from backend import events as ev
    from backend.models import model_info, resolve_model
    from backend.runtime import detect_device

    path = resolve_model(cfg.model.name_or_path, allow_hub=cfg.model.allow_hub,
                         allow_pickle_weights=cfg.model.allow_pickle_weights, on_event=on_event or ev.no_event)
    if not Path(path).is_dir():
        return []
    return estimate_run(cfg, model_info(path), detect_device(cfg.model.device), train_rows, mean_tokens).warnings
