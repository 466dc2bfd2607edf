"""Where a training step's time goes: wall time per phase, measured on the real Trainer (docs/architecture.md, "Training").

:class:`StepProfiler` wraps methods of one live ``transformers.Trainer`` — its
batch fetch, its collator, ``compute_loss``, the accelerator's ``backward``,
``_clip_grad_norm``, the callback handler, ``log``, ``_save_checkpoint`` and
``_evaluate`` — so the loop that runs is the loop that is timed, the engine's
(``backend.training.engine``) and a plain HF script's (``bench/train_cpu.py``) alike.
The optimizer step and the scheduler are the intervals between the Trainer's own
callback events around them (``on_pre_optimizer_step`` → ``on_optimizer_step`` →
``on_step_end``), so no optimizer object is touched.

Times are exclusive: a phase entered inside another is subtracted from the outer
one (the collator inside the batch fetch, the metrics write inside the ``train``
event), except inside ``evaluate`` and ``checkpoint``, which own everything they
call.  The phases therefore add up to the time they cover, and ``other`` is the
rest of the loop (the Trainer's own bookkeeping).  On CUDA every boundary
synchronises the device, so a phase is charged for its own kernels.

The engine attaches one when ``train(..., profiler=...)`` is given or when the
environment variable :data:`PROFILE_ENV` names a file to write the summary to.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

PROFILE_ENV = "TUNE_STEP_PROFILE"
"""When set, ``tune train`` writes its step profile (:meth:`StepProfiler.summary`) to this JSON file."""

PHASES = ("data", "collate", "forward", "backward", "clip", "optimizer", "scheduler", "callbacks", "events",
          "event_writes", "checkpoint", "evaluate", "other")
"""Every phase, in table order.  ``data``: the batch fetch less its collation (sampler, dataset rows, counting the
loss tokens); ``collate``: the collator (padding or packing); ``forward``: ``compute_loss`` (forward and loss);
``backward``; ``clip``: gradient clipping (the norm); ``optimizer``: ``optimizer.step``; ``scheduler``: the learning
rate read, ``lr_scheduler.step`` and ``zero_grad``; ``callbacks``: every callback but the logging ones; ``events``:
the ``log`` call and its ``on_log`` callbacks (our ``train`` event, the stdout line); ``event_writes``: the
``metrics.jsonl`` append and its fsync; ``checkpoint``: ``_save_checkpoint`` and the ``on_save`` callbacks (the
completion marker); ``evaluate``; ``other``: the rest of the loop."""

_OWNING = ("evaluate", "checkpoint")  # phases that keep the time of whatever runs inside them


class StepProfiler:
    """Wall time per phase of a Trainer's loop (see the module doc).

    Use ``attach(trainer)`` before ``trainer.train()``; ``phase(name)`` times a
    block of one's own (the engine's metrics writes); ``summary()`` is the JSON.
    """

    def __init__(self, sync: Callable[[], None] | None = None, clock: Callable[[], float] = time.perf_counter):
        self.sync = sync
        self.clock = clock
        self.total = {p: 0.0 for p in PHASES}
        self.calls = {p: 0 for p in PHASES}
        self._stack: list[list] = []  # [name, start, child_time]
        self.steps = 0
        self.loop_start: float | None = None  # time.time() at on_train_begin's end
        self.loop_end: float | None = None    # time.time() at on_train_end's start
        self._loop_t0: float | None = None
        self.loop_s: float | None = None
        self._active = False

    # -- the timing primitive ---------------------------------------------------------------------

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return self.clock()

    def begin(self, name: str) -> None:
        """Enter phase ``name`` (nested: the outer phase pauses, unless it owns its insides).

        Outside the loop (before ``on_train_begin``, after ``on_train_end``) nothing is recorded.
        """
        if not self._active or (self._stack and self._stack[-1][0] in _OWNING):
            self._stack.append([None, 0.0, 0.0])  # folded into the owning phase
            return
        self._stack.append([name, self._now(), 0.0])

    def end(self) -> None:
        """Leave the innermost phase."""
        if not self._stack:
            return
        name, t0, child = self._stack.pop()
        if name is None:
            return
        dt = self._now() - t0
        self.total[name] += dt - child
        self.calls[name] += 1
        if self._stack:
            self._stack[-1][2] += dt

    def phase(self, name: str):
        """``with profiler.phase("event_writes"): ...``"""
        prof = self

        class _Ctx:
            def __enter__(self):
                prof.begin(name)

            def __exit__(self, *exc):
                prof.end()

        return _Ctx()

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn`` timed as phase ``name``."""
        @functools.wraps(fn)
        def timed(*args, **kw):
            self.begin(name)
            try:
                return fn(*args, **kw)
            finally:
                self.end()
        timed.__profiled__ = True  # type: ignore[attr-defined]
        return timed

    # -- the Trainer's hooks ----------------------------------------------------------------------

    def attach(self, trainer) -> "StepProfiler":
        """Time ``trainer``'s loop from now on (call before ``trainer.train()``)."""
        trainer.get_batch_samples = self.wrap("data", trainer.get_batch_samples)
        if trainer.data_collator is not None and not getattr(trainer.data_collator, "__profiled__", False):
            trainer.data_collator = self.wrap("collate", trainer.data_collator)
        trainer.compute_loss = self.wrap("forward", trainer.compute_loss)
        trainer.accelerator.backward = self.wrap("backward", trainer.accelerator.backward)
        trainer._clip_grad_norm = self.wrap("clip", trainer._clip_grad_norm)
        trainer.log = self.wrap("events", trainer.log)
        trainer._save_checkpoint = self.wrap("checkpoint", trainer._save_checkpoint)
        trainer._evaluate = self.wrap("evaluate", trainer._evaluate)
        handler = trainer.callback_handler
        call_event = handler.call_event

        def timed_event(event, *args, **kw):
            if event == "on_train_begin":
                out = call_event(event, *args, **kw)
                self._active = True
                self._loop_t0 = self._now()
                self.loop_start = time.time()
                return out
            if event == "on_train_end":
                self._close_open()
                if self._loop_t0 is not None:
                    self.loop_s = (self.loop_s or 0.0) + self._now() - self._loop_t0
                self._active = False
                self.loop_end = time.time()
                return call_event(event, *args, **kw)
            if event in ("on_optimizer_step", "on_step_end"):  # the optimizer / scheduler interval ends here
                self._close_open()
            if event == "on_step_end":
                self.steps += 1
            kind = "events" if event == "on_log" else "checkpoint" if event == "on_save" else "callbacks"
            self.begin(kind)
            try:
                out = call_event(event, *args, **kw)
            finally:
                self.end()
            if event == "on_pre_optimizer_step":
                self.begin("optimizer")
            elif event == "on_optimizer_step":
                self.begin("scheduler")
            return out

        handler.call_event = timed_event
        return self

    def _close_open(self) -> None:
        """End an open optimizer / scheduler interval (the next callback event closes it)."""
        while self._stack and self._stack[-1][0] in ("optimizer", "scheduler"):
            self.end()

    # -- the result -------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Seconds per phase over the loop, per-step milliseconds, and what share of the loop they cover.

        ``loop_s`` is ``on_train_begin`` → ``on_train_end``; ``other`` is the loop less the
        timed phases; ``covered`` is the timed share of the loop (1.0 when nothing is missed).
        """
        phases = {p: self.total[p] for p in PHASES if p != "other"}
        timed = sum(phases.values())
        loop = self.loop_s if self.loop_s is not None else timed
        phases["other"] = max(loop - timed, 0.0)
        steps = max(self.steps, 1)
        return {"steps": self.steps, "loop_s": round(loop, 4), "loop_start": self.loop_start,
                "loop_end": self.loop_end,
                "phases_s": {p: round(v, 4) for p, v in phases.items()},
                "per_step_ms": {p: round(1000 * v / steps, 2) for p, v in phases.items()},
                "calls": {p: self.calls[p] for p in PHASES if p != "other"},
                "covered": round(timed / loop, 4) if loop > 0 else None}

    def write(self, path: str | Path) -> None:
        """Write :meth:`summary` as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.summary(), indent=1) + "\n", encoding="utf-8")


def for_device(device_kind: str) -> StepProfiler:
    """A profiler that synchronises CUDA at every boundary on a GPU (kernels run asynchronously there)."""
    if device_kind == "cuda":
        import torch
        return StepProfiler(sync=torch.cuda.synchronize)
    return StepProfiler()


def from_env() -> tuple[StepProfiler, str] | None:
    """``(profiler, path)`` when :data:`PROFILE_ENV` asks for a profile, else ``None``."""
    path = os.environ.get(PROFILE_ENV, "").strip()
    return (StepProfiler(), path) if path else None
