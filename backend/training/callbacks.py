"""The Trainer callback that speaks our event vocabulary: one record per log step, pause/stop, checkpoint markers."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

from backend import events as ev
from backend import runs
from backend.training.ranks import barrier, is_main_process, on_any_rank


def make_callback(emit: Callable[[dict], None], should_stop: ev.ShouldStop,
                  should_pause: Callable[[], bool] | None, run_dir: Path, device_kind: str,
                  start_step: int):
    """A ``TrainerCallback`` that emits ``train`` / ``eval`` / ``checkpoint`` events and obeys stop and pause.

    Parameters
    ----------
    emit
        Receives each event record.
    should_stop, should_pause
        Polled after every optimizer step; a stop saves a checkpoint first.
    run_dir
        The run folder (checkpoints get their completion marker there).
    device_kind
        ``cuda`` reports peak CUDA memory, anything else the process RSS.
    start_step
        The step training starts (or resumes) at, for the ETA.

    The callback keeps ``last_eval`` and ``last_train`` (the latest records)
    and ``cancelled`` (a stop was obeyed).
    """
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        """One flat record per log step; stop/pause flags; checkpoint markers."""

        def __init__(self):
            self.t0 = time.time()
            self.last_t = self.t0
            self.last_tokens = None
            self.start_step = start_step
            self.cancelled = False
            self.last_eval: dict | None = None
            self.last_train: dict | None = None
            self.pause_pending = False

        def _memory_mb(self) -> float:
            if device_kind == "cuda":
                import torch
                return round(torch.cuda.max_memory_allocated() / 2**20, 1)
            import psutil
            return round(psutil.Process().memory_info().rss / 2**20, 1)

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = self.last_t = time.time()
            self.last_tokens = state.num_input_tokens_seen
            self.start_step = state.global_step

        def on_step_end(self, args, state, control, **kw):
            if on_any_rank(should_stop(), args.device):
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True
            elif should_pause is not None and should_pause():
                # Pause once this step's record is out (on_log, right after this callback), so the
                # log's "Paused at step N" and the step shown agree (issue 21: they were one apart).
                self.pause_pending = True
                control.should_log = True
            return control

        def _pause(self, state, control) -> None:
            """Wait while paused (a stop ends the wait, saves a checkpoint and stops)."""
            self.pause_pending = False
            paused_at = None
            while should_pause() and not should_stop():
                if paused_at is None:
                    paused_at = time.time()
                    emit(ev.log(f"Paused at step {state.global_step}"))
                time.sleep(0.1)
            if paused_at is not None:
                gap = time.time() - paused_at
                self.t0 += gap  # ETA and tokens/s ignore the pause
                self.last_t += gap
                if not should_stop():
                    emit(ev.log(f"Resumed at step {state.global_step}"))
            if should_stop():
                self.cancelled = True
                control.should_save = True
                control.should_training_stop = True

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            now = time.time()
            if "eval_loss" in logs:
                rec = ev.event(ev.EVAL, step=state.global_step, epoch=round(state.epoch or 0, 4),
                               eval_loss=logs["eval_loss"],
                               perplexity=ppl(logs["eval_loss"]))
                self.last_eval = rec
                emit(rec)
                return
            if "loss" not in logs:
                return
            tokens = state.num_input_tokens_seen
            dt = max(now - self.last_t, 1e-9)
            tps = (tokens - self.last_tokens) / dt if self.last_tokens is not None else None
            self.last_t, self.last_tokens = now, tokens
            done = state.global_step - self.start_step
            elapsed = now - self.t0
            remaining = max(state.max_steps - state.global_step, 0)
            eta = elapsed / done * remaining if done > 0 else None
            rec = ev.event(ev.TRAIN, step=state.global_step, max_steps=state.max_steps,
                           epoch=round(state.epoch or 0, 4), loss=logs.get("loss"),
                           learning_rate=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                           tokens_per_s=round(tps, 1) if tps is not None else None,
                           tokens_seen=int(tokens), eta_s=round(eta, 1) if eta is not None else None,
                           elapsed_s=round(elapsed, 2), memory_mb=self._memory_mb(),
                           **{field: logs[key] for key, field in PREFERENCE_LOGS.items() if key in logs})
            self.last_train = rec
            emit(rec)
            if self.pause_pending:
                self._pause(state, control)
            return control

        def on_save(self, args, state, control, **kw):
            ck = runs.checkpoint_dir(run_dir, state.global_step)
            barrier()  # every rank has written its part (rng state, shards) before the marker
            if is_main_process() and ck.is_dir():
                runs.mark_checkpoint_complete(ck, state.global_step)
            emit(ev.event(ev.CHECKPOINT, step=state.global_step, path=str(ck)))

    return EventCallback()


PREFERENCE_LOGS = {"rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy",
                   "rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
                   "logps/chosen": "logps_chosen", "logps/rejected": "logps_rejected"}
"""The preference trainer's logs (backend/training/preference.py) -> the ``train`` event's fields."""


def ppl(loss: float | None) -> float | None:
    """Perplexity of a mean token loss (``None`` for a missing or non-finite loss; capped at e^50)."""
    if loss is None or not math.isfinite(loss):
        return None
    return round(math.exp(min(loss, 50.0)), 4)

