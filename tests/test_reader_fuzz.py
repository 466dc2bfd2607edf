"""Every reader of a project file survives any content (docs/architecture.md, "Readers").

Issue 27: a project travels, so any of its files may hold anything.  For each
reader this feeds at least :data:`N` generated bad records — random and
type-confused JSON (text for numbers, numbers for lists, nulls, deep nesting,
huge strings, invalid UTF-8, torn lines, JSON that is not an object) from a
seeded generator — and asserts "message or skip, no crash": the reader
returns what it could use (and names what it left out), or raises the typed
error it documents; nothing else.  What it returns is then used the way the
app uses it (Markdown, summaries, plots), which must not crash either.
"""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from backend import records, runs
from backend.errors import TuneError

N = 1000  # bad records per reader (the issue's goal)
SEED = 27


# -- the generator ---------------------------------------------------------------------------
def _deep(rng: random.Random) -> str:
    """A placeholder for JSON nested 65 to 5,000 deep; :func:`_dumps` writes it out (the generator never walks it)."""
    return f"@@deep:{rng.choice([65, 200, 900, 5000])}:{rng.choice('[{')}@@"


def _nested(m: re.Match) -> str:
    n, kind = int(m.group(1)), m.group(2)
    return "[" * n + "1" + "]" * n if kind == "[" else '{"k":' * n + "1" + "}" * n


def bad_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value a reader does not expect where it finds it."""
    k = rng.randrange(15)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([0, -1, 1, 3.5, -2.5e-9, 10 ** 30, -(2 ** 63) - 1, 2 ** 64, 1e308, -1e308])
    if k == 3:
        return rng.choice([float("nan"), float("inf"), float("-inf")])
    if k == 4:
        return rng.choice(["", " ", "yesterday", "5", "1e9", "NaN", "null", "true", "[]", "{}", "../../etc/passwd",
                           "\x1b[31mred\x1b[0m", "\u202eevil", "a\nb", "\x00", "\ud800", "🙂" * 3])
    if k == 5:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(1, 40)))
    if k == 6:
        return "x" * rng.choice([5_000, 200_000])
    if k == 7 and depth < 3:
        return [bad_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if k == 8 and depth < 3:
        return {rng.choice(["a", "question", "type", "step", "", "sources", "\x00"]): bad_value(rng, depth + 1)
                for _ in range(rng.randrange(0, 4))}
    if k == 9:
        return _deep(rng)
    if k == 10:
        return rng.choice([[], {}, [[]], [{}], {"": {}}])
    if k == 11:
        return str(rng.randrange(-10, 10 ** 6))
    if k == 12:
        return [rng.randrange(10) for _ in range(rng.randrange(1, 5))]
    return rng.choice([{"file": 1}, {"chunk": "0"}, [None], ["a", 1], {"value": "high"}])


def _paths(v: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(v, dict):
        for k, x in v.items():
            out += _paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out += _paths(x, prefix + (i,))
    return out


def mutate(rng: random.Random, template: dict) -> Any:
    """``template`` with 1–3 values somewhere in it replaced, removed or joined by a stranger."""
    rec = copy.deepcopy(template)
    for _ in range(rng.randrange(1, 4)):
        paths = [p for p in _paths(rec) if p]
        if not paths or rng.random() < 0.05:
            return bad_value(rng)
        path = rng.choice(paths)
        parent = rec
        for key in path[:-1]:
            parent = parent[key]
        how = rng.random()
        if how < 0.75:
            parent[path[-1]] = bad_value(rng)
        elif how < 0.9:
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["extra", "x" * 300, "\x1b"])] = bad_value(rng)
    return rec


def _dumps(value: Any, rng: random.Random) -> bytes:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    text = re.sub(r'"@@deep:(\d+):([\[{])@@"', _nested, text)
    return text.encode("utf-8", "surrogatepass")


def bad_line(rng: random.Random, template: dict) -> bytes:
    """One line (without its newline) that is not a good record of ``template``'s kind."""
    k = rng.randrange(20)
    good = _dumps(template, rng)
    if k < 11:
        return _dumps(mutate(rng, template), rng)
    if k == 11:
        return _dumps(bad_value(rng), rng).replace(b"\n", b" ")
    if k == 12:
        return good[:rng.randrange(1, max(2, len(good) - 1))]  # torn
    if k == 13:
        i = rng.randrange(len(good))
        return good[:i] + rng.choice([b"\xff", b"\xfe\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80"]) + good[i:]
    if k == 14:
        n = rng.choice([70, 1000, 100_000])
        return (b"[" * n + b"]" * n) if rng.random() < 0.5 else (b'{"a":' * n + b"1" + b"}" * n)
    if k == 15:
        rec = dict(template)
        rec[rng.choice(list(template))] = _deep(rng)
        return _dumps(rec, rng)
    if k == 16:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))).replace(b"\n", b"")
    if k == 17:
        return rng.choice([b"1", b"[]", b'"text"', b"null", b"true", b"NaN", b"-Infinity", b"1" * 5000])
    if k == 18 and rng.random() < 0.05:
        return b'{"question": "' + b"q" * (5 << 20) + b'"}'  # larger than any reader takes
    return _dumps(mutate(rng, mutate(rng, template)), rng)


def bad_lines(template: dict, n: int = N, seed: int = SEED) -> list[bytes]:
    rng = random.Random(seed)
    return [bad_line(rng, template).replace(b"\n", b" ") for _ in range(n)]


def bad_documents(template: dict, n: int = N, seed: int = SEED) -> list[bytes]:
    """Whole one-object files: mostly the template mutated, some not JSON at all."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        if rng.random() < 0.8:
            out.append(_dumps(mutate(rng, template), rng))
        else:
            out.append(bad_line(rng, template))
    return out


def _write(path: Path, lines: list[bytes], good: list[bytes] = ()) -> None:
    """The bad lines with the good ones spread among them; a torn last line now and then."""
    rows = list(lines)
    for i, g in enumerate(good):
        rows.insert((i * 37) % (len(rows) + 1), g)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(rows) + b"\n")


def test_generator_makes_enough_bad_records():
    lines = bad_lines({"question": "q", "answer": "a", "time": 1.0, "sources": []})
    assert len(lines) == N and len(set(lines)) > N * 0.6


# -- the project files ------------------------------------------------------------------------
SOURCE = {"file": "manual.md", "path": "documents/manual.md", "page": 1, "chunk": 2, "text": "The kettle boils.",
          "score": 0.81, "bm25": 1.5, "fused": 0.03, "id": "abc"}
ANSWER = {"v": 1, "exchange": "e1", "time": 1764500000.0, "question": "What boils?", "mode": "tuned+rag",
          "run": "/p/runs/r1", "run_name": "run 1", "answer": "The kettle.", "sources": [SOURCE], "seconds": 2.4,
          "stopped": False, "abstained": False,
          "evidence": [{"source_index": 0, "sentence": "The kettle boils.", "start": 0, "end": 17, "score": 0.9}],
          "withheld": "", "unsupported": ["579"]}


def test_transcript_survives_any_line(tmp_path):
    from backend import transcript

    path = tmp_path / "chat" / "transcript.jsonl"
    good = [json.dumps({**ANSWER, "exchange": f"g{i}"}).encode() for i in range(20)]
    lines = bad_lines(ANSWER)
    _write(path, lines, good)
    skipped: list[records.Skipped] = []
    exchanges = transcript.load(path, skipped)
    answers = [a for ex in exchanges for a in ex.answers]
    assert {f"g{i}" for i in range(20)} <= {ex.id for ex in exchanges}
    # every line is either shown or named
    assert len(answers) + len(skipped) == len(lines) + len(good) - sum(1 for ln in lines if not ln.strip())
    assert all(s.file == str(path) and s.line and s.what for s in skipped)
    for a in answers:
        assert transcript.record_problem(a) is None
        transcript.sources_of(a)
    transcript.to_markdown(exchanges)
    transcript.export_markdown(path, tmp_path / "chat.md")  # what was loaded can be written out again


def test_the_two_lines_of_the_issue_are_skipped_and_named(tmp_path):
    from backend import transcript

    path = tmp_path / "transcript.jsonl"
    path.write_text('{"question": "q", "answer": "a", "time": "yesterday"}\n'
                    '{"question": "q", "answer": "a", "sources": 5}\n'
                    + json.dumps(ANSWER) + "\n", encoding="utf-8")
    skipped: list = []
    exchanges = transcript.load(path, skipped)
    assert [ex.question for ex in exchanges] == ["What boils?"]
    assert [(s.line, s.what) for s in skipped] == [(1, "'time' should be a number, not text"),
                                                   (2, "'sources' should be a list, not a number")]
    assert "transcript.jsonl:1: 'time' should be a number" in records.summary(skipped)


TRAIN = {"type": "train", "time": 1764500000.0, "step": 3, "max_steps": 10, "epoch": 0.3, "loss": 2.5,
         "learning_rate": 1e-4, "grad_norm": 1.2, "tokens_per_s": 900.0, "tokens_seen": 4096, "eta_s": 12.0,
         "elapsed_s": 3.0, "memory_mb": 800.0}
EVAL = {"type": "eval", "time": 1764500001.0, "step": 3, "eval_loss": 2.1, "perplexity": 8.1, "epoch": 0.3}


def _run(tmp_path: Path, name: str = "r1") -> Path:
    run = tmp_path / "proj" / "runs" / name
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps({"name": "r1", "method": {"method": "lora"},
                                                 "model": {"name_or_path": "default"}}))
    return run


def test_metrics_survive_any_line(tmp_path, qapp):
    from desktop.plots import RunMetrics

    run = _run(tmp_path)
    lines = bad_lines(TRAIN, N // 2) + bad_lines(EVAL, N // 2, SEED + 1)
    good = [json.dumps({**TRAIN, "step": i}).encode() for i in range(1, 6)] + [json.dumps(EVAL).encode()]
    _write(runs.metrics_path(run), lines, good)
    skipped: list = []
    recs = runs.events(run, skipped)
    assert len(recs) >= len(good) and len(skipped) >= N * 0.8
    assert all(s.line for s in skipped)
    metrics = RunMetrics()
    metrics.load(recs)
    assert len(metrics) >= 1
    runs.last_record(run, "train")
    summary = runs.read_run(run)
    assert summary is not None and summary.when
    from backend import events as ev

    named: list = []
    assert len(ev.read_events(runs.metrics_path(run), named)) == len(recs) and len(named) == len(skipped)
    with pytest.raises(ev.EventError):  # without a list to name them in, the documented typed error
        ev.read_events(runs.metrics_path(run))


STATUS = {"status": "failed", "reason": "killed", "pid": 12345, "created": 1764500000.0, "started": 1764500001.0,
          "updated": 1764500002.0, "finished": 1764500003.0, "metrics": {"global_step": 3, "train_loss": 2.5},
          "error": None, "adapter_dir": None}
CONFIG = {"name": "r1", "method": {"method": "lora"}, "model": {"name_or_path": "default"}}


def _use_summary(s: runs.RunSummary) -> None:
    """What the history, the CLI and the resume notice read from a summary."""
    assert isinstance(s.name, str) and isinstance(s.status, str) and isinstance(s.reason, str)
    for v in (s.step, s.max_steps):
        assert v is None or isinstance(v, int)
    for v in (s.train_loss, s.eval_loss, s.created):
        assert v is None or isinstance(v, float)
    assert s.pid is None or isinstance(s.pid, int)
    s.when, s.display_status, s.interrupted, s.resumable, s.kind, s.has_chat_model  # noqa: B018


@pytest.mark.parametrize("which", ["status", "label", "config"])
def test_run_files_survive_any_content(tmp_path, which):
    run = _run(tmp_path)
    target = {"status": runs.status_path(run), "label": runs.label_path(run), "config": runs.config_path(run)}[which]
    template = {"status": STATUS, "label": {"name": "My run", "renamed": 1764500000.0}, "config": CONFIG}[which]
    for i, doc in enumerate(bad_documents(template, seed=SEED + len(which))):
        target.write_bytes(doc)
        skipped: list = []
        st = runs.read_status(run, skipped)
        assert isinstance(st, dict)
        assert isinstance(runs.read_label(run), str)
        runs.is_live(run)
        s = runs.read_run(run)
        if s is not None:
            _use_summary(s)
        for s in runs.list_runs(tmp_path / "proj"):
            _use_summary(s)
        runs.kind(run)
        if which != "label" and i % 100 == 0:  # the offline report reads config and status too
            from backend.report import write_report

            write_report(run, tmp_path / "report.html")


PROJECT = {"name": "Kettles", "base_model": "default", "format": 1,
           "settings": {"run_config": {"training": {"max_steps": 5}, "model": {"trust_remote_code": False}},
                        "dataset_roles": {"a.jsonl": "train"}, "train_on_documents": ["manual.md"],
                        "example_questions": ["What boils?"], "description": "kettles"}}


def test_project_json_survives_any_content(tmp_path):
    from backend.planning import resolve_run_config
    from backend.workspace import Project, ProjectError

    root = tmp_path / "proj"
    Project.create(root)
    (root / "datasets" / "a.jsonl").write_text('{"text": "x"}\n')
    (root / "documents" / "manual.md").write_text("The kettle boils.\n")
    opened = 0
    for doc in bad_documents(PROJECT):
        (root / "project.json").write_bytes(doc)
        try:
            p = Project.open(root)
        except ProjectError as e:
            assert "project.json" in str(e)
            continue
        opened += 1
        assert isinstance(p.name, str) and isinstance(p.base_model, str)
        p.description, p.example_questions, p.trust_notices(), p.training_documents()  # noqa: B018
        p.files_with_role("train")
        if opened % 4 == 0:  # a RunConfig takes ~5 ms to build: a sample of them goes the whole way
            p.saved_run_config()
        if opened % 20 == 0:
            try:
                resolve_run_config(p)
            except TuneError:
                pass
    assert opened > N // 2


META = {"format": 2, "embedder": {"name": "all-MiniLM-L6-v2", "dimension": 384, "fingerprint": "f"},
        "updated_at": 1764500000.0,
        "sources": {"documents/manual.md": {"sha256": "0" * 64, "chunks": 3, "kind": "file", "path": "documents/manual.md",
                                            "file": "manual.md", "chunk_size": 800, "chunk_overlap": 100,
                                            "indexed_at": 1764500000.0}}}


def test_index_record_survives_any_content(tmp_path):
    from backend.rag import index as rag_index
    from backend.rag.freshness import stale_documents
    from backend.rag.settings import IndexSettings
    from backend.workspace import Project

    p = Project.create(tmp_path / "proj")
    doc = p.documents_dir / "manual.md"
    doc.write_text("The kettle boils.\n")
    p.index_dir.mkdir()
    meta_path = p.index_dir / rag_index.META_FILE
    for raw in bad_documents(META):
        meta_path.write_bytes(raw)
        st = rag_index.index_status(p)
        assert isinstance(st["files"], int) and isinstance(st["chunks"], int)
        assert stale_documents(p, [doc], settings=IndexSettings()) in ([], [doc])
        try:
            meta = rag_index.DocumentIndex(p.index_dir, root=p.root).meta
        except TuneError:
            continue
        assert all(isinstance(r, dict) for r in meta["sources"].values())
    rag_index.damage(p.index_dir)


MANIFEST = {"version": 1, "documents": {"/p/documents/manual.md": {
    "path": "documents/manual.md", "name": "manual.md", "sha256": "0" * 64, "size": 17, "chunks": 1,
    "chunk_size": 800, "chunk_overlap": 100, "status": "ok", "error": None, "added": 1.0, "updated": 2.0}}}


def test_manifest_survives_any_content(tmp_path):
    from backend.documents import project_documents, read_manifest
    from backend.errors import DocumentError
    from backend.workspace import Project

    p = Project.create(tmp_path / "proj")
    for raw in bad_documents(MANIFEST):
        p.manifest_path.write_bytes(raw)
        skipped: list = []
        try:
            m = read_manifest(p, skipped)
        except DocumentError:
            continue
        assert all(isinstance(e, dict) for e in m["documents"].values())
        assert all(isinstance(f, str) for f in project_documents(p))


FIG = {"value": 0.5, "low": 0.3, "high": 0.7, "n": 10}
RESULT = {"answer": "The kettle.", "correct": True, "f1": 0.8, "similarity": 0.9, "abstained": False,
          "seconds": 1.2, "sources": [SOURCE], "evidence": ANSWER["evidence"], "withheld": "", "unsupported": []}
REPORT = {"evalset": "qs", "evalset_file": "evalsets/qs.jsonl", "run_dir": "/p/runs/r1", "created": 1764500000.0,
          "seconds": 12.0, "cancelled": False, "modes": ["base", "tuned"],
          "scorecard": {"base": {"accuracy": FIG, "f1": FIG}, "tuned": {"accuracy": FIG, "f1": FIG}},
          "loss": {"base": {"eval_loss": 2.0, "perplexity": 7.4}, "tuned": {"eval_loss": 1.5, "perplexity": 4.5},
                   "rows": 10, "source": "validation", "note": "x"},
          "forgetting": {"base": {"correct": 3, "n": 5, "value": 0.6, "low": 0.2, "high": 0.9},
                         "tuned": {"correct": 2, "n": 5, "value": 0.4, "low": 0.1, "high": 0.8},
                         "difference": FIG, "flag": False, "message": "no clear change", "questions": [{}]},
          "overlap": [{"id": "q1", "question": "What boils?", "training_question": "What boils?", "file": "a.jsonl",
                       "line": 1, "similarity": 1.0, "match": "exact"}],
          "settings": {}, "questions": [
              {"id": "q1", "question": "What boils?", "expected": "The kettle.", "keywords": ["kettle"],
               "source": "manual.md", "answerable": True, "kind": "file", "lineage": {}, "line": 1,
               "retrieved": [SOURCE], "retrieval_hit": True, "modes": {"base": RESULT, "tuned": RESULT},
               "tags": ["right"], "verdict": "right"}]}


def test_eval_results_survive_any_content(tmp_path):
    from backend.rag.evaluate import compare_runs, format_figure, load_report
    from backend.report import _evaluation_section, write_report
    from desktop.eval_adapter import filter_counts, forgetting_text, loss_text, verdict_text

    run = _run(tmp_path)
    path = runs.eval_dir(run) / "qs.json"
    path.parent.mkdir(parents=True)
    shown = 0
    for raw in bad_documents(REPORT):
        path.write_bytes(raw)
        rep = load_report(run, "qs")
        if rep is None:
            continue
        shown += 1
        rep.markdown()
        rep.verdict_counts  # noqa: B018
        _evaluation_section(rep)
        d = rep.to_dict()
        loss_text(d.get("loss")), forgetting_text(d.get("forgetting")), verdict_text(d["questions"])  # noqa: B018
        filter_counts(d["questions"])
        for card in d["scorecard"].values():
            for fig in card.values():
                format_figure(fig), format_figure(fig, percent=False)  # noqa: B018
        compare_runs([run], "qs")
        if shown % 50 == 0:  # the whole offline report for a sample (it reads the run's other files too)
            write_report(run, tmp_path / "report.html", "qs")
    assert shown > N // 2


ROW = {"id": "q1", "question": "What boils?", "answer": "The kettle.", "keywords": ["kettle"], "source": "manual.md",
       "answerable": True, "kind": "file", "lineage": {"from": "file"}, "status": ""}


def test_evalset_survives_any_line(tmp_path):
    from backend.errors import DataError
    from backend.evalsets import read_evalset

    path = tmp_path / "qs.jsonl"
    lines = bad_lines(ROW)
    good = [json.dumps({**ROW, "id": f"g{i}"}).encode() for i in range(10)]
    _write(path, lines, good)
    with pytest.raises(DataError) as err:
        read_evalset(path)
    assert len(err.value.problems) > N // 2 and all(p.line for p in err.value.problems)
    skipped: list = []
    rows = read_evalset(path, skipped)
    assert {f"g{i}" for i in range(10)} <= {r.id for r in rows}
    assert skipped and all(s.line for s in skipped)


def test_feedback_dataset_survives_any_line(tmp_path):
    from backend.data.formats import normalise_file
    from backend.data.readers import read_file

    path = tmp_path / "datasets" / "feedback.jsonl"
    template = {"messages": [{"role": "user", "content": "What boils?"},
                             {"role": "assistant", "content": "The kettle."}]}
    _write(path, bad_lines(template), [json.dumps(template).encode()])
    try:
        fr = read_file(path)
    except TuneError:
        return
    assert fr.problems
    normalise_file(fr.rows, str(path))


EXPORT = {"name": "merged", "kind": "merged", "path": "/p/out/merged", "quant": None, "size_bytes": 1000,
          "sha256": "0" * 64, "seconds": 1.5, "created": 1764500000.0, "run_dir": "/p/runs/r1", "notes": ["x"]}
PARITY = {"summary": "2 of 2 answers identical", "ok": True, "source": "evalset qs",
          "changed": [{"question": "What boils?", "app": "The kettle.", "export": "A kettle."}]}


@pytest.mark.parametrize("which", ["export", "parity"])
def test_export_records_survive_any_content(tmp_path, which):
    from backend.export_types import EXPORT_RECORD, PARITY_RECORD, list_exports
    from desktop.export_dialog import parity_text

    run = _run(tmp_path)
    sub = runs.exports_dir(run) / "merged"
    sub.mkdir(parents=True)
    (sub / EXPORT_RECORD).write_text(json.dumps(EXPORT))
    (sub / PARITY_RECORD).write_text(json.dumps(PARITY))
    target = sub / (EXPORT_RECORD if which == "export" else PARITY_RECORD)
    for raw in bad_documents(EXPORT if which == "export" else PARITY, seed=SEED + 7 + len(which)):
        target.write_bytes(raw)
        for rec in list_exports(run):
            assert isinstance(rec.name, str) and isinstance(rec.created, (int, float))
            parity_text(rec.parity)


def test_lock_file_survives_any_content(tmp_path):
    from backend.lock import LOCK_FILE, describe, holder

    template = {"pid": 123, "host": "workstation", "purpose": "tune ingest", "since": 1764500000.0}
    for raw in bad_documents(template):
        (tmp_path / LOCK_FILE).write_bytes(raw)
        assert isinstance(describe(holder(tmp_path)), str)


# -- the app -------------------------------------------------------------------------------------
@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _open_window(qtbot, root: Path, tiny_model_dir: Path):
    from desktop.app import create_window

    w = create_window(project=root, model=str(tiny_model_dir))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model_path is not None, timeout=60_000)
    return w


def test_app_starts_with_the_issues_transcript(qtbot, qapp, home, tmp_path, tiny_model_dir):
    """Issue 27, finding 3: these two lines aborted the app at every start (exit 134)."""
    from backend.workspace import Project
    from desktop.workers import stop_all_jobs

    p = Project.create(tmp_path / "proj")
    p.transcript_path.parent.mkdir(parents=True)
    p.transcript_path.write_text('{"question": "q", "answer": "a", "time": "yesterday"}\n'
                                 '{"question": "q", "answer": "a", "sources": 5}\n'
                                 + json.dumps(ANSWER) + "\n", encoding="utf-8")
    try:
        w = _open_window(qtbot, p.root, tiny_model_dir)
        chat = w.chat_page
        assert [ex.question for ex in chat.exchanges()] == ["What boils?"]
        assert chat.banner.isVisibleTo(chat) and chat.banner.kind == "warning"
        assert "2 line(s)" in chat.banner._text.text() and "transcript.jsonl:1" in chat.banner._text.text()
    finally:
        stop_all_jobs(timeout_ms=60_000)


def test_pages_say_what_they_skipped_in_a_hostile_project(qtbot, qapp, home, tmp_path, tiny_model_dir):
    """The Train page's history and the Evaluate page's saved result show a message, not a crash."""
    from backend.workspace import Project
    from desktop.workers import stop_all_jobs

    p = Project.create(tmp_path / "proj")
    run = p.runs_dir / "20261207-120000"
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(CONFIG))
    runs.status_path(run).write_text(json.dumps({"status": "completed", "pid": "x", "created": "yesterday",
                                                 "metrics": {"train_loss": [1]}}))
    _write(runs.metrics_path(run), bad_lines(TRAIN, 50), [json.dumps(TRAIN).encode(), json.dumps(EVAL).encode()])
    (runs.adapter_dir(run)).mkdir()
    (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
    (p.root / "evalsets").mkdir()
    (p.root / "evalsets" / "qs.jsonl").write_text(json.dumps(ROW) + "\n")
    bad = copy.deepcopy(REPORT)
    bad["run_dir"] = str(run)
    bad["questions"].append({"id": "q2", "question": "Broken?", "modes": ["tuned"]})
    bad["loss"]["tuned"] = {"eval_loss": "low"}
    runs.eval_dir(run).mkdir()
    (runs.eval_dir(run) / "qs.json").write_text(json.dumps(bad))
    try:
        w = _open_window(qtbot, p.root, tiny_model_dir)
        w.ensure_pages()
        w.train_page.refresh_history()
        w.train_page.show_run(run)
        assert w.train_page.banner.kind == "warning"
        ep = w.evaluate_page
        ep.select(run, "qs")
        assert ep.report is not None and len(ep.report["questions"]) == 1
        assert ep.banner.kind == "warning"
    finally:
        stop_all_jobs(timeout_ms=60_000)


def test_corrections_survive_any_line(tmp_path):
    """backend/corrections.py: every line is a correction or named; an edit keeps the others byte for byte."""
    from backend import corrections

    template = {"messages": [{"role": "user", "content": "What boils?"}, {"role": "assistant", "content": "Water."}],
                "correction": {"id": "c-0", "rejected": "Oil.", "mode": "tuned+rag", "run": "r1", "time": 1.0,
                               "test": False, "passages": [{"file": "a.md", "path": "documents/a.md", "page": None,
                                                            "chunk": 0, "text": "Water boils."}]}}
    path = corrections.corrections_path(tmp_path)
    good = [json.dumps({**template, "correction": {**template["correction"], "id": f"g{i}"}}).encode()
            for i in range(20)]
    lines = bad_lines(template)
    _write(path, lines, good)
    skipped: list[records.Skipped] = []
    got = corrections.load(tmp_path, skipped)
    assert {f"g{i}" for i in range(20)} <= {c.id for c in got}
    assert len(got) + len(skipped) == len(lines) + len(good) - sum(1 for ln in lines if not ln.strip())
    assert all(s.line and s.what for s in skipped)
    for c in got:
        assert isinstance(c.question, str) and isinstance(c.chosen, str) and isinstance(c.rejected, str)
        assert all(isinstance(p.get("text", ""), str) for p in c.passages)
        json.dumps(c.to_row())
    corrections.preference_pairs(tmp_path)
    before = path.read_bytes().split(b"\n")
    line = corrections.find(tmp_path, "g3").line
    corrections.update(tmp_path, "g3", chosen="Steam.", test=True)
    after = path.read_bytes().split(b"\n")
    assert after[:line - 1] == before[:line - 1] and after[line:] == before[line:]
