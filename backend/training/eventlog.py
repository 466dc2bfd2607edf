"""``metrics.jsonl`` for a training run: every record written and flushed at once, the fsync of step records off the step path.

:class:`backend.events.MetricsLog` fsyncs every record where it is written.  In
the training loop that is one fsync per logged step on the step path (the step
profile's ``event_writes``, docs/architecture.md, "Training").  Here a ``train``
record is written and flushed at once — a reader (the GUI, ``tune runs``) sees
it and a killed process keeps it, the kernel holds it — and a background thread
fsyncs it.  Every other record (``checkpoint``, ``eval``, ``started``,
``finished``, logs) is fsynced before ``write`` returns, after the pending ones,
so what a resume relies on (a checkpoint and the steps before it) is on disk
exactly as before.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from backend import events as ev

DEFERRED = (ev.TRAIN,)
"""Record types whose fsync runs in the background."""


class StepMetricsLog(ev.MetricsLog):
    """A :class:`~backend.events.MetricsLog` whose ``train`` records are fsynced by a background thread."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._lock = threading.Lock()       # the file handle: writes, fsyncs, close/reopen
        self._wake = threading.Condition(threading.Lock())
        self._pending = 0                   # records written since the last fsync
        self._start()

    def _start(self) -> None:
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="metrics-fsync", daemon=True)
        self._thread.start()

    def write(self, record: dict) -> None:
        """Append ``record`` and flush it; fsync now unless it is a ``train`` record (then soon, in the background)."""
        line = ev.encode(record) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()
            if record.get("type") not in DEFERRED:
                os.fsync(self._fh.fileno())  # also covers the pending train records before it
                with self._wake:
                    self._pending = 0
                return
        with self._wake:
            self._pending += 1
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._closing:
                    self._wake.wait()
                if self._closing and not self._pending:
                    return
                self._pending = 0
            self._sync()

    def _sync(self) -> None:
        with self._lock:
            if not self._fh.closed:
                try:
                    os.fsync(self._fh.fileno())
                except OSError:  # the next synchronous write reports a full disk
                    pass

    def sync(self) -> None:
        """Fsync now (whatever the thread has not synced yet)."""
        self._sync()
        with self._wake:
            self._pending = 0

    def trim_after(self, step: int) -> int:
        dropped = super().trim_after(step)  # closes (syncs, stops the thread), rewrites, reopens
        self._start()
        return dropped

    def close(self) -> None:
        """Fsync what is pending, stop the thread, close the file."""
        if self._thread.is_alive():
            with self._wake:
                self._closing = True
                self._wake.notify()
            self._thread.join()
        self._sync()
        with self._lock:
            super().close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
