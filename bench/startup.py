"""Start-up: seconds from process start to the first window, and to the first interactive Project page.

``startup_interactive_s`` (the figure with a goal): the parent takes the time
just before it spawns a process that starts the app exactly as ``desktop.app``
does (style, ``create_window``, ``show``, background jobs 200 ms later; the
Data, Train, Chat and Evaluate pages are built when first shown or needed) and
prints ``interactive`` once the Project page is on screen showing the sample
project (its name and folder) and the event loop has turned once more after
that (the window answers input).  Imports, the sample project's installation
on a first run, the construction of the pages built at start and whatever the
background jobs take from the GUI thread before then are all inside it.  The
child also prints which pages were built by then (``pages=``).

``startup_s`` (shown, no goal) is the older, narrower figure:

The parent takes the time just before it spawns ``python -m desktop`` and again
when the app prints its ``first-window`` line (``TUNE_STUDIO_STARTUP_PROBE=1``
makes the app print it from the first event-loop turn after ``show()`` and quit).
So the figure includes the interpreter start and every import — what a person
waits for.  A first run in a fresh home folder (it installs the sample project)
is reported apart from the median of the warm runs that follow.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, emit, log, median


def _one(home: Path, timeout: float = 120.0) -> dict:
    env = dict(os.environ)
    env.update({"TUNE_STUDIO_STARTUP_PROBE": "1", "TUNE_STUDIO_HOME": str(home),
                "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen"),
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "desktop"], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    shown = None
    line = ""
    deadline = t0 + timeout
    assert proc.stdout is not None
    while time.perf_counter() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("first-window"):
            shown = time.perf_counter() - t0
            break
    try:
        proc.wait(timeout=max(5.0, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    err = proc.stderr.read() if proc.stderr else ""
    if shown is None:
        return {"error": f"no first-window line (rc={proc.returncode}): {err[-600:]}"}
    parts = line.split()
    in_app = float(parts[1]) if len(parts) > 1 else None
    heavy = parts[3] if len(parts) > 3 else None
    return {"first_window_s": round(shown, 3), "in_app_s": in_app, "heavy_imports": heavy}


def interactive_child() -> int:
    """In the spawned process: start the app as ``desktop.app._run`` does; print when it is interactive."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.app import create_window
    from desktop.style import apply_style

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Tune Studio")
    app.setOrganizationName("tune-studio")
    apply_style(app)
    window = create_window(None, None, start_jobs=False)
    window.show()
    QTimer.singleShot(200, window.start_background)
    state = {"ready": False}

    def listed() -> bool:  # the Project page on screen, showing the sample project open
        page, project = window.project_page, window.session.project
        return (project is not None and window.stack.currentWidget() is page
                and page.name_label.text() == project.name and page.path_label.text() == str(project.root))

    def poll() -> None:
        if state["ready"]:
            return
        if listed():
            state["ready"] = True
            # one more event-loop turn: the window now answers input
            QTimer.singleShot(0, done)

    def done() -> None:
        print("interactive pages=" + ",".join(window.built_pages()), flush=True)
        # measured; the background jobs (data check, device) need not finish: leave at once
        os._exit(0)

    timer = QTimer()
    timer.setInterval(1)
    timer.timeout.connect(poll)
    timer.start()
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    window.close()
    return 0 if state["ready"] else 1


def _interactive(home: Path, timeout: float = 120.0) -> dict:
    env = dict(os.environ)
    env.update({"TUNE_STUDIO_HOME": str(home), "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen"),
                "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", "")})
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "bench.startup", "--interactive-child"], cwd=str(REPO), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready = None
    pages = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("interactive"):
            ready = time.perf_counter() - t0
            pages = line.strip().partition("pages=")[2]
            break
    try:
        proc.wait(timeout=max(5.0, timeout - (time.perf_counter() - t0)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if ready is None:
        err = proc.stderr.read() if proc.stderr else ""
        return {"error": f"never interactive (rc={proc.returncode}): {err[-600:]}"}
    return {"interactive_s": round(ready, 3), "pages": pages}


def run(warm_runs: int = 3) -> dict:
    """Measure; return ``{"startup_s": ..., "startup": {...}}``."""
    if not (REPO / "desktop" / "app.py").exists():
        return {"startup": {"skipped": "desktop/app.py does not exist yet"}}
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    log("startup: first run (fresh home) …")
    first = _one(home)
    if "error" in first:
        return {"startup": {"skipped": first["error"]}}
    warm = []
    for i in range(warm_runs):
        log(f"startup: warm run {i + 1}/{warm_runs} …")
        r = _one(home)
        if "error" in r:
            return {"startup": {"skipped": r["error"], "first_run": first}}
        warm.append(r)
    s = median([r["first_window_s"] for r in warm]) if warm else first["first_window_s"]
    ihome = Path(tempfile.mkdtemp(prefix="bench-home-"))
    log("startup: to the interactive Project page, first run (fresh home) …")
    ifirst = _interactive(ihome)
    iwarm = []
    ipages = ifirst.get("pages")
    for i in range(warm_runs if "error" not in ifirst else 0):
        log(f"startup: interactive, warm run {i + 1}/{warm_runs} …")
        r = _interactive(ihome)
        if "error" in r:
            ifirst = r
            break
        iwarm.append(r["interactive_s"])
        ipages = r["pages"]
    interactive = None if "error" in ifirst else median(iwarm or [ifirst["interactive_s"]])
    return {"startup_s": round(s, 3),
            "startup_interactive_s": round(interactive, 3) if interactive is not None else None,
            "startup": {"first_run_s": first["first_window_s"],
                        "warm_runs_s": [r["first_window_s"] for r in warm],
                        "warm_median_s": round(s, 3),
                        "in_app_s": median([r["in_app_s"] for r in warm if r["in_app_s"] is not None]),
                        "heavy_imports_at_first_window": (warm or [first])[-1]["heavy_imports"],
                        "measured": "process spawn -> first-window line (TUNE_STUDIO_STARTUP_PROBE), offscreen",
                        "interactive_first_run_s": ifirst.get("interactive_s"),
                        "interactive_warm_runs_s": iwarm,
                        "interactive_error": ifirst.get("error"),
                        "pages_built_when_interactive": ipages,
                        "interactive_measured": "process spawn -> Project page showing the sample project listed, "
                                                "one more event-loop turn (offscreen; other pages built when "
                                                "first shown)"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--out", default=None, help="write the JSON here too")
    p.add_argument("--interactive-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.interactive_child:
        return interactive_child()
    n = a.runs if a.runs is not None else (0 if a.quick else 3)
    return emit(run(n), a.out)


if __name__ == "__main__":
    sys.exit(main())
