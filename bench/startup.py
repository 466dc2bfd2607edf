"""Start-up: seconds from process start to the first window shown (``python -m desktop``).

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
    return {"startup_s": round(s, 3),
            "startup": {"first_run_s": first["first_window_s"],
                        "warm_runs_s": [r["first_window_s"] for r in warm],
                        "warm_median_s": round(s, 3),
                        "in_app_s": median([r["in_app_s"] for r in warm if r["in_app_s"] is not None]),
                        "heavy_imports_at_first_window": (warm or [first])[-1]["heavy_imports"],
                        "measured": "process spawn -> first-window line (TUNE_STUDIO_STARTUP_PROBE), offscreen"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    n = a.runs if a.runs is not None else (1 if a.quick else 3)
    return emit(run(n), a.out)


if __name__ == "__main__":
    sys.exit(main())
