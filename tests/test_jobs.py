"""desktop.workers.Job under stress and on cancellation (issues 20 and 21)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("qapp")

ROOT = Path(__file__).resolve().parents[1]

_MANY_JOBS = textwrap.dedent("""
    import sys
    from PySide6.QtCore import QCoreApplication, QEventLoop
    from desktop.workers import Job

    app = QCoreApplication([])
    # More job completions than True had references before the fix: each emit() took one.
    n = (sys.getrefcount(True) % (1 << 40)) // 3 + 200

    def work(i, *, on_event):
        on_event({"type": "progress", "done": i % 2 == 0})
        if i % 3 == 0:
            raise ValueError("cannot read notes.txt")
        return i % 2 == 0  # a bool result, as a check that passed or failed

    finished = 0
    for i in range(n):
        job = Job(work, i)
        loop = QEventLoop()
        job.finished.connect(loop.quit)
        job.start()
        loop.exec()
        finished += job.done
    print("finished", finished, n)
""")


def test_many_fast_job_completions_do_not_corrupt_the_interpreter():
    # Issue 20: ~2,600 index updates ended in "Fatal Python error: bool_dealloc" (a refcount
    # taken from True by every signal emit).  A separate process: an abort must not kill pytest.
    p = subprocess.run([sys.executable, "-c", _MANY_JOBS], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert p.returncode == 0, p.stderr[-2000:]
    _, done, n = p.stdout.split()
    assert done == n and int(n) > 200


def test_bools_survive_signal_emits(qtbot):
    from PySide6.QtCore import QObject, Signal

    class Source(QObject):
        changed = Signal(object)

    src = Source()
    got = []
    src.changed.connect(got.append)
    for i in range(5000):
        src.changed.emit(i % 2 == 0)
    assert got.count(True) == 2500 and got.count(False) == 2500
    assert sys.getrefcount(True) > 10_000 and sys.getrefcount(False) > 10_000


def test_a_cancelled_job_is_not_logged_as_an_error(qtbot, caplog, tmp_path):
    from backend.data import DataCancelled
    from desktop.workers import Job

    def check(*, should_stop):
        while not should_stop():
            pass
        raise DataCancelled()

    job = Job(check, name="check_project_data")
    with caplog.at_level(logging.INFO, logger="desktop.workers"):
        with qtbot.waitSignal(job.finished, timeout=10_000):
            job.start()
            job.stop()
    assert isinstance(job.error, DataCancelled) and job.cancelled
    records = [r for r in caplog.records if r.name == "desktop.workers"]
    assert not [r for r in records if r.levelno >= logging.WARNING], [r.getMessage() for r in records]
    assert any("cancelled" in r.getMessage() and "Traceback" not in r.getMessage() for r in records)

    # a real failure still goes to the log with its traceback
    def broken():
        raise OSError("disk full")

    job = Job(broken)
    caplog.clear()
    with qtbot.waitSignal(job.finished, timeout=10_000):
        job.start()
    assert not job.cancelled
    assert any(r.levelno == logging.ERROR and "Traceback" in r.getMessage() for r in caplog.records)
