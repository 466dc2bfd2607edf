"""The expert's corrections: one owner for ``datasets/feedback.jsonl`` (docs/architecture.md, "Corrections").

"Wrong? Correct it" on the Chat page and on the Evaluate page's answer cards
makes a :class:`Correction`: the question, the model's answer (*rejected*), the
expert's answer (*chosen*), the mode and the run that answered, the passages the
model was shown, the time, and whether a reworded copy of the question also
belongs in the test set.

The file stays a ``messages`` dataset, one row a line, so the next run trains on
the corrected answers exactly as before (a plain SFT row, role ``train`` by
default); what the row alone cannot say rides beside it under ``"correction"``::

    {"messages": [{"role": "user", "content": Q}, {"role": "assistant", "content": CHOSEN}],
     "correction": {"id": "c-…", "rejected": "…", "mode": "tuned+rag", "run": "<run id>",
                    "passages": [{"file": "…", "page": null, "chunk": 0, "text": "…"}],
                    "time": 1764…, "test": false}}

A row written before corrections kept more (``messages`` only) still loads: a
correction without a rejected answer, whose id is ``line-<n>``.  The file is a
project file, so it is read as untrusted input (:mod:`backend.records`: a bad
line is skipped and named, never fatal) and written never through a link
(:func:`backend.confine.append_text` to add; an atomic replace inside the project
to edit or delete, which keeps every other line byte for byte, the unreadable
ones included).

Corrections feed training twice: as SFT rows (the file itself) and as preference
pairs (:func:`preference_pairs`: prompt, chosen, rejected).  Those marked
``test`` are written, reworded, to ``evalsets/corrections.jsonl``
(:func:`sync_test_set`), so the test is never the training row itself.
"""

from __future__ import annotations

import json
import time as _time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from backend import records
from backend.confine import append_text, confine, is_link
from backend.errors import DataError
from backend.fsutil import atomic_write_bytes, atomic_write_text

FEEDBACK_FILE = "feedback.jsonl"
"""The corrections file's name, in ``<project>/datasets/``."""
DATASETS_DIR = "datasets"
TEST_SET = "corrections"
"""The evalset (``evalsets/corrections.jsonl``) that holds the reworded questions of corrections marked for testing."""
MAX_PASSAGE_CHARS = 4000
"""A passage kept with a correction is cut to this many characters (a chunk is far shorter)."""

_SHAPE = {"id": "text", "rejected": "text", "mode": "text", "run": "text?", "passages": "list",
          "time": "number?", "test": "true/false"}
_PASSAGE_SHAPE = {"file": "text", "path": "text", "page": "integer?", "chunk": "integer?", "text": "text"}


@dataclass
class Correction:
    """One corrected answer.

    Attributes
    ----------
    id
        Stable within the file (``c-<hex>``; ``line-<n>`` for a row written before corrections kept more).
    question
        What was asked.
    chosen
        The expert's answer (what the model should have said).
    rejected
        The model's answer ("" when not kept).
    mode
        The mode that answered (``tuned+rag``, ``base``…; "" when not kept).
    run
        The run's id (its folder name in ``runs/``) whose adapter answered, or ``None``.
    passages
        The passages the model was shown: ``{"file", "path", "page", "chunk", "text"}``.
    time
        When it was saved (seconds since the epoch), or ``None``.
    test
        Also test it: a reworded copy of the question goes into ``evalsets/corrections.jsonl``.
    system
        The row's system prompt, if it has one.
    line
        1-based line in the file (0 when built in memory).
    """

    id: str
    question: str
    chosen: str
    rejected: str = ""
    mode: str = ""
    run: str | None = None
    passages: list[dict[str, Any]] = field(default_factory=list)
    time: float | None = None
    test: bool = False
    system: str = ""
    line: int = 0

    @property
    def legacy(self) -> bool:
        """A row from before corrections kept the model's answer (only the question and the right answer)."""
        return self.id.startswith("line-")

    @property
    def is_pair(self) -> bool:
        """Whether it makes a preference pair: the model's answer is kept and differs from the expert's."""
        return bool(self.rejected.strip()) and self.rejected.strip() != self.chosen.strip()

    def messages(self) -> list[dict[str, str]]:
        """The SFT row: ``[system?], user, assistant = chosen``."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": "user", "content": self.question}, {"role": "assistant", "content": self.chosen}]

    def to_row(self) -> dict[str, Any]:
        """The line written to the file (a ``messages`` row with its ``correction`` beside it)."""
        return {"messages": self.messages(),
                "correction": {"id": self.id, "rejected": self.rejected, "mode": self.mode, "run": self.run,
                               "passages": list(self.passages), "time": self.time, "test": self.test}}

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON form, for ``tune corrections --json``."""
        return {"id": self.id, "question": self.question, "chosen": self.chosen, "rejected": self.rejected,
                "mode": self.mode, "run": self.run, "passages": list(self.passages), "time": self.time,
                "test": self.test, "system": self.system, "line": self.line, "legacy": self.legacy}


# -- where ------------------------------------------------------------------------------------
def _root(project: Any) -> Path:
    # a Project (its .root is the folder) or the folder itself; a Path's own .root is "/"
    return Path(project if isinstance(project, (str, Path)) else project.root).expanduser()


def corrections_path(project: Any) -> Path:
    """``<project>/datasets/feedback.jsonl``."""
    return _root(project) / DATASETS_DIR / FEEDBACK_FILE


def test_set_path(project: Any) -> Path:
    """``<project>/evalsets/corrections.jsonl``."""
    from backend.evalsets import EVALSETS_DIR

    return _root(project) / EVALSETS_DIR / f"{TEST_SET}.jsonl"


# -- reading ----------------------------------------------------------------------------------
def _passages(value: Any) -> list[dict[str, Any]]:
    out = []
    for p in value if isinstance(value, list) else []:
        if isinstance(p, dict) and records.field_problem(p, _PASSAGE_SHAPE) is None:
            out.append({k: p.get(k) for k in ("file", "path", "page", "chunk", "text") if k in p})
    return out


def from_row(rec: dict[str, Any], line: int = 0) -> Correction:
    """A correction from one line of the file.

    Raises
    ------
    ValueError
        The line is not a single question with its answer, or its ``correction`` part has a
        field of the wrong type; the message says which.
    """
    msgs = rec.get("messages")
    if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
        raise ValueError("no 'messages' list of {role, content} objects")
    system = ""
    if msgs and msgs[0].get("role") == "system":
        system = records.text(msgs[0].get("content"))
        msgs = msgs[1:]
    if len(msgs) != 2 or [m.get("role") for m in msgs] != ["user", "assistant"]:
        raise ValueError("not one question and its answer (a user message, then an assistant message)")
    question, chosen = (m.get("content") for m in msgs)
    if not isinstance(question, str) or not isinstance(chosen, str):
        raise ValueError("a message's 'content' should be text")
    extra = rec.get("correction")
    if extra is None:
        return Correction(f"line-{line}", question, chosen, system=system, line=line)
    if not isinstance(extra, dict):
        raise ValueError("'correction' should be an object")
    problem = records.field_problem(extra, _SHAPE) or records.field_problem(extra, {"id": "text"}, optional=False)
    if problem:
        raise ValueError(f"correction: {problem}")
    return Correction(extra["id"], question, chosen, rejected=extra.get("rejected", ""),
                      mode=extra.get("mode", ""), run=extra.get("run"), passages=_passages(extra.get("passages")),
                      time=records.finite(extra.get("time")), test=bool(extra.get("test", False)),
                      system=system, line=line)


def load(project: Any, skipped: list[records.Skipped] | None = None) -> list[Correction]:
    """The project's corrections, in file order; a line that is not one is skipped and named.

    Parameters
    ----------
    project
        A ``Project`` or its folder.
    skipped
        Receives a :class:`backend.records.Skipped` for every line left out (not JSON, not a
        question with its answer, a field of the wrong type, an id used twice).

    Raises
    ------
    OSError
        The file exists but cannot be read.
    """
    path = corrections_path(project)
    notes: list[records.Skipped] = [] if skipped is None else skipped
    label = f"{DATASETS_DIR}/{FEEDBACK_FILE}"
    out: list[Correction] = []
    seen: set[str] = set()
    if is_link(path):  # a link planted in the project is not one of its files (confinement)
        notes.append(records.Skipped(label, None, "is a symbolic link; not read"))
        return out
    for n, rec in records.read_jsonl(path, notes, name=label):
        try:
            c = from_row(rec, n)
        except ValueError as e:
            notes.append(records.Skipped(label, n, str(e)))
            continue
        if c.id in seen:
            notes.append(records.Skipped(label, n, f"correction id {c.id!r} used twice; the first is kept"))
            continue
        seen.add(c.id)
        out.append(c)
    return out


def find(project: Any, correction_id: str) -> Correction:
    """The correction with this id.

    Raises
    ------
    DataError
        No correction has it; the message names the file.
    """
    for c in load(project):
        if c.id == correction_id:
            return c
    raise DataError(f"no correction with id {correction_id!r}", file=corrections_path(project),
                    hint="`tune corrections PROJECT` lists the ids")


# -- writing ----------------------------------------------------------------------------------
def passages_of(sources: Iterable[Any]) -> list[dict[str, Any]]:
    """The passages to keep from retrieved sources (``Source`` objects or their dicts)."""
    out = []
    for s in sources:
        d = s if isinstance(s, dict) else {k: getattr(s, k, None) for k in ("file", "path", "page", "chunk", "text")}
        p = {"file": records.text(d.get("file")), "path": records.text(d.get("path")),
             "page": records.integer(d.get("page")), "chunk": records.integer(d.get("chunk")),
             "text": records.text(d.get("text"))[:MAX_PASSAGE_CHARS]}
        out.append(p)
    return out


def add(project: Any, question: str, chosen: str, *, rejected: str = "", mode: str = "", run: str | Path | None = None,
        passages: Iterable[Any] = (), test: bool = False, system: str = "",
        when: float | None = None) -> Correction:
    """Append a correction to ``datasets/feedback.jsonl`` (never through a link).

    Parameters
    ----------
    project
        A ``Project`` or its folder.
    question, chosen
        What was asked, and the expert's answer.
    rejected, mode, run
        The model's answer, the mode that gave it, and the run (its folder or id) whose adapter answered.
    passages
        What the model was shown (``Source`` objects or dicts; see :func:`passages_of`).
    test
        Also put a reworded copy of the question in the test set (:func:`sync_test_set`).
    system
        A system prompt for the SFT row.
    when
        Its time (now by default).

    Raises
    ------
    DataError
        The question or the answer is empty.
    backend.confine.ConfinementError
        The file, or ``datasets/``, is a link out of the project.
    """
    root = _root(project)
    question, chosen = question.strip(), chosen.strip()
    if not question or not chosen:
        raise DataError("a correction needs the question and the right answer", field="chosen" if question else "question",
                        hint="write the answer the model should have given")
    c = Correction(f"c-{uuid.uuid4().hex[:12]}", question, chosen, rejected=rejected.strip(), mode=mode,
                   run=Path(run).name if run else None, passages=passages_of(passages),
                   time=_time.time() if when is None else when, test=test, system=system)
    append_text(corrections_path(root), json.dumps(c.to_row(), ensure_ascii=False) + "\n", root=root)
    if test:
        sync_test_set(root)
    return c


def _rewrite(root: Path, correction_id: str, new_line: bytes | None) -> None:
    """Replace (or, with ``None``, drop) the line of one correction; every other line is kept byte for byte."""
    path = corrections_path(root)
    c = find(root, correction_id)
    confine(path.parent, root, source=path, what="the folder of")
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    if not 0 < c.line <= len(lines):
        raise DataError(f"the file changed while correction {correction_id!r} was edited", file=path,
                        hint="open the corrections again and repeat the edit")
    if new_line is None:
        del lines[c.line - 1]
    else:
        lines[c.line - 1] = new_line
    atomic_write_bytes(path, b"\n".join(lines), root=root)


def update(project: Any, correction_id: str, *, chosen: str | None = None, question: str | None = None,
           test: bool | None = None) -> Correction:
    """Change a correction's answer, question or test mark; returns it as saved.

    A row from before corrections kept more gets an id of its own when edited.

    Raises
    ------
    DataError
        No correction has that id, or the new answer or question is empty.
    """
    root = _root(project)
    c = find(root, correction_id)
    if chosen is not None:
        if not chosen.strip():
            raise DataError("the right answer cannot be empty", field="chosen",
                            hint="write the answer, or delete the correction")
        c.chosen = chosen.strip()
    if question is not None:
        if not question.strip():
            raise DataError("the question cannot be empty", field="question", hint="write the question")
        c.question = question.strip()
    if test is not None:
        c.test = bool(test)
    line = c.line
    if c.legacy:
        c.id = f"c-{uuid.uuid4().hex[:12]}"
    _rewrite(root, correction_id, json.dumps(c.to_row(), ensure_ascii=False).encode("utf-8"))
    c.line = line
    sync_test_set(root)
    return c


def delete(project: Any, correction_id: str) -> Correction:
    """Remove a correction from the file (and its question from the test set); returns what was removed.

    Raises
    ------
    DataError
        No correction has that id.
    """
    root = _root(project)
    c = find(root, correction_id)
    _rewrite(root, correction_id, None)
    sync_test_set(root)
    return c


# -- what training and testing take from them -------------------------------------------------
def preference_pairs(project: Any, skipped: list[records.Skipped] | None = None) -> list[dict[str, Any]]:
    """The corrections that make preference pairs (the model's answer kept and different from the expert's).

    Returns
    -------
    list of dict
        ``{"id", "prompt": [messages: system?, user], "chosen": text, "rejected": text}`` — the
        shape preference tuning (DPO, ORPO) reads.
    """
    out = []
    for c in load(project, skipped):
        if c.is_pair:
            out.append({"id": c.id, "prompt": c.messages()[:-1], "chosen": c.chosen, "rejected": c.rejected})
    return out


def test_question(question: str) -> str:
    """The reworded question a correction is tested with (deterministic; not the row trained on).

    Training's rewordings take the first templates of the order for the run's seed, and its
    held-out rewording the next one (docs/architecture.md, "The knowledge recipe"); this takes
    the last template of the seed-0 order, so with the default seed it is neither.
    """
    from backend.data.rewording import TEMPLATES, reword

    options = reword(question, len(TEMPLATES))
    return options[-1] if options else question


def _written_here(path: Path) -> bool:
    """Whether ``path`` is absent or holds only rows :func:`sync_test_set` wrote (lineage ``from: correction``)."""
    if not path.is_file() or is_link(path):
        return not path.exists() or is_link(path)
    skipped: list[records.Skipped] = []
    try:
        ours = all(isinstance(row.get("lineage"), dict) and row["lineage"].get("from") == "correction"
                   for _line, row in records.read_jsonl(path, skipped))
    except OSError:
        return False
    return ours and not skipped  # a line that is not a JSON object is not one this module wrote


def sync_test_set(project: Any) -> Path | None:
    """Write ``evalsets/corrections.jsonl``: one reworded question per correction marked ``test``.

    The rows are kind ``trained`` (their facts are trained on) with lineage
    ``{"from": "correction", "correction": id, "asked": the question as written}``. With no
    correction marked the file is removed. Returns the file written, or ``None``.

    Raises
    ------
    DataError
        ``evalsets/corrections.jsonl`` holds rows not written here (a test set the user made
        under that name): it is never overwritten or removed.
    """
    from backend.evalsets import EvalRow

    root = _root(project)
    path = test_set_path(root)
    if not _written_here(path):
        raise DataError(f"{TEST_SET}.jsonl in evalsets/ is a test set that was not made from corrections; it is "
                        "left as it is, and the corrections' test questions were not written",
                        file=str(path), hint=f"rename that file (say to {TEST_SET}-mine.jsonl), then tick "
                                             "“Also add to the test set” again")
    rows = [EvalRow(id=c.id, question=test_question(c.question), answer=c.chosen, kind="trained",
                    lineage={"from": "correction", "correction": c.id, "asked": c.question})
            for c in load(root) if c.test]
    if not rows:
        if path.is_file() or is_link(path):
            path.unlink()  # a link is removed itself, never its target
        return None
    atomic_write_text(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in rows), root=root)
    return path
