"""The check after training on the pages (pytest-qt, offscreen; docs/architecture.md, "Training").

The Train page shows the verdict when a run ends and when a finished run is shown again;
the Chat page answers with the base model + documents by default when the check found
tuning made the answers worse; a quoted answer is marked on its card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend import events as ev
from backend import runs
from backend.config import RunConfig

pytestmark = pytest.mark.usefixtures("qapp")

WORSE = dict(status="done", verdict="worse", n=6, tuned_right=2, base_right=5, tuned_own_right=2, base_own_right=3,
             base_quoted=2, notes="2 of the untuned model's answers were quoted from your documents, not its own "
                                  "words (its own words: 3 of 6 right).", source="6 questions of the test set “coop”", seconds=48.0,
             message="Tuning made the answers worse: 2 of 6 right with your documents, against 5 of 6 for the "
                     "untuned model.",
             cause="The training loss fell to 0.004 on 26 rows: the model learned its training answers by heart "
                   "and stopped reading the passages.",
             advice="Tick “Train the model to answer from your documents” (Configure page) and train fewer "
                    "epochs. Until then the Chat page answers with the untuned model and your documents.",
             questions=[{"question": "What colour is the visitor vest?", "expected": "yellow",
                         "tuned": {"answer": "Visitors must wear a blue vest.", "correct": False},
                         "base": {"answer": "Visitors must wear a yellow vest in the packing hall.", "correct": True,
                                  "quoted": True}}])
HELPED = dict(status="done", verdict="helped", n=6, tuned_right=5, base_right=3, source="6 held-out validation "
              "questions", seconds=51.0, message="Tuning helped: 5 of 6 right with your documents, against 3 of 6 "
              "for the untuned model.")


def _completed_run(root: Path, rid: str, check: dict | None) -> Path:
    run = runs.runs_dir(root) / rid
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(RunConfig(name=f"run {rid}").to_dict()))
    runs.status_path(run).write_text(json.dumps({"status": "completed", "created": 1.0}))
    runs.metrics_path(run).write_text(json.dumps({"type": "train", "time": 1.0, "step": 10, "max_steps": 10,
                                                  "loss": 0.004}) + "\n")
    runs.adapter_dir(run).mkdir()
    (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
    if check is not None:
        runs.write_check(run, ev.event(ev.ANSWER_CHECK, **check))
    return run


@pytest.fixture()
def project(tmp_path, monkeypatch):
    from backend.workspace import Project

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    proj = Project.create(tmp_path / "proj", "proj")
    (proj.documents_dir / "vests.md").write_text("Visitors must wear a yellow vest.", encoding="utf-8")
    return proj


@pytest.fixture()
def train_page(qtbot, project):
    from desktop.pages.train import TrainPage
    from desktop.session import Session

    s = Session()
    s.open_project(project.root)
    page = TrainPage(s)
    qtbot.addWidget(page)
    page.resize(1360, 860)
    return page


def test_train_page_shows_the_verdict_when_the_run_ends(qtbot, train_page, project, tmp_path):
    tp = train_page
    assert tp.check_banner.isHidden()
    tp._on_job_event(ev.progress("check", 1, 12, "Checking the answers: question 1 of 6 (tuned + documents)…"))
    assert tp._checking and "question 1 of 6" in tp.status_label.text()
    tp._on_job_event(ev.event(ev.ANSWER_CHECK, **HELPED))
    assert not tp.check_banner.isHidden() and tp.check_banner.kind == "success"
    assert "Tuning helped: 5 of 6 right with your documents, against 3 of 6 for the untuned model." \
        in tp.check_banner.text()
    assert "6 held-out validation questions" in tp.check_banner.text()
    # a worse verdict: the cause and what to change, in words; each question in the tooltip
    tp._on_job_event(ev.event(ev.ANSWER_CHECK, **WORSE))
    text = tp.check_banner.text()
    assert tp.check_banner.kind == "warning" and "Tuning made the answers worse" in text
    assert "Likely cause: The training loss fell to 0.004 on 26 rows" in text
    assert "2 of the untuned model's answers were quoted from your documents" in text
    assert "What to change: Tick “Train the model to answer from your documents”" in text
    assert "quoted from your documents" in tp.check_banner.toolTip()
    out = Path(os.environ.get("TUNE_SCREENSHOT_DIR") or tmp_path)
    assert tp.grab().save(str(out / "train-check-worse.png"))
    # the history shows a finished run's check again; a run without one shows none
    run = _completed_run(project.root, "20261207-2230-run-a", HELPED)
    bare = _completed_run(project.root, "20261207-2200-run-b", None)
    tp.refresh_history()
    tp.show_run(run)
    assert "Tuning helped" in tp.check_banner.text() and not tp.check_banner.isHidden()
    assert tp.grab().save(str(out / "train-check-helped.png"))
    tp.show_run(bare)
    assert tp.check_banner.isHidden()


def test_a_skipped_check_says_why(qtbot, train_page):
    train_page.show_check(ev.event(ev.ANSWER_CHECK, status="skipped", reason="the project has no documents"))
    assert "Nothing was asked: the project has no documents." in train_page.check_banner.text()


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
        made.append(page)
        return page

    yield make
    for p in made:
        p.shutdown()
    stop_all_jobs(timeout_ms=60_000)


def test_chat_defaults_to_base_with_documents_when_tuning_made_answers_worse(qtbot, chat_page_factory, project):
    good = _completed_run(project.root, "20261207-2100-good", HELPED)
    bad = _completed_run(project.root, "20261207-2200-bad", WORSE)
    page = chat_page_factory()
    page.session.select_run(bad)
    page._refresh_runs()
    assert page.selected_run() == bad
    assert not page.tuned_check.isChecked() and page.rag_check.isChecked()
    assert page.modes() == ["base+rag"]
    assert not page.check_note.isHidden() and "made the answers worse (2 of 6" in page.check_note.text()
    # the user can switch back, and the choice stays theirs
    page.tuned_check.click()
    assert page.modes() == ["tuned+rag"]
    page._refresh_runs()
    assert page.modes() == ["tuned+rag"]
    # a run whose check found tuning helped answers tuned
    page.run_combo.setCurrentIndex(page.run_combo.findData(str(good)))
    assert page.modes() == ["tuned+rag"] and page.check_note.isHidden()
    page.run_combo.setCurrentIndex(page.run_combo.findData(str(bad)))
    assert page.modes() == ["base+rag"]
    page.run_combo.setCurrentIndex(page.run_combo.findData(str(good)))
    assert page.modes() == ["tuned+rag"]  # the check chose base for the other run, not the user


def test_an_answer_card_marks_a_quoted_answer(qtbot):
    from backend.rag.chain import Answer
    from desktop.pages.chat import QtAnswer

    card = QtAnswer("How much can a ladder hold?", "base+rag")
    qtbot.addWidget(card)
    card.finish(Answer("How much can a ladder hold?", "Picking ladders hold 150 kg.", "base+rag", quoted=True,
                       withheld="A ladder holds 380 kg.", unsupported=["380"]))
    assert not card.quoted_label.isHidden()
    assert card.quoted_label.text() == "Quoted from your documents — not the model's words"
    card.restore({"answer": "Picking ladders hold 150 kg.", "mode": "base+rag", "quoted": False})
    assert card.quoted_label.isHidden()
    card.restore({"answer": "Picking ladders hold 150 kg.", "mode": "base+rag", "quoted": True})
    assert not card.quoted_label.isHidden()
