"""``--screenshot DIR``: render every wizard page of the main window to PNG files."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QApplication

from desktop.workers import running_jobs

SIZE = (1360, 880)


def _pump(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)


def wait_idle(window, timeout_s: float) -> bool:
    """Process events until no background job runs (or ``timeout_s``); ``True`` when idle."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if not running_jobs():
            _pump(0.2)
            if not running_jobs():
                return True
        time.sleep(0.02)
    return False


def _fill_scorecard(window, page, timeout_s: float) -> None:
    """The Evaluate page with a scorecard: the saved result of the run and test set shown, else evaluated now.

    An evaluation still running at ``timeout_s`` is stopped; what it answered by
    then is kept (and shown, marked partial).
    """
    page.tabs.setCurrentIndex(0)
    if page.report is not None or page.selected_run() is None or not page.selected_evalset():
        return
    if page.start_evaluation() and not wait_idle(window, timeout_s):
        page.stop()
        wait_idle(window, 120)


def render_pages(window, out_dir: Path, *, timeout_s: float = 240.0, ask: str | None = None) -> int:
    """Show each page, let it settle, save ``NN-title.png``; returns the exit code (0 = every page written).

    ``ask``: a question the Chat page answers (for real, base and tuned side by
    side when the project has a finished run) before it is rendered.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    window.resize(*SIZE)
    window.show()
    wait_idle(window, timeout_s)
    # The Data page checks the data when first shown; give it that chance too.
    window.go_to(2, force=True)
    wait_idle(window, timeout_s)
    written, extras = [], []
    for i in range(len(window.pages)):
        window.go_to(i, force=True)  # builds the page if it was not yet
        page = window.page(i)
        page.on_enter()
        wait_idle(window, min(timeout_s, 60))
        if ask and page is window.chat_page:
            page.compare_check.setChecked(page.selected_run() is not None)
            page.ask(ask)
            wait_idle(window, timeout_s)
            if page.is_busy():  # an index update came first; the question follows it
                wait_idle(window, timeout_s)
        if page is window.evaluate_page:
            _fill_scorecard(window, page, timeout_s)
        _pump(0.3)
        path = out_dir / f"{i + 1:02d}-{page.title.lower()}.png"
        if window.grab().save(str(path)):
            written.append(path)
        if page is window.data_page:  # the histogram lives on a second tab
            tabs = page.tabs
            tabs.setCurrentIndex(1)
            _pump(0.3)
            extra = out_dir / f"{i + 1:02d}-{page.title.lower()}-token-lengths.png"
            if window.grab().save(str(extra)):
                extras.append(extra)
            tabs.setCurrentIndex(0)
        if page is window.evaluate_page and page.report is not None:  # the answers behind the figures
            page.tabs.setCurrentIndex(1)
            page.question_table.selectRow(0)
            _pump(1.5)  # the answer cards fit their text over a few layout passes
            extra = out_dir / f"{i + 1:02d}-{page.title.lower()}-questions.png"
            if window.grab().save(str(extra)):
                extras.append(extra)
            page.tabs.setCurrentIndex(0)
    for p in written + extras:
        print(p)
    window.close()
    QApplication.processEvents()
    return 0 if len(written) == len(window.pages) else 1
