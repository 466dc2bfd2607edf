"""Run backend jobs off the GUI thread.

A :class:`Worker` (a ``QObject`` without a parent, moved to a ``QThread``)
calls one plain backend function with the controls it accepts
(``on_event``, ``should_stop``, ``should_pause``) and re-emits what happens
as Qt signals.  A :class:`Job` lives in the GUI thread, owns the worker and its
thread, and re-emits those signals there, so widgets can connect anything to
them (lambdas included) and never see a foreign thread.

While a training job loads (imports, model, tokenizer, dataset: a heap of
long-lived objects), :class:`_QuietGC` (``Job(..., quiet_gc=True)``) keeps Python's cyclic garbage collector from
rescanning that whole heap again and again: each full collection holds the GIL
for 100-400 ms, and the GUI thread, which needs the GIL to paint, stalls for as
long.  Measured with ``bench.gui``: 8 such collections in the loading phase of a
run, the main source of stalls over 100 ms before the first step.

The worker thread also runs at a lower CPU priority (``Worker.NICE``; threads it
starts, e.g. torch's intra-op pool, inherit it), so that when the GUI thread
needs a core to repaint, it gets one at once instead of sharing it with the
training threads: on a 2-core machine a repaint took 100-200 ms of wall time
against a busy trainer, ~20 ms otherwise.  Training loses nothing while the GUI
is idle.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any, Callable

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


class _QuietGC:
    """Keep the cyclic GC off the GIL while jobs load (process-wide, thread-safe).

    ``begin``: automatic collection is paused while any job is loading.
    ``event``: each event of a loading job freezes what is alive (``gc.freeze``: O(1);
    the objects leave the collector's generations, so the explicit ``gc.collect()``
    that libraries call, e.g. ``accelerate.free_memory`` at the start of training,
    only scans what is new).  The first ``train`` event, or ``LOAD_LIMIT_S`` without
    one, ends the loading phase: collection resumes, over new objects only.
    ``end``: when the last job ends, its objects are unfrozen and collected once, so
    a cycle holding a model (and its GPU memory) is freed now, not at some later
    collection.
    """

    LOAD_LIMIT_S = 120.0
    _lock = threading.Lock()
    _active = 0          # jobs running
    _loading = 0         # jobs in their loading phase
    _was_enabled = True  # the collector's state before the first loading job

    def __init__(self) -> None:
        self.loading = False
        self.t0 = 0.0

    def begin(self) -> None:
        cls = type(self)
        with cls._lock:
            cls._active += 1
            if cls._loading == 0:
                cls._was_enabled = gc.isenabled()
                gc.disable()
            cls._loading += 1
        self.loading, self.t0 = True, time.monotonic()

    def event(self, record: Any) -> None:
        if not self.loading:
            return
        gc.freeze()
        kind = record.get("type") if isinstance(record, dict) else None
        if kind == "train" or time.monotonic() - self.t0 > self.LOAD_LIMIT_S:
            self._loaded()

    def _loaded(self) -> None:
        cls = type(self)
        with cls._lock:
            self.loading = False
            cls._loading -= 1
            if cls._loading == 0 and cls._was_enabled:
                gc.enable()

    def end(self) -> None:
        cls = type(self)
        if self.loading:
            self._loaded()
        with cls._lock:
            cls._active -= 1
            last = cls._active == 0
        if last:
            gc.unfreeze()
            gc.collect()


def _lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux: per-thread nice value)."""
    if nice <= 0:
        return
    try:
        if sys.platform.startswith("linux"):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        else:  # macOS / Windows: Qt maps this to the thread's real priority
            thread = QThread.currentThread()
            if thread is not None and thread is not QCoreApplication.instance().thread():
                thread.setPriority(QThread.Priority.LowPriority)
    except (OSError, AttributeError, RuntimeError) as e:  # best effort
        log.debug("could not lower the worker's priority: %s", e)


class Worker(QObject):
    """Calls ``fn(*args, **kwargs)`` in its thread; emits its events and outcome.

    Must have no parent (it is moved to another thread).  Signals are emitted
    from the worker thread; connect them to a ``QObject`` living in the GUI
    thread (see :class:`Job`).
    """

    NICE = 5  # the worker thread's priority below the GUI's (0: unchanged)

    started = Signal()
    event = Signal(object)      # an event dict from the backend
    returned = Signal(object)   # fn's return value
    errored = Signal(object)    # the exception (traceback already logged)
    finished = Signal()

    def __init__(self, fn: Callable, *args: Any, quiet_gc: bool = False, **kwargs: Any):
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._stop = threading.Event()
        self._pause = threading.Event()
        # Only for long jobs that load a model and then run for minutes (training): its
        # end costs one full collection, which a short job (a chat answer) should not pay.
        self._gc = _QuietGC() if quiet_gc else None
        self.traceback = ""

    def request_stop(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._stop.set()

    def set_paused(self, paused: bool) -> None:
        """Pause or resume the job at its next check (thread-safe)."""
        (self._pause.set if paused else self._pause.clear)()

    def _emit_event(self, record: dict) -> None:
        if self._gc is not None:
            self._gc.event(record)
        self.event.emit(record)

    @Slot()
    def run(self) -> None:
        """Run the function (in the worker thread)."""
        _lower_thread_priority(self.NICE)
        self.started.emit()
        controls = {"on_event": self._emit_event, "should_stop": self._stop.is_set,
                    "should_pause": self._pause.is_set}
        accepted = _accepted_controls(self._fn)
        kwargs = {**{k: v for k, v in controls.items() if k in accepted}, **self._kwargs}
        if self._gc is not None:
            self._gc.begin()
        try:
            result = self._fn(*self._args, **kwargs)
        except BaseException as e:  # report everything; the GUI decides what to show
            self.traceback = traceback.format_exc()
            log.error("job %s failed:\n%s", getattr(self._fn, "__name__", self._fn), self.traceback)
            self.errored.emit(e)
        else:
            self.returned.emit(result)
        finally:
            if self._gc is not None:
                self._gc.end()
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
                 quiet_gc: bool = False, **kwargs: Any):
        super().__init__(parent)
        self.name = name or getattr(fn, "__name__", "job")
        self._worker: Worker | None = Worker(fn, *args, quiet_gc=quiet_gc, **kwargs)
        self._thread: QThread | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.traceback = ""
        self.done = False
        self.stop_requested = False
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
    """Jobs started and not finished."""
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
