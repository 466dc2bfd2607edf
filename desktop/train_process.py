"""Training in a child process, supervised from a worker thread.

The Train page runs :func:`supervise` in a :class:`desktop.workers.Job` (a
``QThread``): it starts ``python -m backend.child`` (the app itself with
``--train-child`` in the PyInstaller bundle), sends it the request, turns the
JSON event lines it prints into the Job's ``event`` signal, and passes Pause /
Stop on as control words (docs/architecture.md, "Training in a child process").

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

import collections
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from backend import events as ev
from backend import runs
from backend.errors import TrainingError, TuneError

log = logging.getLogger(__name__)

CHILD_FLAG = "--train-child"
"""The frozen app's argument that makes it act as the training child (package/launch.py)."""

STDERR_TAIL = 40  # lines of the child's stderr kept for the failure message
POLL_S = 0.02     # how often Pause/Stop are checked while no event arrives (pause lands within a step)


@dataclass
class TrainOutcome:
    """How a supervised run ended (the fields the Train page reads, as ``backend.training.RunResult``)."""

    run_dir: Path
    status: str                  # completed | failed | cancelled
    adapter_dir: Path | None
    reason: str = ""
    metrics: dict | None = None


class TrainingProcessDied(TrainingError):
    """The training process ended without saying how the run ended (killed, crashed)."""


def child_command() -> list[str]:
    """The command line that starts the training child with this interpreter (or this app)."""
    if getattr(sys, "frozen", False):  # PyInstaller: sys.executable is the app
        return [sys.executable, CHILD_FLAG]
    return [sys.executable, "-m", "backend.child"]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):
        # `-m backend.child` must find this checkout's backend even when it is not installed.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


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


def _describe_exit(rc: int) -> str:
    """What an exit code without a ``finished`` event means, in words."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if -rc == getattr(signal, "SIGKILL", 9):
            return (f"the training process was killed ({name}): the system does this when memory runs out, "
                    "or someone ended the process")
        if -rc == getattr(signal, "SIGSEGV", 11):
            return f"the training process crashed ({name}, a segmentation fault in a native library)"
        return f"the training process ended on {name}"
    if os.name == "nt" and rc in (0xC0000005, -1073741819):
        return "the training process crashed (access violation in a native library)"
    return f"the training process exited with code {rc} without finishing the run"


def _read_lines(stream: IO[bytes], sink: Callable[[bytes | None], None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            sink(line)
    except (OSError, ValueError):
        pass
    finally:
        sink(None)


def supervise(request: dict[str, Any], *, on_event: ev.OnEvent = ev.no_event,
              should_stop: ev.ShouldStop = ev.never_stop,
              should_pause: Callable[[], bool] | None = None,
              command: list[str] | None = None,
              on_start: Callable[[subprocess.Popen], None] | None = None) -> TrainOutcome:
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
    TrainOutcome
        The run folder, final status and adapter folder, from the child's ``finished`` event.

    Raises
    ------
    TuneError
        The run failed: the child's error (file, field, hint kept) or
        :class:`TrainingProcessDied` when the child ended without a ``finished`` event.
    """
    run_dir = Path(request["run_dir"]) if request.get("run_dir") else None
    proc = subprocess.Popen(command or child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_child_env(),
                            # the app, not the terminal, decides when training stops (Ctrl-C reaches the app)
                            start_new_session=os.name == "posix",
                            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    log.info("training child %d started: %s", proc.pid, request.get("action"))
    if on_start is not None:
        on_start(proc)
    lines: queue.Queue = queue.Queue()
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)

    def keep_stderr(line: bytes | None) -> None:
        if line is not None:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                tail.append(text)
                log.info("training child %d: %s", proc.pid, text)

    readers = [threading.Thread(target=_read_lines, args=(proc.stdout, lines.put), daemon=True,
                                name="child-stdout"),
               threading.Thread(target=_read_lines, args=(proc.stderr, keep_stderr), daemon=True,
                                name="child-stderr")]
    for t in readers:
        t.start()

    def send(word: str) -> None:
        try:
            proc.stdin.write((word + "\n").encode())
            proc.stdin.flush()
        except (OSError, ValueError):  # the child is gone; its exit tells the rest
            pass

    send(json.dumps(request))
    finished: dict | None = None
    stop_sent = False
    paused = False
    try:
        while True:
            try:
                line = lines.get(timeout=POLL_S)
            except queue.Empty:
                line = b""
            if line is None:
                break  # stdout closed: the child is ending
            if line.strip():
                try:
                    rec = ev.decode(line)
                except ValueError:  # not an event (cannot happen by the protocol): keep it for the log
                    keep_stderr(line)
                    rec = None
                if rec is not None:
                    if rec.get("type") == ev.STARTED and rec.get("run_dir"):
                        run_dir = Path(rec["run_dir"])
                    elif rec.get("type") == ev.FINISHED:
                        finished = rec
                    on_event(rec)
            if not stop_sent and should_stop():
                send("stop")
                stop_sent = True
            want_pause = bool(should_pause and should_pause()) and not stop_sent
            if want_pause != paused:
                send("pause" if want_pause else "continue")
                paused = want_pause
    finally:
        try:
            proc.stdin.close()  # end of input: a child still running stops with a checkpoint
        except OSError:
            pass
        rc = proc.wait()
        for t in readers:
            t.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    log.info("training child %d exited with code %d", proc.pid, rc)
    if finished is None:
        reason = _describe_exit(rc)
        last = next((t for t in reversed(tail) if t.strip()), "")
        if last and rc > 0:
            reason += f" (last message: {last.strip()[:300]})"
        _mark_failed(run_dir, reason)
        hint = ("continue it with Resume: it picks up from its latest checkpoint"
                if run_dir is not None and runs.is_resumable(run_dir)
                else "start it again; with less memory in use (a smaller batch or max length) if it ran out")
        raise TrainingProcessDied(reason[:1].upper() + reason[1:], file=run_dir, hint=hint)
    status = finished.get("status") or "failed"
    if status == "failed":
        raise _error_from(finished)
    return TrainOutcome(Path(finished.get("run_dir") or run_dir or "."), status,
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
    """The child's failure as a :class:`TuneError` (file, line, field and hint kept)."""
    err = finished.get("error") or {}
    message = err.get("message") or finished.get("reason") or "training failed"
    return TrainingError(message, file=err.get("file"), line=err.get("line"), field=err.get("field"),
                         hint=err.get("hint"))


__all__ = ["CHILD_FLAG", "TrainOutcome", "TrainingProcessDied", "child_command", "resume_request",
           "supervise", "train_request"]
