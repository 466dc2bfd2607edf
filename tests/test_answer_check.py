"""The check after training and the honest scorecard (docs/architecture.md, "Training", "RAG", "Evaluation").

The verdict is a plain function of graded answers, tested with fixed answers; the
end-to-end test trains the session's tiny random Llama in a real project (documents,
a real Chroma index embedded by a tiny random BERT, an evalset) and checks that the
run emits the ``answer_check`` event and writes it.  Quoted answers (grounding showed
an evidence sentence instead of the model's words) are marked in the transcript
export, the eval results and the HTML report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_tiny_embedder

from backend import events as ev
from backend.evalsets import EvalRow

DOCS = {
    "vests.md": "# Visitors\n\nVisitors must wear a yellow vest in the packing hall. The dock accepts bins of "
                "at most 400 kg.",
    "ladders.txt": "Picking ladders hold 150 kg. Certificates must be renewed every 3 years.",
}
QUESTIONS = [
    {"id": "a", "question": "What colour is the visitor vest?", "keywords": ["yellow"], "source": "vests.md"},
    {"id": "b", "question": "How much can a picking ladder hold?", "keywords": ["150"], "source": "ladders.txt"},
    {"id": "c", "question": "Who founded the cooperative?", "answerable": False},
]


def _graded(correct: bool, *, own: bool | None = None, quoted: bool = False, abstained: bool = False,
            unsupported: tuple = ()) -> dict:
    return {"answer": "x", "correct": correct, "own_answer": "x", "own_correct": correct if own is None else own,
            "quoted": quoted, "abstained": abstained, "unsupported": list(unsupported)}


def _item(tuned: dict, base: dict, answerable: bool = True) -> dict:
    return {"answerable": answerable, "tuned": tuned, "base": base}


# ---------------------------------------------------------------------------
# the verdict, from fixed answers


def test_verdict_says_tuning_helped_in_numbers():
    from backend.rag.check import decide

    items = [_item(_graded(True), _graded(False))] * 3 + [_item(_graded(True), _graded(True))] * 2 \
        + [_item(_graded(False), _graded(True))]
    d = decide(items, final_loss=0.8, train_rows=100, raft=True)
    assert d["verdict"] == "helped" and d["n"] == 6 and d["tuned_right"] == 5 and d["base_right"] == 3
    assert d["message"] == "Tuning helped: 5 of 6 right with your documents, against 3 of 6 for the untuned model."
    assert d["cause"] == "" and d["advice"] == ""
    ev.make(ev.ANSWER_CHECK, status="done", **d)  # the verdict is an answer_check event's fields


def test_worse_verdict_names_memorising_and_what_to_change():
    from backend.rag.check import decide

    items = [_item(_graded(False), _graded(True))] * 3 + [_item(_graded(True), _graded(True))]
    d = decide(items, final_loss=0.004, train_rows=26, raft=False)
    assert d["verdict"] == "worse"
    assert d["message"].startswith("Tuning made the answers worse: 1 of 4 right with your documents, against 4 of 4")
    assert "0.004 on 26 rows" in d["cause"] and "by heart" in d["cause"]
    assert "Train the model to answer from your documents" in d["advice"] and "fewer epochs" in d["advice"]
    assert "Chat page answers with the untuned model" in d["advice"]
    # RAFT already on: fewer epochs, not the option it already has
    d = decide(items, final_loss=0.004, train_rows=26, raft=True)
    assert "Train the model to answer" not in d["advice"] and "fewer epochs" in d["advice"]


def test_worse_verdict_names_answers_that_ignore_the_passages():
    from backend.rag.check import decide

    items = [_item(_graded(False, unsupported=("380",)), _graded(True)),
             _item(_graded(False, unsupported=("5",)), _graded(True)), _item(_graded(True), _graded(False))]
    d = decide(items, final_loss=0.9, train_rows=60, raft=True)
    assert d["verdict"] == "worse" and "2 of the tuned model's 3 answers" in d["cause"]
    assert "passages don't contain" in d["cause"]
    assert "One question apart" in d["notes"]  # 1 of 3 against 2 of 3 may be chance


def test_worse_verdict_after_a_short_run_says_train_longer():
    from backend.rag.check import decide

    items = [_item(_graded(False), _graded(True)), _item(_graded(False), _graded(True)), _item(_graded(True), _graded(True))]
    d = decide(items, final_loss=1.37, train_rows=130, raft=True)
    assert d["verdict"] == "worse" and "still 1.37" in d["cause"] and d["advice"].startswith("Train longer")
    assert "fewer epochs" not in d["advice"]


def test_same_verdict_and_quoted_answers_counted_apart():
    from backend.rag.check import decide

    items = [_item(_graded(True), _graded(True, own=False, quoted=True)), _item(_graded(False), _graded(False))]
    d = decide(items)
    assert d["verdict"] == "same" and "no difference" in d["message"]
    assert d["base_quoted"] == 1 and d["base_own_right"] == 0 and d["base_right"] == 1
    assert "1 of the untuned model's answers was quoted from your documents" in d["notes"]
    assert "its own words: 0 of 2 right" in d["notes"]


def test_grade_uses_the_evaluate_grader_on_shown_and_own_words():
    from backend.rag.chain import Answer
    from backend.rag.check import grade

    row = EvalRow("q", "How much can a ladder hold?", "", ["150"])
    a = Answer(row.question, "Picking ladders hold 150 kg.", "base+rag", quoted=True,
               withheld="Ladders hold 380 kg.", unsupported=["380"])
    g = grade(a, row)
    assert g["correct"] and not g["own_correct"] and g["quoted"] and g["own_answer"] == "Ladders hold 380 kg."


def test_reference_keywords_and_rows_for_the_grader():
    from backend.rag.check import graded_row, reference_keywords, spread

    assert reference_keywords("How much does the T3 cost?", "The Brisa T3 costs USD 179.") == ["179"]
    assert reference_keywords("What colour are visitor vests?", "Visitors wear a yellow vest.") == ["yellow"]
    assert reference_keywords("Who signs the form?", "The Warden signs it.") == ["Warden"]
    row = graded_row(EvalRow("v1", "What is the bin limit?", "The dock accepts bins of at most 400 kg."))
    assert row.keywords == ["400"] and row.answerable
    assert not graded_row(EvalRow("v2", "Who founded it?", "Your documents don't say.")).answerable
    rows = [EvalRow(f"q{i}", f"q{i}?", "a", ["a"]) for i in range(10)] + [EvalRow("u", "u?", answerable=False)]
    picked = spread(rows, 6)
    assert len(picked) == 6 and picked[0].id == "q0" and picked[4].id == "q9" and picked[-1].id == "u"


def test_validation_questions_of_raft_rows_are_the_question_alone():
    from backend.evalsets import _qa_from_example
    from backend.data.formats import Example
    from backend.rag.chain import RAG_USER_TEMPLATE

    user = RAG_USER_TEMPLATE.format(context="[1] ladders.txt\nPicking ladders hold 150 kg.", question="How much?")
    ex = Example("qa.jsonl", 1, "messages", messages=[{"role": "user", "content": user}, {"role": "assistant", "content": "150 kg."}])
    assert _qa_from_example(ex) == ("How much?", "150 kg.")


def test_cli_prints_the_verdict():
    from backend.cli import check_words

    rec = ev.event(ev.ANSWER_CHECK, status="done", verdict="worse", message="Tuning made the answers worse: 1 of 4.",
                   cause="The training loss fell to 0.004.", advice="Train fewer epochs.", source="4 questions")
    text = check_words(rec)
    assert "Tuning made the answers worse" in text and "likely cause: The training loss" in text
    assert "what to change: Train fewer epochs." in text
    assert check_words(ev.event(ev.ANSWER_CHECK, status="skipped", reason="the project has no documents")) \
        == "check skipped: the project has no documents"


# ---------------------------------------------------------------------------
# end to end: a run with the check on


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    from backend.rag.embeddings import load_embeddings

    return load_embeddings(build_tiny_embedder(tmp_path_factory.mktemp("emb") / "tiny-embedder"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_embedder):
    from backend.rag.index import ingest
    from backend.workspace import Project

    proj = Project.create(tmp_path_factory.mktemp("proj") / "coop")
    for name, text in DOCS.items():
        (proj.documents_dir / name).write_text(text, encoding="utf-8")
    ingest(proj, [proj.documents_dir], embeddings=tiny_embedder)
    proj.evalsets_dir.mkdir(exist_ok=True)
    (proj.evalsets_dir / "coop.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    proj.datasets_dir.mkdir(exist_ok=True)
    (proj.datasets_dir / "qa.jsonl").write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"How heavy is bin {i}?"},
        {"role": "assistant", "content": f"Bin {i} weighs {i * 10} kg."}]}) + "\n" for i in range(12)),
        encoding="utf-8")
    return proj


def _train(project, tiny_model_dir, out: Path, **overrides):
    from backend.training import train
    from backend.planning import resolve_run_config

    cfg = resolve_run_config(project, overrides={
        "model.name_or_path": str(tiny_model_dir), "training.max_steps": 2, "training.eval_steps": 0,
        "training.save_steps": 2, "training.batch_size": 4, "training.gradient_accumulation": 1,
        "data.validation_split": 0.0, "data.max_length": 128, "output_dir": str(out), **overrides})
    seen: list[dict] = []
    return train(cfg, on_event=seen.append), seen


def test_a_run_with_the_check_emits_and_writes_its_verdict(project, tiny_model_dir, tmp_path):
    from backend import runs
    from backend.rag.check import QUESTIONS as N

    res, seen = _train(project, tiny_model_dir, project.runs_dir / "checked")
    assert res.status == "completed", res.reason
    checks = [e for e in seen if e["type"] == ev.ANSWER_CHECK]
    assert len(checks) == 1
    rec = checks[0]
    assert rec["status"] == "done", rec.get("reason")
    assert rec["verdict"] in ("helped", "same", "worse") and rec["message"]
    assert rec["n"] == len(rec["questions"]) == min(N, len(QUESTIONS))
    assert "test set “coop”" in rec["source"]
    for q in rec["questions"]:
        assert set(q["tuned"]) >= {"answer", "correct", "own_correct", "quoted"} and "base" in q
    # the check came before the run's end, and the run folder keeps it
    types = [e["type"] for e in seen]
    assert types.index(ev.ANSWER_CHECK) < types.index(ev.FINISHED)
    assert runs.read_check(res.run_dir) == rec
    assert any(e["type"] == ev.ANSWER_CHECK for e in ev.read_events(runs.metrics_path(res.run_dir)))
    assert any(e["type"] == ev.PROGRESS and e["stage"] == "check" for e in seen)
    assert runs.read_status(res.run_dir)["status"] == "completed"


def test_the_check_can_be_turned_off_and_is_stopped_by_stop(project, tiny_model_dir, tmp_path):
    from backend import runs
    from backend.training import train
    from backend.planning import resolve_run_config

    res, seen = _train(project, tiny_model_dir, project.runs_dir / "unchecked", **{"training.answer_check": False})
    assert res.status == "completed" and not any(e["type"] == ev.ANSWER_CHECK for e in seen)
    assert runs.read_check(res.run_dir) is None
    # Stop pressed once the check has begun: the check ends cancelled, the run stays completed
    cfg = resolve_run_config(project, overrides={
        "model.name_or_path": str(tiny_model_dir), "training.max_steps": 2, "training.eval_steps": 0,
        "training.save_steps": 2, "data.validation_split": 0.0, "data.max_length": 128,
        "output_dir": str(project.runs_dir / "stopped")})
    seen = []
    checking = lambda: any(e["type"] == ev.PROGRESS and e.get("stage") == "check" for e in seen)  # noqa: E731
    res = train(cfg, on_event=seen.append, should_stop=checking)
    assert res.status == "completed"
    assert runs.read_check(res.run_dir)["status"] == "cancelled"


# ---------------------------------------------------------------------------
# quoted answers are marked everywhere


def _quoted_answer():
    from backend.rag.chain import Answer

    return Answer("How much can a ladder hold?", "Picking ladders hold 150 kg.", "base+rag", quoted=True,
                  withheld="A ladder holds 380 kg.", unsupported=["380"])


def test_quoted_answers_are_marked_in_the_transcript_and_its_markdown(tmp_path):
    from backend import transcript

    rec = transcript.answer_record(_quoted_answer(), exchange="e1")
    assert rec["quoted"] is True
    path = tmp_path / "chat" / "transcript.jsonl"
    transcript.append(path, rec)
    md = transcript.to_markdown(transcript.load(path))
    assert f"*{transcript.QUOTED_NOTE}.*" in md
    assert "Quoted from your documents — not the model's words" in md
    assert "The model wrote: A ladder holds 380 kg." in md


def test_eval_results_grade_the_models_own_words_apart_from_the_shown_text(project, tiny_model_dir, tmp_path):
    """evaluate() records quoted and own_correct; the scorecard gives own_accuracy next to accuracy."""
    from backend.rag.chain import ground
    from backend.rag.evaluate import METRICS, build_scorecard, evaluate, own_correct
    from backend.rag.settings import GenerationSettings, RetrievalSettings

    res, _ = _train(project, tiny_model_dir, project.runs_dir / "for-eval", **{"training.answer_check": False})
    rep = evaluate(project, "coop", res.run_dir, modes=["base+rag", "tuned+rag"], with_loss=False,
                   retrieval=RetrievalSettings(grounding="quote", abstain=False),
                   generation=GenerationSettings(max_new_tokens=12))
    assert "own_accuracy" in METRICS and METRICS.index("own_accuracy") == METRICS.index("accuracy") + 1
    from backend.evalsets import EvalRow as Row
    from backend.rag.evaluate import is_correct
    for q in rep.questions:
        row = Row(q["id"], q["question"], q["expected"] or "", q["keywords"], answerable=q["answerable"])
        for m, r in q["modes"].items():
            assert "quoted" in r and "own_correct" in r
            assert r["own_correct"] == is_correct(r["withheld"] or r["answer"], row)
            if r["quoted"]:
                assert r["withheld"] and r["answer"] != r["withheld"]
    assert set(rep.scorecard["base+rag"]) == set(METRICS)
    # fixed answers: the sentence ranker right, the model's own words wrong
    qs = [{"id": "b", "question": "How much?", "expected": "", "keywords": ["150"], "answerable": True,
           "modes": {"base+rag": {"answer": "Picking ladders hold 150 kg.", "correct": True, "quoted": True,
                                  "withheld": "It holds 380 kg.", "abstained": False, "f1": 0.5}}}]
    card = build_scorecard(qs, ["base+rag"])["base+rag"]
    assert card["accuracy"]["value"] == 1.0 and card["own_accuracy"]["value"] == 0.0
    assert own_correct(qs[0], qs[0]["modes"]["base+rag"]) is False  # an older report: regraded from its words
    assert ground  # (imported for the reader: the rule that quotes is chain.ground)


def test_quoted_answers_are_marked_in_the_report_and_eval_markdown(tmp_path):
    from backend import runs
    from backend.rag.evaluate import EvalReport, build_scorecard, save_report
    from backend.report import QUOTED_NOTE, write_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}", encoding="utf-8")
    qs = [{"id": "b", "question": "How much can a ladder hold?", "expected": "", "keywords": ["150"],
           "answerable": True, "kind": "documents", "tags": ["right"], "verdict": "right",
           "modes": {"base+rag": {"answer": "Picking ladders hold 150 kg.", "correct": True, "own_correct": False,
                                  "quoted": True, "withheld": "It holds 380 kg.", "abstained": False, "f1": 0.5,
                                  "sources": []}}}]
    rep = EvalReport("coop", str(run), ["base+rag"], build_scorecard(qs, ["base+rag"]), qs, {"note": "not measured"})
    save_report(rep)
    md = Path(rep.markdown_path).read_text(encoding="utf-8")
    assert "accuracy (model's own words)" in md and "Quoted from your documents, not the model's words: base+rag 1 of 1" in md
    runs.write_check(run, ev.event(ev.ANSWER_CHECK, status="done", verdict="worse", n=1,
                                   message="Tuning made the answers worse: 0 of 1 right.", cause="memorised",
                                   advice="fewer epochs", questions=[{
                                       "question": "How much?", "expected": "150",
                                       "tuned": {"answer": "380 kg", "correct": False},
                                       "base": {"answer": "150 kg", "correct": True, "quoted": True,
                                                "own_answer": "It holds 380 kg.", "own_correct": False}}]))
    html = write_report(run).read_text(encoding="utf-8")
    import html as html_mod

    assert html_mod.escape(QUOTED_NOTE) in html and "The model wrote: “It holds 380 kg.” (wrong)" in html
    assert html_mod.escape("Accuracy (model's own words)") in html
    assert "Check after training" in html and "Tuning made the answers worse" in html


def test_check_never_adopts_the_project_its_data_sits_in(tmp_path):
    """A run elsewhere training on a project's dataset must not index (write into) that project."""
    from backend.rag.check import find_project
    from backend.workspace import Project

    project = Project.create(tmp_path / "p", "p")
    run = tmp_path / "elsewhere" / "runs" / "r1"
    run.mkdir(parents=True)
    assert find_project(run) is None  # its data sits in the project: not enough
    assert find_project(run, str(project.root)) == project.root  # named as data.raft_project
    inside = project.root / "runs" / "r2"
    inside.mkdir(parents=True)
    assert find_project(inside) == project.root.resolve()


def test_the_check_asks_validation_rows_and_questions_the_run_was_not_fitted_to(project, tiny_model_dir):
    # the knowledge recipe's validation rows are trained facts: they alone cannot see a model that stopped reading
    from backend import runs

    res, seen = _train(project, tiny_model_dir, project.runs_dir / "mixed", **{"data.validation_split": 0.34})
    assert res.status == "completed", res.reason
    rec = runs.read_check(res.run_dir)
    assert rec["status"] == "done", rec.get("reason")
    assert "held-out validation question" in rec["source"] and "test set “coop”" in rec["source"]
    asked = [q["question"] for q in rec["questions"]]
    from_tests = [q for q in asked if q in {x["question"] for x in QUESTIONS}]
    assert from_tests and len(from_tests) < len(asked)
    assert asked[1] in from_tests  # alternated: a check cut by its budget keeps both kinds
