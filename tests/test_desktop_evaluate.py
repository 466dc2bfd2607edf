"""The Evaluate page on a tiny random-weight model (pytest-qt, offscreen).

Real parts throughout: a copy of the sample project, its documents indexed with
the bundled MiniLM embedder, a run folder with a real PEFT LoRA adapter on the
session's tiny Llama, the backend's evalset readers and ``evaluate``; only the
model's weights are random (see docs/architecture.md, "Evaluation").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("qapp")

JOB_TIMEOUT = 240_000
SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample_project"


def _make_run(project_root: Path, name: str, tiny_model_dir: Path, seed: int) -> Path:
    """A finished run folder like training writes: config, status, metrics and a LoRA adapter with random weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.config import RunConfig
    from backend.runs import write_status

    run = project_root / "runs" / name
    run.mkdir(parents=True)
    cfg = RunConfig.from_dict({"name": name, "model": {"name_or_path": str(tiny_model_dir)},
                               "data": {"train_files": [str(project_root / "datasets" / "brisa_support.jsonl")],
                                        "validation_split": 0.1, "max_length": 128}})
    (run / "config.json").write_text(cfg.to_json())
    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # init_lora_weights=False: random A and B, so tuned and base really answer differently
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=16, init_lora_weights=False,
                                                 target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(run / "adapter")
    (run / "metrics.jsonl").write_text(json.dumps({"type": "eval", "time": 0, "step": 4, "eval_loss": 9.5}) + "\n")
    write_status(run, "completed")
    return run


@pytest.fixture()
def project(tmp_path, tiny_model_dir):
    """A copy of the sample project with two finished tiny runs."""
    root = tmp_path / "brisa"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("runs", "index"))
    runs = [_make_run(root, "run-a", tiny_model_dir, 0), _make_run(root, "run-b", tiny_model_dir, 1)]
    return root, runs


@pytest.fixture()
def page(qtbot, project):
    from desktop.pages.evaluate import EvaluatePage
    from desktop.session import Session
    from desktop.workers import stop_all_jobs

    session = Session()
    session.open_project(project[0])
    p = EvaluatePage(session)
    qtbot.addWidget(p)
    # an explicit minimum size: the layout then never resizes the top-level window's limits
    # (the offscreen platform warns on each such change)
    p.setMinimumSize(1300, 820)
    p.show()
    p.on_enter()
    yield p
    stop_all_jobs(timeout_ms=60_000)


def _wait(qtbot, page):
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=JOB_TIMEOUT)
    assert not page.banner.isVisible() or page.banner.kind != "error", page.banner.text()


def test_bad_questions_file_names_the_line(qtbot, page, tmp_path):
    bad = tmp_path / "mine.jsonl"
    bad.write_text('{"question": "What does E4 mean?", "answer": "Wi-Fi password rejected"}\n'
                   '{"question": "no reference here"}\n', encoding="utf-8")
    assert page.add_file(bad)
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=JOB_TIMEOUT)
    assert page.banner.isVisible() and page.banner.kind == "error"
    assert "mine.jsonl:2" in page.banner.text()
    assert page.review_table.rowCount() == 0


def test_build_evaluate_filter_correct_compare_export(qtbot, page, project, tmp_path):
    root, (run_a, run_b) = project
    assert page.selected_run() in (run_a, run_b)
    page.select(run_a)
    assert page.selected_run() == run_a

    # -- a test set from a file (CSV) and from the run's validation rows
    qfile = tmp_path / "my questions.csv"
    qfile.write_text("question,answer,keywords,source\n"
                     "What does error E4 mean?,The Wi-Fi password was rejected.,Wi-Fi;password,troubleshooting.md\n"
                     "How long is the warranty?,3 years,,warranty-and-returns.md\n", encoding="utf-8")
    assert page.add_file(qfile)
    _wait(qtbot, page)
    assert page.review_table.rowCount() == 2
    assert page.name_edit.text() == "my-questions"
    page.validation_limit.setValue(2)
    assert page.start_from_validation()
    _wait(qtbot, page)
    t = page.review_table
    assert t.rowCount() == 4
    assert [t.item(r, 4).text() for r in range(4)] == ["file"] * 2 + ["validation"] * 2
    assert "brisa_support.jsonl:" in t.item(2, 3).text()
    # review: reject one row, edit another (editing accepts it)
    page.set_review_state([3], "rejected")
    t.item(1, 2).setText("Three years.")
    assert page.draft_rows[1].row.answer == "Three years." and page.draft_rows[1].edited
    assert "3 accepted, 1 rejected" in page.review_count.text()
    # user text is shown literally in the passage panel
    t.selectRow(2)
    assert page.passage_view.toPlainText().startswith("A held-out row of the run's validation split")
    assert page.row_question.text() == page.draft_rows[2].row.question

    assert page.save_testset("bad name!") is None and "not a usable evalset name" in page.banner.text()
    path = page.save_testset("mini")
    assert path == root / "evalsets" / "mini.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(rows) == 3
    assert rows[1]["answer"] == "Three years." and rows[1]["lineage"]["edited"] is True
    assert rows[2]["kind"] == "validation" and rows[2]["lineage"]["from"] == "validation"
    assert page.selected_evalset() == "mini"
    assert "not been evaluated" in page.empty_label.text()

    # -- evaluate run-a in the four modes, with the Chat page's settings (saved in project.json)
    from backend.rag.settings import AnswerSettings

    page.session.project.set_answer_settings(AnswerSettings().with_overrides({"retrieval.k": 2,
                                                                              "retrieval.grounding": "off"}))
    page.max_tokens.setValue(8)
    with qtbot.waitSignal(page.evaluationFinished, timeout=JOB_TIMEOUT) as blocker:
        assert page.start_evaluation()
        assert page.is_busy() and page.stop_button.isEnabled()
    assert blocker.args == ["completed"], page.banner.text()
    _wait(qtbot, page)
    rep = page.report
    assert rep is not None and (run_a / "eval" / "mini.json").exists()
    used = json.loads((run_a / "eval" / "mini.json").read_text())["settings"]
    assert used["retrieval"]["k"] == 2 and used["retrieval"]["grounding"] == "off"
    assert used["generation"]["max_new_tokens"] == 8 and used["generation"]["temperature"] == 0.0
    assert all(len(q["retrieved"]) <= 2 for q in rep["questions"])
    head = page.summary_label.text()  # the scorecard names the settings it used
    assert "retrieval.k = 2" in head and "retrieval.grounding = off" in head, head
    assert page.tabs.currentIndex() == 0 and page.score_content.isVisible()
    for mode in ("tuned+rag", "tuned", "base+rag", "base"):
        cell = page.scorecard.cell_text("accuracy", mode)
        assert "%" in cell and "(" in cell and "–" in cell, cell    # "50 % (0–100)"
    assert page.scorecard.cell_text("retrieval_hit_rate", "tuned") == "–"     # no retrieval without documents
    assert "(" in page.scorecard.cell_text("retrieval_hit_rate", "tuned+rag")
    assert page.bars.bar_count() >= 12
    assert "Validation loss" in page.loss_note.text()
    assert "not run" in page.forgetting_note.text()

    # -- per-question table and its filters
    qt = page.question_table
    assert qt.rowCount() == 3
    assert {qt.state(r, m) for r in range(3) for m in ("base", "tuned")} <= {"right", "wrong", "abstained"}
    from desktop.eval_adapter import filter_questions
    for key, _label in (("still_wrong", ""), ("improved", ""), ("regressed", ""), ("rag_fixed", ""), ("all", "")):
        page.set_filter(key)
        assert qt.visible_rows() == filter_questions(rep["questions"], key), key
        assert page.filter_buttons[key].text().endswith(f"({len(qt.visible_rows())})")
    assert qt.visible_rows() == [0, 1, 2]
    # a question whose correctness we know: recompute "still wrong" from the cells themselves
    page.set_filter("still_wrong")
    for r in qt.visible_rows():
        assert all(qt.state(r, m) != "right" for m in ("tuned+rag", "tuned", "base+rag", "base"))

    # -- four answers side by side, sources, "Correct it"
    page.set_filter("all")
    qt.selectRow(0)
    assert set(page.cards) == {"tuned+rag", "tuned", "base+rag", "base"}
    assert page.detail_question.text() == "What does error E4 mean?"
    assert page.detail_question.textFormat().name == "PlainText"
    card = page.cards["tuned+rag"]
    assert card.sources  # the passages retrieved for the question
    card.sourceClicked.emit(card.sources[0])
    assert page.source_view.toPlainText().strip()
    # the sentence the answer rests on is highlighted, as on the Chat page
    assert card.evidence
    best = card.sources[card.evidence[0]["source_index"]]
    card.sourceClicked.emit(best)
    assert "#ffe27a" in page.source_view.toHtml().lower()
    wrong = next((c for c in page.cards.values() if c.feedback_button.isEnabled()), None)
    if wrong is not None:
        wrong.feedback_button.click()
        wrong.editor.setPlainText("E4 means the Wi-Fi password was rejected.")
        wrong.save_button.click()
        fb = root / "datasets" / "feedback.jsonl"
        last = json.loads(fb.read_text().splitlines()[-1])
        assert last["messages"][0]["content"] == "What does error E4 mean?"
        assert last["messages"][1]["content"] == "E4 means the Wi-Fi password was rejected."

    # -- the saved result reopens without evaluating again
    page.show_report(None)
    assert page.report is None
    page.select(run_b, "mini")
    assert page.report is None and "not been evaluated" in page.empty_label.text()
    page.select(run_a, "mini")
    assert page.report is not None and page.report_source == "saved"
    assert page.question_table.rowCount() == 3

    # -- compare: run-b has no result yet, then it has
    page.check_runs([run_a, run_b])
    assert page.compare()
    _wait(qtbot, page)
    ct = page.compare_table
    assert ct.columnCount() == 2 and ct.horizontalHeaderItem(1).text() == "run-b"
    assert "%" in ct.item(0, 0).text() and ct.item(0, 1).text() == "not evaluated"
    assert "run-b" in page.compare_note.text()
    page.select(run_b, "mini")
    with qtbot.waitSignal(page.evaluationFinished, timeout=JOB_TIMEOUT):
        page.start_evaluation()
    _wait(qtbot, page)
    assert page.compare()
    _wait(qtbot, page)
    assert "%" in page.compare_table.item(0, 1).text()

    # -- the report: one offline HTML file
    out = tmp_path / "report.html"
    assert page.export_report(out)
    _wait(qtbot, page)
    text = out.read_text(encoding="utf-8")
    assert "What does error E4 mean?" in text
    assert "http://" not in text and "https://" not in text


def _first_sentence_teacher(prompts: list[str]) -> list[str]:
    """A rule-based teacher for the draft path: asks about each passage's first sentence, answers with it."""
    import re

    out = []
    for p in prompts:
        text = p.split('"""')[1].strip() if p.count('"""') >= 2 else p
        words = re.findall(r"[A-Za-z0-9°.-]+", text)
        sentence = re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0]
        out.append(f"Question: What does the passage that starts with '{' '.join(words[:6])}' say first?\n"
                   f"Answer: {sentence}")
    return out


def test_drafted_questions_are_reviewed_and_overlap_is_flagged(qtbot, page, project, tiny_model_dir):
    from backend.evalsets import draft_from_documents

    root, _runs = project
    # the teacher's drafts wait for review, each beside its source passage
    rows = draft_from_documents(page.session.project, n=3, generate_fn=_first_sentence_teacher)
    assert page.add_rows(rows, "documents") == 3
    t = page.review_table
    assert [t.item(r, 0).text() for r in range(3)] == ["? to review"] * 3
    assert "3 to review" in page.review_count.text()
    t.selectRow(0)
    assert page.passage_view.toPlainText() == rows[0].lineage["passage"]
    assert page.passage_title.text().startswith("Source: ") and "chunk" in page.passage_title.text()
    assert rows[0].lineage["document"].endswith(t.item(0, 3).text().split(",")[0])
    # user text is never markup: a question with tags shows literally
    page.draft_rows[1].row.question = "<b>Is this bold?</b>"
    t.selectRow(1)
    assert page.row_question.text() == "<b>Is this bold?</b>"
    assert page.row_question.textFormat().name == "PlainText"
    page.set_review_state([0], "accepted")
    page.set_review_state([1], "rejected")
    assert page.save_testset("drafted") is not None
    saved = [json.loads(x) for x in (root / "evalsets" / "drafted.jsonl").read_text().splitlines()]
    assert len(saved) == 1  # row 2 was never reviewed, row 1 rejected
    assert saved[0]["status"] == "accepted" and saved[0]["kind"] == "distilled"
    assert {"document", "chunk", "teacher", "passage"} <= set(saved[0]["lineage"])

    # a test question that is also a training row is said so, in words
    page.clear_review()
    q = root / "q.jsonl"
    q.write_text(json.dumps({"question": "How much does the Brisa T3 cost?", "answer": "USD 179"}) + "\n",
                 encoding="utf-8")
    assert page.add_file(q)
    _wait(qtbot, page)
    assert t.item(0, 5).text() == "also a training row (brisa_support.jsonl:1)"
    assert not page.overlap_note.isHidden() and "1 question here is also a training row" in page.overlap_note.text()

    # drafting in the app runs as a job; a teacher that writes no usable pair is said so
    page.teacher_edit.setText(str(tiny_model_dir))
    page.draft_count.setValue(1)
    assert page.start_draft()
    qtbot.waitUntil(lambda: not page.is_busy(), timeout=JOB_TIMEOUT)
    assert page.banner.kind == "error" and "no usable question/answer pairs" in page.banner.text()


def test_figures_filters_and_words():
    from desktop.eval_adapter import (cell_state, filter_counts, filter_questions, fmt_interval, forgetting_text,
                                      loss_text, overlap_notes, verdict_text)

    assert fmt_interval({"value": 0.62, "low": 0.45, "high": 0.78, "n": 20}, "rate") == "62 % (45–78)"
    assert fmt_interval({"value": 0.512, "low": 0.43, "high": 0.6}, "score") == "0.51 (0.43–0.60)"
    assert fmt_interval({"value": None, "low": None, "high": None, "n": 0}, "rate") == "–"
    assert fmt_interval(None, "score") == "–"
    qs = [{"tags": ["improved", "rag_fixed"], "verdict": "improved"}, {"tags": ["regressed"], "verdict": "regressed"},
          {"tags": ["still_wrong"], "verdict": "still_wrong"}, {"tags": ["right"], "verdict": "right"}]
    assert filter_questions(qs, "improved") == [0] and filter_questions(qs, "rag_fixed") == [0]
    assert filter_questions(qs, "regressed") == [1] and filter_questions(qs, "still_wrong") == [2]
    assert filter_questions(qs, "all") == [0, 1, 2, 3]
    assert filter_counts(qs) == {"all": 4, "improved": 1, "regressed": 1, "rag_fixed": 1, "still_wrong": 1}
    assert verdict_text(qs).startswith("Of 4 questions: tuning fixed 1 and broke 1; the documents fixed 1;")
    assert cell_state({"correct": True, "abstained": True}) == "right"  # abstaining on an unanswerable one
    assert cell_state({"correct": False, "abstained": True}) == "abstained"
    assert cell_state({"correct": False}) == "wrong" and cell_state(None) == "missing"
    assert loss_text({"base": {"eval_loss": 2.5, "perplexity": 12.18}, "tuned": {"eval_loss": 1.9,
                                                                                "perplexity": 6.69}}) == (
        "Validation loss 2.500 → 1.900 (perplexity 12.18 → 6.69), base → tuned: lower is better, tuning lowered it.")
    assert loss_text({"note": "no validation data"}) == "Validation loss: no validation data."
    kind, text = forgetting_text({"flag": True, "message": "tuning made general answers worse: 41 → 29 of 50"})
    assert kind == "warning" and text.endswith("41 → 29 of 50")
    assert forgetting_text(None)[0] == "info"

    class Row:
        def __init__(self, id, question):
            self.id, self.question = id, question
    notes = overlap_notes([Row("a", "Q one?"), Row("b", "Q two?")],
                          [{"id": "b", "question": "Q two?", "file": "/x/train.jsonl", "line": 7, "match": "exact"},
                           {"id": "zz", "question": "q  ONE?", "file": "t.csv", "line": 2, "match": "near"}])
    assert notes == {1: "also a training row (train.jsonl:7)", 0: "also nearly a training row (t.csv:2)"}
