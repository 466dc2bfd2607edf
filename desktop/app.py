"""Entry point: ``tune-studio`` / ``python -m desktop``.

Options
-------
``--project DIR``     open this project (default: the last one, else the sample)
``--model SOURCE``    use this base model for the session (folder, .gguf or 'default')
``--screenshot DIR``  render every wizard page to ``DIR/NN-page.png`` and exit
``--self-test``       check the installation without opening a window (exit code 0 = fine)

Start-up stays fast: torch and transformers are imported only in worker threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tune-studio", description="Tune Studio: fine-tune small language "
                                "models and chat with them over your documents.")
    p.add_argument("--project", type=Path, help="open this project folder")
    p.add_argument("--model", help="base model for this session: 'default', a folder or a .gguf file")
    p.add_argument("--screenshot", type=Path, metavar="DIR",
                   help="render every page of the main window to PNG files in DIR and exit")
    p.add_argument("--screenshot-timeout", type=float, default=240.0, metavar="S",
                   help="how long --screenshot waits for the model and data checks (default 240 s)")
    p.add_argument("--screenshot-ask", metavar="QUESTION",
                   help="with --screenshot: ask this on the Chat page before rendering it")
    p.add_argument("--self-test", action="store_true", help="check the installation and exit (no window)")
    p.add_argument("--page", type=int, default=None, help=argparse.SUPPRESS)
    return p


def _setup_logging() -> list[logging.Handler]:
    """Warnings to stderr, everything (tracebacks included) to ``<data dir>/logs/tune-studio.log``."""
    from backend.runtime import data_dir

    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING)
    handlers: list[logging.Handler] = [console]
    try:
        log_dir = data_dir() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / "tune-studio.log", encoding="utf-8", delay=True))
    except OSError:
        pass
    root = logging.getLogger()
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handlers


def _finish(handlers: list[logging.Handler], rc: int, own_process: bool) -> None:
    """Let background jobs end (briefly) and close the log."""
    from desktop.workers import running_jobs, stop_all_jobs

    stuck = bool(running_jobs()) and not stop_all_jobs(timeout_ms=5_000)
    root = logging.getLogger()
    for h in handlers:
        root.removeHandler(h)
        h.close()
    if stuck and own_process:
        # A job that cannot be interrupted (e.g. the one-time model conversion, which
        # writes to a temporary folder first) must not turn the exit into a crash.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def create_window(project: Path | None = None, model: str | None = None, *, start_jobs: bool = True):
    """The main window with a project open (the sample on first start).  Needs a ``QApplication``.

    With ``start_jobs=False`` the background work (device detection, model
    resolving) waits for :meth:`MainWindow.start_background`, so that the first
    window is not slowed by imports running in other threads.  Either way only
    the Project, Model and Configure pages are built; the others are built when
    first shown or needed (:meth:`MainWindow.page`).
    """
    from desktop.appstate import AppSettings, install_sample_project
    from desktop.main_window import MainWindow
    from desktop.session import Session

    settings = AppSettings()
    sample = install_sample_project()
    window = MainWindow(Session(), settings)
    target = project or (Path(settings.last_project) if settings.last_project else None) or sample
    if target is not None:
        window.open_project(target, model_override=model, resolve=start_jobs)
    if start_jobs:
        window.start_background()
    return window


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit code."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.self_test:
        from desktop.selftest import run_self_test
        return run_self_test()

    from backend.runtime import quiet_library_output, set_offline
    set_offline(False)
    quiet_library_output()  # no tqdm bars or library FutureWarnings in the terminal (issue 21)
    from PySide6.QtWidgets import QApplication

    own_process = QApplication.instance() is None
    handlers = _setup_logging()
    rc = 1
    try:
        rc = _run(args)
        return rc
    finally:
        _finish(handlers, rc, own_process)


def _run(args: argparse.Namespace) -> int:
    if args.screenshot and "QT_QPA_PLATFORM" not in os.environ and not os.environ.get("DISPLAY") \
            and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Tune Studio")
    app.setOrganizationName("tune-studio")
    app.setDesktopFileName("tune-studio")
    apply_style(app)
    window = create_window(args.project, args.model, start_jobs=bool(args.screenshot))
    if args.screenshot:
        from desktop.screenshot import render_pages
        return render_pages(window, args.screenshot, timeout_s=args.screenshot_timeout, ask=args.screenshot_ask)
    window.show()
    if args.page is not None:
        window.go_to(args.page, force=True)
    if os.environ.get("TUNE_STUDIO_STARTUP_PROBE"):  # measured by a test: print, then quit at once
        heavy = ",".join(m for m in ("torch", "transformers", "pyqtgraph") if m in sys.modules) or "none"
        QTimer.singleShot(0, lambda: (print(f"first-window {time.perf_counter() - _T0:.3f} heavy-imports {heavy}",
                                            flush=True), window.close()))
        return app.exec()
    # Background jobs only once the window is on screen; the other pages are built when first shown.
    QTimer.singleShot(200, window.start_background)
    logging.getLogger(__name__).info("first window after %.2f s", time.perf_counter() - _T0)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
