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


def test_none_survives_void_qt_calls_in_a_process_without_torch():
    # Without torch in the window's process (the model host), nothing holds millions of references
    # to None, and this PySide6 takes one from it per call of a method returning nothing: the live
    # plots' painting aborted bench.gui with "none_dealloc".  A separate process: no torch, no pytest.
    code = ("import sys\nimport desktop.workers\n"
            "from PySide6.QtWidgets import QApplication\nfrom PySide6.QtGui import QColor, QImage, QPainter, QPen\n"
            "app = QApplication([])\nimg = QImage(8, 8, QImage.Format.Format_ARGB32)\np = QPainter(img)\n"
            "pen = QPen(QColor(0, 0, 0))\nfor _ in range(100_000):\n    p.setPen(pen)\np.end()\n"
            "print('torch' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr[-2000:]


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


# -- the Chat page with a document it cannot read (issue 20, item 0) ---------------------------
@pytest.fixture()
def window(qtbot, tmp_path, monkeypatch, tiny_model_dir):
    from desktop.app import create_window
    from desktop.workers import stop_all_jobs

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    w = create_window(model=str(tiny_model_dir))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model_path is not None and w.session.device is not None, timeout=60_000)
    yield w
    stop_all_jobs(timeout_ms=60_000)


def test_unreadable_document_is_named_once_and_the_question_answered(qtbot, window, monkeypatch):
    w = window
    w.ensure_pages()
    cp = w.chat_page
    docs = w.session.project.documents_dir
    (docs / "notes.txt").write_bytes(b"\x00\x01binary\x00\xff\xfe" * 64)
    cp._refresh_index_label()
    cp.rag_check.setChecked(True)
    cp.gen_editors["max_new_tokens"].setValue(4)
    updates = []
    real_update = cp.update_index
    monkeypatch.setattr(cp, "update_index", lambda: updates.append(1) or real_update())
    assert cp.index_is_stale()

    assert cp.ask("What does error E4 mean?")
    qtbot.waitUntil(lambda: not cp.is_busy() and cp._queued_question is None and bool(cp.exchanges())
                    and all(a.done for a in cp.exchanges()[-1].answers.values()), timeout=300_000)
    assert updates == [1]  # one index update, not one per failure
    assert not cp.banner.isHidden() and "documents/notes.txt:1: NUL byte" in cp.banner.text(), cp.banner.text()
    assert "could not be read" in cp.banner.text()
    answer = list(cp.exchanges()[-1].answers.values())[0]
    assert answer.done and answer.sources  # answered from the documents that could be read

    # asked again: the bad file is not "stale" any more (it has not changed), nothing is re-indexed
    assert not cp.index_is_stale()
    assert cp.ask("What does error E5 mean?")
    qtbot.waitUntil(lambda: not cp.is_busy() and len(cp.exchanges()) == 2
                    and all(a.done for a in cp.exchanges()[-1].answers.values()), timeout=300_000)
    assert updates == [1] and cp.banner.isHidden()
    # once the file changes it is tried again
    (docs / "notes.txt").write_text("E4 means the Wi-Fi password was rejected.\n", encoding="utf-8")
    assert cp.index_is_stale()
