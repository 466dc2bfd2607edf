"""GUI responsiveness: main-thread stall while a training run feeds live plots.

A precise ``QTimer`` fires every 5 ms on the GUI thread; each firing records how
late it came (time since the previous firing minus 5 ms).  Measured twice with
the app's own live-plot widget on screen (``desktop.plots.QtRunMetrics`` at its
~20 Hz refresh) and a log view:

``idle``      no job running;
``training``  the real engine runs in a child process supervised by the app's own
              worker (``desktop.train_process.supervise`` in a ``desktop.workers.Job``,
              a ``QThread``), its events feed the plots and the log, exactly the path the
              Train page uses; the headline (``stall_p99_ms`` / ``stall_max_ms``) covers
              the whole run: start, model load, steps and the end of the run;
``process``   the same run in a child process (spawn, ``nice`` 5), events through a
              queue drained by a 20 Hz timer: a job hosted in a child process
              (docs/architecture.md, "Training in a child process"), measured for comparison.

Then the plot update cost: the plots hold 100,000 points, one point is added and
the widget refreshed and repainted; median and max over repeats (and the median
with 1,000 points: the view decimates what it draws, so the two should be close).

``python -m bench.gui --help`` for the sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import emit, log, median, percentile, setup_env

from backend import events as ev

PROBE_MS = 5


def _probe(app, seconds: float, until=None) -> list[float]:
    """Lateness (ms) of a 5 ms precise timer on the GUI thread for ``seconds`` (or until ``until()``)."""
    from PySide6.QtCore import QEventLoop, Qt, QTimer

    late: list[float] = []
    loop = QEventLoop()
    state = {"last": time.perf_counter(), "start": time.perf_counter()}

    def tick():
        now = time.perf_counter()
        late.append(max(0.0, (now - state["last"]) * 1000.0 - PROBE_MS))
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
    return late[1:]  # the first interval includes the loop start


def _stats(late: list[float]) -> dict:
    return {"samples": len(late), "p50_ms": _r(percentile(late, 50)), "p99_ms": _r(percentile(late, 99)),
            "max_ms": _r(max(late) if late else None), "over_16ms": sum(1 for x in late if x > 16),
            "over_100ms": sum(1 for x in late if x > 100)}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _write_dataset(folder: Path, n: int, seed: int = 0) -> Path:
    """A small chat dataset (messages jsonl) for the engine."""
    import random
    rng = random.Random(seed)
    words = "the model learns a small task from short examples with answers that repeat often".split()
    path = folder / "train.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            q = " ".join(rng.choice(words) for _ in range(rng.randint(4, 20)))
            a = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40)))
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"{i}: {q}?"},
                                              {"role": "assistant", "content": a}]}) + "\n")
    return path


def _child_train(cfg_dict: dict, queue, stop, nice: int) -> None:
    """Child process: run the engine, send every event through ``queue``."""
    import os
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    from backend.config import RunConfig
    from backend.training import train

    def on_event(e: dict) -> None:
        queue.put(e)

    try:
        train(RunConfig.from_dict(cfg_dict), on_event=on_event, should_stop=stop.is_set)
    except BaseException as e:  # reported to the parent; the run folder has the details
        queue.put({"type": "finished", "status": "failed", "reason": f"{type(e).__name__}: {e}"})
    queue.put(None)


class _ProcessJob:
    """The same controls as ``desktop.workers.Job`` over a child process (spawn) and a queue.

    A 20 Hz ``QTimer`` on the GUI thread drains the queue.  A prototype of hosting
    a training job in a child process (docs/architecture.md, "Training in a child process").
    """

    def __init__(self, cfg_dict: dict, on_event, nice: int = 5):
        import multiprocessing as mp
        from PySide6.QtCore import QTimer

        ctx = mp.get_context("spawn")
        self._q = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_child_train, args=(cfg_dict, self._q, self._stop, nice), daemon=True)
        self._on_event = on_event
        self.done = False
        self.error = None
        self._timer = QTimer()
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._drain)

    def start(self) -> "_ProcessJob":
        self._proc.start()
        self._timer.start()
        return self

    def _drain(self) -> None:
        import queue as _queue
        for _ in range(1000):
            try:
                e = self._q.get_nowait()
            except _queue.Empty:
                break
            if e is None:
                self.done = True
                self._timer.stop()
                self._proc.join(timeout=10)
                return
            if e.get("type") == ev.FINISHED and e.get("status") == "failed":
                self.error = e.get("reason")
            self._on_event(e)
        if not self._proc.is_alive() and self._q.empty():
            self.done = True
            self._timer.stop()

    def stop(self) -> None:
        self._stop.set()


def run(model: str = "default", idle_s: float = 5.0, train_s: float = 30.0, rows: int = 64,
        points: int = 100_000, repeats: int = 20, modes: tuple = ("thread", "process")) -> dict:
    """Measure; return the ``gui`` block."""
    setup_env()
    try:
        from PySide6.QtWidgets import QApplication, QPlainTextEdit, QSplitter
        from PySide6.QtCore import Qt
        from desktop.plots import QtRunMetrics, RunMetrics
        from desktop.train_process import supervise, train_request
        from desktop.workers import Job
    except ImportError as e:
        return {"skipped": f"desktop plots / workers not importable ({e})"}
    try:
        from backend.config import RunConfig
    except ImportError as e:
        return {"skipped": f"backend.config not importable ({e})"}

    app = QApplication.instance() or QApplication(sys.argv[:1])
    out: dict[str, Any] = {"platform": app.platformName(), "probe_interval_ms": PROBE_MS,
                           "widget": "desktop.plots.QtRunMetrics (+ log view) fed through desktop.workers.Job"}
    metrics = RunMetrics()
    view = QtRunMetrics(metrics)
    logv = QPlainTextEdit()
    logv.setReadOnly(True)
    logv.setMaximumBlockCount(5000)
    win = QSplitter(Qt.Orientation.Vertical)
    win.addWidget(view)
    win.addWidget(logv)
    win.resize(1200, 800)
    win.show()
    view.start_live()
    app.processEvents()

    log(f"gui: idle probe {idle_s:.0f} s …")
    idle = _probe(app, idle_s)
    out["idle"] = _stats(idle)

    tmp = Path(tempfile.mkdtemp(prefix="bench-gui-"))
    data = _write_dataset(tmp, rows)

    def cfg_dict(tag: str) -> dict:
        return {"name": f"bench-gui-{tag}", "output_dir": str(tmp / f"run-{tag}"),
                "model": {"name_or_path": model},
                "data": {"train_files": [str(data)], "validation_split": 0.0, "max_length": 128},
                "training": {"max_steps": 10_000, "batch_size": 2, "gradient_accumulation": 1, "eval_steps": 0,
                             "save_steps": 100_000, "logging_steps": 1, "epochs": 1000}}

    for mode in modes:
        metrics.clear()
        logv.clear()
        events = {"n": 0, "train": 0, "first_train": None}

        def on_event(e: dict, events=events) -> None:
            events["n"] += 1
            metrics.add(e)
            if e.get("type") == ev.TRAIN:
                events["train"] += 1
                if events["first_train"] is None:
                    events["first_train"] = time.perf_counter()
            if e.get("type") in (ev.LOG, ev.TRAIN):
                logv.appendPlainText(json.dumps(e, default=str)[:300])

        if mode == "thread":  # as the Train page: the supervisor thread and its training child
            cfg = RunConfig.from_dict(cfg_dict(mode)).to_dict()
            job = Job(supervise, train_request(cfg, Path(cfg["output_dir"])), name="bench-train")
            job.event.connect(on_event)
        else:
            job = _ProcessJob(cfg_dict(mode), on_event)
        log(f"gui: training ({mode}) with live plots, {train_s:.0f} s of steps …")
        t_start = time.perf_counter()
        job.start()
        # wait (processing events) until the first optimizer step, so the probe sees training, not loading
        load_late = _probe(app, 600.0, until=lambda: events["first_train"] is not None or job.done)
        res: dict[str, Any] = {"load_phase_s": round(time.perf_counter() - t_start, 2),
                               "load_phase": _stats(load_late)}
        if job.done:
            out[f"training_{mode}"] = {"skipped": f"the training job ended before its first step ({job.error})"}
            continue
        late = _probe(app, train_s, until=lambda: job.done)
        job.stop()
        end_late = _probe(app, 600.0, until=lambda: job.done)  # the end of the run: checkpoint, exit
        res.update(_stats(late))
        res["end_phase"] = _stats(end_late)
        res["whole_run"] = _stats(load_late + late + end_late)
        res["train_events"] = events["train"]
        out[f"training_{mode}"] = res
    main = out.get("training_thread") or {}
    if "p99_ms" in main:
        out["stall_p99_ms"] = main["whole_run"]["p99_ms"]
        out["stall_max_ms"] = main["whole_run"]["max_ms"]
        out["load_phase_max_ms"] = main["load_phase"]["max_ms"]
    elif "skipped" in main:
        out["skipped"] = main["skipped"]
    proc = out.get("training_process") or {}
    if "p99_ms" in proc:
        out["stall_p99_ms_child_process"] = proc["p99_ms"]
        out["stall_max_ms_child_process"] = proc["max_ms"]
    out["idle_p99_ms"] = out["idle"]["p99_ms"]
    out["idle_max_ms"] = out["idle"]["max_ms"]

    # plot update cost with `points` points in every series (and with 1,000, to show how it scales)
    view.stop_live()

    def update_cost(n: int, reps: int) -> list[float]:
        metrics.clear()
        for i in range(n):
            metrics.add({"type": "train", "step": i + 1, "loss": 2.0 + 1.0 / (i + 1), "learning_rate": 2e-4,
                         "grad_norm": 1.0, "tokens_per_s": 500.0 + i % 7, "memory_mb": 900.0})
            if i % 500 == 0:
                metrics.add({"type": "eval", "step": i + 1, "eval_loss": 2.1})
        view.refresh()
        app.processEvents()
        costs = []
        for k in range(reps):
            metrics.add({"type": "train", "step": n + k + 1, "loss": 2.0, "learning_rate": 2e-4,
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
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gui", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="default")
    p.add_argument("--idle-s", type=float, default=None)
    p.add_argument("--train-s", type=float, default=None)
    p.add_argument("--points", type=int, default=None)
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"model": a.model}
    if a.quick:
        kw.update(idle_s=1.0, train_s=3.0, rows=16, points=2_000, repeats=3, modes=("thread",))
    for k in ("idle_s", "train_s", "points"):
        if getattr(a, k) is not None:
            kw[k] = getattr(a, k)
    return emit(run(**kw), a.out)


if __name__ == "__main__":
    sys.exit(main())
