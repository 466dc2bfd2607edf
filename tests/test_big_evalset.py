"""A 200,000-question evalset: how many questions and roughly how long are said before anything starts (issue 27)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend import runs
from backend.errors import DataError, TuneError
from backend.evalsets import MAX_ROW_BYTES, count_questions, read_evalset
from backend.workspace import Project

BIG = 200_000


def _big_evalset(path: Path, n: int = BIG) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"q{i}", "question": f"What is item {i}?", "answer": f"Item {i}."}) + "\n")
    return path


def _project_with_run(tmp_path: Path) -> tuple[Project, Path]:
    p = Project.create(tmp_path / "proj")
    run = p.runs_dir / "20261207-120000"
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps({"name": "r", "method": {"method": "lora"},
                                                 "model": {"name_or_path": str(tmp_path / "no-such-model")}}))
    runs.status_path(run).write_text(json.dumps({"status": "completed"}))
    (runs.adapter_dir(run)).mkdir()
    (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
    return p, run


def test_count_questions_is_quick_and_right(tmp_path):
    path = _big_evalset(tmp_path / "big.jsonl")
    assert count_questions(path) == BIG
    csv = tmp_path / "q.csv"
    csv.write_text("question,answer\na,b\nc,d")  # no newline at the end
    assert count_questions(csv) == 2


def test_tune_eval_says_how_many_and_how_long_before_loading_a_model(tmp_path, capsys, monkeypatch):
    from backend.cli import main

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    p, run = _project_with_run(tmp_path)
    big = _big_evalset(p.evalsets_dir / "big.jsonl")
    rc = main(["eval", str(p.root), str(big), "--run", str(run), "--modes", "base"])
    err = capsys.readouterr().err
    assert rc == 2  # the model cannot load: the plan was said before it was tried
    plan, _, rest = err.partition("\n")
    assert plan.startswith("Evaluating 200,000 questions × 1 mode = 200,000 answers: roughly ") and "days" in plan, err
    assert "stop at any time" in plan and "no-such-model" in rest


def test_an_overlong_row_is_refused_by_line_and_the_rest_loads(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "x" * (MAX_ROW_BYTES + 10), "answer": "a"}) + "\n"
                    + json.dumps({"question": "fine?", "answer": "yes"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.jsonl:1: longer than"):
        read_evalset(path)
    skipped: list = []
    assert [r.question for r in read_evalset(path, skipped)] == ["fine?"]
    assert skipped[0].line == 1


def test_a_huge_file_is_refused_unread(tmp_path, monkeypatch):
    from backend import evalsets

    monkeypatch.setattr(evalsets, "MAX_FILE_BYTES", 1 << 20)
    path = _big_evalset(tmp_path / "big.jsonl", 20_000)
    with pytest.raises(TuneError, match=r"big.jsonl: the questions file is 1 MB; at most 1 MB is read"):
        read_evalset(path)


def test_the_evaluate_page_asks_before_a_long_evaluation(qtbot, qapp, tmp_path, monkeypatch):
    from desktop.pages.evaluate import EvaluatePage
    from desktop.session import Session

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    p, run = _project_with_run(tmp_path)
    _big_evalset(p.evalsets_dir / "big.jsonl")
    s = Session()
    s.open_project(p.root)
    page = EvaluatePage(s)
    qtbot.addWidget(page)
    page.select(run, "big")
    asked: list[str] = []
    page.confirm_long = lambda text: asked.append(text) or False
    assert page.start_evaluation() is False and not page.is_busy()
    assert asked and asked[0].startswith("Evaluating 200,000 questions × 4 modes = 800,000 answers: roughly ")
    assert "Not started" in page.status.text()
