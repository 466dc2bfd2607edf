"""GUI responsiveness: GUI-thread stall over a whole training run and one chat answer, as the app runs them.

A precise ``QTimer`` fires every 5 ms on the GUI thread; each firing records how
late it came (time since the previous firing minus 5 ms).  With the app's own
live-plot widget on screen (``desktop.plots.QtRunMetrics`` at its refresh rate),
a log view and a chat transcript view:

``idle``   no job running;
``run``    from Start to the end of the run, then one chat answer: the sample
           project with the "Quick CPU test" preset, trained the way the Train
           page does it (``desktop.train_process.supervise`` in a
           ``desktop.workers.Job``: a ``QThread`` supervising the training child
           process), its events feeding the plots and the log; then
           ``desktop.chat_adapter.ChatEngine.ask`` in a ``Job`` (as the Chat page)
           has the model host child (``backend.jobs.ModelHost``) load the run's
           model and streams one RAG answer into the transcript.
           ``stall_p99_ms`` / ``stall_max_ms`` are over ALL of it; the phases
           (``load``: Start -> first step, ``train``, ``end``: last step -> the
           job's end, ``chat``) are reported apart too.

Then the plot update cost: the plots hold 100,000 points, one point is added and
the widget refreshed and repainted; median and max over repeats (and the median
with 1,000 points: the view decimates what it draws, so the two should be close).

``python -m bench.gui --help`` for the sizes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, emit, log, median, percentile, setup_env

from backend import events as ev

PROBE_MS = 5
SAMPLE = REPO / "resources" / "sample_project"


def _probe(app, seconds: float, until=None, stamps: list | None = None) -> list[float]:
    """Lateness (ms) of a 5 ms precise timer on the GUI thread for ``seconds`` (or until ``until()``).

    With ``stamps``, the time of every sample is appended to it (to split phases afterwards).
    """
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    late: list[float] = []
    times: list[float] = []
    loop = QEventLoop()
    state = {"last": time.perf_counter(), "start": time.perf_counter()}

    def tick():
        now = time.perf_counter()
        late.append(max(0.0, (now - state["last"]) * 1000.0 - PROBE_MS))
        times.append(now)
        state["last"] = now
        if now - state["start"] >= seconds or (until is not None and until()):
            loop.quit()

    t = QTimer()
    t.setTimerType(Qt.TimerType.PreciseTimer)
    t.setInterval(PROBE_MS)
    t.timeout.connect(tick)
    state["last"] = state["start"] = time.perf_counter()
    t.start()
    loop.exec()
    t.stop()
    if stamps is not None:
        stamps.extend(times[1:])
    return late[1:]  # the first interval includes the loop start


def _stats(late: list[float]) -> dict:
    return {"samples": len(late), "p50_ms": _r(percentile(late, 50)), "p99_ms": _r(percentile(late, 99)),
            "max_ms": _r(max(late) if late else None), "over_16ms": sum(1 for x in late if x > 16),
            "over_100ms": sum(1 for x in late if x > 100)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _training_runner():
    """``(fn, args_for(cfg, run_dir), label)``: how the Train page runs training now."""
    try:
        from desktop.train_process import supervise, train_request
    except ImportError:
        from backend.training import train
        return train, lambda cfg, run_dir: (cfg.replace(output_dir=str(run_dir)),), \
            "engine in the Job's thread (desktop.train_process not importable)"
    return supervise, lambda cfg, run_dir: (train_request(cfg.to_dict(), run_dir),), \
        "training child process supervised by desktop.workers.Job (QThread), as the Train page"


def _wait_job(app, job, stamps: list, late: list) -> None:
    """Probe the GUI thread until ``job`` has finished (its ``finished`` signal)."""
    done = {"v": False}
    job.finished.connect(lambda: done.update(v=True))
    job.start()
    late.extend(_probe(app, 3600.0, until=lambda: done["v"], stamps=stamps))


def run(model: str | None = None, idle_s: float = 5.0, max_steps: int | None = None, points: int = 100_000,
        repeats: int = 20, max_new_tokens: int = 64, max_documents: int | None = None) -> dict:
    """Measure; return the ``gui`` block."""
    setup_env()
    try:
        from PySide6.QtCore import Qt
        from PySide6.QtWidgets import QApplication, QPlainTextEdit, QSplitter

        from backend.rag.settings import GenerationSettings
        from backend.planning import resolve_run_config
        from backend.workspace import Project
        from desktop.chat_adapter import ChatEngine
        from desktop.plots import QtRunMetrics, RunMetrics
        from desktop.workers import Job
    except ImportError as e:
        return {"skipped": f"desktop or backend parts not importable ({e})"}

    app = QApplication.instance() or QApplication(sys.argv[:1])
    fn, args_for, label = _training_runner()
    out: dict[str, Any] = {"platform": app.platformName(), "probe_interval_ms": PROBE_MS, "training_path": label,
                           "widget": "desktop.plots.QtRunMetrics + log view + chat transcript"}
    metrics = RunMetrics()
    view = QtRunMetrics(metrics)
    logv = QPlainTextEdit()
    logv.setReadOnly(True)
    logv.setMaximumBlockCount(5000)
    chatv = QPlainTextEdit()
    chatv.setReadOnly(True)
    win = QSplitter(Qt.Orientation.Vertical)
    for w in (view, logv, chatv):
        win.addWidget(w)
    win.resize(1200, 900)
    win.show()
    view.start_live()
    app.processEvents()

    log(f"gui: idle probe {idle_s:.0f} s …")
    out["idle"] = _stats(_probe(app, idle_s))

    tmp = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    root = tmp / "sample"
    shutil.copytree(SAMPLE, root)
    project = Project.open(root)
    engine = ChatEngine()
    log("gui: indexing the sample project's documents (not measured) …")
    ingest = Job(engine.ingest, root, project.document_files()[:max_documents], name="ingest")
    _wait_job(app, ingest, [], [])

    overrides: dict[str, Any] = {}
    if model:
        overrides["model.name_or_path"] = model
    if max_steps:
        overrides.update({"training.max_steps": max_steps, "training.save_steps": max(1, max_steps // 2),
                          "training.eval_steps": max(1, max_steps // 2)})
    cfg = resolve_run_config(project, preset="quick", overrides=overrides).replace(name="bench gui")
    run_dir = project.new_run_dir(cfg.name)
    marks: dict[str, Any] = {"first_train": None, "last_train": None, "finished": None, "train_events": 0}

    def on_event(e: dict) -> None:
        metrics.add(e)
        t = e.get("type")
        if t == ev.TRAIN:
            now = time.perf_counter()
            marks["train_events"] += 1
            marks["first_train"] = marks["first_train"] or now
            marks["last_train"] = now
        elif t == ev.FINISHED:
            marks["finished"] = e
        if t in (ev.LOG, ev.TRAIN):
            logv.appendPlainText(json.dumps(e, default=str)[:300])

    stamps: list[float] = []
    late: list[float] = []
    job = Job(fn, *args_for(cfg, run_dir), name="train")
    job.event.connect(on_event)
    log(f"gui: Start → end of the run ({label}), {cfg.training.max_steps} steps, live plots …")
    t_start = time.perf_counter()
    _wait_job(app, job, stamps, late)
    t_end = time.perf_counter()
    fin = marks["finished"]
    if not fin or fin.get("status") != "completed" or not marks["first_train"]:
        return {**out, "skipped": f"failed: the training run did not complete ({fin})"}

    def on_chat(e: dict) -> None:
        if e.get("type") == ev.TOKEN:
            chatv.moveCursor(chatv.textCursor().MoveOperation.End)
            chatv.insertPlainText(e.get("text") or "")
        elif e.get("type") == ev.ANSWER:
            marks["answer"] = e.get("answer")

    question = (project.example_questions or ["What does error E4 mean?"])[0]
    chat = Job(engine.ask, root, question, ["tuned+rag"], run_dir=run_dir, base_model=cfg.model.name_or_path,
               generation=GenerationSettings(max_new_tokens=max_new_tokens), name="chat")
    chat.event.connect(on_chat)
    errors: list[str] = []
    chat.errored.connect(lambda err: errors.append(f"{type(err).__name__}: {err}"))
    log(f"gui: one chat answer streaming ({question!r}) …")
    t_chat = time.perf_counter()
    _wait_job(app, chat, stamps, late)
    engine.host.close(wait=False)  # the model host child (desktop.chat_adapter.ChatEngine's), as the app does
    if errors or "answer" not in marks:
        return {**out, "skipped": f"failed: the chat answer did not come ({'; '.join(errors)})"}

    def phase(a: float, b: float) -> list[float]:
        return [x for x, t in zip(late, stamps) if a <= t < b]

    out["phases"] = {
        "load": {"seconds": round(marks["first_train"] - t_start, 2),
                 **_stats(phase(t_start, marks["first_train"]))},
        "train": {"seconds": round(marks["last_train"] - marks["first_train"], 2),
                  **_stats(phase(marks["first_train"], marks["last_train"]))},
        "end": {"seconds": round(t_end - marks["last_train"], 2), **_stats(phase(marks["last_train"], t_end))},
        "chat": {"seconds": round(time.perf_counter() - t_chat, 2), **_stats(phase(t_chat, float("inf")))},
    }
    out["whole"] = _stats(late)
    out["stall_p99_ms"] = out["whole"]["p99_ms"]
    out["stall_max_ms"] = out["whole"]["max_ms"]
    out["load_phase_max_ms"] = out["phases"]["load"]["max_ms"]
    out["chat_phase_max_ms"] = out["phases"]["chat"]["max_ms"]
    out["train_events"] = marks["train_events"]
    out["idle_p99_ms"] = out["idle"]["p99_ms"]
    out["idle_max_ms"] = out["idle"]["max_ms"]
    out["measured"] = ("5 ms QTimer lateness on the GUI thread from Start to the end of the run (model load, "
                       "every step, evaluation, checkpoints, final save) and while one chat answer streams")

    # plot update cost with `points` points in every series (and with 1,000, to show how it scales)
    view.stop_live()

    def update_cost(n: int, reps: int) -> list[float]:
        metrics.clear()
        for i in range(n):
            metrics.add({"type": ev.TRAIN, "step": i + 1, "loss": 2.0 + 1.0 / (i + 1), "learning_rate": 2e-4,
                         "grad_norm": 1.0, "tokens_per_s": 500.0 + i % 7, "memory_mb": 900.0})
            if i % 500 == 0:
                metrics.add({"type": ev.EVAL, "step": i + 1, "eval_loss": 2.1})
        view.refresh()
        app.processEvents()
        costs = []
        for k in range(reps):
            metrics.add({"type": ev.TRAIN, "step": n + k + 1, "loss": 2.0, "learning_rate": 2e-4,
                         "grad_norm": 1.0, "tokens_per_s": 500.0, "memory_mb": 900.0})
            t = time.perf_counter()
            view.refresh()
            view.viewport().repaint()
            app.processEvents()
            costs.append((time.perf_counter() - t) * 1000)
        return costs

    costs = update_cost(points, repeats)
    drawn = view.curve_points("loss")
    small = update_cost(min(1000, points), repeats)
    out["plot_update_points"] = points
    out["plot_update_ms_median"] = _r(median(costs))
    out["plot_update_ms_max"] = _r(max(costs))
    out["plot_update_ms_median_1k_points"] = _r(median(small))
    out["plot_points_drawn_per_curve"] = drawn
    win.close()
    engine.release()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gui", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default=None, help="base model instead of the sample project's (tests)")
    p.add_argument("--idle-s", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="steps instead of the preset's")
    p.add_argument("--points", type=int, default=None)
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"model": a.model}
    if a.quick:
        kw.update(idle_s=1.0, max_steps=4, points=2_000, repeats=3, max_new_tokens=8, max_documents=1)
    for k in ("idle_s", "max_steps", "points"):
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    return emit(run(**kw), a.out)


if __name__ == "__main__":
    sys.exit(main())
