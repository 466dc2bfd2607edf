"""The job runner and the model host (docs/architecture.md, "The job runner and the model host").

Real parts throughout: ``python -m backend.child`` children, the tiny random-weight Llama of
tests/conftest.py, the bundled embedder, a copy of the sample project.  The window's own process is
checked in a fresh interpreter that drives the real app offscreen, because this test process has
imported torch for its fixtures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backend import events as ev

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "resources" / "sample_project"
HEAVY = ("torch", "transformers", "chromadb", "onnxruntime")
GEN = {"max_new_tokens": 4, "temperature": 0.0, "top_p": 0.9, "repetition_penalty": 1.1}


@pytest.fixture()
def project(tmp_path) -> Path:
    """A copy of the sample project (documents, datasets, the sample test set), no runs, no index."""
    root = tmp_path / "brisa"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("runs", "index"))
    return root


def _make_run(project_root: Path, tiny_model_dir: Path) -> Path:
    """A finished run folder with a real LoRA adapter (random weights) on the tiny model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.config import RunConfig
    from backend.runs import write_status

    run = project_root / "runs" / "run-a"
    run.mkdir(parents=True)
    cfg = RunConfig.from_dict({"name": "run-a", "model": {"name_or_path": str(tiny_model_dir)},
                               "data": {"train_files": [str(project_root / "datasets" / "brisa_support.jsonl")],
                                        "validation_split": 0.1, "max_length": 128}})
    (run / "config.json").write_text(cfg.to_json())
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=16, init_lora_weights=False, target_modules=["q_proj", "v_proj"]))
    model.save_pretrained(run / "adapter")
    (run / "metrics.jsonl").write_text(json.dumps({"type": "eval", "time": 0, "step": 4, "eval_loss": 9.5}) + "\n")
    write_status(run, "completed")
    return run


# -- the runner and the host, without Qt --------------------------------------------------------------
def test_host_streams_answers_keeps_the_model_warm_and_ends_with_its_memory(project, tiny_model_dir):
    from backend.jobs import ModelHost
    from backend.rag.chain import Answer
    from desktop.chat_adapter import ChatEngine

    host = ModelHost()
    engine = ChatEngine(host)
    try:
        events: list[dict] = []
        out = engine.ask(project, "How long is the warranty?", ["base"], run_dir=None,
                         base_model=str(tiny_model_dir), generation=GEN, on_event=events.append)
        types = [e["type"] for e in events]
        assert ev.ANSWER_START in types and ev.TOKEN in types and types[-1] == ev.FINISHED, types
        (answer_event,) = [e for e in events if e["type"] == ev.ANSWER]
        assert isinstance(answer_event["answer"], Answer) and isinstance(out["base"], Answer)
        assert out["base"].answer == answer_event["answer"].answer
        pid = host.pid
        assert pid is not None and engine.loaded()

        again = engine.ask(project, "How long is the warranty?", ["base"], run_dir=None,
                           base_model=str(tiny_model_dir), generation=GEN)
        assert again["base"].answer == out["base"].answer  # greedy: the same model, kept warm
        assert host.pid == pid and host.starts == 1
        held = host.request("ping")
        assert held["chat"] == [None, str(tiny_model_dir)] and "torch" in held["modules"]
    finally:
        host.close()
    assert host.pid is None
    with pytest.raises(ProcessLookupError):  # the child is gone, its memory with it
        os.kill(pid, 0)


def test_killed_host_is_a_failure_in_words_and_the_next_question_starts_a_new_one(project, tiny_model_dir):
    from backend.jobs import ChildDied, ModelHost
    from desktop.chat_adapter import ChatEngine

    host = ModelHost()
    engine = ChatEngine(host)
    killed = threading.Event()

    def kill_on_first_token(rec: dict) -> None:
        if rec["type"] == ev.TOKEN and not killed.is_set():
            killed.set()
            os.kill(host.pid, signal.SIGKILL)

    try:
        with pytest.raises(ChildDied, match=r"killed \(SIGKILL\)") as err:
            engine.ask(project, "How long is the warranty?", ["base"], run_dir=None, base_model=str(tiny_model_dir),
                       generation={**GEN, "max_new_tokens": 4000}, on_event=kill_on_first_token)
        assert killed.is_set() and "model process" in str(err.value) and "ask again" in str(err.value)
        out = engine.ask(project, "How long is the warranty?", ["base"], run_dir=None,
                         base_model=str(tiny_model_dir), generation=GEN)
        assert out["base"].answer is not None and host.starts == 2
    finally:
        host.close()


def test_child_job_errors_and_unknown_requests(tmp_path):
    from backend import jobs
    from backend.errors import TuneError

    with pytest.raises(TuneError) as err:
        jobs.call({"action": "export", "run_dir": str(tmp_path / "missing-run"), "kind": "adapter",
                   "out": str(tmp_path / "out")})
    assert not isinstance(err.value, (jobs.ChildDied, jobs.ChildJobError)) and "missing-run" in str(err.value)

    out = jobs.run_job({"action": "nothing-like-it"})
    assert out.finished["status"] == "failed" and "unknown action" in out.finished["reason"] and out.returncode == 2

    host = jobs.ModelHost()
    try:
        with pytest.raises(jobs.ChildJobError, match="unknown request 'fly'"):
            host.request("fly")
        assert host.request("ping")["chat"] is None and host.starts == 1  # the host lives on after an error
    finally:
        host.close()


def test_a_job_child_that_crashes_is_described_in_words(tmp_path):
    from backend import jobs

    crash = [sys.executable, "-c", "import os, sys; sys.stdin.readline(); os.abort()"]
    out = jobs.run_job({"action": "store_probe", "index_dir": str(tmp_path)}, command=crash, what="the reader")
    assert out.finished is None and "the reader crashed (SIGABRT" in out.reason
    with pytest.raises(jobs.ChildDied, match="^The reader crashed"):
        jobs.call({"action": "store_probe"}, command=crash, what="the reader")


# -- the window: no model library in its process; a killed host mid-answer -----------------------------
APP_SCRIPT = r"""
import json, os, sys, time
from pathlib import Path

root, run, model, out_dir = (Path(a) for a in sys.argv[1:5])
from PySide6.QtWidgets import QApplication

app = QApplication([])
from desktop.app import create_window
from desktop.export_dialog import ExportDialog


def wait(cond, what, timeout=900):
    end = time.monotonic() + timeout
    while not cond():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")


w = create_window(root, model=str(model))
w.resize(1360, 880)
w.show()
wait(lambda: w.session.model_path is not None and w.session.device is not None, "the model and device")
w.ensure_pages()
cp = w.chat_page
cp.gen_editors["max_new_tokens"].setValue(4)
cp.run_combo.setCurrentIndex(cp.run_combo.findData(str(run)))
assert cp.ask("How long is the warranty?")
wait(lambda: not cp.is_busy() and cp.exchanges() and all(a.done for a in cp.exchanges()[-1].answers.values()),
     "the chat answer")
answers = {m: a.answer_text() for m, a in cp.exchanges()[-1].answers.items()}
chat_error = cp.banner.text() if cp.banner.isVisible() and cp.banner.kind == "error" else ""

ep = w.evaluate_page
ep.select(run, "mini")
ep.max_tokens.setValue(4)
finished = []
ep.evaluationFinished.connect(finished.append)
assert ep.start_evaluation()
wait(lambda: finished, "the evaluation")
report = ep.report or {}

d = ExportDialog(run)
d.set_kind("adapter")
d.path_edit.setText(str(out_dir / "adapter"))
d.questions.setValue(1)
assert d.start()
wait(lambda: d.job.done, "the export")
record = d.record

host = w.session.model_host._child
heavy = sorted(m for m in ("torch", "transformers", "chromadb", "onnxruntime") if m in sys.modules)
w.close()
wait(lambda: host.proc.poll() is not None, "the model host to exit", timeout=60)
print("RESULT " + json.dumps({"heavy": heavy, "answers": answers, "chat_error": chat_error,
                              "evaluation": finished, "questions": len(report.get("questions") or []),
                              "export": record.path if record else None, "host_rc": host.proc.returncode}))
"""


def test_the_window_process_never_imports_a_model_library(project, tiny_model_dir, tmp_path):
    # A chat answer, an evaluation and an export driven through the real app in a fresh interpreter.
    run = _make_run(project, tiny_model_dir)
    rows = [{"question": "How long is the warranty?", "answer": "3 years"},
            {"question": "What does error E4 mean?", "answer": "The Wi-Fi password was rejected."}]
    (project / "evalsets" / "mini.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TUNE_STUDIO_HOME": str(tmp_path / "home"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", APP_SCRIPT, str(project), str(run), str(tiny_model_dir),
                        str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)
    line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert p.returncode == 0 and line, (p.returncode, p.stdout[-2000:], p.stderr[-4000:])
    got = json.loads(line[len("RESULT "):])
    assert got["heavy"] == [], got
    assert not got["chat_error"] and got["answers"] and all(isinstance(a, str) for a in got["answers"].values())
    assert got["evaluation"] == ["completed"] and got["questions"] == 2, got
    assert got["export"] and Path(got["export"]).is_dir()
    assert got["host_rc"] == 0  # the window closed: the model host left (its memory with it)


@pytest.fixture()
def chat_page(qtbot, project, tiny_model_dir, monkeypatch):
    from desktop.pages.chat import ChatPage
    from desktop.session import Session
    from desktop.workers import stop_all_jobs

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(project.parent / "home"))
    s = Session()
    s.open_project(project, model_override=str(tiny_model_dir))
    page = ChatPage(s)
    qtbot.addWidget(page)
    page.resize(1300, 800)
    page.rag_check.setChecked(False)
    page._want["rag"] = False
    yield page
    page.shutdown()
    stop_all_jobs(timeout_ms=60_000)
    s.close_models()


@pytest.mark.usefixtures("qapp")
def test_killing_the_host_mid_answer_shows_a_failure_and_the_next_question_is_answered(qtbot, chat_page):
    page = chat_page
    page.gen_editors["max_new_tokens"].setValue(4000)
    assert page.ask("How long is the warranty?")
    host = page.session.model_host
    started: list[dict] = []
    page._job.event.connect(lambda e: started.append(e) if e.get("type") == ev.ANSWER_START else None)
    # mid-answer: the model is loaded and writing (a random model's first words may stay in the streamer's buffer)
    qtbot.waitUntil(lambda: bool(started), timeout=300_000)
    qtbot.wait(300)
    os.kill(host.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=60_000)
    assert not page.banner.isHidden() and page.banner.kind == "error"
    assert "killed (SIGKILL)" in page.banner.text() and "ask again" in page.banner.text(), page.banner.text()
    first = page.exchanges()[-1].answers["base"]
    assert first.done and first.timing.text() == "failed"

    page.gen_editors["max_new_tokens"].setValue(4)
    assert page.ask("How long is the warranty?")
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=300_000)
    second = page.exchanges()[-1].answers["base"]
    assert second.done and second.seconds is not None and host.starts == 2
    assert page.banner.isHidden() or page.banner.kind != "error", page.banner.text()
