"""Evaluation sets: the questions a run is tested on, and where they come from.

An evalset is a JSONL file (``<project>/evalsets/<name>.jsonl``, or any
questions file, also CSV) with one question per line::

    {"id": "q01", "question": "...", "answer": "reference answer", "keywords": ["E4", "Wi-Fi"],
     "source": "troubleshooting.md", "answerable": true, "kind": "documents",
     "lineage": {"document": "...", "page": null, "chunk": 3, "teacher": "default"}}

``question`` is required, and at least one of ``answer`` / ``keywords`` unless
``answerable`` is false (the documents can't answer it: the right behaviour is
to abstain).  A keyword may list alternatives separated by ``|``
(``"7|seven"``).  In CSV files ``keywords`` are separated by ``;``.

Three ways to build one (see docs/architecture.md, "Evaluation"):

* a file the user wrote (:func:`read_evalset`);
* the run's validation split, rows never trained on (:func:`from_validation`);
* questions a local teacher model drafts from the documents, for the expert to
  review (:func:`draft_from_documents`; rows carry ``status`` ``draft`` until
  accepted, and ``rejected`` rows are never evaluated).

:func:`training_overlap` reports test questions that are also training
questions, so a row used for training can't silently be a test row too.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
import string
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from backend import events as ev
from backend import records, runs
from backend.confine import confine, is_inside
from backend.errors import DataError, TuneError
from backend.fsutil import atomic_write_text

if TYPE_CHECKING:
    from backend.workspace import Project

KINDS = ("trained", "documents", "unanswerable", "validation", "distilled", "file", "probe")
STATUSES = ("", "draft", "accepted", "rejected")
EVALSETS_DIR = "evalsets"
SUFFIXES = (".jsonl", ".csv")
NEAR_DUPLICATE = 0.9  # difflib ratio of normalised questions above which a test row "is" a training row

_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


@dataclass
class EvalRow:
    """One question of an evalset.

    Attributes
    ----------
    id
        Unique within the set (``q<line>`` when the file gives none).
    question
        What is asked.
    answer
        The reference answer ("" when only keywords are given, or unanswerable).
    keywords
        Words every right answer contains (``"a|b"``: either).
    source
        The document file the answer is in (enables the retrieval hit rate).
    answerable
        ``False``: the documents can't answer it; the model should abstain.
    kind
        Where the row came from: one of :data:`KINDS`.
    lineage
        Provenance: ``{"document", "page", "chunk", "teacher", "from", ...}``.
    status
        Review state of drafted rows: ``draft``, ``accepted``, ``rejected`` or "".
    line
        1-based line in the file it was read from (0 when built in memory).
    """

    id: str
    question: str
    answer: str = ""
    keywords: list[str] = field(default_factory=list)
    source: str = ""
    answerable: bool = True
    kind: str = "file"
    lineage: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    line: int = 0

    @property
    def expected(self) -> str:
        """The text answers are compared with: the reference, or the keywords."""
        return self.answer or " ".join(k.split("|")[0] for k in self.keywords)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form (empty optional fields left out)."""
        d: dict[str, Any] = {"id": self.id, "question": self.question}
        if self.answer:
            d["answer"] = self.answer
        if self.keywords:
            d["keywords"] = list(self.keywords)
        if self.source:
            d["source"] = self.source
        d["answerable"] = self.answerable
        d["kind"] = self.kind
        if self.lineage:
            d["lineage"] = self.lineage
        if self.status:
            d["status"] = self.status
        return d


# ---------------------------------------------------------------------------
# text helpers shared with the metrics (backend/rag/evaluate.py)


def normalise_text(text: str) -> str:
    """Lower case, no accents or punctuation, no articles, single spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(str.maketrans({c: " " for c in string.punctuation + "·–—“”‘’"}))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def keyword_found(keyword: str, normalised_answer: str) -> bool:
    """Whether a keyword (or one of its ``|`` alternatives) is in an answer already normalised."""
    return any(alt and alt in normalised_answer for alt in (normalise_text(k) for k in keyword.split("|")))


# ---------------------------------------------------------------------------
# reading and writing


def _as_bool(value: Any, p: Path, n: int) -> bool:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    s = str(value).strip().casefold()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise DataError(f"'answerable' must be true or false, not {value!r}", file=p, line=n, field="answerable")


def _row_from_dict(row: Any, p: Path, n: int, csv_keywords: bool = False) -> EvalRow:
    if not isinstance(row, dict):
        raise DataError("each line must be a JSON object", file=p, line=n,
                        hint='write {"question": "...", "answer": "..."}')
    q = row.get("question")
    if not isinstance(q, str) or not q.strip():
        raise DataError("no 'question'", file=p, line=n, field="question",
                        hint='write {"question": "...", "answer": "..."}')
    ans = row.get("answer", row.get("expected", "")) or ""
    kws = row.get("keywords", []) or []
    if isinstance(kws, str):
        kws = kws.split(";") if csv_keywords else [kws]
    if not isinstance(ans, str) or not isinstance(kws, list) or not all(isinstance(k, str) for k in kws):
        raise DataError("'answer' must be text and 'keywords' a list of text", file=p, line=n,
                        field="keywords" if isinstance(ans, str) else "answer")
    answerable = _as_bool(row.get("answerable", True), p, n)
    kws = [k.strip() for k in kws if k.strip()]
    if answerable and not ans.strip() and not kws:
        raise DataError("no expected 'answer' or 'keywords' to check the answer against", file=p, line=n,
                        field="answer", hint='add "answer": "..." or "keywords": ["...", "..."], '
                                             'or "answerable": false when the documents cannot answer it')
    kind = row.get("kind") or ("file" if answerable else "unanswerable")
    if kind not in KINDS:
        raise DataError(f"unknown kind {kind!r}", file=p, line=n, field="kind", hint=f"use one of {', '.join(KINDS)}")
    status = row.get("status") or ""
    if status not in STATUSES:
        raise DataError(f"unknown status {status!r}", file=p, line=n, field="status",
                        hint="use draft, accepted or rejected")
    src = row.get("source") or ""
    lineage = row.get("lineage") or {}
    if isinstance(lineage, str):  # CSV: a JSON object in a cell
        try:
            lineage = records.parse(lineage)
        except records.BadRecord:
            lineage = {"from": lineage}
    rid = row.get("id")
    return EvalRow(str(rid).strip() if rid not in (None, "") else f"q{n}", q.strip(), ans.strip(), kws,
                   src.strip() if isinstance(src, str) else "", answerable, kind,
                   lineage if isinstance(lineage, dict) else {}, status, n)


MAX_ROW_BYTES = 256 << 10
"""A questions-file row longer than this is refused unread (a question and its answer are a few KB)."""


MAX_FILE_BYTES = 256 << 20
"""A questions file larger than this is refused unread (a million short questions fit)."""


def count_questions(path: str | Path) -> int:
    """About how many questions a file holds, without parsing it: its non-blank lines (less the CSV header).

    Cheap enough for the GUI thread on any size (it reads bytes in 1 MiB blocks).

    Raises
    ------
    OSError
        The file cannot be read.
    """
    p = Path(path).expanduser()
    n, last = 0, b"\n"
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
            last = block[-1:]
    n += last != b"\n"
    return max(0, n - 1) if p.suffix.lower() == ".csv" else n


def read_evalset(path: str | Path, skipped: "list[records.Skipped] | None" = None) -> list[EvalRow]:
    """Read and check an evalset (JSONL, or CSV with a header row).

    Parameters
    ----------
    path
        A ``.jsonl`` (one JSON object per line) or ``.csv`` file.
    skipped
        When given, a bad row is left out and named here (file, line, what was
        wrong) instead of failing the whole file, and the rest loads
        (docs/architecture.md, "Readers").

    Returns
    -------
    list[EvalRow]
        In file order; ``rejected`` rows included (callers skip them).

    Raises
    ------
    DataError
        Unreadable file, invalid JSON, a row without a question or without an
        expected answer / keywords, a row longer than :data:`MAX_ROW_BYTES`, a
        duplicate id (naming ``file:line``), or no rows at all.  The error names
        the first bad row; its ``problems`` attribute lists every bad row (each a
        :class:`DataError`).  With ``skipped`` given, only a file that cannot be
        read or has no usable row.
    """
    p = Path(path).expanduser()
    out: list[EvalRow] = []
    problems: list[DataError] = []
    try:
        size = p.stat().st_size
    except OSError:
        size = 0
    if size > MAX_FILE_BYTES:
        raise DataError(f"the questions file is {size >> 20} MB; at most {MAX_FILE_BYTES >> 20} MB is read", file=p,
                        hint="split it into smaller evalsets, or sample the questions you need")
    if p.suffix.lower() == ".csv":
        try:
            text = p.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise DataError("the questions file is not UTF-8 text", file=p, hint="save it as UTF-8") from None
        except OSError as e:
            raise DataError(f"cannot read the questions file ({e.strerror or e})", file=p,
                            hint="check the path") from None
        reader = csv.DictReader(io.StringIO(text))
        try:
            names = reader.fieldnames
        except csv.Error as e:
            raise DataError(f"not a CSV file ({e})", file=p, line=1) from None
        if not names or "question" not in [f.strip() for f in names]:
            raise DataError("the CSV file has no 'question' column", file=p, line=1, field="question",
                            hint="the first row names the columns: question,answer,keywords,source")
        start = 2
        while True:
            n = start
            try:
                rec = next(reader)
            except StopIteration:
                break
            except csv.Error as e:  # a field longer than the csv module's limit, a NUL byte
                problems.append(DataError(f"unreadable row ({e})", file=p, line=n))
                start = reader.line_num + 1
                continue
            start = reader.line_num + 1
            rec = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in rec.items() if k}
            if not any(rec.values()):
                continue
            try:
                out.append(_row_from_dict(rec, p, n, csv_keywords=True))
            except DataError as e:
                problems.append(e)
    else:
        notes: list[records.Skipped] = []
        try:
            for n, row in records.read_jsonl(p, notes, max_line_bytes=MAX_ROW_BYTES):
                try:
                    out.append(_row_from_dict(row, p, n))
                except DataError as e:
                    problems.append(e)
        except OSError as e:
            raise DataError(f"cannot read the questions file ({e.strerror or e})", file=p,
                            hint="check the path") from None
        if not p.exists():
            raise DataError("cannot read the questions file (no such file)", file=p, hint="check the path")
        for note in notes:
            problems.append(DataError(note.what, file=p, line=note.line, hint="write one JSON object per line"))
    seen: dict[str, int] = {}
    for r in out:
        if r.id in seen:
            problems.append(DataError(f"id {r.id!r} is used twice (first on line {seen[r.id]})", file=p,
                                      line=r.line, field="id", hint="give every question its own id"))
        seen.setdefault(r.id, r.line)
    if problems and skipped is not None:
        bad = {e.line for e in problems}
        skipped.extend(records.Skipped(str(p), e.line, e.message) for e in sorted(problems, key=lambda e: e.line or 0))
        out = [r for r in out if r.line not in bad]
    elif problems:
        problems.sort(key=lambda e: e.line or 0)
        first = problems[0]
        more = len(problems) - 1
        err = DataError(first.message + (f" ({more} more bad row{'s' if more > 1 else ''} in the file)" if more else ""),
                        file=first.file, line=first.line, field=first.field, hint=first.hint)
        err.problems = problems  # every bad row, for the GUI's list
        raise err
    if not out:
        raise DataError("the questions file has no questions", file=p,
                        hint='write one {"question": "...", "answer": "..."} object per line')
    return out


def write_evalset(path: str | Path, rows: Iterable[EvalRow]) -> Path:
    """Write rows as JSONL, atomically (a reader never sees half a file).

    Returns
    -------
    Path
        The file written.
    """
    p = Path(path).expanduser()
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(p, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows))
    return p


def _root(project: "Project | str | Path") -> Path:
    # a Path has a .root too ("/"): only a Project's is the folder
    return Path(project if isinstance(project, (str, Path)) else project.root).expanduser()


def list_evalsets(project: "Project | str | Path") -> list[str]:
    """Names of the project's evalsets (``evalsets/<name>.jsonl`` or ``.csv``), sorted."""
    d = _root(project) / EVALSETS_DIR
    if not d.is_dir():
        return []
    root = _root(project)  # a link out of the project is not one of its evalsets (confinement)
    return sorted({f.stem for f in d.iterdir()
                   if f.is_file() and f.suffix.lower() in SUFFIXES and is_inside(f, root)})


def check_name(name: str) -> str:
    """An evalset name usable as a file name (letters, digits, ``-``, ``_``, ``.``).

    Raises
    ------
    DataError
        For an empty name or one with other characters.
    """
    n = name.strip()
    if not n or not re.fullmatch(r"[\w.-]+", n) or n.startswith("."):
        raise DataError(f"{name!r} is not a usable evalset name", field="name",
                        hint="use letters, digits, '-' and '_' (it becomes the file name)")
    return n


def evalset_path(project: "Project | str | Path", name: str) -> Path:
    """``<project>/evalsets/<name>.jsonl`` (the ``.csv`` file when only that exists)."""
    d = _root(project) / EVALSETS_DIR
    name = check_name(name)
    p = d / f"{name}.jsonl"
    if not p.exists() and (d / f"{name}.csv").exists():
        p = d / f"{name}.csv"
    if p.is_symlink():  # a project's evalset is its own file, never one a link leads to elsewhere
        confine(p, _root(project), what="the evalset")
    return p


def resolve_evalset(project: "Project | str | Path | None", evalset: "str | Path") -> Path:
    """A file path, or the name of one of the project's evalsets.

    Raises
    ------
    DataError
        When neither a file nor an evalset of that name exists.
    """
    p = Path(evalset).expanduser()
    if p.is_file():
        return p
    if project is not None and isinstance(evalset, str) and re.fullmatch(r"[\w.-]+", evalset):
        q = evalset_path(project, evalset)
        if q.is_file():
            return q
    known = list_evalsets(project) if project is not None else []
    raise DataError(f"no evalset or questions file {str(evalset)!r}", file=p if p.suffix else None,
                    hint=(f"the project has: {', '.join(known)}" if known else
                          "give a .jsonl/.csv questions file, or save an evalset in <project>/evalsets/"))


# ---------------------------------------------------------------------------
# held out from the training data


def _question_of(text: str) -> str:
    """The question of a user turn; a RAFT row's turn also holds its passages (``chain.RAG_USER_TEMPLATE``)."""
    from backend.rag.chain import RAG_USER_TEMPLATE

    head, _, tail = RAG_USER_TEMPLATE.partition("{context}")
    mark = tail.partition("{question}")[0]
    if text.startswith(head) and mark in text:
        return text.rsplit(mark, 1)[1].strip()
    return text


def _qa_from_example(ex: Any) -> tuple[str, str] | None:
    """(last user turn, the assistant answer after it) of a chat row; (prompt, completion) otherwise.

    A RAFT row's user turn is cut to its question (the passages are retrieved again when it is asked).
    """
    if ex.messages:
        msgs = ex.messages
        for i in range(len(msgs) - 1, -1, -1):
            if msgs[i].get("role") != "assistant":
                continue
            for j in range(i - 1, -1, -1):
                if msgs[j].get("role") == "user":
                    q = _question_of(str(msgs[j].get("content") or "").strip())
                    a = str(msgs[i].get("content") or "").strip()
                    return (q, a) if q and a else None
            return None
        return None
    if ex.prompt is not None and ex.completion is not None:
        q, a = str(ex.prompt).strip(), str(ex.completion).strip()
        return (q, a) if q and a else None
    return None


def validation_examples(run_dir: str | Path, *, on_event: ev.OnEvent = ev.no_event,
                        should_stop: ev.ShouldStop = ev.never_stop) -> list[Any]:
    """The run's validation examples, split exactly as training split them.

    Rebuilt from ``config.json`` with the pipeline's own steps (read, dedupe,
    tokenise, filter, seeded split), because the run folder stores the
    configuration, not the rows.

    Raises
    ------
    RunError
        Not a run folder.
    DataError
        The training files are gone or unreadable.
    """
    from backend.config import RunConfig
    import backend.data.pipeline as pl
    from backend.models import load_tokenizer, resolve_model
    from backend.workspace import require_run_dir

    run = require_run_dir(run_dir)
    cfg = RunConfig.load(runs.config_path(run))
    dc = cfg.data
    if not dc.train_files and not dc.document_files:
        raise DataError("the run names no training files", file=runs.config_path(run), field="data.train_files")
    # the tokenizer's own code is never run on a run folder's say-so (backend/trust.py)
    tok = load_tokenizer(str(resolve_model(cfg.model.name_or_path, on_event=on_event)))
    # the same steps as pipeline.prepare(), keeping the examples instead of token ids
    seen: dict[str, str] = {}
    results, _ = pl._run(dc.train_files, tok, dc, strict=True, on_event=on_event, should_stop=should_stop,
                         seen=seen, documents=dc.document_files)
    if dc.validation_files:
        vres, _ = pl._run(dc.validation_files, tok, dc, strict=True, on_event=on_event, should_stop=should_stop,
                          seen=dict(seen) if dc.dedupe else None)
        return [r.example for res in vres for r in res.rows if r.usable]
    usable = [r for res in results for r in res.rows if r.usable]
    _, va = pl.split_rows(len(usable), dc.validation_split, pl._seed(cfg))
    return [usable[i].example for i in va]


def from_validation(run_dir: str | Path, limit: int = 50, *, on_event: ev.OnEvent = ev.no_event,
                    should_stop: ev.ShouldStop = ev.never_stop) -> list[EvalRow]:
    """Question / reference pairs from the run's validation split (rows never trained on).

    Each chat row gives its last user turn as the question and the assistant
    answer after it as the reference; prompt/completion rows give the pair
    directly; plain-text rows are skipped.

    Parameters
    ----------
    run_dir
        A run folder (its ``config.json`` names the data and the split).
    limit
        At most this many rows (the first ones of the split).

    Returns
    -------
    list[EvalRow]
        ``kind="validation"``, lineage ``{"from": "validation", "file", "line"}``.

    Raises
    ------
    RunError, DataError
        Not a run, data files gone; or a split with no question/answer rows.
    """
    out: list[EvalRow] = []
    examples = validation_examples(run_dir, on_event=on_event, should_stop=should_stop)
    for ex in examples:
        qa = _qa_from_example(ex)
        if qa is None:
            continue
        out.append(EvalRow(f"v{len(out) + 1:02d}", qa[0], qa[1], kind="validation",
                           lineage={"from": "validation", "file": Path(ex.file).name, "line": ex.line}))
        if len(out) >= limit:
            break
    if not out:
        raise DataError("the run's validation split has no question/answer rows" if examples
                        else "the run has no validation split", file=runs.config_path(run_dir),
                        field="data.validation_split",
                        hint="train with a validation split (e.g. 0.1) of chat or prompt/completion rows, "
                             "or use a questions file")
    return out


# ---------------------------------------------------------------------------
# drafted from the documents by a teacher model


def project_document_files(project: "Project | str | Path") -> list[str]:
    """The project's documents: the manifest's, else the files in ``documents/``."""
    from backend.documents import project_documents
    from backend.workspace import Project

    proj = Project.open(project) if isinstance(project, (str, Path)) else project
    try:
        files = project_documents(proj)
    except (TuneError, OSError, ValueError):
        files = []
    if not files and proj.documents_dir.is_dir():
        files = [str(f) for f in proj.document_files()]  # links out of the project skipped (confinement)
    return files


def draft_from_documents(project: "Project | str | Path", n: int = 20, teacher: str | None = None, *,
                         generate_fn: Any = None, chunk_size: int = 1200, batch_size: int = 4,
                         max_new_tokens: int = 160, on_event: ev.OnEvent = ev.no_event,
                         should_stop: ev.ShouldStop = ev.never_stop) -> list[EvalRow]:
    """Draft question / reference-answer rows from document chunks with a local teacher model.

    Chunks are taken evenly across all the documents, one question each, so a
    set of ``n`` covers the whole collection.  Every row is a *draft* for the
    expert to accept, edit or reject; it keeps its lineage (document, page,
    chunk, teacher).

    Parameters
    ----------
    project
        The project (its documents).
    n
        How many questions to draft (fewer when the teacher writes no usable pair).
    teacher
        A local model folder or ``.gguf``; ``None``: the bundled default model.
    generate_fn
        ``prompts -> completions`` instead of loading ``teacher`` (other backends, tests).
    chunk_size, batch_size, max_new_tokens
        How the documents are cut and how much the teacher writes.
    on_event, should_stop
        Progress (stage ``distill``); stopping returns what was drafted so far.

    Returns
    -------
    list[EvalRow]
        ``kind="distilled"``, ``status="draft"``.

    Raises
    ------
    DataError
        No documents, or the teacher wrote no usable pair.
    ModelError
        The teacher cannot be loaded.
    """
    from backend.data.distill import generate_pairs, teacher_generate_fn
    from backend.documents import load_and_chunk

    files = project_document_files(project)
    if not files:
        raise DataError("the project has no documents to draft questions from", file=_root(project),
                        hint="add documents on the Documents page (or `tune docs add`)")
    chunks = []
    for f in files:
        chunks.extend(load_and_chunk(f, chunk_size, 0))
    chunks = [c for c in chunks if len(c.page_content.strip()) >= 80]
    if not chunks:
        raise DataError("the documents hold no text to ask questions about", file=_root(project))
    n = max(1, int(n))
    # evenly spaced chunks; a few spare ones for chunks the teacher writes nothing usable for
    want = min(len(chunks), n + max(2, n // 4))
    picked = [chunks[round(i * (len(chunks) - 1) / max(1, want - 1))] for i in range(want)] if want > 1 else chunks[:1]
    picked = list({id(c): c for c in picked}.values())
    teacher_name = teacher or "default"
    if generate_fn is None:
        generate_fn = teacher_generate_fn(teacher_name, max_new_tokens=max_new_tokens, on_event=on_event)
    out: list[EvalRow] = []
    for c, q, a in generate_pairs(picked, generate_fn, questions_per_chunk=1, batch_size=batch_size,
                                  on_event=on_event, should_stop=should_stop, stop_after=n):
        src = str(c.metadata.get("source") or "")
        out.append(EvalRow(f"d{len(out) + 1:02d}", q, a, source=Path(src).name if src else "", kind="distilled",
                           lineage={"document": src, "page": c.metadata.get("page"),
                                    "chunk": c.metadata.get("chunk"), "teacher": teacher_name,
                                    "passage": c.page_content},
                           status="draft"))
    if not out and not should_stop():
        raise DataError(f"the teacher wrote no usable question/answer pairs for {len(picked)} chunk(s)",
                        hint="use a larger instruct model as teacher")
    return out


# ---------------------------------------------------------------------------
# a test row that is also a training row


def _training_files(project_or_run: "Project | str | Path") -> list[Path]:
    root = _root(project_or_run)
    if runs.is_run_dir(root) and not (root / "project.json").exists():
        from backend.config import RunConfig

        cfg = RunConfig.load(runs.config_path(root))
        return [Path(f) for f in cfg.data.train_files]
    settings = getattr(project_or_run, "settings", None)
    if settings is None:
        from backend.fsutil import read_json

        settings = (read_json(root / "project.json", {}) or {}).get("settings") or {}
    roles = (settings or {}).get("dataset_roles") or {}
    ds = root / "datasets"
    if not ds.is_dir():
        return []
    files = sorted(f for f in ds.iterdir() if f.is_file() and not f.name.startswith(".") and is_inside(f, root))
    if roles:
        files = [f for f in files if roles.get(f.name, "train") == "train"]
    return files


def training_questions(project_or_run: "Project | str | Path") -> list[tuple[str, str, int]]:
    """``(question, file name, line)`` of every training row (last user turn or prompt).

    For a run, the rows of its validation split are left out: they were never trained on.
    """
    from backend.data.formats import normalise_file
    from backend.data.readers import read_file

    root = _root(project_or_run)
    held_out: set[tuple[str, int]] = set()
    if (root / "config.json").exists() and not (root / "project.json").exists():
        # a run trained on its files minus its validation split: held-out rows are not training rows
        try:
            held_out = {(str(ex.file), ex.line) for ex in validation_examples(root)}
        except (TuneError, OSError):
            held_out = set()
    out = []
    for f in _training_files(project_or_run):
        try:
            fr = read_file(f)
        except TuneError:
            continue
        for ex in normalise_file(fr.rows, str(f)).examples:
            qa = _qa_from_example(ex)
            if qa and (str(ex.file), ex.line) not in held_out:
                out.append((qa[0], f.name, ex.line))
    return out


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def training_overlap(rows: Sequence[EvalRow], project_or_run: "Project | str | Path",
                     threshold: float = NEAR_DUPLICATE) -> list[dict[str, Any]]:
    """Test rows whose question is (nearly) a training question.

    Parameters
    ----------
    rows
        The evalset.
    project_or_run
        A project (its training datasets) or a run folder (the files it trained on).
    threshold
        Similarity (difflib ratio of the normalised questions) from which a
        question counts as a near duplicate; questions with different numbers
        in them never do.

    Returns
    -------
    list[dict]
        ``{"id", "question", "training_question", "file", "line", "similarity", "match"}``
        with ``match`` ``"exact"`` or ``"near"``; empty when none overlap.
    """
    train = [(normalise_text(q), q, f, ln) for q, f, ln in training_questions(project_or_run)]
    exact = {t[0]: t for t in train}
    out = []
    for r in rows:
        nq = normalise_text(r.question)
        hit = exact.get(nq)
        if hit is not None:
            out.append({"id": r.id, "question": r.question, "training_question": hit[1], "file": hit[2],
                        "line": hit[3], "similarity": 1.0, "match": "exact"})
            continue
        best, best_t = 0.0, None
        sm = difflib.SequenceMatcher(b=nq, autojunk=False)
        digits = _numbers(nq)
        for t in train:
            if _numbers(t[0]) != digits:  # "error E4" and "error E5" are different questions
                continue
            sm.set_seq1(t[0])
            if sm.real_quick_ratio() < threshold or sm.quick_ratio() < threshold:
                continue
            s = sm.ratio()
            if s > best:
                best, best_t = s, t
        if best_t is not None and best >= threshold:
            out.append({"id": r.id, "question": r.question, "training_question": best_t[1], "file": best_t[2],
                        "line": best_t[3], "similarity": round(best, 3), "match": "near"})
    return out


__all__ = ["EvalRow", "KINDS", "check_name", "draft_from_documents", "evalset_path", "from_validation",
           "keyword_found", "list_evalsets", "normalise_text", "read_evalset", "resolve_evalset",
           "training_overlap", "training_questions", "validation_examples", "write_evalset"]
