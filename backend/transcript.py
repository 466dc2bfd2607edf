"""A project's chat transcript: saved per answer, restored on reopen, exported as Markdown.

The Chat page keeps what was asked and answered in
``<project>/chat/transcript.jsonl`` (the path is ``Project.transcript_path``,
docs/architecture.md, "The project folder"), one JSON object per answer::

    {"v": 1, "exchange": "…", "time": 1764500000.0, "question": "…", "mode": "tuned+rag",
     "run": "/…/runs/<id>" | null, "run_name": "run Nov 30 11:51" | null, "answer": "…",
     "sources": [Source.to_dict(), …], "seconds": 2.41, "stopped": false, "abstained": false,
     "evidence": [{"source_index", "sentence", "start", "end", "score"}, …],
     "withheld": "" | "the model's words grounding replaced", "unsupported": ["579", …],
     "quoted": false | true (the answer is an evidence sentence, not the model's words)}

Answers to one question (base and tuned side by side) share ``exchange``.
Lines are appended, never rewritten, so a crash loses at most the answer being
written; a torn or foreign line is skipped on reading.  "Clear" moves the file
aside with a timestamp (:func:`archive`) instead of deleting it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import records
from backend.fsutil import atomic_write_text, stamped_path

VERSION = 1
MODE_TITLES = {"tuned+rag": "Tuned model · with documents", "tuned": "Tuned model · no documents",
               "base+rag": "Base model · with documents", "base": "Base model · no documents"}


@dataclass
class Exchange:
    """One question and the answers given to it, in the order they were saved.

    Attributes
    ----------
    id
        The ``exchange`` key its answers share.
    question
        What was asked.
    time
        When the first answer was saved (seconds since the epoch).
    answers
        The answer records (dicts, as in the module docstring), one per mode.
    """

    id: str
    question: str
    time: float
    answers: list[dict[str, Any]] = field(default_factory=list)


def new_exchange_id() -> str:
    """A fresh key for the answers to one question."""
    return uuid.uuid4().hex[:12]


def answer_record(answer: Any, *, exchange: str, run_dir: str | Path | None = None,
                  run_name: str | None = None) -> dict[str, Any]:
    """The transcript line for one answer.

    Parameters
    ----------
    answer
        A :class:`backend.rag.chain.Answer` (or anything with its ``to_dict``).
    exchange
        The key shared by the answers to the same question (:func:`new_exchange_id`).
    run_dir, run_name
        The run whose model answered as "tuned" (``None``: the base model only).
    """
    d = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)
    return {"v": VERSION, "exchange": exchange, "time": time.time(), "question": d.get("question", ""),
            "mode": d.get("mode", ""), "run": str(run_dir) if run_dir else None,
            "run_name": run_name or None, "answer": d.get("answer", ""), "sources": list(d.get("sources") or []),
            "seconds": d.get("seconds"), "stopped": bool(d.get("stopped")),
            "abstained": bool(d.get("abstained")), "evidence": list(d.get("evidence") or []),
            "withheld": str(d.get("withheld") or ""), "unsupported": [str(c) for c in d.get("unsupported") or []],
            "quoted": bool(d.get("quoted"))}


def append(path: str | Path, record: dict[str, Any], *, root: str | Path | None = None) -> None:
    """Append one answer record to the transcript (created with its folder when missing).

    One ``write`` of one line, flushed to disk: a crash leaves at most a torn
    last line, which :func:`load` skips and the next append starts after.  The
    file is never appended through a link (:func:`backend.confine.append_text`).

    Parameters
    ----------
    path
        ``chat/transcript.jsonl`` of a project.
    record
        The answer record (:func:`answer_record`).
    root
        The project folder: ``chat/`` must resolve inside it.

    Raises
    ------
    backend.confine.ConfinementError
        ``path`` is a link, or its folder leads outside ``root``.
    """
    from backend.confine import append_text

    append_text(path, json.dumps(record, ensure_ascii=False, default=str) + "\n", root=root)


_RECORD = {"question": "text", "answer": "text", "exchange": "text?", "time": "number?", "mode": "text?",
           "run": "text?", "run_name": "text?", "sources": "list?", "seconds": "number?",
           "stopped": "true/false?", "abstained": "true/false?", "evidence": "list?", "withheld": "text?",
           "unsupported": "list?", "quoted": "true/false?"}
_SOURCE = {"file": "text", "path": "text", "chunk": "integer", "text": "text", "score": "number"}
_SOURCE_OPTIONAL = {"page": "integer?", "bm25": "number", "fused": "number", "id": "text"}
_EVIDENCE = {"source_index": "integer", "start": "integer", "end": "integer", "score": "number?",
             "sentence": "text?"}


def record_problem(rec: dict[str, Any]) -> str | None:
    """What keeps a transcript line from being shown, in words (``None``: it is a usable answer record)."""
    for key in ("question", "answer"):
        if key not in rec:
            return f"no '{key}'"
    problem = records.field_problem(rec, _RECORD)
    if problem:
        return problem
    if rec.get("mode") not in (None, "") and rec["mode"] not in MODE_TITLES:
        return f"unknown mode {str(rec['mode'])[:40]!r}"
    for i, s in enumerate(rec.get("sources") or [], 1):
        problem = _source_problem(s)
        if problem:
            return f"source {i}: {problem}"
    for i, e in enumerate(rec.get("evidence") or [], 1):
        problem = records.field_problem(e, _EVIDENCE) if isinstance(e, dict) else "not an object"
        if problem:
            return f"evidence {i}: {problem}"
    return None


def _source_problem(s: Any) -> str | None:
    if not isinstance(s, dict):
        return "not an object"
    return records.field_problem(s, _SOURCE, optional=False) or records.field_problem(s, _SOURCE_OPTIONAL)


def load(path: str | Path, skipped: list[records.Skipped] | None = None) -> list[Exchange]:
    """The transcript's exchanges, oldest first (``[]`` when there is none).

    The file is a project's and may hold anything (docs/architecture.md,
    "Readers"): a line that is not an answer record as :data:`_RECORD` describes
    it (torn by a crash, edited by hand, a wrong type in a field) is skipped,
    and named in ``skipped`` when given; the other lines load.

    Parameters
    ----------
    path
        ``chat/transcript.jsonl``.
    skipped
        Receives a :class:`backend.records.Skipped` (file, line, what was wrong) per line left out.

    Raises
    ------
    OSError
        The file exists but cannot be read (the caller says so; nothing is lost).
    """
    notes: list[records.Skipped] = [] if skipped is None else skipped
    out: list[Exchange] = []
    by_id: dict[str, Exchange] = {}
    for n, rec in records.read_jsonl(path, notes):
        problem = record_problem(rec)
        if problem:
            notes.append(records.Skipped(str(path), n, problem))
            continue
        key = rec.get("exchange") or new_exchange_id()
        ex = by_id.get(key)
        if ex is None:
            when = records.finite(rec.get("time"), 0.0)
            ex = by_id[key] = Exchange(key, rec["question"], when if 0 < when < 1e11 else 0.0)  # a date it can show
            out.append(ex)
        ex.answers.append(rec)
    return out


def sources_of(record: dict[str, Any]) -> list:
    """The record's sources as :class:`backend.rag.source.Source` objects (malformed ones left out)."""
    from backend.rag.source import Source

    out = []
    for s in record.get("sources") or []:
        if _source_problem(s):
            continue
        out.append(Source(**{"page": None, **{k: v for k, v in s.items() if k in _SOURCE or k in _SOURCE_OPTIONAL}}))
    return out


def archive(path: str | Path) -> Path | None:
    """Move the transcript aside as ``transcript-YYYYmmdd-HHMMSS.jsonl`` (what "Clear" does).

    Returns
    -------
    Path or None
        Where the old transcript now is; ``None`` when there was nothing to move.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        return None
    dest = stamped_path(path.parent, f"{path.stem}-", path.suffix)
    os.replace(path, dest)
    return dest


QUOTED_NOTE = "Quoted from your documents — not the model's words"
"""Shown with an answer that grounding replaced by an evidence sentence (``Answer.quoted``)."""


def lacking(unsupported: list) -> str:
    """What a withheld answer stated that the documents lack, in words (Chat page and Markdown alike).

    >>> lacking(["579", "199"]), lacking([])
    ("the documents don't contain 579, 199", "the documents don't contain what it states")
    """
    return "the documents don't contain " + (", ".join(str(c) for c in unsupported) or "what it states")


def to_markdown(exchanges: list[Exchange], title: str = "Chat transcript") -> str:
    """The exchanges as a Markdown document: each question, its answers with mode, run, time and sources."""
    lines = [f"# {title}", ""]
    for ex in exchanges:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(ex.time)) if ex.time else ""
        lines += [f"## {ex.question.strip() or '(empty question)'}", ""]
        if when:
            lines += [f"*Asked {when}*", ""]
        for a in ex.answers:
            mode = MODE_TITLES.get(a.get("mode", ""), a.get("mode", ""))
            head = f"### {mode}"
            if str(a.get("mode", "")).startswith("tuned") and a.get("run_name"):
                head += f" ({a['run_name']})"
            lines += [head, ""]
            lines += [(a.get("answer") or "").strip() or "*(no answer)*", ""]
            if a.get("quoted"):
                lines += [f"*{QUOTED_NOTE}.*", ""]
            if a.get("withheld"):
                lines += [f"> The model wrote: {' '.join(str(a['withheld']).split())}  ",
                          f"> (withheld: {lacking(a.get('unsupported') or [])})", ""]
            facts = []
            if isinstance(a.get("seconds"), (int, float)):
                facts.append(f"answered in {a['seconds']:.1f} s")
            if a.get("stopped"):
                facts.append("stopped")
            if facts:
                lines += ["*" + " · ".join(facts) + "*", ""]
            sources = a.get("sources") or []
            if sources:
                lines.append("Sources:")
                for i, s in enumerate(sources, 1):
                    page = f" p.{s['page']}" if s.get("page") is not None and str(s.get("file", "")).lower().endswith(
                        ".pdf") else ""
                    score = f" (similarity {s['score']:.2f})" if isinstance(s.get("score"), (int, float)) else ""
                    lines.append(f"{i}. {s.get('file', '?')}{page}, passage {int(s.get('chunk', 0)) + 1}{score}")
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def export_markdown(path: str | Path, out: str | Path, title: str = "Chat transcript") -> Path:
    """Write the transcript at ``path`` as Markdown to ``out`` (atomically); returns ``out``."""
    out = Path(out)
    atomic_write_text(out, to_markdown(load(path), title))
    return out


__all__ = ["Exchange", "MODE_TITLES", "QUOTED_NOTE", "answer_record", "append", "archive", "export_markdown", "load",
           "new_exchange_id", "sources_of", "to_markdown"]
