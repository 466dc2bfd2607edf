"""Soak: the desktop test files run N times in a row beside CPU-bound processes; any crash is named.

Issue 26's goal: "the desktop test files run 10 times in a row beside a CPU-bound
process with no crash" (a segmentation fault once took ``make test`` down on a
busy 2-core machine).  Not part of ``make test`` or ``python -m bench``: run it
by hand or in a nightly job, e.g.::

    python -m bench.soak --runs 10                 # tests/test_desktop*.py, one CPU burner
    python -m bench.soak --runs 2 --files tests/test_desktop_check.py --burners 2

Each run is a fresh ``pytest`` process over the files (offscreen Qt, its own
``TUNE_STUDIO_HOME``); the burners are plain Python loops, one core each, started
before the first run and ended after the last.  A run that ends by a signal
(exit code < 0, or 128 + signal from a shell) is a crash and is reported with
the signal's name and the tail of its output; a failed test is reported apart.
Prints one JSON summary; the exit code is 0 only when every run passed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, log

BURN = "import time\nend = time.monotonic() + {limit}\nx = 0\nwhile time.monotonic() < end:\n    x = (x * 31 + 7) % 1000003\n"


def _signal_name(rc: int) -> str | None:
    """The signal that ended a process with exit code ``rc`` (a negative code, or 128 + n), or ``None``."""
    n = -rc if rc < 0 else (rc - 128 if 128 < rc < 160 else 0)
    if not n:
        return None
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def start_burners(n: int, limit_s: float) -> list[subprocess.Popen]:
    """``n`` CPU-bound processes (one core each) that end by themselves after ``limit_s`` at the latest."""
    return [subprocess.Popen([sys.executable, "-c", BURN.format(limit=float(limit_s))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(n)]


def stop_burners(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def one_run(files: list[str], timeout_s: float, extra: list[str]) -> dict:
    """One ``pytest`` process over ``files``: seconds, exit code, and how it ended."""
    home = tempfile.mkdtemp(prefix="soak-home-")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TUNE_STUDIO_HOME": home,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *files]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=timeout_s)
        rc, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    seconds = round(time.perf_counter() - t0, 1)
    sig = _signal_name(rc) if rc is not None else None
    if rc is None:
        ended = f"timed out after {timeout_s:.0f} s"
    elif sig:
        ended = f"crashed ({sig})"
    elif rc == 0:
        ended = "passed"
    elif rc == 1:
        ended = "tests failed"
    else:
        ended = f"pytest exit code {rc}"
    summary = next((ln for ln in reversed(text.splitlines()) if " passed" in ln or " failed" in ln
                    or " error" in ln), "")
    r = {"seconds": seconds, "rc": rc, "ended": ended, "summary": summary.strip("= ")}
    if ended != "passed":
        r["tail"] = text[-3000:]
    return r


def soak(runs: int, files: list[str], burners: int, timeout_s: float, extra: list[str]) -> dict:
    """Run ``files`` ``runs`` times beside ``burners`` CPU-bound processes; the summary as a dict."""
    procs = start_burners(burners, limit_s=runs * timeout_s + 60)
    results = []
    try:
        for i in range(runs):
            log(f"soak: run {i + 1}/{runs} of {len(files)} file(s) beside {burners} CPU burner(s) …")
            r = one_run(files, timeout_s, extra)
            log(f"soak: run {i + 1}: {r['ended']} in {r['seconds']} s ({r['summary']})")
            results.append(r)
    finally:
        stop_burners(procs)
    crashes = [i + 1 for i, r in enumerate(results) if r["ended"].startswith("crashed")]
    return {"runs": runs, "files": files, "burners": burners, "cpu_cores": os.cpu_count(),
            "passed": sum(r["ended"] == "passed" for r in results), "crashed_runs": crashes,
            "results": results}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10, help="how many times to run the files (default 10)")
    p.add_argument("--files", nargs="+", default=None,
                   help="test files (default: tests/test_desktop*.py)")
    p.add_argument("--burners", type=int, default=1, help="CPU-bound processes beside the tests (default 1)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one run may take (default 3600)")
    p.add_argument("--out", default=None, help="write the JSON summary here too")
    p.add_argument("pytest_args", nargs="*", help="after --: passed to pytest (e.g. -- -x -k chat)")
    a = p.parse_args(argv)
    files = a.files or sorted(os.path.relpath(f, REPO) for f in glob.glob(str(REPO / "tests" / "test_desktop*.py")))
    if a.runs < 1 or not files:
        p.error("nothing to run: --runs must be ≥ 1 and the files must exist")
    missing = [f for f in files if not (REPO / f).is_file() and not Path(f).is_file()]
    if missing:
        p.error(f"no such test file: {', '.join(missing)}")
    res = soak(a.runs, files, max(0, a.burners), a.timeout, a.pytest_args)
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n", encoding="utf-8")
    return 0 if res["passed"] == a.runs else 1


if __name__ == "__main__":
    sys.exit(main())
