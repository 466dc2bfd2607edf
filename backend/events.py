"""The one event vocabulary: engine, data, indexing, chat and eval; CLI, GUI, bench and ``metrics.jsonl``.

Every event is a typed record (a dataclass below, with a ``TYPE`` literal)
and travels as a flat, JSON-serialisable ``dict`` with ``type`` and ``time``
(Unix seconds) plus that record's fields — so ``on_event`` callbacks keep
receiving dicts and ``rec["loss"]`` keeps working.  One JSON encoding for
all of them: :func:`encode` (one line) and :func:`decode`; both check the
record against its type, and an unknown type or field raises
:class:`EventError` (docs/architecture.md, "Events").

=============  ==============================================================================
``progress``   ``{stage, current, total, message}`` — any long job (loading, tokenising, embedding, eval)
``log``        ``{level, message}``
``train``      ``{step, max_steps, epoch, loss, learning_rate, grad_norm, tokens_per_s, tokens_seen, eta_s, elapsed_s, memory_mb}`` + for DPO / ORPO ``reward_margin, reward_accuracy, reward_chosen, reward_rejected, logps_chosen, logps_rejected``
``eval``       ``{step, epoch, eval_loss, perplexity}``
``checkpoint`` ``{step, path}``
``oom_retry``  ``{step, batch_size, gradient_accumulation, message}``
``started``    ``{run_dir, resumed_from, config}``
``finished``   ``{status: completed|failed|cancelled, reason, run_dir, adapter_dir, metrics, error}``
``answer_start`` ``{mode}`` — the chat starts answering in a mode
``token``      ``{mode, text}`` — a streamed piece of an answer
``sources``    ``{mode, sources}`` — the passages an answer used
``answer``     ``{mode, answer}`` — the finished answer (an ``Answer.to_dict()``)
``answer_check`` ``{status, verdict, message, cause, advice, n, tuned_right, base_right, …}`` — the check after training
``result``     ``{value}`` — what a job run in a child process returned (JSON), just before its ``finished``
=============  ==============================================================================

Long jobs take ``on_event(event)`` and ``should_stop() -> bool``.  Adding a
type: a dataclass below with ``TYPE`` and its fields, decorated ``@_register``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

# -- the type names (compare ``rec["type"]`` with these, not with string literals) ----------------
PROGRESS = "progress"
LOG = "log"
TRAIN = "train"
EVAL = "eval"
CHECKPOINT = "checkpoint"
OOM_RETRY = "oom_retry"
STARTED = "started"
FINISHED = "finished"
ANSWER_START = "answer_start"
TOKEN = "token"
SOURCES = "sources"
ANSWER = "answer"
ANSWER_CHECK = "answer_check"
RESULT = "result"

STEP_TYPES = (TRAIN, EVAL, CHECKPOINT)
"""Records tied to a training step (a resume replays the steps after its checkpoint)."""

OnEvent = Callable[[dict], None]
ShouldStop = Callable[[], bool]


class EventError(ValueError):
    """A record that is not in the vocabulary: an unknown type, an unknown or missing field."""


def _now() -> float:
    return round(time.time(), 3)


@dataclass
class Event:
    """Base of every event record: its ``TYPE`` and when it happened."""

    TYPE: ClassVar[str] = ""
    time: float = field(default_factory=_now, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ``{"type": TYPE, "time": ..., **fields}`` (shallow: values as given)."""
        return {"type": self.TYPE, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def to_json(self) -> str:
        """One JSON line (see :func:`encode`)."""
        return encode(self)


EVENT_CLASSES: dict[str, type[Event]] = {}


def _register(cls: type[Event]) -> type[Event]:
    EVENT_CLASSES[cls.TYPE] = cls
    return cls


@_register
@dataclass
class Progress(Event):
    """Any long job moved on: ``current`` of ``total`` (``None``: unknown) in ``stage``."""

    TYPE: ClassVar[str] = PROGRESS
    stage: str
    current: float
    total: float | None = None
    message: str = ""


@_register
@dataclass
class Log(Event):
    """A line for people (``level``: info, warning, error)."""

    TYPE: ClassVar[str] = LOG
    message: str
    level: str = "info"


@_register
@dataclass
class Train(Event):
    """One logged optimizer step."""

    TYPE: ClassVar[str] = TRAIN
    step: int
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    tokens_seen: int | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    memory_mb: float | None = None
    # preference tuning (DPO, ORPO: backend/training/preference.py), averaged over the logged steps
    reward_margin: float | None = None
    reward_accuracy: float | None = None
    reward_chosen: float | None = None
    reward_rejected: float | None = None
    logps_chosen: float | None = None
    logps_rejected: float | None = None


@_register
@dataclass
class Eval(Event):
    """The validation loss at a step."""

    TYPE: ClassVar[str] = EVAL
    step: int
    eval_loss: float | None = None
    perplexity: float | None = None
    epoch: float | None = None


@_register
@dataclass
class Checkpoint(Event):
    """A checkpoint was written (complete: its marker is in)."""

    TYPE: ClassVar[str] = CHECKPOINT
    step: int
    path: str = ""


@_register
@dataclass
class OomRetry(Event):
    """Out of memory: continuing with a smaller micro-batch and the same effective batch."""

    TYPE: ClassVar[str] = OOM_RETRY
    step: int
    batch_size: int
    gradient_accumulation: int
    message: str = ""


@_register
@dataclass
class Started(Event):
    """A run started (or resumed from ``resumed_from``)."""

    TYPE: ClassVar[str] = STARTED
    run_dir: str
    resumed_from: str | None = None
    config: dict | None = None


@_register
@dataclass
class Finished(Event):
    """A run ended: ``status`` completed, failed or cancelled."""

    TYPE: ClassVar[str] = FINISHED
    status: str
    reason: str = ""
    run_dir: str | None = None
    adapter_dir: str | None = None
    metrics: dict | None = None
    error: dict | None = None


@_register
@dataclass
class AnswerStart(Event):
    """The chat starts answering in ``mode``."""

    TYPE: ClassVar[str] = ANSWER_START
    mode: str


@_register
@dataclass
class Token(Event):
    """A streamed piece of the answer in ``mode``."""

    TYPE: ClassVar[str] = TOKEN
    mode: str
    text: str


@_register
@dataclass
class Sources(Event):
    """The passages the answer in ``mode`` uses."""

    TYPE: ClassVar[str] = SOURCES
    mode: str
    sources: list


@_register
@dataclass
class Answer(Event):
    """The finished answer in ``mode`` (the chain's ``Answer`` object, or its dict)."""

    TYPE: ClassVar[str] = ANSWER
    mode: str
    answer: Any


@_register
@dataclass
class AnswerCheck(Event):
    """The check after training: held-out questions as tuned + documents and base + documents.

    ``status``: ``done``, ``skipped`` (``reason`` says why), ``cancelled`` or ``failed``.
    ``verdict``: ``helped``, ``same`` or ``worse`` (``done`` only); ``message`` says it in
    one sentence, ``notes`` what qualifies it (a one-question gap, quoted answers), ``cause`` and ``advice`` why tuning made things worse and what to change.
    ``*_right`` count the answers shown (after grounding), ``*_own_right`` the model's own
    words, ``*_quoted`` the answers that are an evidence sentence instead of the model's
    words.  ``questions``: one dict per question (backend/rag/check.py).
    """

    TYPE: ClassVar[str] = ANSWER_CHECK
    status: str
    verdict: str = ""
    message: str = ""
    notes: str = ""
    reason: str = ""
    cause: str = ""
    advice: str = ""
    source: str = ""
    n: int = 0
    tuned_right: int = 0
    base_right: int = 0
    tuned_own_right: int = 0
    base_own_right: int = 0
    tuned_quoted: int = 0
    base_quoted: int = 0
    seconds: float = 0.0
    questions: list = field(default_factory=list)


@_register
@dataclass
class Result(Event):
    """What a job run in a child process returned, as JSON (``backend.jobs``); its ``finished`` follows."""

    TYPE: ClassVar[str] = RESULT
    value: Any = None


EVENT_TYPES = tuple(EVENT_CLASSES)


def event_class(type: str) -> type[Event]:
    """The record class of ``type``; raises :class:`EventError` for an unknown type."""
    try:
        return EVENT_CLASSES[type]
    except (KeyError, TypeError):  # TypeError: a list or an object where the type's name belongs
        raise EventError(f"unknown event type {str(type)[:60]!r} (known: {', '.join(EVENT_TYPES)})") from None


def make(type: str, **fields: Any) -> Event:
    """A typed record of ``type``; raises :class:`EventError` for an unknown type or field."""
    cls = event_class(type)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise EventError(f"{type} events have no field(s) {', '.join(unknown)}")
    try:
        return cls(**fields)
    except TypeError as e:  # a required field is missing
        raise EventError(f"{type} event: {e}") from None


def from_dict(rec: dict[str, Any]) -> Event:
    """The typed record of a wire dict; raises :class:`EventError` when it is not in the vocabulary."""
    if not isinstance(rec, dict) or "type" not in rec:
        raise EventError(f"not an event record: {str(rec)[:120]}")
    fields = {k: v for k, v in rec.items() if k != "type"}
    return make(rec["type"], **fields)


_KINDS = {int: "integer", float: "number", str: "text", dict: "object", list: "list", bool: "true/false"}


@functools.lru_cache(maxsize=None)
def _field_spec(cls: type[Event]) -> dict[str, str]:
    """``{field: records type}`` of a record class, from its annotations (``Any`` fields are not checked)."""
    hints = typing.get_type_hints(cls)
    spec = {}
    for f in dataclasses.fields(cls):
        hint = hints.get(f.name)
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        nullable = type(None) in args
        kinds = [_KINDS[a] for a in args if a in _KINDS]
        if len(kinds) == 1:
            spec[f.name] = kinds[0] + ("?" if nullable else "")
    return spec


def problem(rec: Any) -> str | None:
    """What keeps a record read from a file from being used, in words (``None``: it can be used).

    Beyond :func:`from_dict` (the vocabulary), every field's value must have its
    declared type — a ``step`` that is text or a ``loss`` that is a list is a
    problem — because records read back come from a file anyone may have edited
    (docs/architecture.md, "Readers").
    """
    from backend.records import field_problem

    try:
        from_dict(rec)
    except EventError as e:
        return str(e)[:200]
    return field_problem(rec, {"time": "number", **_field_spec(EVENT_CLASSES[rec["type"]])})


def event(type: str, **fields: Any) -> dict:
    """An event of ``type`` with the current time, as its wire dict (checked against the vocabulary)."""
    return make(type, **fields).to_dict()


def progress(stage: str, current: float, total: float | None, message: str = "") -> dict:
    """A ``progress`` event."""
    return Progress(stage=stage, current=current, total=total, message=message).to_dict()


def log(message: str, level: str = "info") -> dict:
    """A ``log`` event."""
    return Log(message=message, level=level).to_dict()


def encode(rec: dict | Event) -> str:
    """The one JSON encoding of an event (one line, no newline), after checking it.

    Used for ``metrics.jsonl``, ``--json`` output and anything that sends events
    between processes.  Values JSON cannot hold (paths, objects) become strings.
    """
    if isinstance(rec, Event):
        rec = rec.to_dict()
    else:
        from_dict(rec)
    return json.dumps(rec, default=_default)


def _default(o: Any) -> Any:
    to_dict = getattr(o, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return str(o)


def decode(line: str | bytes) -> dict:
    """An event dict from one line of :func:`encode`.

    Raises
    ------
    EventError
        When the record is not in the vocabulary (unknown type or field).
    ValueError
        When the line is not JSON (``json.JSONDecodeError``).
    """
    rec = json.loads(line)
    from_dict(rec)
    return rec


def no_event(_: dict) -> None:
    """Default ``on_event``: ignore."""


def never_stop() -> bool:
    """Default ``should_stop``: never."""
    return False


class MetricsLog:
    """Append-only JSONL event log, flushed and fsynced per record.

    Parameters
    ----------
    path
        The ``metrics.jsonl`` file.  A torn last line (the process was killed
        mid-write) is repaired when the log is opened again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def write(self, record: dict) -> None:
        """Append ``record`` as one line and flush it to disk."""
        self._fh.write(encode(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def trim_after(self, step: int) -> int:
        """Drop step records (train, eval, checkpoint) after ``step``; returns how many.

        Used before a resume replays the steps after its checkpoint, so every
        step appears exactly once.  The file is replaced atomically and reopened.
        """
        from backend.fsutil import atomic_write_text

        self.close()
        keep, dropped = [], 0
        for rec in read_events(self.path, []):  # a foreign line is dropped, not a reason to stop the run
            if rec.get("type") in STEP_TYPES and (rec.get("step") or 0) > step:
                dropped += 1
            else:
                keep.append(rec)
        atomic_write_text(self.path, "".join(encode(r) + "\n" for r in keep))
        self._fh = open(self.path, "a", encoding="utf-8")
        return dropped

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_events(path: str | Path, skipped: list | None = None) -> list[dict]:
    """All complete records of a ``metrics.jsonl`` (a torn or non-JSON line is skipped).

    Parameters
    ----------
    path
        The file (``[]`` when it does not exist).
    skipped
        When given, a record outside the vocabulary or with a field of the wrong
        type (:func:`problem`) is skipped too and named here (a
        :class:`backend.records.Skipped`), as a reader of a project file must
        (docs/architecture.md, "Readers").

    Raises
    ------
    EventError
        Without ``skipped``: for a record outside the vocabulary or of the wrong types.
    """
    from backend import records

    notes: list = [] if skipped is None else skipped
    out = []
    for n, rec in records.read_jsonl(path, notes):
        what = problem(rec)
        if what is None:
            out.append(rec)
        elif skipped is None:
            raise EventError(f"{path}:{n}: {what}")
        else:
            notes.append(records.Skipped(str(path), n, what))
    return out
