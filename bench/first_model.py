"""Time to the first tuned model: the sample project, the "Quick CPU test" preset, Start -> adapter ready.

A fresh copy of ``resources/sample_project`` is trained the way the Train page's
Start does it: :func:`backend.planning.resolve_run_config` with the preset, a
run folder named by the project, and the run supervised from a
``desktop.workers.Job`` (a ``QThread``) through ``desktop.train_process.supervise``,
which starts the training child process (``python -m backend.child``).  The
clock starts just before ``Job.start()`` and stops when the GUI thread receives
the run's ``finished`` event (written after the adapter is on disk), so it
includes the child's interpreter start, imports, model load, data preparation,
every step, evaluation, checkpoints and the final save.

Next to it: the Configure page's estimate for the same run, computed with the
page's own function (:func:`backend.estimate.estimate_run`) and inputs (model
facts, the detected device, the Data page's check of the project's files).
``estimate_ratio`` = actual ÷ estimate (1.0 = the estimate was right).

When ``desktop.train_process`` cannot be imported, the run goes through the
engine in the ``Job``'s thread instead, and ``path`` says so.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, emit, log, ratio, setup_env

from backend import events as ev

SAMPLE = REPO / "resources" / "sample_project"
QUICK_OVERRIDES = {"training.max_steps": 4, "training.save_steps": 2, "training.eval_steps": 2}


def configure_estimate(cfg, *, project) -> dict:
    """The Configure page's estimate for ``cfg``: the page's function, the page's inputs."""
    from backend.estimate import estimate_run
    from backend.models import model_info, resolve_model
    from backend.runtime import detect_device
    from desktop.data_adapter import check_project_data

    path = resolve_model(cfg.model.name_or_path)
    report = check_project_data([str(p) for p in project.dataset_files()],
                                [str(p) for p in project.files_with_role("train")],
                                [str(p) for p in project.files_with_role("validation")], path, cfg)
    est = estimate_run(cfg, model_info(path), detect_device(cfg.model.device), report.train_rows,
                       report.mean_tokens)
    return {"estimate_s": round(est.total_seconds, 2) if est.total_seconds else None,
            "estimate_steps": est.steps, "estimate_step_s": round(est.step_seconds, 3),
            "train_rows": report.train_rows, "mean_tokens": report.mean_tokens}


def gui_path_runner():
    """``(fn, args_for(cfg, run_dir), label)``: how the Train page runs training now."""
    try:
        from desktop.train_process import supervise, train_request
    except ImportError:
        from backend.training import train
        return train, lambda cfg, run_dir: (cfg.replace(output_dir=str(run_dir)),), \
            "engine in the Job's thread (desktop.train_process not importable)"
    return supervise, lambda cfg, run_dir: (train_request(cfg.to_dict(), run_dir),), \
        "training child process (python -m backend.child) supervised by desktop.workers.Job (QThread)"


def run(model: str | None = None, quick: bool = False, max_steps: int | None = None,
        device: str | None = None) -> dict:
    """Measure; return the ``first_model`` block."""
    setup_env()
    try:
        from PySide6.QtCore import QEventLoop, QTimer
        from PySide6.QtWidgets import QApplication

        from backend.planning import resolve_run_config
        from backend.workspace import Project
        from desktop.workers import Job
    except ImportError as e:
        return {"skipped": f"desktop or backend not importable ({e})"}
    app = QApplication.instance() or QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp(prefix="bench-first-"))
    root = tmp / "sample"
    shutil.copytree(SAMPLE, root)
    project = Project.open(root)
    overrides: dict[str, Any] = dict(QUICK_OVERRIDES) if quick else {}
    if model:
        overrides["model.name_or_path"] = model
    if max_steps:  # bench/gpu_check.py: a fixed number of steps on the GPU
        overrides.update({"training.max_steps": max_steps, "training.save_steps": max(1, max_steps // 2),
                          "training.eval_steps": max(1, max_steps // 2)})
    if device:
        overrides["model.device"] = device
    cfg = resolve_run_config(project, preset="quick", overrides=overrides)
    cfg = cfg.replace(name="bench first model")
    log("first model: the Configure page's estimate …")
    out: dict[str, Any] = {"preset": "quick", "max_steps": cfg.training.max_steps, "quick_overrides": bool(quick)}
    out.update(configure_estimate(cfg, project=project))
    fn, args_for, label = gui_path_runner()
    out["path"] = label
    run_dir = project.new_run_dir(cfg.name)
    seen: dict[str, Any] = {"finished": None, "first_train": None, "error": None}
    loop = QEventLoop()

    def on_event(e: dict) -> None:
        if e.get("type") == ev.TRAIN and seen["first_train"] is None:
            seen["first_train"] = time.perf_counter()
        if e.get("type") == ev.FINISHED:
            seen["finished"] = (time.perf_counter(), e)

    job = Job(fn, *args_for(cfg, run_dir), name="train")
    job.event.connect(on_event)
    job.errored.connect(lambda err: seen.update(error=f"{type(err).__name__}: {err}"))
    job.finished.connect(loop.quit)
    log(f"first model: Start ({label}) …")
    t0 = time.perf_counter()
    job.start()
    QTimer.singleShot(1800 * 1000, loop.quit)
    loop.exec()
    app.processEvents()
    fin = seen["finished"]
    if seen["error"] or fin is None or fin[1].get("status") != "completed":
        return {**out, "skipped": f"failed: the run did not complete: {seen['error'] or (fin and fin[1])}"}
    adapter = Path(fin[1].get("adapter_dir") or "")
    if not adapter.is_dir():
        return {**out, "skipped": f"failed: no adapter folder at {adapter}"}
    out["seconds"] = round(fin[0] - t0, 2)
    out["start_to_first_step_s"] = round(seen["first_train"] - t0, 2) if seen["first_train"] else None
    out["estimate_ratio"] = ratio(out["seconds"], out.get("estimate_s"))
    out["measured"] = ("Start (Job.start) -> the finished event on the GUI thread, adapter on disk; the "
                       "estimate is the Configure page's estimate_run with the Data page's row count and mean "
                       "tokens (it covers the training steps, the actual includes start-up and saving)")
    log(f"first model: {out['seconds']} s, estimate {out.get('estimate_s')} s")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.first_model", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="4 steps instead of the preset's 30 (tests)")
    p.add_argument("--model", default=None, help="base model instead of the project's (tests)")
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    return emit(run(a.model, a.quick), a.out)


if __name__ == "__main__":
    sys.exit(main())
