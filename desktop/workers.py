"""Run backend jobs off the GUI thread.

A :class:`Worker` (a ``QObject`` without a parent, moved to a ``QThread``)
calls one plain backend function with the controls it accepts
(``on_event``, ``should_stop``, ``should_pause``) and re-emits what happens
as Qt signals.  A :class:`Job` lives in the GUI thread, owns the worker and its
thread, and re-emits those signals there, so widgets can connect anything to
them (lambdas included) and never see a foreign thread.

No model loads in a worker of this process: jobs that touch a model run in a child
process through :mod:`backend.jobs` (training via :mod:`desktop.train_process`, export,
and the model host that answers the Chat and Evaluate pages), supervised from a
:class:`Job` (so torch never loads here, and a crash or out-of-memory kill never takes
the window; docs/architecture.md, "The job runner and the model host").
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
import traceback
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)

_CONTROLS = ("on_event", "should_stop", "should_pause")


def _accepted_controls(fn: Callable) -> set[str]:
    """The control keywords ``fn`` accepts (all of them for ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(_CONTROLS)
    return {c for c in _CONTROLS if c in params}


def _shield_bools() -> None:
    """Keep ``True``/``False`` alive despite PySide6's ``SignalInstance.emit`` refcount bug.

    PySide6 6.12 returns the result of ``emit()`` (``True``/``False``) without a new
    reference, so every ``.emit(...)`` made from Python takes one reference from the bool
    singleton.  CPython < 3.12 counts references to ``True`` like any object's, and once
    enough signals were emitted (~10,000 with torch loaded, far fewer without) the count
    reaches zero and the interpreter aborts with ``Fatal Python error: bool_dealloc`` —
    the Chat page's index-update loop got there in ~2,600 jobs.  CPython 3.12+ makes the
    bools immortal (decrements are no-ops), which is what this does by hand: it adds
    2**40 to both counts once, so no realistic number of emits brings them to zero.  A
    PySide6 without the bug only leaves the cushion unused; the bools are never freed
    anyway.  ``None`` gets the same cushion: this PySide6 also takes a reference from it
    on every call of a method that returns nothing (``QPainter.setPen`` 10,000 times
    aborts a bare process with ``none_dealloc``).  Torch in the window's process used to
    hide that with its millions of references to ``None``; since no model library is
    imported here any more (docs/architecture.md, "The job runner and the model host"),
    the live plots' painting reached zero within a minute.  Skipped wherever the object layout is not the one checked here.
    """
    global _BOOLS_SHIELDED
    if (_BOOLS_SHIELDED or sys.implementation.name != "cpython" or sys.version_info >= (3, 12)
            or hasattr(sys, "gettotalrefcount")):  # immortal bools, or a debug build's layout
        return
    import ctypes

    for b in (True, False, None):
        cell = ctypes.c_ssize_t.from_address(id(b))  # ob_refcnt, the first field of a PyObject
        if cell.value + 1 != sys.getrefcount(b):
            log.debug("bool refcount shield skipped: unexpected object layout")
            return
    cushion = 1 << 40 if sys.maxsize > 2**32 else 1 << 28  # far from overflow on 32-bit builds too
    for b in (True, False, None):
        ctypes.c_ssize_t.from_address(id(b)).value += cushion
    _BOOLS_SHIELDED = True


_BOOLS_SHIELDED = False
_shield_bools()


def _is_cancellation(error: BaseException, stop_requested: bool) -> bool:
    """Whether ``error`` only says the job was stopped (``DataCancelled``, an interrupt...)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    if any(c.__name__.endswith("Cancelled") for c in type(error).__mro__):
        return True
    return stop_requested and isinstance(error, Exception) and "cancel" in str(error).lower()


class Worker(QObject):
    """Calls ``fn(*args, **kwargs)`` in its thread; emits its events and outcome.

    Must have no parent (it is moved to another thread).  Signals are emitted
    from the worker thread; connect them to a ``QObject`` living in the GUI
    thread (see :class:`Job`).
    """

    started = Signal()
    event = Signal(object)      # an event dict from the backend
    returned = Signal(object)   # fn's return value
    errored = Signal(object)    # the exception (traceback already logged)
    finished = Signal()

    def __init__(self, fn: Callable, *args: Any, **kwargs: Any):
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._stop = threading.Event()
        self._pause = threading.Event()
        self.traceback = ""
        self.cancelled = False

    def request_stop(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the job at its next check (thread-safe)."""
        (self._pause.set if paused else self._pause.clear)()

    def _emit_event(self, record: dict) -> None:
        self.event.emit(record)

    @Slot()
    def run(self) -> None:
        """Run the function (in the worker thread)."""
        self.started.emit()
        controls = {"on_event": self._emit_event, "should_stop": self._stop.is_set,
                    "should_pause": self._pause.is_set}
        accepted = _accepted_controls(self._fn)
        kwargs = {**{k: v for k, v in controls.items() if k in accepted}, **self._kwargs}
        try:
            result = self._fn(*self._args, **kwargs)
        except BaseException as e:  # report everything; the GUI decides what to show
            self.traceback = traceback.format_exc()
            name = getattr(self._fn, "__name__", self._fn)
            if _is_cancellation(e, self._stop.is_set()):
                # Stopping a job on purpose is routine: one line, no traceback (issue 21).
                self.cancelled = True
                log.info("job %s cancelled: %s", name, e)
            else:
                log.error("job %s failed:\n%s", name, self.traceback)
            self.errored.emit(e)
        else:
            self.returned.emit(result)
        finally:
            # Hand the object back to the GUI thread so Python can free it there.
            app = QCoreApplication.instance()
            if app is not None:
                self.moveToThread(app.thread())
            self.finished.emit()
            # End the thread's event loop now, so Job.wait() returns without the GUI thread
            # having to process the queued finished signal first (closing the window waits).
            QThread.currentThread().quit()


class Job(QObject):
    """A backend function running in its own ``QThread``, seen from the GUI thread.

    Parameters
    ----------
    fn
        A plain function; it receives ``on_event`` / ``should_stop`` /
        ``should_pause`` when its signature accepts them.
    name
        Shown in logs and used by :func:`running_jobs`.

    Signals (all emitted in the GUI thread): ``event(dict)``, ``returned(object)``,
    ``errored(Exception)``, ``finished()`` — ``finished`` comes last, always.
    """

    event = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    finished = Signal()

    _active: set["Job"] = set()

    def __init__(self, fn: Callable, *args: Any, name: str = "", parent: QObject | None = None,
                 **kwargs: Any):
        super().__init__(parent)
        self.name = name or getattr(fn, "__name__", "job")
        self._worker: Worker | None = Worker(fn, *args, **kwargs)
        self._thread: QThread | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.done = False
        self.stop_requested = False
        self.cancelled = False  # it ended with an error that only says it was stopped
        w = self._worker
        w.event.connect(self._on_event)
        w.returned.connect(self._on_returned)
        w.errored.connect(self._on_errored)
        w.finished.connect(self._on_finished)

    # -- control ---------------------------------------------------------
    def start(self) -> "Job":
        """Start the thread; returns ``self``."""
        thread = QThread()
        thread.setObjectName(f"job:{self.name}")
        self._worker.moveToThread(thread)
        thread.started.connect(self._worker.run)
        self._thread = thread
        Job._active.add(self)
        thread.start()
        return self

    def stop(self) -> None:
        """Ask the job to stop (it finishes on its own, soon)."""
        self.stop_requested = True
        if self._worker is not None:
            self._worker.request_stop()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume a job that accepts ``should_pause``."""
        if self._worker is not None:
            self._worker.set_paused(paused)

    def is_running(self) -> bool:
        """Started and not finished yet."""
        return self._thread is not None and not self.done

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread has ended (process no events); ``True`` if it did."""
        if self._thread is None:
            return True
        return self._thread.wait(msecs)

    # -- worker signals (queued into the GUI thread) ------------------------
    @Slot(object)
    def _on_event(self, record: dict) -> None:
        self.event.emit(record)

    @Slot(object)
    def _on_returned(self, result: Any) -> None:
        self.result = result
        self.returned.emit(result)

    @Slot(object)
    def _on_errored(self, error: BaseException) -> None:
        self.error = error
        self.traceback = self._worker.traceback if self._worker else ""
        self.cancelled = self._worker.cancelled if self._worker else False
        self.errored.emit(error)

    @Slot()
    def _on_finished(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.quit()
            thread.wait()
        self.done = True
        self._worker = None
        self._thread = None
        Job._active.discard(self)
        self.finished.emit()


def running_jobs() -> list[Job]:
    """Jobs started and not finished.

    A job whose Qt object was deleted (its parent widget closed) before its queued
    ``finished`` arrived never hears it; once its thread has ended it is dropped here.
    """
    for j in list(Job._active):
        thread = j._thread
        if not shiboken6.isValid(j) and (thread is None or thread.isFinished()):
            Job._active.discard(j)
    return [j for j in Job._active if j.is_running()]


def stop_all_jobs(timeout_ms: int = 60_000) -> bool:
    """Ask every running job to stop and wait for their threads; ``True`` if all ended."""
    import time

    jobs = running_jobs()
    for job in jobs:
        job.stop()
    ok = True
    deadline = time.monotonic() + timeout_ms / 1000
    for job in jobs:
        left = max(0, int((deadline - time.monotonic()) * 1000))
        ok = job.wait(left) and ok
    # Deliver the queued finished signals so the jobs clean up.
    QCoreApplication.processEvents()
    return ok
