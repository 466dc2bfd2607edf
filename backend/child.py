"""``python -m backend.child``: a job child of :mod:`backend.jobs` (training, export, the store probe, the model host).

Every job that touches a model runs in a child process like this one, started
and supervised by :mod:`backend.jobs` (docs/architecture.md, "The job runner
and the model host").  The protocol:

stdin, first line
    A JSON request, by ``"action"``:

    * ``{"action": "train", "config": {...}, "project_dir": ...}`` or
      ``{"action": "resume", "run_dir": ..., "trust_remote_code": bool,
      "allow_pickle_weights": bool, "allow_hub": bool}`` (the person's trust
      choices; the run folder's are never used): one training run;
    * ``{"action": "export", "run_dir", "kind", "out", "quant", "check", "questions",
      "generation", "system_prompt", "force"}``: :func:`backend.export.export_run`;
    * ``{"action": "store_probe", "index_dir": ...}``: open a Chroma store and run
      one query (:mod:`backend.rag.storecheck`; a crash costs this process only);
    * ``{"action": "host"}``: the model host (:mod:`backend.host`), which then reads
      one request per line, ``{"op": ..., "params": {...}}``, and answers them in turn.

    Optional ``"nice": N`` lowers the process's CPU priority by N before anything is loaded.
stdin, then
    Control words, one per line: ``pause``, ``continue``, ``stop`` (they apply to
    the job or host request in progress); the host's next requests.  The end of
    input (the supervisor went away) counts as ``stop``: a training run saves a
    checkpoint at the end of the current step and ends ``cancelled``; the host
    ends its request and exits, returning all its memory.
stdout
    One event per line (:func:`backend.events.encode`) and nothing else: what
    libraries print goes to stderr instead.  Every job (each host request) ends
    with one ``finished`` event (``completed``, ``failed`` with the error's dict,
    or ``cancelled``), preceded by a ``result`` event carrying its JSON value.
stderr
    Log lines and tracebacks; the supervisor keeps the last lines for its
    message when the child dies.
exit code
    0 completed (the host: its input ended); 3 the job ended cancelled or failed
    (its ``finished`` event says why); 2 a user error before a run started (a
    ``finished`` event carries it); 1 anything else.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import traceback
from typing import IO, Any, Callable

from backend import events as ev
from backend.cliutil import quiet_libraries
from backend.errors import TuneError

PAUSE, CONTINUE, STOP = "pause", "continue", "stop"
log = logging.getLogger(__name__)


class Controls:
    """The supervisor's controls (and the host's next requests), read from a stream in a thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.ended = threading.Event()   # the supervisor closed our input
        self.requests: queue.Queue = queue.Queue()

    def should_stop(self) -> bool:
        """Stop asked for, or no supervisor left."""
        return self.stop.is_set() or self.ended.is_set()

    def follow(self, stream: IO[str]) -> threading.Thread:
        """Read control words and requests from ``stream`` until its end (which means stop)."""

        def read() -> None:
            try:
                for line in stream:
                    word = line.strip()
                    if word.startswith("{"):
                        try:
                            self.requests.put(json.loads(word))
                        except ValueError:
                            log.warning("not a request: %s", word[:200])
                    elif word == STOP:
                        self.stop.set()
                    elif word == PAUSE:
                        self.pause.set()
                    elif word == CONTINUE:
                        self.pause.clear()
            except (OSError, ValueError):
                pass
            # no supervisor left: stop with a checkpoint rather than train unwatched
            self.ended.set()
            self.stop.set()
            self.requests.put(None)

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
        log.warning("could not lower the priority: %s", e)


def _writer(out: IO[str]) -> Callable[[dict], None]:
    lock = threading.Lock()

    def write(rec: dict) -> None:
        line = ev.encode(rec)
        with lock:
            out.write(line + "\n")
            out.flush()

    return write


def _train(request: dict[str, Any], write: Callable[[dict], None], controls: Controls) -> int:
    """One training run (``train`` / ``resume``)."""
    finished: list[dict] = []
    started: list[dict] = []

    def on_event(rec: dict) -> None:
        if rec.get("type") == ev.FINISHED:
            finished.append(rec)
        elif rec.get("type") == ev.STARTED:
            started.append(rec)
        write(rec)

    try:
        from backend.training import resume, train

        kwargs = {"on_event": on_event, "should_stop": controls.should_stop,
                  "should_pause": controls.pause.is_set}
        if request["action"] == "train":
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


def _export(request: dict[str, Any], on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> Any:
    from backend.export import export_run
    from backend.rag.settings import GenerationSettings

    gen = request.get("generation")
    rec = export_run(request["run_dir"], request["kind"], request["out"], quant=request.get("quant") or "q8_0",
                     check=bool(request.get("check", True)), questions=int(request.get("questions") or 20),
                     generation=GenerationSettings(**gen) if gen else None,
                     system_prompt=request.get("system_prompt"), force=bool(request.get("force")),
                     on_event=on_event, should_stop=should_stop)
    return rec.to_dict() if rec is not None else None


def _store_probe(request: dict[str, Any], on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> Any:
    from backend.rag.storecheck import open_and_query

    open_and_query(request["index_dir"])
    return {"ok": True}


def _carry_out(fn: Callable[[], Any], write: Callable[[dict], None]) -> int:
    """Run one job; write its ``result`` and ``finished`` events; the exit code it deserves."""
    try:
        value = fn()
    except BaseException as e:  # every way a job ends is reported; the supervisor decides what to show
        cancelled = isinstance(e, KeyboardInterrupt) or any(c.__name__.endswith("Cancelled")
                                                             for c in type(e).__mro__)
        if isinstance(e, TuneError):
            error = e.to_dict()
        else:
            error = {"error": type(e).__name__, "message": f"{type(e).__name__}: {e}"}
            if not cancelled:
                traceback.print_exc(file=sys.stderr)
        write(ev.event(ev.FINISHED, status="cancelled" if cancelled else "failed", reason=str(e), error=error))
        if isinstance(e, (SystemExit,)):
            raise
        return 3
    write(ev.event(ev.RESULT, value=value))
    write(ev.event(ev.FINISHED, status="completed"))
    return 0


def _host(write: Callable[[dict], None], controls: Controls) -> int:
    """The model host: answer requests one at a time until the input ends (backend/host.py)."""
    from backend.host import OPS, Models

    models = Models()
    while True:
        request = controls.requests.get()
        if request is None:
            return 0
        controls.stop.clear()
        controls.pause.clear()
        op = OPS.get(str(request.get("op")))
        params = request.get("params") or {}
        if op is None:
            def fail(name=request.get("op")) -> Any:
                raise ValueError(f"unknown request {name!r} (known: {', '.join(OPS)})")
            _carry_out(fail, write)
            continue
        _carry_out(lambda: op(models, params, write, controls.should_stop), write)


def run(request: dict[str, Any], out: IO[str], controls: Controls) -> int:
    """Carry out one request, writing its events to ``out``; returns the exit code."""
    write = _writer(out)
    _lower_priority(int(request.get("nice") or 0))
    action = request.get("action")
    quiet_libraries()
    if action in ("train", "resume"):
        return _train(request, write, controls)
    if action == "host":
        return _host(write, controls)
    jobs = {"export": _export, "store_probe": _store_probe}
    if action not in jobs:
        e = ValueError(f"unknown action {action!r} (known: train, resume, host, {', '.join(jobs)})")
        write(ev.event(ev.FINISHED, status="failed", reason=str(e), error={"error": "ValueError",
                                                                           "message": str(e)}))
        return 2
    return _carry_out(lambda: jobs[action](request, write, controls.should_stop), write)


def main(argv: list[str] | None = None) -> int:
    """Entry point: read the request from stdin, carry it out, report on stdout."""
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
        rc = run(request, out, controls)
    except KeyboardInterrupt:
        return 130
    finally:
        out.flush()
    if request.get("action") == "host":
        # Every request has ended and been reported: leave at once, without the seconds the
        # interpreter's teardown of torch and chroma takes, so the memory returns now.
        sys.stderr.flush()
        os._exit(rc)
    return rc


if __name__ == "__main__":
    sys.exit(main())
