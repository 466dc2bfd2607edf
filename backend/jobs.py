"""The one job runner: a job in a child process, typed JSON requests and events over its pipes.  No Qt.

Every job that touches a model runs in a child process started here
(docs/architecture.md, "The job runner and the model host"): training,
export, the index store probe, and the model host that answers the Chat and
Evaluate pages.  The child is ``python -m backend.child`` (the frozen app with
:data:`CHILD_FLAG`); its protocol is documented at the top of
:mod:`backend.child`.  This module imports nothing heavy, so the window's
process can use it without loading torch.

Two ways to use it:

* :func:`run_job` / :func:`call`: one request, one child, which ends with the job.
  Events reach ``on_event``; ``should_stop`` / ``should_pause`` become control words.
* :class:`ModelHost`: one long-lived child holding the chat model, the embedder
  and the index; requests go to it one at a time, and it is started again on the
  next request when it died.

A child that ends without its ``finished`` event (killed, out of memory, a
segmentation fault) is a :class:`ChildDied` error whose message says so in
words; a job that failed in the child raises the child's own typed error (class,
file, line, field and hint kept).
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable

from backend import errors
from backend import events as ev
from backend.errors import TuneError

log = logging.getLogger(__name__)

CHILD_FLAG = "--child"
"""The frozen app's argument that makes it act as a job child (package/launch.py)."""

STDERR_TAIL = 40  # lines of the child's stderr kept for the failure message
POLL_S = 0.02     # how often stop/pause are checked while no event arrives
PAUSE, CONTINUE, STOP = "pause", "continue", "stop"
_NOTHING = object()


class ChildDied(TuneError):
    """A child process ended without saying how its job ended (killed, crashed, out of memory)."""

    exit_code = 1


class JobCancelled(TuneError):
    """The job was stopped before it finished."""

    exit_code = 130


class ChildJobError(TuneError):
    """The job failed in its child process with an error that is not one of ours (its type is named)."""

    exit_code = 1


def child_command() -> list[str]:
    """The command line that starts a job child with this interpreter (or this app, when frozen)."""
    if getattr(sys, "frozen", False):  # PyInstaller: sys.executable is the app
        return [sys.executable, CHILD_FLAG]
    return [sys.executable, "-m", "backend.child"]


def child_env() -> dict[str, str]:
    """The child's environment: this checkout's ``backend`` on the path, unbuffered UTF-8, no telemetry."""
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):
        # `-m backend.child` must find this checkout's backend even when it is not installed.
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    env["ANONYMIZED_TELEMETRY"] = "False"
    return env


def describe_exit(rc: int, what: str = "the process") -> str:
    """What an exit code without a ``finished`` event means, in words (``what`` names the process)."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if -rc == getattr(signal, "SIGKILL", 9):
            return (f"{what} was killed ({name}): the system does this when memory runs out, "
                    "or someone ended the process")
        if -rc == getattr(signal, "SIGSEGV", 11):
            return f"{what} crashed ({name}, a segmentation fault in a native library)"
        if -rc == getattr(signal, "SIGABRT", 6):
            return f"{what} crashed ({name}, a native library aborted)"
        return f"{what} ended on {name}"
    if os.name == "nt" and rc in (0xC0000005, -1073741819):
        return f"{what} crashed (access violation in a native library)"
    return f"{what} exited with code {rc} without finishing"


def error_from(finished: dict, default: type[TuneError] = ChildJobError) -> TuneError:
    """The child's failure as the same typed error (class, file, line, field and hint kept)."""
    err = finished.get("error") or {}
    message = err.get("message") or finished.get("reason") or "the job failed"
    cls = getattr(errors, str(err.get("error") or ""), None)
    if not (isinstance(cls, type) and issubclass(cls, TuneError)):
        cls = default
    e = cls(message, file=err.get("file"), line=err.get("line"), field=err.get("field"), hint=err.get("hint"))
    return e


def _read_lines(stream: IO[bytes], sink: Callable[[bytes | None], None]) -> None:
    try:
        for line in iter(stream.readline, b""):
            sink(line)
    except (OSError, ValueError):
        pass
    finally:
        sink(None)


class Child:
    """One child process (``python -m backend.child``) seen as a stream of events.

    Parameters
    ----------
    request
        The first line the child reads (see :mod:`backend.child`).
    command
        The child's command line (default :func:`child_command`).
    what
        The process in words, for messages ("the training process").
    """

    def __init__(self, request: dict[str, Any], *, command: list[str] | None = None,
                 what: str = "the job process"):
        self.what = what
        self.tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        self._lines: queue.Queue = queue.Queue()
        self._eof = False
        self.proc = subprocess.Popen(command or child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=child_env(),
                                     # the app, not the terminal, decides when a job stops (Ctrl-C reaches the app)
                                     start_new_session=os.name == "posix",
                                     creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        log.info("%s %d started: %s", what, self.proc.pid, request.get("action"))
        self._readers = [threading.Thread(target=_read_lines, args=(self.proc.stdout, self._lines.put),
                                          daemon=True, name="child-stdout"),
                         threading.Thread(target=_read_lines, args=(self.proc.stderr, self._keep_stderr),
                                          daemon=True, name="child-stderr")]
        for t in self._readers:
            t.start()
        self.send(request)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def _keep_stderr(self, line: bytes | None) -> None:
        if line is not None:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                self.tail.append(text)
                log.info("%s %d: %s", self.what, self.proc.pid, text)

    def send(self, message: dict | str) -> bool:
        """Write a request (a dict) or a control word as one line; ``False`` when the child is gone."""
        line = json.dumps(message) if isinstance(message, dict) else message
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
            return True
        except (OSError, ValueError):  # the child is gone; its exit tells the rest
            return False

    def next_event(self, timeout: float = POLL_S) -> Any:
        """The next event dict; ``None`` once stdout has closed (the child is ending); ``_NOTHING`` on timeout."""
        if self._eof:
            return None
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            return _NOTHING
        if line is None:
            self._eof = True
            return None
        if not line.strip():
            return _NOTHING
        try:
            return ev.decode(line)
        except ValueError:  # not an event (cannot happen by the protocol): keep it for the log
            self._keep_stderr(line)
            return _NOTHING

    def alive(self) -> bool:
        """The process is still running."""
        return self.proc.poll() is None

    def close(self, timeout: float | None = None) -> int:
        """End its input (a running job stops), wait for it (killed after ``timeout`` s); its exit code."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.wait()
        for t in self._readers:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        log.info("%s %d exited with code %d", self.what, self.proc.pid, rc)
        return rc

    def kill(self) -> None:
        """End the process now."""
        try:
            self.proc.kill()
        except OSError:
            pass

    def death_reason(self, rc: int) -> str:
        """Why the child ended without its ``finished`` event, in words (with its last message)."""
        reason = describe_exit(rc, self.what)
        last = next((t for t in reversed(self.tail) if t.strip()), "")
        if last and rc > 0:
            reason += f" (last message: {last.strip()[:300]})"
        return reason


@dataclass
class JobOutcome:
    """How a job in a child process ended.

    ``finished`` is the child's ``finished`` event, ``None`` when it died
    without one; ``reason`` then says why in words.  ``result`` is the value of
    its ``result`` event (``None`` without one).
    """

    finished: dict | None
    result: Any
    returncode: int
    reason: str = ""
    timed_out: bool = False


def _follow(child: Child, *, on_event: ev.OnEvent, should_stop: ev.ShouldStop,
            should_pause: Callable[[], bool] | None, deadline: float | None,
            to_the_end: bool = False) -> tuple[dict | None, Any, bool]:
    """Pass a job's events on until its ``finished`` (or, ``to_the_end``, the end of the child's output).

    Returns the (last) ``finished`` event, ``None`` when the output ended without
    one; the ``result`` value; whether the deadline passed.
    """
    stop_sent = paused = False
    result = finished = None
    while True:
        rec = child.next_event()
        if rec is None:
            return finished, result, False
        if rec is not _NOTHING:
            t = rec.get("type")
            if t == ev.RESULT:
                result = rec.get("value")
            elif t == ev.FINISHED:
                on_event(rec)
                finished = rec
                if not to_the_end:
                    return rec, result, False
            else:
                on_event(rec)
        if deadline is not None and time.monotonic() > deadline:
            return None, result, True
        if not stop_sent and should_stop():
            child.send(STOP)
            stop_sent = True
        want_pause = bool(should_pause and should_pause()) and not stop_sent
        if want_pause != paused:
            child.send(PAUSE if want_pause else CONTINUE)
            paused = want_pause


def run_job(request: dict[str, Any], *, on_event: ev.OnEvent = ev.no_event,
            should_stop: ev.ShouldStop = ev.never_stop, should_pause: Callable[[], bool] | None = None,
            command: list[str] | None = None, on_start: Callable[[subprocess.Popen], None] | None = None,
            timeout_s: float | None = None, what: str = "the job process") -> JobOutcome:
    """Run one request in a new child process and report how it ended.

    Parameters
    ----------
    request
        The child's request (``{"action": ...}``, see :mod:`backend.child`).
    on_event, should_stop, should_pause
        Every event the child prints is passed to ``on_event`` (its ``result``
        is kept instead); stop and pause are sent to the child as control words.
    command
        The child's command line (default :func:`child_command`).
    on_start
        Called with the child process once it runs (tests use its pid).
    timeout_s
        Kill the child when the job has not finished after this many seconds.
    what
        The process in words, for the reason a death is reported with.

    Returns
    -------
    JobOutcome
        The ``finished`` event (``None`` when the child died first, the reason in words), the result.
    """
    child = Child(request, command=command, what=what)
    if on_start is not None:
        on_start(child.proc)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    finished = result = None
    timed_out = False
    try:
        finished, result, timed_out = _follow(child, on_event=on_event, should_stop=should_stop,
                                              should_pause=should_pause, deadline=deadline, to_the_end=True)
    finally:
        if timed_out:
            child.kill()
        rc = child.close()
    reason = ""
    if finished is None:
        reason = (f"{what} did not finish in {timeout_s:g} s" if timed_out else child.death_reason(rc))
    return JobOutcome(finished, result, rc, reason, timed_out)


def _raise_for(outcome_finished: dict | None, reason: str) -> None:
    if outcome_finished is None:
        raise ChildDied(reason[:1].upper() + reason[1:])
    status = outcome_finished.get("status") or "failed"
    if status == "cancelled":
        raise JobCancelled(outcome_finished.get("reason") or "stopped")
    if status != "completed":
        raise error_from(outcome_finished)


def call(request: dict[str, Any], *, on_event: ev.OnEvent = ev.no_event,
         should_stop: ev.ShouldStop = ev.never_stop, should_pause: Callable[[], bool] | None = None,
         command: list[str] | None = None, timeout_s: float | None = None,
         what: str = "the job process") -> Any:
    """Run one request in a new child process and return its result, as if it ran here.

    Returns
    -------
    Any
        The value of the child's ``result`` event (JSON).

    Raises
    ------
    TuneError
        The child's own error (same class, file, field and hint); :class:`ChildDied`
        when it ended without saying how; :class:`JobCancelled` when it was stopped.
    """
    out = run_job(request, on_event=on_event, should_stop=should_stop, should_pause=should_pause,
                  command=command, timeout_s=timeout_s, what=what)
    _raise_for(out.finished, out.reason)
    return out.result


class ModelHost:
    """The one model host: a long-lived child that holds the chat model, the embedder and the index.

    The Chat and Evaluate pages share one (``desktop.session.Session.model_host``):
    one copy of each model in memory, loaded on first use, kept warm between
    requests, reloaded there when the run or base model changes
    (:mod:`backend.host` is the child's side).  Requests run one at a time; a
    second waits for the first.  When the child dies mid-request the request
    raises :class:`ChildDied` in words, and the next request starts a new child.
    :meth:`close` ends the child and so returns all its memory.

    Parameters
    ----------
    command
        The child's command line (default :func:`child_command`).
    """

    WHAT = "the model process"

    def __init__(self, *, command: list[str] | None = None):
        self._command = command
        self._child: Child | None = None
        self._lock = threading.Lock()
        self._state = threading.Lock()  # guards _child against close() from another thread
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """The running child's process id (``None`` when none runs)."""
        child = self._child
        return child.pid if child is not None and child.alive() else None

    def running(self) -> bool:
        """A host child is running."""
        return self.pid is not None

    def request(self, op: str, params: dict[str, Any] | None = None, *, on_event: ev.OnEvent = ev.no_event,
                should_stop: ev.ShouldStop = ev.never_stop) -> Any:
        """Carry out one request in the host (started first when none runs) and return its result.

        Parameters
        ----------
        op
            The operation (:data:`backend.host.OPS`: ``ask``, ``ingest``, ``evaluate``, …).
        params
            Its JSON parameters.
        on_event, should_stop
            Events of the request; a stop is passed on as a control word.

        Returns
        -------
        Any
            The request's JSON result.

        Raises
        ------
        TuneError
            The request's own error in the host; :class:`ChildDied` when the host
            died meanwhile; :class:`JobCancelled` when stopped before it began.
        """
        while not self._lock.acquire(timeout=0.05):
            if should_stop():
                raise JobCancelled("stopped while the model process was busy with another request")
        try:
            return self._request(op, params, on_event=on_event, should_stop=should_stop)
        finally:
            self._lock.release()

    def _request(self, op: str, params: dict[str, Any] | None, *, on_event: ev.OnEvent,
                 should_stop: ev.ShouldStop) -> Any:
        """One request, with the lock held."""
        child = self._ensure()
        if not child.send({"op": op, "params": params or {}}):
            return self._died(child)
        finished, result, _ = _follow(child, on_event=on_event, should_stop=should_stop, should_pause=None,
                                      deadline=None)
        if finished is None:
            return self._died(child)
        _raise_for(finished, "")
        return result

    def _ensure(self) -> Child:
        with self._state:
            if self._child is not None and not self._child.alive():
                self._child.close(timeout=5)
                self._child = None
            if self._child is None:
                self._child = Child({"action": "host"}, command=self._command, what=self.WHAT)
                self.starts += 1
            return self._child

    def _died(self, child: Child) -> Any:
        rc = child.close(timeout=10)
        with self._state:
            if self._child is child:
                self._child = None
        reason = child.death_reason(rc)
        raise ChildDied(reason[:1].upper() + reason[1:],
                        hint="ask again: a new model process starts (and loads the model again)")

    def release_if_idle(self) -> bool:
        """Let a running, idle host drop its chat model and index (a quick request); ``True`` if it did.

        Never waits: a host busy with a request, or none running, is left as it is
        (safe to call from the GUI thread).
        """
        if not self.running() or not self._lock.acquire(blocking=False):
            return False
        try:
            self._request("release", None, on_event=ev.no_event, should_stop=ev.never_stop)
        except TuneError as e:
            log.info("the model process could not release its models: %s", e)
            return False
        finally:
            self._lock.release()
        return True

    def close(self, timeout: float = 10.0, *, wait: bool = True) -> None:
        """End the host child (its memory returns to the system); the next request starts a new one.

        Its input is closed, so it stops a request in progress and exits; it is
        killed when it has not after ``timeout`` s.  With ``wait=False`` a thread
        waits for it instead of the caller (the GUI thread).
        """
        with self._state:
            child, self._child = self._child, None
        if child is None:
            return
        if wait:
            child.close(timeout=timeout)
        else:
            threading.Thread(target=child.close, kwargs={"timeout": timeout}, name="model-host-close",
                             daemon=True).start()

    def __del__(self) -> None:  # a forgotten host must not outlive its owner
        try:
            child = self._child
            if child is not None:
                child.kill()
        except Exception:
            pass


__all__ = ["CHILD_FLAG", "Child", "ChildDied", "ChildJobError", "JobCancelled", "JobOutcome", "ModelHost", "call",
           "child_command", "child_env", "describe_exit", "error_from", "run_job"]
