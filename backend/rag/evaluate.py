"""Evaluate a run in the four chat modes over an evalset, with intervals.

Every question is answered in the four modes {base, tuned} x {with documents,
without} by ONE loaded model (base = the run's adapter disabled, as in Chat),
scored, and saved to ``<run>/eval/<evalset>.json`` (see docs/architecture.md,
"Evaluation").  :func:`load_report` reopens it without a model.

Scorecard per mode, each figure with a 95 % percentile-bootstrap interval
(fixed seed), so a 3-question difference on 20 questions is not read as
progress:

``accuracy``          answerable questions whose answer (as shown) contains the reference, or every keyword
``own_accuracy``      the same for the model's own words: where grounding showed an evidence sentence
                      ("quote") or withheld them, the words the model streamed are graded instead, so
                      "base + documents" never silently measures the sentence ranker
``f1``                token F1 of answer and reference (SQuAD definition)
``similarity``        cosine similarity of answer and reference (the bundled MiniLM embedder)
``retrieval_hit_rate`` the expected source file is among the retrieved passages (modes with documents)
``abstention``        questions the documents can't answer (``answerable: false``) that the model declined
``false_abstention``  answerable questions the model declined

Plus the validation loss and perplexity before (adapter off) and after tuning,
per-question verdicts (improved / regressed / rag_fixed / still_wrong / right),
and, on request, a forgetting check: a general-knowledge probe
(``resources/forgetting_probe.jsonl``) answered by base and tuned without documents.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from backend import events as ev
from backend import records, runs
from backend.errors import DataError, RunError, TuneError
from backend.evalsets import EvalRow, keyword_found, normalise_text, read_evalset, resolve_evalset
from backend.fsutil import atomic_write_json, atomic_write_text, read_json
from backend.rag.chain import MODES, Answer, ChatSession, saved_settings
from backend.rag.settings import AnswerSettings, GenerationSettings, RetrievalSettings, describe_settings

if TYPE_CHECKING:
    from backend.rag.chat_model import HFChatModel
    from backend.workspace import Project

MAX_LOSS_ROWS = 256  # validation rows scored before/after; enough for a stable mean on a CPU
METRICS = ("accuracy", "own_accuracy", "f1", "similarity", "retrieval_hit_rate", "abstention", "false_abstention")
BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 1234
FORGETTING_PROBE = Path(__file__).resolve().parents[2] / "resources" / "forgetting_probe.jsonl"
VERDICTS = ("regressed", "improved", "rag_fixed", "rag_broke", "still_wrong", "right")
SOURCE_TEXT_CHARS = 600  # passage text kept per source in the report (the page shows it beside the answer)

# old names, kept for callers of the first version
Question = EvalRow
read_questions = read_evalset

try:  # the one abstention test, shared with the chat (backend/rag/chain.py)
    from backend.rag.chain import is_abstention
except ImportError:  # until chain.py has it: the same idea, fewer phrasings
    _ABSTAIN = ("don't say", "do not say", "doesn't say", "does not say", "don't know", "do not know",
                "not in the documents", "not in your documents", "no information", "not mentioned",
                "cannot answer", "can't answer", "not provided", "does not mention", "doesn't mention",
                "not stated")

    def is_abstention(text: str) -> bool:
        """Whether an answer declines to answer ("Your documents don't say.")."""
        t = " ".join((text or "").casefold().replace("’", "'").split())
        return any(p in t for p in _ABSTAIN)


def _eval_path(run_dir: str | Path, name: str, suffix: str = ".json") -> Path:
    return runs.eval_path(run_dir, name, suffix)


# ---------------------------------------------------------------------------
# metrics


_normalise = normalise_text


def is_correct(answer: str, q: EvalRow) -> bool:
    """The answer contains the reference answer, or every keyword (case-insensitive).

    For a question the documents can't answer (``answerable: false``), right
    means declining to answer.
    """
    if not q.answerable:
        return is_abstention(answer)
    a = normalise_text(answer)
    ref = normalise_text(q.answer) if q.answer else ""
    if ref and ref in a:
        return True
    if q.keywords:
        return all(keyword_found(k, a) for k in q.keywords)
    return False


def token_f1(answer: str, expected: str) -> float:
    """Token-level F1 between an answer and the expected text (SQuAD definition)."""
    pred, gold = normalise_text(answer).split(), normalise_text(expected).split()
    if not pred or not gold:
        return float(pred == gold)
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def source_hit(sources, expected: str) -> bool:
    """Whether the expected source file is among the retrieved passages."""
    want = expected.replace("\\", "/").strip().casefold()
    name = want.rsplit("/", 1)[-1]
    for s in sources:
        path = s.path.replace("\\", "/").casefold()
        if s.file.casefold() == name and (want == name or path.endswith(want)):
            return True
    return False


def bootstrap(values: Sequence[float], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED,
              level: float = 0.95) -> dict[str, Any]:
    """Mean of ``values`` with a percentile-bootstrap interval.

    Returns
    -------
    dict
        ``{"value", "low", "high", "n"}``; ``value`` etc. are ``None`` for no values.
    """
    import numpy as np

    a = np.asarray([float(v) for v in values], dtype=np.float64)
    n = int(a.size)
    if n == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, n, size=(samples, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"value": round(float(a.mean()), 4), "low": round(float(lo), 4), "high": round(float(hi), 4), "n": n}


def cosine_similarities(embeddings: Any, pairs: Sequence[tuple[str, str]]) -> list[float]:
    """Cosine similarity of each ``(answer, reference)`` pair, embedded in one batch."""
    import numpy as np

    if not pairs:
        return []
    texts = [t or " " for p in pairs for t in p]
    vecs = np.asarray(embeddings.embed_documents(texts), dtype=np.float64)
    a, b = vecs[0::2], vecs[1::2]
    na = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    sims = (a * b).sum(axis=1) / np.where(na == 0, 1, na)
    return [round(float(s), 4) for s in sims]


# ---------------------------------------------------------------------------
# validation loss before / after


def validation_loss(chat: "HFChatModel", run_dir: str | Path, *, on_event: ev.OnEvent = ev.no_event,
                    should_stop: ev.ShouldStop = ev.never_stop, max_rows: int = MAX_LOSS_ROWS) -> dict[str, Any]:
    """Mean validation loss and perplexity of the base (adapter off) and tuned model.

    The validation rows are rebuilt from the run's config exactly as training
    split them (same files, seed and template).  When that is impossible
    (files moved), the run's last ``eval`` record in ``metrics.jsonl`` gives
    the tuned loss alone.

    Returns
    -------
    dict
        ``{before: {loss, perplexity}, after: {...}, rows, source, note}``.
    """
    from backend.events import read_events
    from backend.models import perplexity

    out: dict[str, Any] = {"before": None, "after": None, "rows": 0, "source": None, "note": ""}
    evals = [e for e in read_events(runs.metrics_path(run_dir)) if e.get("type") == ev.EVAL
             and isinstance(e.get("eval_loss"), (int, float))]
    if evals:
        out["trainer_eval_loss"] = evals[-1]["eval_loss"]
    rows = None
    try:
        from backend.config import RunConfig
        from backend.data.pipeline import prepare

        cfg = RunConfig.load(runs.config_path(run_dir))
        rows = prepare(cfg, chat.tokenizer, should_stop=should_stop).eval
    except (TuneError, ImportError) as e:
        out["note"] = f"validation rows not rebuilt ({e})"
    if rows:
        rows = rows[:max_rows]
        before = _mean_loss(chat, rows, adapter=False, on_event=on_event, should_stop=should_stop)
        after = _mean_loss(chat, rows, adapter=True, on_event=on_event, should_stop=should_stop) \
            if chat.has_adapter else before
        if before is not None and after is not None:
            out.update(before={"loss": before, "perplexity": perplexity(before)},
                       after={"loss": after, "perplexity": perplexity(after)}, rows=len(rows),
                       source="validation split rebuilt from the run's config")
            return out
    if evals:
        loss = evals[-1]["eval_loss"]
        out.update(after={"loss": loss, "perplexity": perplexity(loss)}, source=f"{runs.METRICS} (last eval)")
        first = evals[0]
        if first.get("step", 1) == 0:
            out["before"] = {"loss": first["eval_loss"], "perplexity": perplexity(first["eval_loss"])}
    elif not out["note"]:
        out["note"] = "the run has no validation rows and no eval records"
    return out


def _mean_loss(chat: "HFChatModel", rows: list[dict], *, adapter: bool, on_event: ev.OnEvent,
               should_stop: ev.ShouldStop) -> float | None:
    """Token-weighted mean cross-entropy over rows (labels -100 carry no loss)."""
    import torch

    total, count = 0.0, 0
    stage = "loss-tuned" if adapter else "loss-base"
    with chat._lock, chat.adapter_context(adapter), torch.inference_mode():
        model = chat.model_for(adapter)  # a full fine-tune's base is a second model (loaded on first use)
        device = next(model.parameters()).device
        for i, r in enumerate(rows):
            if should_stop():
                return None
            ids = torch.tensor([r["input_ids"]], device=device)
            labels = torch.tensor([r["labels"]], device=device)
            n = int((labels[:, 1:] != -100).sum())
            if n == 0:
                continue
            logits = model(input_ids=ids).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total += float(loss)
            count += n
            if i % 16 == 0:
                on_event(ev.progress(stage, i, len(rows), f"Validation loss ({'tuned' if adapter else 'base'}) {i}/{len(rows)}"))
    return total / count if count else None


# ---------------------------------------------------------------------------
# the evaluation


# What a saved report must look like to be shown (EvalReport.from_dict); "!" marks what a part cannot lack.
_FIGURE = {"value!": "number?", "low!": "number?", "high!": "number?", "n": "integer?"}
_SOURCE = {"file!": "text", "path": "text", "page": "integer?", "chunk!": "integer", "text!": "text",
           "score!": "number", "bm25": "number", "fused": "number", "id": "text"}
_EVIDENCE = {"source_index!": "integer", "start!": "integer", "end!": "integer", "score": "number?",
             "sentence": "text?"}
_RESULT = {"answer!": "text", "correct!": "true/false", "f1": "number?", "similarity": "number?",
           "abstained": "true/false", "seconds": "number?", "sources": [_SOURCE], "evidence": [_EVIDENCE],
           "withheld": "text?", "unsupported": ["text"], "quoted": "true/false", "own_correct": "true/false?"}
_QUESTION = {"id!": "text", "question!": "text", "expected": "text?", "keywords": ["text"], "source": "text?",
             "answerable": "true/false", "kind": "text?", "lineage": "object?", "line": "integer?",
             "retrieved": [_SOURCE], "retrieval_hit": "true/false?", "modes!": {"*": _RESULT}, "tags": ["text"],
             "verdict": "text?"}
_LOSS_SIDE = {"eval_loss!": "number", "perplexity": "number?"}
_FORGET_SIDE = {"correct!": "integer", "n!": "integer", "value!": "number?", "low!": "number?", "high!": "number?"}
REPORT_SHAPE = {
    "evalset": "text", "evalset_file": "text", "run_dir": "text", "created": "number", "seconds": "number",
    "cancelled": "true/false", "modes": ["text"], "scorecard!": {"*": {"*": _FIGURE}},
    "loss": {"base": _LOSS_SIDE, "tuned": _LOSS_SIDE, "rows": "integer?", "source": "text?",
             "trainer_eval_loss": "number?", "note": "text?"},
    "forgetting": {"base!": _FORGET_SIDE, "tuned!": _FORGET_SIDE, "difference": "object?", "flag": "true/false?",
                   "message": "text", "questions": ["object"]},
    "overlap": [{"id!": "text", "question": "text", "training_question": "text", "file": "text",
                 "line": "integer?", "similarity": "number", "match": "text"}],
    "settings": "object", "questions": [_QUESTION]}


@dataclass
class EvalReport:
    """What :func:`evaluate` measured (the ``eval/<evalset>.json`` file).

    Attributes
    ----------
    evalset
        The evalset's name (the report's file name).
    run_dir
        The run evaluated.
    modes
        The modes answered, a subset of :data:`MODES` in that order.
    scorecard
        ``{mode: {metric: {"value", "low", "high", "n"}}}`` for :data:`METRICS`.
    questions
        One dict per question: the reference, the retrieved passages, each
        mode's answer and scores, ``verdict`` and ``tags``.
    loss
        ``{"base": {"eval_loss", "perplexity"}, "tuned": {...}, "rows", "source"}`` or ``{"note"}``.
    forgetting
        The general-knowledge probe, base vs tuned, or ``None`` when not run.
    overlap
        Test questions that are also training questions (:func:`backend.evalsets.training_overlap`).
    settings
        The answer settings used (:meth:`backend.rag.settings.AnswerSettings.to_dict`);
        :func:`backend.rag.settings.describe_settings` names them for people.
    cancelled
        Stopped early: the figures cover what was answered.
    """

    evalset: str
    run_dir: str
    modes: list[str]
    scorecard: dict[str, dict[str, dict[str, Any]]]
    questions: list[dict[str, Any]]
    loss: dict[str, Any]
    forgetting: dict[str, Any] | None = None
    overlap: list[dict[str, Any]] = field(default_factory=list)
    evalset_file: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    seconds: float = 0.0
    cancelled: bool = False
    json_path: str = ""
    markdown_path: str = ""
    skipped: list = field(default_factory=list, repr=False)
    """Parts of a saved report left out on reading (:class:`backend.records.Skipped`)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (the file's content)."""
        return {"evalset": self.evalset, "evalset_file": self.evalset_file, "run_dir": self.run_dir,
                "created": self.created, "seconds": round(self.seconds, 2), "cancelled": self.cancelled,
                "modes": list(self.modes), "scorecard": self.scorecard, "loss": self.loss,
                "forgetting": self.forgetting, "overlap": self.overlap, "settings": self.settings,
                "questions": self.questions}

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str | Path = "") -> "EvalReport":
        """Inverse of :meth:`to_dict`.

        The file is a project's (docs/architecture.md, "Readers"): every part of
        the wrong shape (:data:`REPORT_SHAPE`) is left out — a question whose
        ``modes`` is a list, a figure that is text — and named in ``skipped``.

        Raises
        ------
        records.Mismatch
            When ``d`` is not an object.
        """
        notes: list[str] = []
        d = records.conform(d, REPORT_SHAPE, "report", notes)
        rep = cls(d.get("evalset", ""), d.get("run_dir", ""), [m for m in d.get("modes") or [] if m in MODES],
                  d.get("scorecard") or {}, d.get("questions") or [], d.get("loss") or {}, d.get("forgetting"),
                  d.get("overlap") or [], d.get("evalset_file", ""), d.get("settings") or {},
                  records.finite(d.get("created"), 0.0), records.finite(d.get("seconds"), 0.0),
                  bool(d.get("cancelled")), str(path))
        rep.skipped = [records.Skipped(str(path), None, n) for n in notes]
        return rep

    @property
    def verdict_counts(self) -> dict[str, int]:
        """How many questions carry each tag."""
        c: Counter = Counter()
        for q in self.questions:
            c.update(q.get("tags") or [])
        return {v: c.get(v, 0) for v in VERDICTS}

    def markdown(self) -> str:
        """The scorecard, verdicts, loss and forgetting check as Markdown."""
        n = len(self.questions)
        lines = [f"# Evaluation of `{Path(self.run_dir).name}` on `{self.evalset}`", "",
                 f"{n} questions" + (" (cancelled: partial)" if self.cancelled else "")
                 + f", {self.seconds:.0f} s. Figures: value [95% bootstrap interval].", "",
                 f"Answered with {describe_settings(self.settings)} (greedy decoding).", "",
                 "| mode | accuracy (shown) | accuracy (model's own words) | token F1 | similarity "
                 "| retrieval hit rate | abstention | false abstention |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for mode in self.modes:
            card = self.scorecard.get(mode, {})
            cells = [format_figure(card.get(m), percent=m not in ("f1", "similarity")) for m in METRICS]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
        quoted = {m: k for m, k in quoted_counts(self.questions, self.modes).items() if k}
        if quoted:
            lines += ["", "Quoted from your documents, not the model's words: "
                      + ", ".join(f"{m} {k} of {n}" for m, k in quoted.items())
                      + " (the model's own accuracy is graded on the words it wrote)."]
        vc = self.verdict_counts
        lines += ["", "Verdicts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vc.items()), ""]
        lines += ["## Validation loss", ""]
        base, tuned = self.loss.get("base"), self.loss.get("tuned")
        if base or tuned:
            lines += ["| | loss | perplexity |", "| --- | ---: | ---: |"]
            for label, v in (("before tuning (base)", base), ("after tuning", tuned)):
                if v:
                    ppl = f"{v['perplexity']:.2f}" if v.get("perplexity") is not None else "—"
                    lines.append(f"| {label} | {v['eval_loss']:.4f} | {ppl} |")
                else:
                    lines.append(f"| {label} | — | — |")
            if self.loss.get("source"):
                lines += ["", f"Source: {self.loss['source']}"
                          + (f", {self.loss['rows']} rows" if self.loss.get("rows") else "") + "."]
        else:
            lines.append(f"Not available: {self.loss.get('note') or 'no validation data'}.")
        if self.forgetting:
            lines += ["", "## Forgetting check", "", self.forgetting.get("message", "")]
        if self.overlap:
            lines += ["", f"Note: {len(self.overlap)} test question(s) are also training questions: "
                      + ", ".join(o["id"] for o in self.overlap) + "."]
        return "\n".join(lines) + "\n"


def format_figure(fig: dict[str, Any] | None, *, percent: bool = True) -> str:
    """``'45% [30–60]'`` or ``'0.512 [0.43–0.60]'``; ``'—'`` when not measured."""
    if not fig or records.number(fig.get("value")) is None:
        return "—"
    if records.number(fig.get("low")) is None or records.number(fig.get("high")) is None:
        return f"{fig['value']:.0%}" if percent else f"{fig['value']:.3f}"
    if percent:
        return f"{fig['value']:.0%} [{fig['low']:.0%}–{fig['high']:.0%}]"
    return f"{fig['value']:.3f} [{fig['low']:.2f}–{fig['high']:.2f}]"


def verdict_tags(results: dict[str, dict[str, Any]]) -> list[str]:
    """The verdict tags of one question from its per-mode ``correct`` flags.

    ``improved``: base wrong and tuned right (same documents setting);
    ``regressed``: base right and tuned wrong; ``rag_fixed``: wrong without
    documents, right with them (same model); ``rag_broke``: the reverse;
    ``still_wrong``: wrong in every mode; ``right``: right in every mode.
    """
    c = {m: bool(r.get("correct")) for m, r in results.items()}
    tags: list[str] = []
    for rag in ("+rag", ""):
        b, t = c.get("base" + rag), c.get("tuned" + rag)
        if b is False and t is True and "improved" not in tags:
            tags.append("improved")
        if b is True and t is False and "regressed" not in tags:
            tags.append("regressed")
    for model in ("base", "tuned"):
        without, with_docs = c.get(model), c.get(model + "+rag")
        if without is False and with_docs is True and "rag_fixed" not in tags:
            tags.append("rag_fixed")
        if without is True and with_docs is False and "rag_broke" not in tags:
            tags.append("rag_broke")
    if c and not any(c.values()):
        tags.append("still_wrong")
    if c and all(c.values()):
        tags.append("right")
    return tags


def main_verdict(tags: Sequence[str]) -> str:
    """The tag shown first: regressed, improved, rag_fixed, rag_broke, still_wrong, right (else ``mixed``)."""
    for v in VERDICTS:
        if v in tags:
            return v
    return "mixed"


def build_scorecard(questions: Sequence[dict[str, Any]], modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per mode, each metric of :data:`METRICS` with its bootstrap interval."""
    out = {}
    for m in modes:
        res = [(q, q["modes"][m]) for q in questions if m in q.get("modes", {})]
        ans = [r for q, r in res if q.get("answerable", True)]
        una = [r for q, r in res if not q.get("answerable", True)]
        hits = [bool(q["retrieval_hit"]) for q, _ in res if q.get("retrieval_hit") is not None] \
            if m.endswith("+rag") else []
        out[m] = {
            "accuracy": bootstrap([r["correct"] for r in ans]),
            "own_accuracy": bootstrap([own_correct(q, r) for q, r in res if q.get("answerable", True)]),
            "f1": bootstrap([r["f1"] for r in ans if r.get("f1") is not None]),
            "similarity": bootstrap([r["similarity"] for r in ans if r.get("similarity") is not None]),
            "retrieval_hit_rate": bootstrap(hits),
            "abstention": bootstrap([r["abstained"] for r in una]),
            "false_abstention": bootstrap([r["abstained"] for r in ans]),
        }
    return out


def own_correct(question: dict[str, Any], result: dict[str, Any]) -> bool:
    """Whether the model's own words were right (a report's question dict and one mode's result).

    Reports written before ``own_correct`` was recorded are regraded from their ``withheld`` words.
    """
    if "own_correct" in result:
        return bool(result["own_correct"])
    if not result.get("withheld"):
        return bool(result.get("correct"))
    row = EvalRow(str(question.get("id", "")), str(question.get("question", "")), question.get("expected") or "",
                  list(question.get("keywords") or []), answerable=bool(question.get("answerable", True)))
    return is_correct(result["withheld"], row)


def quoted_counts(questions: Sequence[dict[str, Any]], modes: Sequence[str]) -> dict[str, int]:
    """Per mode, how many shown answers are an evidence sentence instead of the model's words."""
    return {m: sum(1 for q in questions if (q.get("modes", {}).get(m) or {}).get("quoted")) for m in modes}


def _source_dict(s: Any) -> dict[str, Any]:
    d = s.to_dict()
    text = d.get("text") or ""
    if len(text) > SOURCE_TEXT_CHARS:
        d["text"] = text[:SOURCE_TEXT_CHARS].rsplit(" ", 1)[0] + " …"
    d["score"] = round(float(d.get("score") or 0.0), 4)
    return d


def _abstained(a: Answer) -> bool:
    flag = getattr(a, "abstained", None)
    return bool(flag) if flag is not None else is_abstention(a.answer)


def _loss_block(v: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if v.get("before"):
        out["base"] = {"eval_loss": v["before"]["loss"], "perplexity": v["before"]["perplexity"]}
    if v.get("after"):
        out["tuned"] = {"eval_loss": v["after"]["loss"], "perplexity": v["after"]["perplexity"]}
    for k in ("rows", "source", "trainer_eval_loss", "note"):
        if v.get(k):
            out[k] = v[k]
    if "base" not in out and "tuned" not in out:
        out.setdefault("note", "no validation data")
    return out


def _similarity_embedder(embeddings: Any, index: Any) -> Any:
    """The embedder for answer/reference similarity: the given one, the index's when bundled, else the bundled."""
    if embeddings is not None:
        return embeddings
    from backend.rag.embeddings import embedder_info, load_embeddings

    if index is not None:
        try:
            if index.embedder.same_model(embedder_info()):
                return index.embeddings
        except (TuneError, OSError):
            pass
    return load_embeddings()


def _rows_and_name(project: Any, evalset: Any, name: str | None) -> tuple[list[EvalRow], str, str]:
    if isinstance(evalset, (list, tuple)):
        rows = [r for r in evalset if isinstance(r, EvalRow)]
        if len(rows) != len(evalset) or not rows:
            raise DataError("the evalset has no questions", hint="give a questions file, an evalset name or rows")
        return list(rows), name or "custom", ""
    path = resolve_evalset(project, evalset)
    return read_evalset(path), name or path.stem, str(path)


def evaluate(project: "Project | str | Path", evalset: "str | Path | Sequence[EvalRow]", run_dir: str | Path, *,
             name: str | None = None, modes: Sequence[str] = MODES, forgetting: bool = False,
             with_loss: bool = True, settings: AnswerSettings | None = None,
             retrieval: RetrievalSettings | None = None,
             generation: GenerationSettings | None = None, chat_model: "HFChatModel | None" = None,
             embeddings: Any = None, out_dir: str | Path | None = None, probe: str | Path | None = None,
             on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> EvalReport:
    """Answer every question in each mode with one loaded model, score it, and save the report.

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder (its index is used).
    evalset
        A questions file (.jsonl/.csv), the name of one of the project's
        evalsets, or rows (:class:`~backend.evalsets.EvalRow`).
    run_dir
        The run whose adapter is evaluated (tuned) against its base model.
    name
        The report's name (default: the evalset's file stem; ``custom`` for rows).
    modes
        A subset of :data:`MODES`.
    forgetting
        Also answer the general-knowledge probe (``probe``, default
        ``resources/forgetting_probe.jsonl``) as base and tuned without documents.
    with_loss
        Also measure the validation loss before / after tuning.
    settings
        The answer settings (:class:`~backend.rag.settings.AnswerSettings`: the
        Chat page's, ``tune eval --set``); default: the project's saved ones
        (:meth:`backend.workspace.Project.answer_settings`), so the scorecard
        scores what the Chat page answers (with a ``chat_model`` given and no
        ``settings``, its generation settings).  Decoding is always greedy
        (temperature 0), so base and tuned differ only by the adapter.  The
        report records the settings it used (``EvalReport.settings``).
    retrieval, generation
        Replace one section of ``settings`` (older callers).
    chat_model, embeddings
        Already loaded models to reuse (the GUI's); loaded once otherwise.
        ``embeddings`` also scores the answer/reference similarity.
    out_dir
        Where to write ``<name>.json`` / ``<name>.md`` (default ``<run>/eval``).
    on_event, should_stop
        Progress events (stages ``load``, ``eval``, ``forgetting``, ``similarity``,
        ``loss-base``, ``loss-tuned``) and cancellation, checked between answers
        and tokens; a stopped evaluation still writes what it measured, marked
        cancelled.

    Returns
    -------
    EvalReport

    Raises
    ------
    DataError
        A malformed questions file, an unknown evalset or mode.
    RunError, ModelError, IndexStoreError
        A missing run or adapter, an adapter for another base model, no or an
        empty index (modes with documents).
    """
    from backend.rag.chat_model import load_chat_model
    from backend.rag.index import open_index
    from backend.workspace import require_run_dir

    t0 = time.perf_counter()
    created = time.time()
    rows, name, evalset_file = _rows_and_name(project, evalset, name)
    rows = [r for r in rows if r.status != "rejected"]
    if not rows:
        raise DataError("every question of the evalset is rejected", file=evalset_file or None,
                        hint="accept some drafted questions first")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise DataError(f"unknown mode {bad[0]!r}" if bad else "no mode to evaluate", field="modes",
                        hint=f"choose from {', '.join(MODES)}")
    modes = [m for m in MODES if m in modes]
    probe_rows = read_evalset(probe or FORGETTING_PROBE) if forgetting else []
    require_run_dir(run_dir)
    # said before any model loads: a 200,000-question set is days of work, not a click (issue 27)
    on_event(ev.log(plan_text(len(rows), len(modes), len(probe_rows), run_dir), level="warning"))
    need_index = any(m.endswith("+rag") for m in modes)
    index = open_index(project, embeddings=embeddings) if need_index else None
    explicit = settings is not None
    if settings is None:
        settings = saved_settings(project)
    chat = chat_model or load_chat_model(run_dir, settings=settings.generation, on_event=on_event)
    if not chat.has_adapter and (any(m.startswith("tuned") for m in modes) or forgetting):
        raise RunError("the model has no adapter, so tuned and base would be the same", file=run_dir,
                       hint="evaluate a completed LoRA run")
    session = ChatSession(chat, index, retrieval or settings.retrieval)
    gen = dataclasses.replace(generation or (settings.generation if explicit else chat.settings),
                              temperature=0.0)  # greedy: see above
    try:
        from backend.evalsets import training_overlap
        overlap = training_overlap(rows, run_dir)
    except (TuneError, OSError, ValueError):
        overlap = []
    if overlap:
        on_event(ev.log(f"{len(overlap)} test question(s) are also training questions "
                        f"({', '.join(o['id'] for o in overlap[:8])}): their scores measure recall, not generalisation",
                        "warning"))
    questions: list[dict[str, Any]] = []
    total = len(rows) * len(modes) + 2 * len(probe_rows)
    done = 0
    cancelled = False
    for q in rows:
        if should_stop():
            cancelled = True
            break
        shared = session.retrieve(q.question) if need_index else None
        item: dict[str, Any] = {"id": q.id, "question": q.question, "expected": q.answer, "keywords": q.keywords,
                                "source": q.source, "answerable": q.answerable, "kind": q.kind,
                                "lineage": q.lineage, "line": q.line, "retrieved": [], "retrieval_hit": None,
                                "modes": {}}
        if shared is not None:
            item["retrieved"] = [_source_dict(s) for s in shared]
            item["retrieval_hit"] = source_hit(shared, q.source) if q.source and q.answerable else None
        for mode in modes:
            on_event(ev.progress("eval", done, total, f"{mode}: {q.question[:60]}"))
            a: Answer = session.ask(q.question, mode, sources=shared if mode.endswith("+rag") else None,
                                    should_stop=should_stop, generation=gen)
            if a.stopped:
                cancelled = True
                break
            own = getattr(a, "withheld", "") or a.answer  # the model's own words (docs/architecture.md, "Evaluation")
            item["modes"][mode] = {
                "answer": a.answer, "correct": is_correct(a.answer, q), "own_correct": is_correct(own, q),
                "quoted": bool(getattr(a, "quoted", False)),
                "f1": round(token_f1(a.answer, q.expected), 4) if q.answerable else None,
                "similarity": None, "abstained": _abstained(a), "seconds": round(a.seconds, 3),
                "sources": [_source_dict(s) for s in a.sources],
                "evidence": list(getattr(a, "evidence", None) or []),
                "withheld": getattr(a, "withheld", ""), "unsupported": list(getattr(a, "unsupported", None) or [])}
            done += 1
        if item["modes"]:
            questions.append(item)
        if cancelled:
            break
    on_event(ev.progress("eval", done, total, "Answers done"))
    # similarity in one embedding batch, after generation (the embedder is small next to the LM)
    pairs = [(item, m) for item in questions if item["answerable"] for m in item["modes"]]
    if pairs:
        on_event(ev.progress("similarity", 0, len(pairs), "Similarity of answers to the references"))
        emb = _similarity_embedder(embeddings, index)
        sims = cosine_similarities(emb, [(it["modes"][m]["answer"], it["expected"] or " ".join(it["keywords"]))
                                         for it, m in pairs])
        for (it, m), s in zip(pairs, sims):
            it["modes"][m]["similarity"] = s
        on_event(ev.progress("similarity", len(pairs), len(pairs), "Similarity done"))
    for item in questions:
        item["tags"] = verdict_tags(item["modes"])
        item["verdict"] = main_verdict(item["tags"])
    forgetting_block = None
    if probe_rows and not cancelled:
        forgetting_block = forgetting_check(session, probe_rows, gen, done=done, total=total,
                                            on_event=on_event, should_stop=should_stop)
        cancelled = forgetting_block is None
    loss: dict[str, Any] = {"note": "not measured"}
    if with_loss and not cancelled:
        loss = _loss_block(validation_loss(chat, run_dir, on_event=on_event, should_stop=should_stop))
        cancelled = should_stop()
    settings_used = AnswerSettings(retrieval=session.settings, generation=gen).to_dict()
    rep = EvalReport(name, str(run_dir), list(modes), build_scorecard(questions, modes), questions, loss,
                     forgetting_block, overlap, evalset_file, settings_used, round(created, 3),
                     time.perf_counter() - t0, cancelled)
    save_report(rep, out_dir)
    on_event(ev.log(f"evaluation written to {rep.json_path}"))
    return rep


def forgetting_check(session: ChatSession, probe_rows: Sequence[EvalRow], generation: GenerationSettings, *,
                     done: int = 0, total: int | None = None, on_event: ev.OnEvent = ev.no_event,
                     should_stop: ev.ShouldStop = ev.never_stop) -> dict[str, Any] | None:
    """Score the general-knowledge probe as base and tuned, without documents.

    A drop counts only when the paired bootstrap interval of the difference
    (tuned − base, per question) lies wholly below zero.

    Returns
    -------
    dict or None
        ``{"base": {"correct", "n", "value", "low", "high"}, "tuned": {...},
        "difference": {...}, "flag", "message", "questions"}``; ``None`` when stopped.
    """
    total = total or 2 * len(probe_rows)
    # probe answers are a word or a number: a short budget keeps the check cheap
    gen = dataclasses.replace(generation, max_new_tokens=min(generation.max_new_tokens, 48))
    items = []
    for q in probe_rows:
        row: dict[str, Any] = {"id": q.id, "question": q.question, "keywords": q.keywords}
        for mode in ("base", "tuned"):
            if should_stop():
                return None
            on_event(ev.progress("forgetting", done, total, f"general knowledge ({mode}): {q.question[:50]}"))
            a = session.ask(q.question, mode, should_stop=should_stop, generation=gen)
            if a.stopped:
                return None
            row[mode] = a.answer
            row[f"{mode}_correct"] = is_correct(a.answer, q)
            done += 1
        items.append(row)
    base = [r["base_correct"] for r in items]
    tuned = [r["tuned_correct"] for r in items]
    n = len(items)
    b, t = bootstrap(base), bootstrap(tuned)
    diff = bootstrap([float(y) - float(x) for x, y in zip(base, tuned)])
    kb, kt = sum(base), sum(tuned)
    flag = diff["high"] is not None and diff["high"] < 0
    if flag:
        message = f"tuning made general answers worse: {kb} → {kt} of {n}"
    elif diff["low"] is not None and diff["low"] > 0:
        message = f"general answers got better with tuning: {kb} → {kt} of {n}"
    else:
        message = f"no clear change in general answers: {kb} → {kt} of {n} (within the 95% interval)"
    return {"base": {"correct": kb, "n": n, **{k: b[k] for k in ("value", "low", "high")}},
            "tuned": {"correct": kt, "n": n, **{k: t[k] for k in ("value", "low", "high")}},
            "difference": diff, "flag": flag, "message": message, "questions": items}


def save_report(rep: EvalReport, out_dir: str | Path | None = None) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` (default in ``<run>/eval``), atomically."""
    from backend.evalsets import check_name

    name = check_name(rep.evalset)
    if out_dir is not None:
        out = Path(out_dir)
        jpath, mpath = out / f"{name}.json", out / f"{name}.md"
    else:
        jpath, mpath = _eval_path(rep.run_dir, name), _eval_path(rep.run_dir, name, ".md")
    jpath.parent.mkdir(parents=True, exist_ok=True)
    rep.json_path, rep.markdown_path = str(jpath), str(mpath)
    atomic_write_json(jpath, rep.to_dict())
    atomic_write_text(mpath, rep.markdown())
    return jpath


DEFAULT_SECONDS_PER_ANSWER = 2.0
"""A guess for a machine that has not evaluated yet (a 135M model on a laptop CPU, ~60 tokens)."""


def seconds_per_answer(run_dir: str | Path) -> tuple[float, bool]:
    """How long one answer took in this project's earlier evaluations, and whether it was measured.

    Reads the saved reports of every run beside ``run_dir`` (their ``seconds``
    over the answers they hold); :data:`DEFAULT_SECONDS_PER_ANSWER` when there is none.
    """
    total_s, answers = 0.0, 0
    runs_root = Path(run_dir).parent
    try:
        files = list(runs_root.glob(f"*/{runs.EVAL}/*.json"))[:50]
    except OSError:
        files = []
    for f in files:
        try:
            d = read_json(f)
            n = sum(len(q.get("modes") or {}) for q in d.get("questions") or [] if isinstance(q, dict))
            secs = records.finite(d.get("seconds"))
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        if n and secs and secs > 0:
            total_s, answers = total_s + secs, answers + n
    if answers:
        return total_s / answers, True
    return DEFAULT_SECONDS_PER_ANSWER, False


def plan(questions: int, modes: int, probes: int, run_dir: str | Path) -> tuple[str, float]:
    """What an evaluation is about to do and roughly how long it takes: one sentence, and the seconds.

    >>> plan(200_000, 4, 0, "/nowhere/run")[0]  # doctest: +ELLIPSIS
    'Evaluating 200,000 questions × 4 modes = 800,000 answers: roughly 19 days (a guess...'
    """
    from backend.errors import human_duration

    answers = questions * modes + 2 * probes
    per, measured = seconds_per_answer(run_dir)
    how = (f"at {per:.1f} s per answer, as earlier evaluations here took" if measured else
           f"a guess of {per:.0f} s per answer: no earlier evaluation here to go by")
    probe = f" plus {2 * probes} for the forgetting check" if probes else ""
    text = (f"Evaluating {questions:,} question{'s' if questions != 1 else ''} × {modes} "
            f"mode{'s' if modes != 1 else ''} = {questions * modes:,} answers{probe}: roughly "
            f"{human_duration(answers * per)} ({how}); stop at any time, what is answered is kept")
    return text, answers * per


def plan_text(questions: int, modes: int, probes: int, run_dir: str | Path) -> str:
    """The sentence of :func:`plan`."""
    return plan(questions, modes, probes, run_dir)[0]


def load_report(run_dir: str | Path, evalset_name: str) -> EvalReport | None:
    """The saved report of ``evalset_name`` for a run, or ``None`` (no model is loaded)."""
    p = _eval_path(run_dir, evalset_name)
    try:
        d = read_json(p)
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or "scorecard" not in d:
        return None
    try:
        rep = EvalReport.from_dict(d, p)
    except records.Mismatch:  # its scorecard is not a table of figures
        return None
    rep.markdown_path = str(_eval_path(run_dir, evalset_name, ".md"))
    return rep


def list_reports(run_dir: str | Path) -> list[str]:
    """Names of the evalsets this run has reports for (newest first)."""
    d = _eval_path(run_dir, "x").parent
    if not d.is_dir():
        return []
    files = sorted(d.glob("*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
    return [f.stem for f in files if load_report(run_dir, f.stem) is not None]


def compare_runs(run_dirs: Sequence[str | Path], evalset_name: str) -> list[dict[str, Any]]:
    """One row per run: its scorecard on the same evalset (``None`` when it has no report).

    Returns
    -------
    list[dict]
        ``{"run_dir", "run", "scorecard", "modes", "questions", "correct", "forgetting", "loss",
        "created", "cancelled"}``; ``correct`` maps each mode to the number right.
    """
    out = []
    for rd in run_dirs:
        rep = load_report(rd, evalset_name)
        row: dict[str, Any] = {"run_dir": str(rd), "run": Path(rd).name, "scorecard": None}
        if rep is not None:
            row.update(scorecard=rep.scorecard, modes=rep.modes, questions=len(rep.questions),
                       correct={m: sum(1 for q in rep.questions if q["modes"].get(m, {}).get("correct"))
                                for m in rep.modes},
                       forgetting=(rep.forgetting or {}).get("message"), loss=rep.loss, created=rep.created,
                       cancelled=rep.cancelled)
        out.append(row)
    return out
