"""Issue 21 on the pages (pytest-qt, offscreen): runs you can tidy, the run that died before its first
checkpoint, the finish notice's run name, the estimate beside the live ETA, a chat you can keep.

Pages are built on a bare Session over a project made in the test (docs/architecture.md, "How to add
a page"); run folders are written the way backend/runs.py reads them ("The run folder").
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend import runs
from backend.config import RunConfig

pytestmark = pytest.mark.usefixtures("qapp")
DEAD_PID = 2**22 + 4321  # beyond pid_max on most systems: the writer is gone


def _run(root: Path, rid: str, status: str, *, created: float, checkpoint: bool = True, adapter: bool = False,
         pid: int | None = DEAD_PID, reason: str = "") -> Path:
    run = runs.runs_dir(root) / rid
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(RunConfig(name=f"run {rid}").to_dict()))
    runs.status_path(run).write_text(json.dumps({"status": status, "pid": pid, "created": created,
                                                 "reason": reason}))
    runs.metrics_path(run).write_text(json.dumps({"type": "train", "time": 1.0, "step": 2, "max_steps": 10,
                                                  "loss": 1.5}) + "\n")
    if checkpoint:
        ck = runs.checkpoint_dir(run, 2)
        ck.mkdir(parents=True)
        (ck / runs.TRAINER_STATE).write_text("{}")
        runs.mark_checkpoint_complete(ck, 2)
    if adapter:
        runs.adapter_dir(run).mkdir()
        (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
    return run


@pytest.fixture()
def project(tmp_path, monkeypatch):
    from backend.workspace import Project

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # the system trash, if Qt uses one, stays here
    return Project.create(tmp_path / "proj", "proj")


@pytest.fixture()
def train_page(qtbot, project):
    from desktop.pages.train import TrainPage
    from desktop.session import Session

    s = Session()
    s.open_project(project.root)
    page = TrainPage(s)
    qtbot.addWidget(page)
    page.resize(1300, 800)

    return page


def _names(page) -> list[str]:
    return [page.history.item(r, 0).text() for r in range(page.history.rowCount())]


def test_history_filter_rename_and_delete(qtbot, train_page, project):
    tp = train_page
    done = _run(project.root, "20261130-115150-run-a", "completed", created=3.0, adapter=True)
    failed = _run(project.root, "b", "failed", created=2.0, reason="out of memory")
    _run(project.root, "c", "running", created=1.0)  # its process is gone: interrupted
    tp.refresh_history()
    assert _names(tp) == ["run 20261130-115150-run-a", "run b", "run c"]
    for label, want in (("Failed", ["run b"]), ("Interrupted", ["run c"]), ("Completed", ["run 20261130-115150-run-a"]),
                        ("Cancelled", []), ("All runs", ["run 20261130-115150-run-a", "run b", "run c"])):
        tp.history_filter.setCurrentText(label)
        assert _names(tp) == want, label
    assert tp.history.item(2, 1).text() == "interrupted"

    # rename: a display name; the folder keeps its id and the page shows the new name
    assert tp.rename_run(done, "baseline")
    assert done.is_dir() and _names(tp)[0] == "baseline" and runs.read_run(done).name == "baseline"
    tp.ask_run_name = lambda current: (current + " 2")
    tp.show_run(done)
    tp.rename_button.click()
    assert _names(tp)[0] == "baseline 2"
    assert not tp.rename_run(done, "a\nb") and "one line" in tp.banner.text()

    # delete: the confirmation names the folder, its size and what is in it; No keeps everything
    asked = []
    tp.confirm_delete = lambda title, text: asked.append(text) or False
    assert not tp.delete_run(failed) and failed.is_dir()
    assert str(failed) in asked[0] and "no adapter, 1 checkpoint, no exports, no evaluations" in asked[0]
    assert "bytes" in asked[0] or "kB" in asked[0]
    tp.confirm_delete = lambda title, text: True
    tp.show_run(failed)
    tp.delete_button.click()
    assert not failed.exists() and "run b" not in _names(tp) and tp.status_label.text().startswith("Deleted “run b”")

    # refused while another page works with it (the main window says which)
    tp.run_in_use = lambda run_dir: "Chat is answering with it" if run_dir == done else None
    assert not tp.delete_run(done) and done.is_dir() and "Chat is answering with it" in tp.banner.text()
    # refused while a process trains it
    live = _run(project.root, "live", "running", created=4.0, pid=os.getpid())
    assert not tp.delete_run(live) and live.is_dir() and "training now" in tp.banner.text()
    # the chat's run goes away with it
    tp.run_in_use = lambda run_dir: None
    tp.session.select_run(done)
    assert tp.delete_run(done) and not done.exists() and tp.session.run_dir is None


def test_run_that_died_before_its_first_checkpoint(qtbot, train_page, project):
    tp = train_page
    run = _run(project.root, "early", "running", created=1.0, checkpoint=False)
    tp.refresh_history()
    tp.show_run(run)
    text = tp.status_label.text()
    assert text == "Showing run early: interrupted before its first checkpoint: start it again.", text
    assert tp.history.item(0, 1).text() == "interrupted"
    assert not tp.resume_button.isEnabled() and "No checkpoint was saved" in tp.resume_button.toolTip()
    # a resumable one keeps its plain status
    ok = _run(project.root, "later", "cancelled", created=2.0)
    tp.refresh_history()
    tp.show_run(ok)
    assert tp.status_label.text() == "Showing run later: cancelled." and tp.resume_button.isEnabled()


def test_buttons_named_apart_and_finish_notice_uses_the_history_name(qtbot, train_page, project):
    tp = train_page
    assert tp.resume_button.text() == "Resume run" and tp.pause_button.text() == "Pause"
    run = _run(project.root, "20261130-115150-run-x", "cancelled", created=1.0)
    runs.rename_run(run, "long context try")
    tp._run_dir, tp._final_status, tp._job = run, "cancelled", None
    with qtbot.waitSignal(tp.trainingFinished) as blocker:
        tp._on_job_finished()
    assert blocker.args[1] == "Training stopped: long context try saved a checkpoint and can be resumed."
    assert "20261130" not in tp.status_label.text()


def test_estimate_beside_the_live_eta_says_when_slower(qtbot, train_page):
    tp = train_page
    tp._set_estimate(60.0)
    assert tp.stat["estimate"].text() == "estimated 1 min 00 s in all"
    rec = {"type": "train", "step": 5, "max_steps": 30, "loss": 1.0, "elapsed_s": 20.0, "eta_s": 50.0}
    tp._on_train_record(rec)  # 70 s in all: within 1.5x
    assert "Slower than estimated" not in tp.status_label.text()
    tp._on_train_record(dict(rec, step=6, elapsed_s=40.0, eta_s=100.0))  # 140 s: 2.3x
    text = tp.status_label.text()
    assert "Slower than estimated: about 2 min 20 s in all, 2.3× the estimate." in text, text
    assert "c0392b" in tp.stat["estimate"].styleSheet()
    assert "Slower than estimated" in tp.log_view.toPlainText()


def test_other_cpu_names_a_busy_program():
    # a real busy process is seen as "other programs"; the excluded process tree (ours) is not
    import subprocess
    import sys
    import time

    from desktop.pages.train import _OtherCpu

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        cpu = _OtherCpu()
        cpu.MIN_CORES = 0.0
        cpu.start(set())  # the hog is our child: exclude nothing so that it counts as another program
        time.sleep(1.0)
        said = cpu.describe(set(), min_gap_s=0)
        assert "python" in said and said.startswith("other programs use about"), said
        assert hog.pid in cpu._procs
        ours = _OtherCpu()
        ours.start({os.getpid()})  # the children of an excluded process are not "other programs"
        assert hog.pid not in ours._procs and os.getpid() not in ours._procs
    finally:
        hog.kill()
        hog.wait()


# -- a chat you can keep ------------------------------------------------------------------------------
@pytest.fixture()
def chat_page_factory(qtbot, project, tiny_model_dir):
    from desktop.pages.chat import ChatPage
    from desktop.session import Session
    from desktop.workers import stop_all_jobs

    made = []

    def make():
        s = Session()
        s.open_project(project.root, model_override=str(tiny_model_dir))
        page = ChatPage(s)
        qtbot.addWidget(page)
        page.resize(1300, 800)
        page.gen_editors["max_new_tokens"].setValue(6)
        made.append(page)
        return page

    yield make
    for p in made:
        p.shutdown()
    stop_all_jobs(timeout_ms=60_000)


def test_chat_is_saved_restored_cleared_and_exported(qtbot, chat_page_factory, project, tmp_path):
    from backend import transcript

    cp = chat_page_factory()
    # no run yet: the hint says who answers
    assert "The base model answers" in cp.empty_hint.text() and "tuned model answers" not in cp.empty_hint.text()
    assert cp.modes() == ["base"]
    assert cp.ask("How tall is the tower?")
    qtbot.waitUntil(lambda: not cp.is_busy(), timeout=120_000)
    (ex,) = cp.exchanges()
    answer = ex.answers["base"]
    assert answer.done and answer.seconds is not None
    # one time per answer: the card's; the status does not give a second one
    assert answer.timing.text().startswith(f"answered in {answer.seconds:.1f} s")
    assert "Answered in" not in cp.status.text()

    saved = transcript.load(project.transcript_path)
    assert len(saved) == 1 and saved[0].question == "How tall is the tower?"
    rec = saved[0].answers[0]
    assert rec["mode"] == "base" and rec["run"] is None and rec["answer"] == answer.answer_text()
    assert rec["seconds"] == pytest.approx(answer.seconds, abs=1e-3)

    # reopen: the chat is back, with its times
    cp2 = chat_page_factory()
    (ex2,) = cp2.exchanges()
    again = ex2.answers["base"]
    assert again.answer_text() == answer.answer_text() and again.timing.text() == answer.timing.text()
    assert cp2.empty_hint.isHidden()

    # export as Markdown
    out = cp2.export_transcript(tmp_path / "chat.md")
    md = out.read_text(encoding="utf-8")
    assert md.startswith("# Chat: proj") and "## How tall is the tower?" in md and "### Base model · no documents" in md

    # Clear asks first; No keeps everything, Yes moves the transcript aside
    asked = []
    cp2.confirm_clear = lambda text: asked.append(text) or False
    assert not cp2.clear_chat() and len(cp2.exchanges()) == 1 and project.transcript_path.exists()
    assert "Clear the 1 question(s) of this chat?" in asked[0]
    cp2.confirm_clear = lambda text: True
    assert cp2.clear_chat()
    assert cp2.exchanges() == [] and not project.transcript_path.exists()
    (old,) = project.chat_dir.glob("transcript-*.jsonl")
    assert transcript.load(old)[0].question == "How tall is the tower?"
    assert cp2.status.text() == f"Cleared; the old chat is in {old.name}."


def test_answer_markdown_is_rendered_and_never_markup():
    from desktop.pages.chat import answer_html

    h = answer_html("The tower is **500 m** tall, *about*.\n\n- one `a*b*`\n- two <img src=x>\n1. first")
    assert "<b>500 m</b>" in h and "<i>about</i>" in h and "<code" in h and "a*b*</code>" in h
    assert "<li>two &lt;img src=x&gt;</li>" in h and "<ol" in h and "<img" not in h
    plain = answer_html("snake_case_name, 2*3*4 and a lone ** stay as written")
    assert "<i>" not in plain and "<b>" not in plain and "snake_case_name" in plain


def test_short_curves_are_dots_and_the_key_is_outside_the_plot(qtbot, tmp_path):
    from desktop.plots import QtRunMetrics, RunMetrics

    m = RunMetrics()
    view = QtRunMetrics(m)
    qtbot.addWidget(view)
    view.resize(900, 400)
    m.add({"type": "train", "step": 1, "max_steps": 30, "loss": 2.5, "learning_rate": 1e-3, "grad_norm": 1.0,
           "tokens_per_s": 100.0, "memory_mb": 500.0})
    view.refresh()
    assert view.curve_points("loss") == 1
    assert view.curves["loss"].opts["symbol"] == "o"  # one point: a dot, not an invisible line
    assert view.plots["loss"].legend is None and "train" in view.plots["loss"].titleLabel.text
    for step in range(2, 60):
        m.add({"type": "train", "step": step, "max_steps": 60, "loss": 2.5 - step / 30})
    view.refresh()
    assert view.curves["loss"].opts["symbol"] is None  # a long curve is a line
    view.grab().save(str(tmp_path / "plots.png"))


def test_problems_how_to_fix_column_wraps_instead_of_cutting_off(qtbot):
    from PySide6.QtWidgets import QTreeWidgetItem

    from desktop.pages.data import DataPage
    from desktop.session import Session

    page = DataPage(Session())
    qtbot.addWidget(page)
    page.resize(900, 700)
    t = page.problems_tree
    hint = ("add the answer the model should give as the last message, with role 'assistant', or set the file "
            "to 'off' on this page")
    t.addTopLevelItem(QTreeWidgetItem(["support.jsonl:12", "the conversation ends with the user", hint]))
    t.addTopLevelItem(QTreeWidgetItem(["support.jsonl:13", "short", "short"]))
    page.tabs.setCurrentWidget(t)
    t.resize(860, 300)
    qtbot.waitUntil(lambda: t.header().sectionSize(2) > 100)
    t.doItemsLayout()
    long_row, short_row = (t.visualItemRect(t.topLevelItem(i)).height() for i in (0, 1))
    width = t.fontMetrics().horizontalAdvance(hint)
    assert width > t.header().sectionSize(2)  # it does not fit on one line here...
    assert long_row >= 2 * short_row           # ...so its row grows to show it all


def test_paused_at_step_agrees_with_the_step_shown(tiny_model_dir, chat_jsonl, tmp_path):
    # The log said "Paused at step 4" while the step card showed 3/30: the pause waited before step 4's
    # record went out (docs/architecture.md, "Training"). Logging every 3 steps, a pause asked for
    # mid-way still logs the step it pauses at first.
    import threading

    from backend import events as ev
    from backend.training import train

    cfg = RunConfig().with_overrides({
        "model.name_or_path": str(tiny_model_dir), "data.train_files": [str(chat_jsonl)],
        "output_dir": str(tmp_path / "run"), "data.max_length": 64, "data.validation_split": 0.0,
        "training.batch_size": 2, "training.gradient_accumulation": 1, "training.max_steps": 8,
        "training.save_steps": 100, "training.eval_steps": 0, "training.logging_steps": 3,
        "training.learning_rate": 1e-3, "training.warmup_ratio": 0.0, "method.lora_r": 4})
    events: list[dict] = []
    paused = threading.Event()

    def on_event(e):
        events.append(e)
        if e["type"] == ev.TRAIN and e["step"] == 3:
            paused.set()  # ask for a pause at step 4 (not a logging step)
        if e["type"] == ev.LOG and e["message"].startswith("Paused at step"):
            paused.clear()  # continue at once

    result = train(cfg, on_event=on_event, should_pause=lambda: paused.is_set())
    assert result.status == "completed"
    (msg,) = [e["message"] for e in events if e["type"] == ev.LOG and e["message"].startswith("Paused at step")]
    step = int(msg.rsplit(" ", 1)[-1])
    shown = [e["step"] for e in events[:events.index(next(e for e in events if e.get("message") == msg))]
             if e["type"] == ev.TRAIN]
    assert shown[-1] == step == 4, (shown, msg)


def test_gui_started_work_prints_no_progress_bars_or_known_library_warnings(tmp_path):
    # The app calls backend.runtime.quiet_library_output() first: tqdm bars and peft's call into a
    # deprecated transformers property no longer spill into the terminal, in the window's process and
    # in the training child it starts; other warnings still show.
    import subprocess
    import sys

    code = (
        "import subprocess, sys, warnings\n"
        "from backend.runtime import quiet_library_output\n"
        "quiet_library_output()\n"
        "import tqdm\n"
        "for _ in tqdm.tqdm(range(3), desc='bar'): pass\n"
        "warnings.warn('`is_gradient_checkpointing` is deprecated and will be removed in v6.', FutureWarning)\n"
        "subprocess.run([sys.executable, '-c', \"import warnings; warnings.warn("
        "'`is_gradient_checkpointing` is deprecated and will be removed in v6.', FutureWarning); "
        "warnings.warn('something else', FutureWarning)\"])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "TQDM_DISABLE")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert r.returncode == 0, r.stderr
    assert "bar" not in r.stderr and "is_gradient_checkpointing" not in r.stderr, r.stderr
    assert "something else" in r.stderr


def test_a_source_named_like_markup_is_shown_as_plain_text(qtbot, chat_page_factory):
    # issue 20: a file name is the user's text, never Qt rich text
    from PySide6.QtCore import Qt

    from backend.rag.source import Source

    cp = chat_page_factory()
    src = Source(file="<b>notes</b>.pdf", path="documents/<b>notes</b>.pdf", page=3, chunk=0, text="E4 means x.",
                 score=0.5)
    cp.show_source(src)
    assert cp.source_title.textFormat() == Qt.TextFormat.PlainText
    assert cp.source_title.text() == "<b>notes</b>.pdf, page 3 — passage 1"
    txt = Source(file="a.md", path="a.md", page=1, chunk=1, text="x", score=0.1)
    assert txt.shown_page is None and txt.label() == "a.md #1" and src.label() == "<b>notes</b>.pdf p.3 #0"


def test_an_answer_card_shows_the_withheld_words(qtbot):
    """Grounding replaced the model's answer: the card says so, with the model's own words."""
    from backend.rag.chain import ABSTAIN_ANSWER, Answer
    from desktop.pages.chat import QtAnswer

    card = QtAnswer("What does E4 mean?", "tuned+rag")
    qtbot.addWidget(card)
    card.finish(Answer("What does E4 mean?", ABSTAIN_ANSWER, "tuned+rag", abstained=True,
                       withheld="E4 means the Y1 wire is off.", unsupported=["Y1"]))
    assert card.answer_text() == ABSTAIN_ANSWER
    assert not card.withheld_label.isHidden()
    assert "E4 means the Y1 wire is off." in card.withheld_label.text() and "Y1." in card.withheld_label.text()
    card.restore({"answer": "E4 means the Wi-Fi password was rejected.", "mode": "tuned+rag"})
    assert card.withheld_label.isHidden()


def test_the_chat_settings_switch_grounding(chat_page_factory):
    """Every answer-quality technique is a setting on the Chat page, grounding among them."""
    page = chat_page_factory()
    combo = page.ret_editors["grounding"]
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "abstain", "quote", "off"]
    assert page.retrieval_settings().grounding == "quote"  # the default: bench/quality.md
    combo.setCurrentText("abstain")
    assert page.retrieval_settings().grounding == "abstain"
    assert {"k", "hybrid", "evidence", "section_weight", "copy_bias", "abstain", "abstain_threshold"} <= set(page.ret_editors)
    assert page.retrieval_settings().section_weight == 0.6


def test_the_chat_settings_are_one_object_saved_with_the_project(chat_page_factory, project):
    """The panel is the one form builder over AnswerSettings; an edit is saved in project.json and reopened."""
    import json

    from backend.rag.settings import AnswerSettings
    from desktop.form import QtSettingsForm

    page = chat_page_factory()
    assert isinstance(page.settings_form, QtSettingsForm) and page.settings_form.settings_class is AnswerSettings
    assert "retrieval.section_weight" in page.settings_form.editors
    assert "Config key: retrieval.section_weight" in page.settings_form.editors["retrieval.section_weight"].toolTip()
    page.ret_editors["grounding"].setCurrentText("quote")
    page.ret_editors["k"].setValue(3)
    page.settings_form.flush()
    saved = json.loads((project.root / "project.json").read_text())["settings"]["answer"]
    assert saved["retrieval"]["grounding"] == "quote" and saved["retrieval"]["k"] == 3
    assert saved["generation"]["max_new_tokens"] == 6
    assert isinstance(page.answer_settings(), AnswerSettings) and page.answer_settings().retrieval.k == 3
    again = chat_page_factory()  # the project opened again: the panel shows what was saved
    assert again.retrieval_settings().grounding == "quote" and again.ret_editors["k"].value() == 3
