"""The quality suite's projects (bench/projects/suite.json) are complete and their evalsets gradeable.

No model runs: each project opens as a new project would, its datasets pass the
Data page's check with the default model's tokenizer, its documents read, and
every answerable question's keywords are in its source document or a training
row (so ``backend.rag.evaluate.is_correct`` can score it at all).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.evalsets import keyword_found, normalise_text, read_evalset, training_overlap, training_questions
from backend.workspace import Project

ROOT = Path(__file__).resolve().parents[1]
SUITE = json.loads((ROOT / "bench" / "projects" / "suite.json").read_text(encoding="utf-8"))
ENTRIES = SUITE["projects"]
IDS = [e["name"] for e in ENTRIES]
KINDS = {"trained", "documents", "unanswerable"}


def _project(entry) -> Project:
    return Project.open(ROOT / entry["path"])


def _training_answers(proj: Project) -> list[str]:
    out = []
    for f in proj.files_with_role("train"):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.extend(m["content"] for m in json.loads(line)["messages"] if m["role"] == "assistant")
    return out


def _document_texts(proj: Project) -> dict[str, str]:
    """Normalised text of each document, read the way the index reads it (PDF pages included)."""
    from backend.documents import load_document

    return {p.name: normalise_text(" ".join(d.page_content for d in load_document(p))) for p in proj.document_files()}


def _found(keyword: str, normalised: str) -> bool:
    return keyword_found(keyword, normalised)


def test_the_suite_lists_four_projects_and_none_is_shipped():
    assert len(set(IDS)) == len(IDS)
    assert any(e["path"] == "resources/sample_project" and e["evalset"] == "brisa" for e in ENTRIES)
    # the bundle takes resources/ only; bench/ is neither bundled nor a packaged module
    spec = (ROOT / "build.spec").read_text(encoding="utf-8")
    assert "bench" not in spec
    for e in ENTRIES:
        if e["path"] != "resources/sample_project":
            assert e["path"].startswith("bench/projects/")


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_project_opens_as_a_new_project_and_its_data_checks_clean(entry, real_tokenizer_dir):
    from transformers import AutoTokenizer

    from backend.data import check_files
    from desktop.data_adapter import check_documents

    proj = _project(entry)
    assert proj.description and len(proj.example_questions) == 3
    if entry["path"] != "resources/sample_project":
        # the default path a new project takes: nothing tuned is saved with it
        raw = json.loads((proj.root / "project.json").read_text(encoding="utf-8"))
        assert raw["format"] == 1 and "run_config" not in raw["settings"]
    train = proj.files_with_role("train")
    assert train and proj.document_files()
    tok = AutoTokenizer.from_pretrained(str(real_tokenizer_dir))
    # RAFT rows need the project's index (an embedder): the rows themselves are what is checked here
    cfg = proj.saved_run_config().with_overrides({"data.raft": False})
    report = check_files([str(f) for f in train], tok, cfg)
    assert report.usable and not report.problems, [p.text() for p in report.problems]
    assert check_documents([str(p) for p in proj.document_files()]) == []


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_evalset_is_gradeable(entry):
    proj = _project(entry)
    rows = read_evalset(proj.evalsets_dir / f"{entry['evalset']}.jsonl")
    assert len(rows) >= entry.get("min_questions", 25)
    assert {r.kind for r in rows} == KINDS
    unanswerable = sum(not r.answerable for r in rows)
    assert all((r.kind == "unanswerable") == (not r.answerable) for r in rows)
    assert 0.1 <= unanswerable / len(rows) <= 0.3
    # a paraphrase, never a training question (exact or near: backend.evalsets.training_overlap)
    trained = [r for r in rows if r.kind == "trained"]
    assert not training_overlap(trained, proj)
    assert not {normalise_text(r.question) for r in rows} & {normalise_text(q) for q, _, _ in training_questions(proj)}
    docs = _document_texts(proj)
    answers = [normalise_text(a) for a in _training_answers(proj)]
    for r in rows:
        if r.source:
            assert r.source in docs, f"{r.id}: no document {r.source}"
        if not r.answerable:
            continue
        assert r.keywords, f"{r.id}: no keywords"
        where = [docs[r.source]] if r.source else []
        if r.kind == "trained":
            where += answers
        assert any(all(_found(k, t) for k in r.keywords) for t in where), f"{r.id}: keywords {r.keywords} not in {r.source or 'a training row'}"
        # the reference answer itself is graded right
        assert all(_found(k, normalise_text(r.answer)) for k in r.keywords) if r.answer else True, r.id


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["path"] != "resources/sample_project"],
                         ids=[e["name"] for e in ENTRIES if e["path"] != "resources/sample_project"])
def test_facts_are_split_between_the_dataset_and_the_documents(entry):
    # "documents" questions: no training answer holds them; some "trained" facts are in no document
    proj = _project(entry)
    rows = read_evalset(proj.evalsets_dir / f"{entry['evalset']}.jsonl")
    docs = _document_texts(proj)
    answers = [normalise_text(a) for a in _training_answers(proj)]
    for r in rows:
        if r.kind == "documents":
            leaks = [a for a in answers if all(_found(k, a) for k in r.keywords)]
            assert not leaks, f"{r.id}: a training row answers it: {leaks[0]}"
    dataset_only = [r for r in rows if r.kind == "trained" and not r.source]
    assert dataset_only
    for r in dataset_only:
        assert not any(all(_found(k, t) for k in r.keywords) for t in docs.values()), r.id
    assert sum(r.kind == "documents" for r in rows) >= sum(r.kind == "trained" for r in rows) // 2


def test_the_pdf_documents_have_pages_of_text_and_match_their_source(tmp_path):
    # the PDF is written by bench/projects/_make/make_pdf.py (no PDF library is a dependency)
    import runpy

    from backend.documents import load_document

    make = runpy.run_path(str(ROOT / "bench" / "projects" / "_make" / "make_pdf.py"))
    pdfs = [p for e in ENTRIES for p in _project(e).document_files() if p.suffix == ".pdf"]
    assert pdfs
    for pdf in pdfs:
        pages = load_document(pdf)
        assert len(pages) >= 3 and all(len(d.page_content.split()) > 50 for d in pages), pdf
        source = ROOT / "bench" / "projects" / "_make" / f"{pdf.stem}.txt"
        if source.exists():
            again = tmp_path / pdf.name
            make["write_pdf"](source, again)
            assert again.read_bytes() == pdf.read_bytes(), f"{pdf} is not what make_pdf.py writes from {source.name}"
