"""bench/soak.py (issue 26): a crash in a run is named with its signal; passing runs are counted."""

from __future__ import annotations

import json

from bench.soak import _signal_name, main


def test_signal_names():
    assert _signal_name(-11) == "SIGSEGV" and _signal_name(139) == "SIGSEGV" and _signal_name(-9) == "SIGKILL"
    assert _signal_name(0) is None and _signal_name(1) is None


def test_a_run_that_crashes_is_reported_as_a_crash(tmp_path):
    t = tmp_path / "test_crash.py"
    t.write_text("import os, signal\n\ndef test_ok():\n    pass\n\n"
                 "def test_crash():\n    os.kill(os.getpid(), signal.SIGSEGV)\n")
    out = tmp_path / "soak.json"
    rc = main(["--runs", "1", "--burners", "1", "--timeout", "120", "--files", str(t), "--out", str(out)])
    res = json.loads(out.read_text())
    assert rc == 1 and res["crashed_runs"] == [1] and res["passed"] == 0
    assert res["results"][0]["ended"] == "crashed (SIGSEGV)"
