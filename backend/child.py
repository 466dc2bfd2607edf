"""``python -m backend.child``: one training run for a supervising process (the desktop app).

The desktop app never trains in its own process: a worker thread starts this
module as a child process, reads its events and sends it controls
(docs/architecture.md, "Training in a child process").  The protocol:

stdin, first line
    A JSON request: ``{"action": "train", "config": {...}, "project_dir": ...}``
    or ``{"action": "resume", "run_dir": ..., "trust_remote_code": bool,
    "allow_pickle_weights": bool, "allow_hub": bool}`` (the person's trust
    choices; the run folder's are never used); optional ``"nice": N`` lowers
    the process's CPU priority by N before anything is loaded.
stdin, then
    One control word per line: ``pause``, ``continue``, ``stop``.  The end of
    input (the supervisor went away) counts as ``stop``: the run saves a
    checkpoint at the end of the current step and ends ``cancelled``.
stdout
    One event per line (:func:`backend.events.encode`) and nothing else: what
    libraries print goes to stderr instead.
stderr
    Log lines and tracebacks; the supervisor keeps the last lines for its
    message when the child dies.
exit code
    0 completed; 3 the run ended cancelled or failed (its ``finished`` event says
    why); 2 a user error before the run started (a ``finished`` event carries
    it); 1 anything else.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import IO, Any

from backend import events as ev
from backend.cliutil import quiet_libraries
from backend.errors import TuneError

PAUSE, CONTINUE, STOP = "pause", "continue", "stop"


class Controls:
    """The supervisor's controls, read from a stream of control words in a thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.pause = threading.Event()

    def follow(self, stream: IO[str]) -> threading.Thread:
        """Read control words from ``stream`` until its end (which means stop)."""

        def read() -> None:
            try:
                for line in stream:
                    word = line.strip()
                    if word == STOP:
                        self.stop.set()
                    elif word == PAUSE:
                        self.pause.set()
                    elif word == CONTINUE:
                        self.pause.clear()
            except (OSError, ValueError):
                pass
            self.stop.set()  # no supervisor left: stop with a checkpoint rather than train unwatched

        t = threading.Thread(target=read, name="child-controls", daemon=True)
        t.start()
        return t


def _lower_priority(nice: int) -> None:
    """Run this process (and every thread it starts) at a lower CPU priority."""
    if nice <= 0:
        return
    try:
        if hasattr(os, "nice"):
            os.nice(min(19, nice))
        else:  # Windows
            import psutil
            psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)
    except (OSError, ImportError) as e:  # best effort: training at normal priority is still right
        logging.getLogger(__name__).warning("could not lower the priority: %s", e)


def run(request: dict[str, Any], out: IO[str], controls: Controls) -> int:
    """Carry out one request, writing its events to ``out``; returns the exit code."""
    finished: list[dict] = []
    started: list[dict] = []
    lock = threading.Lock()

    def on_event(rec: dict) -> None:
        if rec.get("type") == ev.FINISHED:
            finished.append(rec)
        elif rec.get("type") == ev.STARTED:
            started.append(rec)
        line = ev.encode(rec)
        with lock:
            out.write(line + "\n")
            out.flush()

    _lower_priority(int(request.get("nice") or 0))
    try:
        action = request.get("action")
        if action not in ("train", "resume"):
            raise ValueError(f"unknown action {action!r}")
        quiet_libraries()
        from backend.training import resume, train

        kwargs = {"on_event": on_event, "should_stop": controls.stop.is_set,
                  "should_pause": controls.pause.is_set}
        if action == "train":
            from backend.config import RunConfig

            cfg = RunConfig.from_dict(request["config"])
            result = train(cfg, project_dir=request.get("project_dir"), **kwargs)
        else:
            # the person's choices, sent by the window (never the run folder's): backend/trust.py
            trust = {k: request.get(k) is True for k in ("trust_remote_code", "allow_pickle_weights", "allow_hub")}
            result = resume(request["run_dir"], **trust, **kwargs)
    except TuneError as e:
        if not finished:  # failed before the run started (its own events say nothing yet)
            on_event(ev.event(ev.FINISHED, status="failed", reason=str(e), run_dir=request.get("run_dir"),
                              error=e.to_dict()))
        return 3 if started else e.exit_code
    return 0 if result.status == "completed" else 3


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the request from stdin, train, report on stdout."""
    # Keep stdout for events only: a library that prints (or a C extension that writes
    # to file descriptor 1) must not break the supervisor's stream.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    line = sys.stdin.readline()
    if not line.strip():
        print("backend.child: no request on stdin", file=sys.stderr)
        return 2
    request = json.loads(line)
    controls = Controls()
    controls.follow(sys.stdin)
    try:
        return run(request, out, controls)
    except KeyboardInterrupt:
        return 130
    finally:
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
