"""Training in a child process supervised from a QThread (docs/architecture.md, "The job runner and the model host").

Real child processes (``python -m backend.child``) train tiny random-weight
models; the supervisor runs in a :class:`desktop.workers.Job` as on the Train page.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backend import events as ev
from backend import runs
from backend.config import RunConfig

pytestmark = pytest.mark.usefixtures("qapp")

TIMEOUT = 180_000


@pytest.fixture(autouse=True)
def _no_job_left():
    from desktop.workers import stop_all_jobs

    yield
    assert stop_all_jobs(timeout_ms=120_000)


def tiny_cfg(model_dir, data, out, **over) -> dict:
    base = {"model.name_or_path": str(model_dir), "data.train_files": [str(data)],
            "output_dir": str(out), "data.max_length": 64, "data.validation_split": 0.0,
            "training.batch_size": 2, "training.gradient_accumulation": 1,
            "training.max_steps": 6, "training.save_steps": 100, "training.eval_steps": 0,
            "training.learning_rate": 1e-3, "training.warmup_ratio": 0.0, "method.lora_r": 4}
    base.update(over)
    return RunConfig().with_overrides(base).to_dict()


def _steps(run_dir: Path, kind: str = ev.TRAIN) -> list[int]:
    return [r["step"] for r in ev.read_events(runs.metrics_path(run_dir)) if r["type"] == kind]


class Recorder:
    """A supervised Job, its events and the child's pid."""

    def __init__(self, request: dict):
        from desktop.train_process import supervise
        from desktop.workers import Job

        self.events: list[dict] = []
        self.pids: list[int] = []
        self.job = Job(supervise, request, name="train", on_start=lambda p: self.pids.append(p.pid))
        self.job.event.connect(self.events.append)

    def types(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    def paused_at(self) -> int:
        """The step the run paused after (its record is logged right after the pause)."""
        msg = next(e["message"] for e in self.types(ev.LOG) if e["message"].startswith("Paused at step"))
        return int(msg.rsplit(" ", 1)[-1])

    def logged(self, text: str) -> bool:
        return any(text in e.get("message", "") for e in self.types(ev.LOG))


def test_supervisor_module_and_train_page_import_no_training_stack():
    # The GUI process never imports torch/transformers (nor the engine) for training.
    code = ("import sys, desktop.train_process, desktop.pages.train, desktop.workers\n"
            "bad = [m for m in ('torch', 'transformers', 'peft', 'backend.training') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1],
                   env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})


def test_child_run_completes_and_feeds_the_plots(qtbot, tiny_model_dir, chat_jsonl, tmp_path):
    from desktop.plots import RunMetrics
    from desktop.train_process import train_request

    run = tmp_path / "run"
    rec = Recorder(train_request(tiny_cfg(tiny_model_dir, chat_jsonl, run, **{"data.validation_split": 0.2,
                                                                              "training.eval_steps": 3}), run))
    metrics = RunMetrics()
    rec.job.event.connect(metrics.add)
    with qtbot.waitSignal(rec.job.finished, timeout=TIMEOUT):
        rec.job.start()
    assert rec.job.error is None, rec.job.error
    out = rec.job.result
    assert out.status == "completed" and out.run_dir == run and out.adapter_dir == run / "adapter"
    assert rec.pids and rec.pids[0] != os.getpid()  # it trained in another process
    assert [e["step"] for e in rec.types(ev.TRAIN)] == [1, 2, 3, 4, 5, 6]
    assert rec.types(ev.STARTED)[0]["run_dir"] == str(run)
    assert rec.events[-1]["type"] == ev.FINISHED and rec.events[-1]["status"] == "completed"
    assert metrics.points("loss") == 6 and metrics.points("eval_loss") >= 1
    for key in ("learning_rate", "grad_norm", "tokens_per_s", "memory_mb"):
        assert metrics.points(key) > 0, key
    assert runs.read_status(run)["status"] == "completed"
    assert _steps(run) == [1, 2, 3, 4, 5, 6]


def test_pause_then_stop_saves_a_checkpoint_and_resume_completes(qtbot, tiny_model_dir, chat_jsonl, tmp_path):
    from desktop.train_process import resume_request, train_request

    run = tmp_path / "run"
    rec = Recorder(train_request(tiny_cfg(tiny_model_dir, chat_jsonl, run, **{"training.max_steps": 60}), run))
    with qtbot.waitSignal(rec.job.finished, timeout=TIMEOUT):
        rec.job.start()
        qtbot.waitUntil(lambda: bool(rec.types(ev.TRAIN)), timeout=TIMEOUT)
        rec.job.set_paused(True)
        qtbot.waitUntil(lambda: rec.logged("Paused at step"), timeout=TIMEOUT)
        paused_at = rec.paused_at()
        rec.job.stop()
    assert rec.job.error is None, rec.job.error
    assert rec.job.result.status == "cancelled"
    assert rec.types(ev.TRAIN)[-1]["step"] == paused_at  # no step ran after the pause
    ck = runs.latest_checkpoint(run)
    assert ck is not None and runs.checkpoint_step(ck) == paused_at
    assert runs.read_status(run)["status"] == "cancelled" and runs.is_resumable(run)

    again = Recorder(resume_request(run))
    with qtbot.waitSignal(again.job.finished, timeout=TIMEOUT):
        again.job.start()
    assert again.job.error is None, again.job.error
    assert again.job.result.status == "completed"
    assert _steps(run) == list(range(1, 61))  # each step once


def test_killed_child_is_reported_marked_failed_and_resumes(qtbot, tiny_model_dir, chat_jsonl, tmp_path):
    from desktop.train_process import TrainingProcessDied, resume_request, train_request

    run = tmp_path / "run"
    cfg = tiny_cfg(tiny_model_dir, chat_jsonl, run, **{"training.max_steps": 12, "training.save_steps": 3})
    rec = Recorder(train_request(cfg, run))
    with qtbot.waitSignal(rec.job.finished, timeout=TIMEOUT):
        rec.job.start()
        qtbot.waitUntil(lambda: any(e["step"] >= 4 for e in rec.types(ev.TRAIN)), timeout=TIMEOUT)
        rec.job.set_paused(True)  # hold it between two checkpoints, then kill it there
        qtbot.waitUntil(lambda: rec.logged("Paused at step"), timeout=TIMEOUT)
        os.kill(rec.pids[0], signal.SIGKILL)
    err = rec.job.error
    assert isinstance(err, TrainingProcessDied), err
    assert "killed (SIGKILL)" in str(err) and "Resume" in str(err)
    st = runs.read_status(run)
    assert st["status"] == "failed" and "killed (SIGKILL)" in st["reason"]
    assert runs.is_resumable(run)
    last_ck = runs.checkpoint_step(runs.latest_checkpoint(run))
    assert last_ck in (3, 6) and max(_steps(run)) > last_ck  # steps after the checkpoint are on disk

    again = Recorder(resume_request(run))
    with qtbot.waitSignal(again.job.finished, timeout=TIMEOUT):
        again.job.start()
    assert again.job.error is None, again.job.error
    assert again.job.result.status == "completed"
    assert _steps(run) == list(range(1, 13))  # nothing lost, nothing twice
    assert runs.read_status(run)["status"] == "completed"


def test_child_error_keeps_the_field_and_hint(qtbot, tmp_path, chat_jsonl):
    from backend.errors import TuneError
    from desktop.train_process import train_request

    run = tmp_path / "run"
    cfg = tiny_cfg(tmp_path / "no-such-model", chat_jsonl, run)
    rec = Recorder(train_request(cfg, run))
    with qtbot.waitSignal(rec.job.finished, timeout=TIMEOUT):
        rec.job.start()
    err = rec.job.error
    assert isinstance(err, TuneError) and "no-such-model" in str(err), err
    assert runs.read_status(run)["status"] == "failed"


def test_child_speaks_only_events_on_stdout(tmp_path):
    # A request it cannot carry out still ends with one finished event on stdout, nothing else.
    req = {"action": "resume", "run_dir": str(tmp_path / "missing")}
    p = subprocess.run([sys.executable, "-m", "backend.child"], input=json.dumps(req) + "\n", text=True,
                       capture_output=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    assert p.returncode == 2 and [x["type"] for x in lines] == [ev.FINISHED], p.stderr
    assert lines[0]["status"] == "failed" and "run folder not found" in lines[0]["reason"]


# -- the window: close mid-run, reopen, resume (issue 21, item 1) -------------------------------
def _open_window(qtbot, tiny_model_dir):
    from desktop.app import create_window

    w = create_window(model=str(tiny_model_dir))
    qtbot.addWidget(w)
    w.resize(1360, 880)
    w.show()
    qtbot.waitUntil(lambda: w.session.model_path is not None and w.session.device is not None, timeout=60_000)
    return w


def test_run_stopped_by_closing_the_window_is_offered_on_reopen(qtbot, tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    w = _open_window(qtbot, tiny_model_dir)
    w.next()
    w.next()  # Project -> Model -> Data
    qtbot.waitUntil(lambda: w.session.data_report is not None and not w.data_page.is_busy(), timeout=60_000)
    w.next()
    form = w.configure_page.form
    for key, value in {"training.max_steps": 30, "training.batch_size": 2, "training.gradient_accumulation": 1,
                       "training.eval_steps": 0, "training.save_steps": 1000, "data.max_length": 64,
                       "method.lora_r": 4, "data.raft": False}.items():
        form.set_value(key, value)
    form.flush()
    w.next()
    tp = w.train_page
    monkeypatch.setattr(w, "confirm_stop_training", lambda: True)
    assert tp.start_training()
    qtbot.waitUntil(lambda: tp.metrics.points("loss") >= 2, timeout=TIMEOUT)
    run = tp._run_dir
    assert w.close() is False  # the run stops first (checkpoint), then the window closes
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=TIMEOUT)
    assert runs.read_status(run)["status"] == "cancelled" and runs.is_resumable(run)
    stopped_at = runs.checkpoint_step(runs.latest_checkpoint(run))

    w2 = _open_window(qtbot, tiny_model_dir)  # the app starts again on the same project
    w2.ensure_pages()
    qtbot.waitUntil(lambda: not w2.notice.isHidden(), timeout=10_000)
    assert "was stopped" in w2.notice.text() and f"at step {stopped_at}" in w2.notice.text(), w2.notice.text()
    tp2 = w2.train_page
    with qtbot.waitSignal(tp2.trainingFinished, timeout=TIMEOUT) as blocker:
        w2._on_resume_accepted(run)
        assert w2.current_index() == 4 and tp2.is_busy()
    assert blocker.args[0] == "completed", tp2.banner.text()
    assert _steps(run) == list(range(1, 31))
    w2._offer_resume()  # nothing left to offer
    assert w2.notice.isHidden() or "was stopped" not in w2.notice.text()


def test_killed_child_leaves_the_window_saying_so_with_resume(qtbot, tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    w = _open_window(qtbot, tiny_model_dir)
    w.ensure_pages()
    tp = w.train_page
    # a tiny run of the project's data through the page's own start path
    form = w.configure_page.form
    for key, value in {"training.max_steps": 30, "training.batch_size": 2, "training.eval_steps": 0,
                       "training.save_steps": 2, "data.max_length": 64, "method.lora_r": 4,
                       "data.raft": False}.items():
        form.set_value(key, value)
    form.flush()
    pids = []
    import desktop.train_process as tpm

    real = tpm.supervise
    monkeypatch.setattr("desktop.pages.train.supervise",
                        lambda req, **kw: real(req, on_start=lambda p: pids.append(p.pid), **kw))
    with qtbot.waitSignal(tp.trainingFinished, timeout=TIMEOUT) as blocker:
        assert tp.start_training()
        qtbot.waitUntil(lambda: tp.metrics.points("loss") >= 3, timeout=TIMEOUT)
        tp.pause_button.click()
        qtbot.waitUntil(lambda: "Paused at step" in tp.log_view.toPlainText(), timeout=TIMEOUT)
        os.kill(pids[0], signal.SIGKILL)
    assert blocker.args[0] == "failed"
    assert w.isVisible()  # the window survived its training process
    text = tp.status_label.text()
    assert "stopped unexpectedly" in text and "killed (SIGKILL)" in text and "Resume" in text, text
    assert "killed (SIGKILL)" in tp.banner.text()
    run = tp._run_dir
    assert runs.read_status(run)["status"] == "failed"
    assert tp.resume_button.isEnabled()
    with qtbot.waitSignal(tp.trainingFinished, timeout=TIMEOUT) as blocker:
        tp.resume_button.click()
    assert blocker.args[0] == "completed", tp.banner.text()
    assert _steps(run) == list(range(1, 31))
    tp.grab().save(str(tmp_path / "train-after-resume.png"))
