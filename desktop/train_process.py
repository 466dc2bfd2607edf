"""Training in a child process, supervised from a worker thread.

The Train page runs :func:`supervise` in a :class:`desktop.workers.Job` (a
``QThread``): it runs the request through the job runner
(:func:`backend.jobs.run_job`: ``python -m backend.child``, the app itself with
``--child`` in the PyInstaller bundle), turns the child's events into the Job's
``event`` signal, and passes Pause / Stop on as control words
(docs/architecture.md, "The job runner and the model host").

Why a process and not the thread itself: importing torch and loading a model
hold the GIL for hundreds of milliseconds at a time, which froze the window;
a crash or out-of-memory kill of training took the window with it; and the
memory training used (GPU memory included) only comes back whole when its
process ends.  This module imports nothing heavy: the GUI process never
imports torch or transformers for training.

When the child dies without its ``finished`` event (killed, out of memory,
segmentation fault), the run is marked ``failed`` with the reason in
``status.json`` and :class:`TrainingProcessDied` says what happened in words;
the run can be resumed from its latest checkpoint like any other.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Any, Callable

from backend import events as ev
from backend import jobs, runs
from backend.runs import RunResult
from backend.errors import TrainingError, TuneError

log = logging.getLogger(__name__)

CHILD_FLAG = jobs.CHILD_FLAG
"""The frozen app's argument that makes it act as a job child (package/launch.py)."""
WHAT = "the training process"


class TrainingProcessDied(TrainingError):
    """The training process ended without saying how the run ended (killed, crashed)."""


def child_command() -> list[str]:
    """The command line that starts the training child with this interpreter (or this app)."""
    return jobs.child_command()


def train_request(cfg_dict: dict, run_dir: Path, *, nice: int = 0) -> dict[str, Any]:
    """The child's request for a new run into the (empty, created) folder ``run_dir``."""
    cfg = dict(cfg_dict, output_dir=str(run_dir))
    return {"action": "train", "config": cfg, "run_dir": str(run_dir), "nice": nice}


def resume_request(run_dir: Path, *, nice: int = 0, trust_remote_code: bool = False,
                   allow_pickle_weights: bool = False, allow_hub: bool = False) -> dict[str, Any]:
    """The child's request to continue ``run_dir`` from its latest checkpoint.

    The trust choices are the person's (the Model page's ticks), never the run
    folder's: the child passes them to :func:`backend.training.resume`, which
    refuses what the folder asks beyond them (docs/architecture.md, "Trust").
    """
    return {"action": "resume", "run_dir": str(run_dir), "nice": nice,
            "trust_remote_code": bool(trust_remote_code), "allow_pickle_weights": bool(allow_pickle_weights),
            "allow_hub": bool(allow_hub)}


def supervise(request: dict[str, Any], *, on_event: ev.OnEvent = ev.no_event,
              should_stop: ev.ShouldStop = ev.never_stop,
              should_pause: Callable[[], bool] | None = None,
              command: list[str] | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> RunResult:
    """Run one training request in a child process and report it as if it ran here.

    Parameters
    ----------
    request
        :func:`train_request` or :func:`resume_request`.
    on_event, should_stop, should_pause
        As for :func:`backend.training.train`: every event the child prints is
        passed to ``on_event``; stop and pause are sent to the child as control
        words (a stop saves a checkpoint at the end of the current step).
    command
        The child's command line (default :func:`child_command`).
    on_start
        Called with the child process once it runs (tests use its pid).

    Returns
    -------
    RunResult
        The run folder, final status and adapter folder, from the child's ``finished`` event.

    Raises
    ------
    TuneError
        The run failed: the child's error (file, field, hint kept) or
        :class:`TrainingProcessDied` when the child ended without a ``finished`` event.
    """
    run_dir = Path(request["run_dir"]) if request.get("run_dir") else None

    def follow(rec: dict) -> None:
        nonlocal run_dir
        if rec.get("type") == ev.STARTED and rec.get("run_dir"):
            run_dir = Path(rec["run_dir"])
        on_event(rec)

    out = jobs.run_job(request, on_event=follow, should_stop=should_stop, should_pause=should_pause,
                       command=command, on_start=on_start, what=WHAT)
    finished = out.finished
    if finished is None:
        reason = out.reason
        _mark_failed(run_dir, reason)
        hint = ("continue it with Resume: it picks up from its latest checkpoint"
                if run_dir is not None and runs.is_resumable(run_dir)
                else "start it again; with less memory in use (a smaller batch or max length) if it ran out")
        raise TrainingProcessDied(reason[:1].upper() + reason[1:], file=run_dir, hint=hint)
    status = finished.get("status") or "failed"
    if status == "failed":
        raise _error_from(finished)
    return RunResult(Path(finished.get("run_dir") or run_dir or "."), status,
                     Path(finished["adapter_dir"]) if finished.get("adapter_dir") else None,
                     finished.get("reason") or "", finished.get("metrics"))


def _mark_failed(run_dir: Path | None, reason: str) -> None:
    """Record in ``status.json`` that the run died, unless the child got to say how it ended."""
    if run_dir is None or not runs.is_run_dir(run_dir):
        return
    if runs.read_status(run_dir).get("status") not in (None, "queued", "running"):
        return
    try:
        runs.write_status(run_dir, "failed", reason=reason)
    except OSError as e:
        log.warning("could not mark %s failed: %s", run_dir, e)


def _error_from(finished: dict) -> TuneError:
    """The child's failure as a :class:`TuneError` (class, file, line, field and hint kept)."""
    return jobs.error_from(finished, default=TrainingError)


__all__ = ["CHILD_FLAG", "TrainingProcessDied", "child_command", "resume_request",
           "supervise", "train_request"]
