"""The check after training: did tuning make the answers with documents better or worse?

When a run ends, the training process still holds the tuned model.  It asks a
handful of held-out questions — half the run's validation rows (paraphrases it never
trained on), half questions it was not fitted to (a few of the project's evalset
questions, else questions the untuned model drafts from the documents) — as *tuned + documents* and *base +
documents* (the adapter switched off, the same retrieval and grounding as the Chat
page), grades them with the Evaluate page's grader (:func:`backend.rag.evaluate.is_correct`)
and says in words whether tuning helped; when it made things worse, the likely
cause and what to change (docs/architecture.md, "Training").

:func:`decide` is the verdict, a plain function of graded answers;
:func:`run_check` asks the questions and returns the ``answer_check`` event
(:class:`backend.events.AnswerCheck`), which the engine writes to the run folder
(:func:`backend.runs.write_check`) and ``metrics.jsonl``.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from backend import events as ev
from backend.errors import TuneError
from backend.evalsets import EvalRow

if TYPE_CHECKING:
    from backend.rag.chat_model import HFChatModel

QUESTIONS = 6
"""Questions asked (each twice: tuned and base).  About a minute on a 2-core CPU with the default model."""
BUDGET_S = 100.0
"""No new question is started after this many seconds (the whole check stays under 2 minutes)."""
MAX_NEW_TOKENS = 64
"""Answer length in the check: the facts asked for come first."""
MEMORISED_LOSS = 0.05
"""A final training loss below this on a few hundred rows or fewer: the answers were learned by heart."""
MEMORISED_ROWS = 300
UNDERTRAINED_LOSS = 1.0
"""A final training loss above this: the model has not learned its rows yet (a short or stopped-early run)."""
CHECK_MODES = ("tuned+rag", "base+rag")

_FACT = re.compile(r"\d+(?:[.,:/]\d+)*|\b[A-Z][\w-]*[A-Z0-9][\w-]*\b|\b[A-Z][a-z]+\b")
_WORD = re.compile(r"[^\W\d_][\w'-]*")


# ---------------------------------------------------------------------------
# questions


def reference_keywords(question: str, answer: str, limit: int = 3) -> list[str]:
    """What a right answer must state: the reference's facts that the question does not give away.

    Numbers and codes first ("179", "E4"), else names, else the reference's longest
    content word; at most ``limit``.  Validation rows carry a whole sentence as the
    reference, which no short answer repeats word for word; their keywords let the
    Evaluate page's grader (:func:`backend.rag.evaluate.is_correct`) score them.

    Examples
    --------
    >>> reference_keywords("How much does the T3 cost?", "The Brisa T3 costs USD 179.")
    ['179']
    >>> reference_keywords("What colour are visitor vests?", "Visitors wear a yellow vest.")
    ['yellow']
    """
    from backend.rag.hybrid import STOPWORDS

    asked = {w.casefold() for w in _WORD.findall(question)} | set(re.findall(r"\d+(?:[.,:/]\d+)*", question))
    facts = [m.group(0) for m in _FACT.finditer(answer)]
    fresh = [f for f in dict.fromkeys(facts) if f.casefold() not in asked and f.casefold() not in STOPWORDS]
    numbers = [f for f in fresh if any(c.isdigit() for c in f)]
    if numbers:
        return numbers[:limit]
    names = [f for f in fresh if not f[:1].isdigit() and f[1:] != f[1:].lower()] or \
        [f for f in fresh if f[:1].isupper() and len(f) > 3 and not answer.startswith(f)]
    if names:
        return names[:limit]
    def echoes(w: str) -> bool:  # "visitors" answers nothing about "visitor"
        w = w.casefold()
        return w in asked or any(len(a) > 3 and (w.startswith(a) or a.startswith(w)) for a in asked)

    words = [w for w in dict.fromkeys(_WORD.findall(answer)) if len(w) > 3 and w.casefold() not in STOPWORDS
             and not echoes(w)]
    words.sort(key=len, reverse=True)
    return [w.casefold() for w in words[:1]]  # one word: a short right answer words the rest its own way


def graded_row(row: EvalRow) -> EvalRow:
    """``row`` with keywords when it has only a sentence as its reference (validation rows).

    A reference that is itself an abstention ("Your documents don't say.") makes the row unanswerable.
    """
    from backend.rag.chain import is_abstention

    if row.answerable and row.answer and is_abstention(row.answer):
        return dataclasses.replace(row, answerable=False, keywords=[])
    if row.keywords or not row.answerable or not row.answer:
        return row
    return dataclasses.replace(row, keywords=reference_keywords(row.question, row.answer))


def spread(rows: Sequence[EvalRow], n: int) -> list[EvalRow]:
    """``n`` rows spread evenly over ``rows``: answerable ones, plus one the documents can't answer when there is one."""
    ans = [r for r in rows if r.answerable]
    una = [r for r in rows if not r.answerable]
    k = min(n - 1 if una and n > 2 else n, len(ans))
    picked = [ans[round(i * (len(ans) - 1) / max(1, k - 1))] for i in range(k)]
    if una and len(picked) < n:
        picked += una[: n - len(picked)] if not ans else una[:1]
    return picked


def pick_questions(project: "str | Path | None", run_dir: str | Path, n: int = QUESTIONS, *,
                   draft_fn: Any = None, on_event: ev.OnEvent = ev.no_event,
                   should_stop: ev.ShouldStop = ev.never_stop) -> tuple[list[EvalRow], str]:
    """The check's questions and where they came from, in words.

    Two kinds, half each when both exist: the run's validation rows (held out from
    training; with the knowledge recipe these are rewordings of *trained* facts), and
    questions the run was not fitted to — the project's evalset (the first that has
    questions), else questions drafted from the documents by ``draft_fn``
    (``prompts -> completions``; ``None``: not drafted).  Trained facts alone cannot see
    a tuned model that stopped reading the passages for everything else (bench/quality.md:
    the check said "helped" where the documents-only facts fell from 8/14 to 4/14).

    Returns
    -------
    (rows, source)
        ``([], "")`` when there is nothing to ask.
    """
    from backend.evalsets import from_validation

    try:
        val = [graded_row(r) for r in from_validation(run_dir, limit=400, should_stop=should_stop)]
    except (TuneError, OSError, ValueError):
        val = []
    val = [r for r in val if r.keywords or not r.answerable]
    want_other = n // 2 if val else n
    other, other_source = ([], "") if project is None or want_other <= 0 else \
        _untrained_questions(project, want_other, draft_fn, on_event, should_stop)
    if val and other:
        picked_val = spread(val, n - len(other))
        # alternated, so a check cut short by its time budget still has both kinds
        picked = [r for pair in zip(picked_val, other) for r in pair] + picked_val[len(other):] + other[len(picked_val):]
        return picked, (f"{len(picked_val)} held-out validation question{'s' if len(picked_val) != 1 else ''} "
                        f"and {other_source}")
    if val:
        picked = spread(val, n)
        return picked, f"{len(picked)} held-out validation question{'s' if len(picked) != 1 else ''}"
    return other, other_source


def _untrained_questions(project: "str | Path", n: int, draft_fn: Any, on_event: ev.OnEvent,
                         should_stop: ev.ShouldStop) -> tuple[list[EvalRow], str]:
    """Up to ``n`` questions from the project's first evalset with questions, else drafted from its documents."""
    from backend.evalsets import list_evalsets, read_evalset, resolve_evalset

    for name in list_evalsets(project):
        try:
            rows = [graded_row(r) for r in read_evalset(resolve_evalset(project, name))
                    if r.status not in ("rejected", "draft")]
        except (TuneError, OSError, ValueError):
            continue
        rows = [r for r in rows if r.keywords or r.answer or not r.answerable]
        if rows:
            picked = spread(rows, n)
            return picked, f"{len(picked)} question{'s' if len(picked) != 1 else ''} of the test set “{name}”"
    if draft_fn is None:
        return [], ""
    from backend.evalsets import draft_from_documents

    try:
        rows = [graded_row(r) for r in draft_from_documents(project, n, generate_fn=draft_fn, batch_size=1,
                                                            on_event=on_event, should_stop=should_stop)]
    except (TuneError, OSError, ValueError):
        return [], ""
    rows = [r for r in rows if r.keywords][:n]
    return rows, (f"{len(rows)} question{'s' if len(rows) != 1 else ''} drafted from your documents "
                  "by the untuned model") if rows else ""


# ---------------------------------------------------------------------------
# the verdict


def grade(answer: Any, row: EvalRow) -> dict[str, Any]:
    """One answer (a :class:`~backend.rag.chain.Answer` or its dict) graded as shown and as the model wrote it.

    ``correct``: what the Chat page shows; ``own_correct``: the model's own words
    (the withheld text when grounding replaced them); ``quoted``: the shown text is an
    evidence sentence, not the model's words.
    """
    from backend.rag.evaluate import is_correct

    d = answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)
    shown = str(d.get("answer") or "")
    own = str(d.get("withheld") or "") or shown
    return {"answer": shown, "correct": is_correct(shown, row), "own_answer": own,
            "own_correct": is_correct(own, row), "quoted": bool(d.get("quoted")),
            "abstained": bool(d.get("abstained")), "unsupported": [str(c) for c in d.get("unsupported") or []]}


def decide(items: Sequence[dict[str, Any]], *, final_loss: float | None = None, train_rows: int | None = None,
           raft: bool | None = None) -> dict[str, Any]:
    """The verdict on graded questions: did tuning help, and if it hurt, why and what to change.

    Parameters
    ----------
    items
        One dict per question: ``{"answerable": bool, "tuned": grade(...), "base": grade(...)}``.
    final_loss
        The last logged training loss (near zero on few rows: memorised).
    train_rows
        Training rows of the run.
    raft
        Whether the run trained on rows with passages ("Train the model to answer from your documents").

    Returns
    -------
    dict
        The fields of an ``answer_check`` event: ``verdict`` (helped / same / worse),
        ``message`` (one sentence), ``notes`` (a one-question gap, quoted answers), ``cause``, ``advice``, ``n``, ``tuned_right``, ``base_right``,
        ``tuned_own_right``, ``base_own_right``, ``tuned_quoted``, ``base_quoted``.

    Examples
    --------
    >>> right = {"correct": True, "own_correct": True, "quoted": False, "abstained": False, "unsupported": []}
    >>> wrong = dict(right, correct=False, own_correct=False)
    >>> decide([{"answerable": True, "tuned": right, "base": wrong}])["message"]
    'Tuning helped: 1 of 1 right with your documents, against 0 of 1 for the untuned model.'
    """
    n = len(items)
    count = {f"{m}_{k}": sum(bool(i[m][key]) for i in items)
             for m in ("tuned", "base") for k, key in (("right", "correct"), ("own_right", "own_correct"),
                                                      ("quoted", "quoted"))}
    t, b = count["tuned_right"], count["base_right"]
    verdict = "helped" if t > b else "worse" if t < b else "same"
    against = f"{t} of {n} right with your documents, against {b} of {n} for the untuned model"
    if verdict == "helped":
        message = f"Tuning helped: {against}."
    elif verdict == "worse":
        message = f"Tuning made the answers worse: {against}."
    elif n and t == n:
        message = f"Tuned and untuned alike: all {n} right with your documents."
    else:
        message = f"Tuning made no difference on this check: {t} of {n} right with your documents, tuned and untuned alike."
    notes = []
    if abs(t - b) == 1 and n > 1:
        notes.append(f"One question apart: on {n} questions that may be chance.")
    for m, who in (("base", "the untuned model"), ("tuned", "the tuned model")):
        q = count[f"{m}_quoted"]
        if q:
            notes.append(f"{q} of {who}'s answers {'was' if q == 1 else 'were'} quoted from your documents, not "
                        f"its own words (its own words: {count[f'{m}_own_right']} of {n} right).")
    cause = advice = ""
    if verdict == "worse":
        cause, advice = _diagnose(items, final_loss, train_rows, raft)
    return {"verdict": verdict, "message": message, "notes": " ".join(notes), "cause": cause, "advice": advice,
            "n": n, **count}


def _diagnose(items: Sequence[dict[str, Any]], final_loss: float | None, train_rows: int | None,
              raft: bool | None) -> tuple[str, str]:
    """The likely cause of a worse verdict, and what to change."""
    memorised = final_loss is not None and final_loss < MEMORISED_LOSS and (train_rows or 0) <= MEMORISED_ROWS
    undertrained = final_loss is not None and final_loss > UNDERTRAINED_LOSS
    invented = sum(1 for i in items if i["tuned"].get("unsupported"))
    declined = sum(1 for i in items if i.get("answerable", True) and i["tuned"].get("abstained")
                   and i["base"].get("correct"))
    n = len(items)
    rows = f" on {train_rows} rows" if train_rows else ""
    if memorised:
        cause = (f"The training loss fell to {final_loss:.3f}{rows}: the model learned its training answers by heart "
                 "and stopped reading the passages.")
    elif undertrained:
        cause = (f"The training loss is still {final_loss:.2f}: the model has not learned its training rows yet, "
                 "and what it half learned pulls its answers away from the passages.")
    elif invented:
        cause = (f"{invented} of the tuned model's {n} answers stated figures or names the passages don't contain: "
                 "it answers from memory instead of reading them.")
    elif declined:
        cause = (f"The tuned model declined {declined} question{'s' if declined != 1 else ''} that the untuned "
                 "model answered from the same passages.")
    else:
        cause = "The tuned model answers these questions worse than the untuned one given the same passages."
    if undertrained and not memorised:
        advice = ("Train longer (more epochs, or the “Learn the facts” preset)"
                  + (" with “Train the model to answer from your documents” ticked." if raft is False else "."))
    elif raft is False:
        advice = ("Tick “Train the model to answer from your documents” (Configure page)"
                  + (" and train fewer epochs." if memorised else ", then train again."))
    elif memorised:
        advice = "Train fewer epochs or with a lower learning rate, so the model keeps reading the passages."
    else:
        advice = "Train fewer epochs or with a lower learning rate, or add question–answer rows that cover these facts."
    return cause, advice + " Until then the Chat page answers with the untuned model and your documents."


# ---------------------------------------------------------------------------
# asking


def find_project(run_dir: str | Path, raft_project: str = "") -> Path | None:
    """The project a run belongs to: the one holding its run folder, else ``data.raft_project``.

    Not the folder its data files sit in: a run elsewhere that trains on a project's dataset must not
    index (write into) that project — the check would otherwise build an index in a folder the run
    does not own (the bundled sample project, say).
    """
    candidates = [Path(run_dir).resolve().parent.parent]
    if raft_project:
        candidates.append(Path(raft_project).expanduser())
    for c in candidates:
        if (c / "project.json").is_file():
            return c
    return None


def _open_index(project: Path, on_event: ev.OnEvent) -> Any:
    """The project's index, after indexing new and changed documents (``None``: no documents)."""
    from backend.rag.freshness import stale_documents
    from backend.rag.index import ingest, open_index
    from backend.workspace import Project

    proj = Project.open(project)
    files = proj.document_files()
    if not files:
        return None
    stale = stale_documents(proj, files)
    if stale:
        on_event(ev.progress("check", 0, None, f"Indexing {len(stale)} document(s) for the check"))
        emb = open_index(proj, check=False).embeddings
        ingest(proj, [str(p) for p in stale], embeddings=emb, on_event=on_event)
        return open_index(proj, embeddings=emb)
    return open_index(proj)


def draft_with(chat: "HFChatModel", max_new_tokens: int = 120):
    """``prompts -> completions`` by the untuned model (for questions drafted from the documents)."""
    from langchain_core.messages import HumanMessage

    def generate(prompts: list[str]) -> list[str]:
        return [str(chat.invoke([HumanMessage(content=p)], adapter=False, max_new_tokens=max_new_tokens,
                                temperature=0.0).content) for p in prompts]
    return generate


def run_check(chat: "HFChatModel", project: str | Path | None, run_dir: str | Path, *, final_loss: float | None = None,
              train_rows: int | None = None, raft: bool | None = None, n: int = QUESTIONS,
              budget_s: float = BUDGET_S, max_new_tokens: int = MAX_NEW_TOKENS, index: Any = None,
              on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> dict[str, Any]:
    """Ask the check's questions as tuned + documents and base + documents; the ``answer_check`` event.

    Parameters
    ----------
    chat
        The run's model (tuned, with its base behind the adapter switch).
    project
        The project folder (documents, index, evalsets); ``None``: skipped.
    run_dir
        The run (its validation rows are the first choice of questions).
    final_loss, train_rows, raft
        What :func:`decide` uses to name a cause.
    n, budget_s, max_new_tokens
        Questions, time budget (no question starts after it) and answer length.
    index
        The project's document index (default: opened, stale documents indexed first).
    on_event, should_stop
        Progress (stage ``check``); stopping ends the check with status ``cancelled``.

    Returns
    -------
    dict
        The ``answer_check`` event (status ``done``, ``skipped``, ``cancelled``).  Errors
        other than a user's (:class:`~backend.errors.TuneError` → ``skipped``) propagate.
    """
    from backend.rag.chain import ChatSession
    from backend.rag.settings import RetrievalSettings

    t0 = time.perf_counter()

    def result(status: str, **fields: Any) -> dict[str, Any]:
        return ev.event(ev.ANSWER_CHECK, status=status, seconds=round(time.perf_counter() - t0, 1), **fields)

    if project is None:
        return result("skipped", reason="the run belongs to no project, so there are no documents to ask about")
    try:
        if index is None:
            index = _open_index(Path(project), on_event)
    except TuneError as e:
        return result("skipped", reason=f"the documents could not be indexed: {e.message}")
    if index is None:
        return result("skipped", reason="the project has no documents")
    on_event(ev.progress("check", 0, None, "Checking the answers: choosing held-out questions…"))
    rows, source = pick_questions(project, run_dir, n, draft_fn=draft_with(chat), on_event=on_event,
                                  should_stop=should_stop)
    if should_stop():
        return result("cancelled", reason="stopped")
    if not rows:
        return result("skipped", reason="no held-out questions: no validation rows, no test set, none drafted")
    session = ChatSession(chat, index, RetrievalSettings())
    gen = dataclasses.replace(chat.settings, temperature=0.0, max_new_tokens=max_new_tokens)
    items: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        if time.perf_counter() - t0 > budget_s and items:
            on_event(ev.log(f"The check stopped after {len(items)} questions: its time budget is spent"))
            break
        sources = session.retrieve(row.question)
        item: dict[str, Any] = {"id": row.id, "question": row.question, "expected": row.expected,
                                "keywords": list(row.keywords), "answerable": row.answerable}
        for mode in CHECK_MODES:
            who = "tuned" if mode.startswith("tuned") else "untuned"
            on_event(ev.progress("check", 2 * i + (mode != CHECK_MODES[0]), 2 * len(rows),
                                 f"Checking the answers: question {i + 1} of {len(rows)} ({who} + documents)…"))
            if should_stop():
                return result("cancelled", reason="stopped", source=source)
            a = session.ask(row.question, mode, sources=sources, generation=gen, should_stop=should_stop)
            if a.stopped:
                return result("cancelled", reason="stopped", source=source)
            item[mode.split("+")[0]] = grade(a, row)
        items.append(item)
    verdict = decide(items, final_loss=final_loss, train_rows=train_rows, raft=raft)
    return result("done", source=source, questions=items, **verdict)


__all__ = ["BUDGET_S", "QUESTIONS", "decide", "find_project", "grade", "graded_row", "pick_questions",
           "reference_keywords", "run_check", "spread"]
