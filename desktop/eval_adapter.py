"""What the Evaluate page needs from ``backend.evalsets`` / ``backend.rag.evaluate``, without Qt.

Formatting of scorecard figures, the per-question filters, and :class:`EvalEngine`,
whose methods run in ``Job`` worker threads and send the work (loading models,
answering, drafting) to the model host child, so the GUI thread only reads report
files and draws, and the window's process never loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from backend import events as ev
from backend.host import rows_from_dicts, settings_dict
from backend.jobs import ModelHost
from backend.rag.modes import MODES

MODE_SHORT = {"tuned+rag": "Tuned · docs", "tuned": "Tuned", "base+rag": "Base · docs", "base": "Base"}
MODE_COLORS = {"tuned+rag": "#2f6db5", "tuned": "#8fb3df", "base+rag": "#5b6675", "base": "#b9c0ca"}

# (key, label, kind, help): kind "rate" is shown in percent, "score" as 0.00
METRICS = (
    ("accuracy", "Accuracy (shown)", "rate", "Answers as shown that contain the reference answer (or all its keywords)."),
    ("own_accuracy", "Accuracy (model's own words)", "rate", "The same for the words the model wrote, where grounding showed an evidence sentence (quoted) or withheld them."),
    ("f1", "Token F1", "score", "Word overlap between the answer and the reference (1 = the same words)."),
    ("similarity", "Similarity", "score", "Meaning of the answer against the reference, by the MiniLM "
                                          "embedder (1 = same meaning)."),
    ("retrieval_hit_rate", "Retrieval hit rate", "rate", "Questions whose expected source file was among the "
                                                         "retrieved passages (modes with documents only)."),
    ("abstention", "Abstains when it should", "rate", "On questions the documents can't answer: how often "
                                                      "the model said so instead of inventing."),
    ("false_abstention", "Abstains when it shouldn't", "rate", "On answerable questions: how often the model "
                                                               "wrongly said the documents don't say (lower is "
                                                               "better)."),
)
BAR_METRICS = ("accuracy", "f1", "similarity", "retrieval_hit_rate")

FILTERS = (("all", "All"), ("improved", "Improved by tuning"), ("regressed", "Regressed by tuning"),
           ("rag_fixed", "RAG fixed it"), ("still_wrong", "Still wrong"))

STATE_RIGHT, STATE_WRONG, STATE_ABSTAINED, STATE_MISSING = "right", "wrong", "abstained", "missing"


# ---------------------------------------------------------------------------
# formatting


def metric_kind(key: str) -> str:
    """``'rate'`` or ``'score'`` for a scorecard metric."""
    return next((k for m, _l, k, _h in METRICS if m == key), "score")


def fmt_value(v: float | None, kind: str) -> str:
    """``0.62 -> '62 %'`` (a rate) or ``'0.62'`` (a score); ``None`` -> '–'."""
    if v is None:
        return "–"
    return f"{100 * v:.0f} %" if kind == "rate" else f"{v:.2f}"


def fmt_interval(entry: dict | None, kind: str) -> str:
    """A scorecard cell: ``'62 % (45–78)'`` or ``'0.62 (0.45–0.78)'``; '–' when not measured."""
    if not entry or entry.get("value") is None:
        return "–"
    v, lo, hi = entry.get("value"), entry.get("low"), entry.get("high")
    head = fmt_value(v, kind)
    if lo is None or hi is None:
        return head
    if kind == "rate":
        return f"{head} ({100 * lo:.0f}–{100 * hi:.0f})"
    return f"{head} ({lo:.2f}–{hi:.2f})"


def report_dict(report: Any) -> dict | None:
    """A report as the contract's dict (``EvalReport.to_dict()``), or ``None``."""
    if report is None:
        return None
    if isinstance(report, dict):
        return report
    return report.to_dict()


def loss_text(loss: dict | None) -> str:
    """The validation loss before / after tuning in words."""
    if not loss:
        return "Validation loss: not measured."
    base, tuned = loss.get("base"), loss.get("tuned")
    if not base and not tuned:
        return f"Validation loss: {loss.get('note') or 'not measured'}."

    def one(d: dict | None, key: str) -> str:
        v = (d or {}).get(key)
        return "–" if v is None else (f"{v:.3f}" if key == "eval_loss" else f"{v:.2f}")

    text = (f"Validation loss {one(base, 'eval_loss')} → {one(tuned, 'eval_loss')} "
            f"(perplexity {one(base, 'perplexity')} → {one(tuned, 'perplexity')}), base → tuned")
    b, t = (base or {}).get("eval_loss"), (tuned or {}).get("eval_loss")
    if b is not None and t is not None:
        text += ": lower is better, tuning " + ("lowered" if t < b else "raised" if t > b else "kept") + " it."
    else:
        text += "."
    if loss.get("note"):
        text += f" {loss['note']}"
    return text


def forgetting_text(forgetting: dict | None) -> tuple[str, str]:
    """``(kind, text)`` for the forgetting check: kind is 'warning' when flagged, 'success' or 'info'."""
    if not forgetting:
        return "info", "Forgetting check: not run (tick “Forgetting check” and evaluate again)."
    msg = forgetting.get("message") or ""
    base, tuned = forgetting.get("base") or {}, forgetting.get("tuned") or {}
    if not msg and base and tuned:
        msg = (f"general questions answered right: {base.get('correct')} → {tuned.get('correct')} "
               f"of {tuned.get('n') or base.get('n')}")
    return ("warning" if forgetting.get("flag") else "success"), f"Forgetting check: {msg}"


# ---------------------------------------------------------------------------
# per-question results


def cell_state(result: dict | None) -> str:
    """How one mode did on one question: right, wrong, abstained or missing (not run)."""
    if not result:
        return STATE_MISSING
    if result.get("correct"):
        return STATE_RIGHT
    if result.get("abstained"):
        return STATE_ABSTAINED
    return STATE_WRONG


def question_tags(q: dict) -> set[str]:
    """The filter keys a question matches ('all' always)."""
    tags = set(q.get("tags") or ())
    if q.get("verdict"):
        tags.add(q["verdict"])
    return tags | {"all"}


def verdict_text(questions: Sequence[dict]) -> str:
    """What tuning and the documents changed, in one sentence of counts."""
    if not questions:
        return ""
    c = {k: sum(1 for q in questions if k in question_tags(q))
         for k in ("improved", "regressed", "rag_fixed", "rag_broke", "still_wrong", "right")}
    parts = [f"tuning fixed {c['improved']} and broke {c['regressed']}",
             f"the documents fixed {c['rag_fixed']}" + (f" and broke {c['rag_broke']}" if c["rag_broke"] else "")]
    tail = f"{c['right']} right in every mode, {c['still_wrong']} wrong in every mode"
    return (f"Of {len(questions)} questions: " + "; ".join(parts) + f"; {tail}. "
            "The Questions tab lists them.")


def filter_questions(questions: Sequence[dict], key: str) -> list[int]:
    """Indices of the questions a filter keeps."""
    return [i for i, q in enumerate(questions) if key in question_tags(q)]


def filter_counts(questions: Sequence[dict]) -> dict[str, int]:
    """How many questions each filter keeps."""
    return {key: len(filter_questions(questions, key)) for key, _label in FILTERS}


def to_source(d: dict | Any):
    """A report's source dict as ``backend.rag.source.Source`` (what the Chat page's answer cards show)."""
    from backend.rag.source import Source

    if not isinstance(d, dict):
        return d
    page = d.get("page")
    return Source(file=str(d.get("file") or Path(str(d.get("path") or "?")).name), path=str(d.get("path") or ""),
                  page=int(page) if isinstance(page, (int, float)) else None, chunk=int(d.get("chunk") or 0),
                  text=str(d.get("text") or ""), score=float(d.get("score") or 0.0))


def to_answer(question: str, mode: str, result: dict):
    """A report's mode result as ``backend.rag.chain.Answer``."""
    from backend.rag.chain import Answer

    return Answer(question=question, answer=str(result.get("answer") or ""), mode=mode,
                  sources=[to_source(s) for s in result.get("sources") or []],
                  seconds=float(result.get("seconds") or 0.0), abstained=bool(result.get("abstained")),
                  evidence=list(result.get("evidence") or []), withheld=str(result.get("withheld") or ""),
                  unsupported=[str(c) for c in result.get("unsupported") or []], quoted=bool(result.get("quoted")))


# ---------------------------------------------------------------------------
# test sets


@dataclass
class DraftRow:
    """One row of the test set being built, with its review state.

    ``state``: 'accepted', 'rejected' or 'review' (drafted, not looked at yet);
    ``origin``: 'file', 'validation' or 'documents'; ``overlap``: why the row is
    also a training row ('' when it is not).
    """

    row: Any                     # backend.evalsets.EvalRow
    state: str = "accepted"
    origin: str = "file"
    edited: bool = False
    overlap: str = ""
    extra: dict = field(default_factory=dict)

    def passage(self) -> str:
        """The source passage text, when the row carries it."""
        lin = getattr(self.row, "lineage", None) or {}
        return str(lin.get("passage") or lin.get("text") or "")

    def where(self) -> str:
        """'file.md, page 2, chunk 3' (as much as is known)."""
        lin = getattr(self.row, "lineage", None) or {}
        doc = lin.get("document") or getattr(self.row, "source", "") or ""
        parts = [Path(str(doc)).name] if doc else []
        if lin.get("page") is not None:
            parts.append(f"page {lin['page']}")
        if lin.get("chunk") is not None:
            parts.append(f"chunk {lin['chunk']}")
        if not parts and lin.get("file"):
            parts.append(f"{Path(str(lin['file'])).name}" + (f":{lin['line']}" if lin.get("line") else ""))
        return ", ".join(parts)


def overlap_notes(rows: Sequence[Any], overlaps: Sequence[dict]) -> dict[int, str]:
    """``{index in rows: note}`` from ``training_overlap``'s answer (matched by id, then question)."""
    by_id = {getattr(r, "id", None): i for i, r in enumerate(rows)}
    by_q = {" ".join(str(getattr(r, "question", "")).casefold().split()): i for i, r in enumerate(rows)}
    out: dict[int, str] = {}
    for o in overlaps:
        i = by_id.get(o.get("id")) if o.get("id") is not None else None
        if i is None:
            i = by_q.get(" ".join(str(o.get("question", "")).casefold().split()))
        if i is None:
            continue
        where, line = o.get("file") or "", o.get("line")
        loc = f"{Path(str(where)).name}:{line}" if where and line else (Path(str(where)).name if where else "")
        what = "a training row" if o.get("match", "exact") == "exact" else "nearly a training row"
        out[i] = f"also {what}" + (f" ({loc})" if loc else "")
    return out


# ---------------------------------------------------------------------------
# the worker side


class EvalEngine:
    """The Evaluate page's side of the model host: a thin proxy whose methods run in ``Job`` threads.

    The embedder and the run's chat model live in the model host child
    (:class:`backend.jobs.ModelHost`), shared with the Chat page through the
    session, so one copy of each is in memory.  One job at a time (the page never
    starts two).

    Parameters
    ----------
    host
        The shared model host (``Session.model_host``); a private one when ``None``.
    """

    def __init__(self, host: ModelHost | None = None) -> None:
        self.host = host if host is not None else ModelHost()

    def evaluate(self, project: Any, evalset: str, run_dir: Path, *, forgetting: bool = False,
                 max_new_tokens: int | None = None, settings: Any = None, documents: Sequence[Path] = (),
                 on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> dict:
        """Bring the index up to date with ``documents``, then evaluate ``run_dir`` on ``evalset``.

        Answers use ``settings`` (``backend.rag.settings.AnswerSettings``, the Chat page's;
        default: the project's saved ones), greedy (temperature 0, so base and tuned differ
        only by the adapter), at most ``max_new_tokens`` long (the settings' when ``None``).

        Returns
        -------
        dict
            The report (``EvalReport.to_dict()``), also written to ``<run>/eval/<evalset>.json``.
        """
        params = {"project_root": str(getattr(project, "root", project)), "evalset": str(evalset),
                  "run_dir": str(run_dir), "forgetting": bool(forgetting), "max_new_tokens": max_new_tokens,
                  "documents": [str(p) for p in documents], "settings": settings_dict(settings)}
        return self.host.request("evaluate", params, on_event=on_event, should_stop=should_stop)

    def from_validation(self, run_dir: Path, limit: int = 50, *, on_event: ev.OnEvent = ev.no_event,
                        should_stop: ev.ShouldStop = ev.never_stop) -> tuple[list, list[dict]]:
        """The run's held-out validation rows as evalset rows, and which of them are also training rows."""
        d = self.host.request("from_validation", {"run_dir": str(run_dir), "limit": int(limit)},
                              on_event=on_event, should_stop=should_stop)
        return rows_from_dicts(d["rows"]), list(d["overlap"])

    def draft(self, project: Any, n: int, teacher: str | None, *, on_event: ev.OnEvent = ev.no_event,
              should_stop: ev.ShouldStop = ev.never_stop) -> tuple[list, list[dict]]:
        """Questions drafted from the documents by a teacher model, and their training overlap."""
        d = self.host.request("draft", {"project_root": str(getattr(project, "root", project)), "n": int(n),
                                        "teacher": teacher or None},
                              on_event=on_event, should_stop=should_stop)
        return rows_from_dicts(d["rows"]), list(d["overlap"])

    def release(self) -> None:
        """Let the model host drop the chat model if it is idle (frees memory; the next evaluation loads it)."""
        self.host.release_if_idle()


def read_rows(path: Path, project: Any) -> tuple[list, list[dict]]:
    """A questions file's rows and their training overlap (quick: reads files only)."""
    from backend.evalsets import read_evalset, training_overlap

    rows = read_evalset(path)
    return rows, (training_overlap(rows, project) if project is not None else [])


__all__ = ["EvalEngine", "DraftRow", "METRICS", "MODES", "FILTERS", "fmt_interval", "fmt_value",
           "filter_questions", "filter_counts", "verdict_text", "cell_state", "loss_text", "forgetting_text",
           "overlap_notes", "read_rows", "report_dict", "to_answer", "to_source"]
