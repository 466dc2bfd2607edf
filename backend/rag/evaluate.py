"""Evaluate a run in the four chat modes over a questions file.

Each line of the questions file is a JSON object::

    {"question": "...", "answer": "expected answer", "keywords": ["k1", "k2"], "source": "guide.pdf"}

``question`` is required, and at least one of ``answer`` / ``keywords``;
``source`` (a file name or path) enables the retrieval hit rate.

Metrics per mode: accuracy (the answer contains the expected answer, or all
keywords; case-insensitive), token-level F1 against the expected answer (or
the keywords), and, with retrieval, the hit rate (the expected source is among
the retrieved passages).  Also the run's validation loss and perplexity before
(adapter disabled) and after tuning.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import string
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from backend import events as ev
from backend.errors import DataError, TuneError
from backend.fsutil import atomic_write_json, atomic_write_text
from backend.rag.chain import MODES, Answer, ChatSession
from backend.rag.settings import GenerationSettings, RetrievalSettings

if TYPE_CHECKING:
    from backend.rag.chat_model import HFChatModel
    from backend.workspace import Project

MAX_LOSS_ROWS = 256  # validation rows scored before/after; enough for a stable mean on a CPU


@dataclass
class Question:
    """One line of a questions file."""

    question: str
    answer: str = ""
    keywords: list[str] = field(default_factory=list)
    source: str = ""
    line: int = 0


def read_questions(path: str | Path) -> list[Question]:
    """Read and check a questions JSONL file.

    Raises
    ------
    DataError
        Unreadable file, invalid JSON, or a row without a question or without
        an expected answer / keywords (naming the line).
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise DataError(f"cannot read the questions file ({e.strerror or e})", file=p, hint="check the path") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON: {e.msg}", file=p, line=n, hint="write one JSON object per line") from None
        if not isinstance(row, dict):
            raise DataError("each line must be a JSON object", file=p, line=n)
        q = row.get("question")
        if not isinstance(q, str) or not q.strip():
            raise DataError("no 'question'", file=p, line=n, field="question",
                            hint='write {"question": "...", "answer": "..."}')
        ans = row.get("answer", row.get("expected", ""))
        kws = row.get("keywords", [])
        if isinstance(kws, str):
            kws = [kws]
        if not isinstance(ans, str) or not isinstance(kws, list) or not all(isinstance(k, str) for k in kws):
            raise DataError("'answer' must be text and 'keywords' a list of text", file=p, line=n)
        if not ans.strip() and not any(k.strip() for k in kws):
            raise DataError("no expected 'answer' or 'keywords' to check the answer against", file=p, line=n,
                            field="answer", hint='add "answer": "..." or "keywords": ["...", "..."]')
        src = row.get("source", "")
        out.append(Question(q.strip(), ans.strip(), [k.strip() for k in kws if k.strip()],
                            src if isinstance(src, str) else "", n))
    if not out:
        raise DataError("the questions file has no questions", file=p,
                        hint='write one {"question": "...", "answer": "..."} object per line')
    return out


# ---------------------------------------------------------------------------
# metrics


def _normalise(text: str) -> str:
    """Lower case, no accents or punctuation, single spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.translate(str.maketrans({c: " " for c in string.punctuation}))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def is_correct(answer: str, q: Question) -> bool:
    """The answer contains the expected answer, or every keyword (case-insensitive)."""
    a = _normalise(answer)
    if q.answer and _normalise(q.answer) and _normalise(q.answer) in a:
        return True
    if q.keywords:
        return all(_normalise(k) in a for k in q.keywords)
    return False


def token_f1(answer: str, expected: str) -> float:
    """Token-level F1 between an answer and the expected text (SQuAD definition)."""
    pred, gold = _normalise(answer).split(), _normalise(expected).split()
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
    evals = [e for e in read_events(Path(run_dir) / "metrics.jsonl") if e.get("type") == "eval"
             and isinstance(e.get("eval_loss"), (int, float))]
    if evals:
        out["trainer_eval_loss"] = evals[-1]["eval_loss"]
    rows = None
    try:
        from backend.config import RunConfig
        from backend.data import prepare

        cfg = RunConfig.load(Path(run_dir) / "config.json")
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
        out.update(after={"loss": loss, "perplexity": perplexity(loss)}, source="metrics.jsonl (last eval)")
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

    model = chat.hf_model
    device = next(model.parameters()).device
    total, count = 0.0, 0
    stage = "loss-tuned" if adapter else "loss-base"
    with chat._lock, chat.adapter_context(adapter), torch.inference_mode():
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


@dataclass
class EvalReport:
    """What :func:`evaluate` measured, and where it wrote it."""

    modes: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]
    loss: dict[str, Any]
    run_dir: str
    questions_file: str
    json_path: str = ""
    markdown_path: str = ""
    cancelled: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (the eval.json file)."""
        return {"run_dir": self.run_dir, "questions_file": self.questions_file, "modes": self.modes,
                "loss": self.loss, "questions": self.rows, "cancelled": self.cancelled,
                "seconds": round(self.seconds, 2)}

    def markdown(self) -> str:
        """The four-mode table and the loss before / after, as Markdown."""
        lines = [f"# Evaluation of `{Path(self.run_dir).name}`", "",
                 f"{len(self.rows)} questions from `{Path(self.questions_file).name}`"
                 + (" (cancelled: partial)" if self.cancelled else ""), "",
                 "| mode | accuracy | token F1 | retrieval hit rate | answers |",
                 "| --- | ---: | ---: | ---: | ---: |"]
        for mode, m in self.modes.items():
            hit = "—" if m.get("retrieval_hit_rate") is None else f"{m['retrieval_hit_rate']:.1%}"
            lines.append(f"| {mode} | {m['accuracy']:.1%} | {m['f1']:.3f} | {hit} | {m['answered']} |")
        lines += ["", "## Validation loss", ""]
        before, after = self.loss.get("before"), self.loss.get("after")
        if before or after:
            lines += ["| | loss | perplexity |", "| --- | ---: | ---: |"]
            for name, v in (("before tuning (base)", before), ("after tuning", after)):
                if v:
                    ppl = f"{v['perplexity']:.2f}" if v.get("perplexity") is not None else "—"
                    lines.append(f"| {name} | {v['loss']:.4f} | {ppl} |")
                else:
                    lines.append(f"| {name} | — | — |")
            if self.loss.get("source"):
                lines += ["", f"Source: {self.loss['source']}" + (f", {self.loss['rows']} rows" if self.loss.get("rows") else "") + "."]
        else:
            lines.append(f"Not available: {self.loss.get('note') or 'no validation data'}.")
        return "\n".join(lines) + "\n"


def evaluate(project: "Project | str | Path", questions_jsonl: str | Path, run_dir: str | Path, *,
             out_dir: str | Path | None = None, modes: Sequence[str] = MODES,
             retrieval: RetrievalSettings | None = None, generation: GenerationSettings | None = None,
             chat_model: "HFChatModel | None" = None, embeddings: Any = None, with_loss: bool = True,
             on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> EvalReport:
    """Run every question in the four modes and write ``eval.json`` and ``eval.md``.

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder (its index is used).
    questions_jsonl
        The questions file (see the module docstring).
    run_dir
        The run whose adapter is evaluated (tuned) against its base model.
    out_dir
        Where to write the reports (default ``<run_dir>/eval``).
    modes
        A subset of :data:`MODES`.
    retrieval, generation
        Settings; generation defaults to the chat model's settings with greedy
        decoding, so the comparison is reproducible.
    chat_model, embeddings
        Already loaded models to reuse (the GUI's); loaded from the run otherwise.
    with_loss
        Also measure the validation loss before / after tuning.
    on_event, should_stop
        Progress events (stages ``load``, ``eval``, ``loss-base``, ``loss-tuned``)
        and cancellation (checked between answers and tokens; a stopped
        evaluation still writes what it measured, marked cancelled).

    Returns
    -------
    EvalReport

    Raises
    ------
    DataError
        A malformed questions file.
    RunError, ModelError, IndexStoreError
        A missing run or adapter, an adapter for another base model, no or an
        empty index (retrieval modes).
    """
    from backend.rag.chat_model import load_chat_model
    from backend.rag.index import open_index

    t0 = time.perf_counter()
    questions = read_questions(questions_jsonl)
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise DataError(f"unknown mode {bad[0]!r}", field="modes", hint=f"choose from {', '.join(MODES)}")
    need_index = any(m.endswith("+rag") for m in modes)
    index = open_index(project, embeddings=embeddings) if need_index else None
    chat = chat_model or load_chat_model(run_dir, on_event=on_event)
    if not chat.has_adapter and any(m.startswith("tuned") for m in modes):
        from backend.errors import RunError
        raise RunError("the model has no adapter, so tuned and base would be the same", file=run_dir,
                       hint="evaluate a completed LoRA run")
    session = ChatSession(chat, index, retrieval)
    # greedy by default, so base and tuned are compared without sampling noise
    gen = generation or dataclasses.replace(chat.settings, temperature=0.0)
    rows: list[dict[str, Any]] = []
    total = len(questions) * len(modes)
    done = 0
    cancelled = False
    for q in questions:
        if should_stop():
            cancelled = True
            break
        shared = session.retrieve(q.question) if need_index else None
        row: dict[str, Any] = {"line": q.line, "question": q.question, "expected": q.answer,
                               "keywords": q.keywords, "source": q.source, "modes": {}}
        if shared is not None:
            row["retrieved"] = [{"file": s.file, "path": s.path, "page": s.page, "chunk": s.chunk, "score": s.score}
                                for s in shared]
            row["retrieval_hit"] = source_hit(shared, q.source) if q.source else None
        for mode in modes:
            on_event(ev.progress("eval", done, total, f"{mode}: {q.question[:60]}"))
            a: Answer = session.ask(q.question, mode, sources=shared if mode.endswith("+rag") else None,
                                    should_stop=should_stop, generation=gen)
            if a.stopped:
                cancelled = True
                break
            expected = q.answer or " ".join(q.keywords)
            row["modes"][mode] = {"answer": a.answer, "correct": is_correct(a.answer, q),
                                  "f1": round(token_f1(a.answer, expected), 4), "seconds": round(a.seconds, 3)}
            done += 1
        if cancelled:
            break
        rows.append(row)
    on_event(ev.progress("eval", done, total, "Answers done"))
    summary = _summarise(rows, modes)
    loss: dict[str, Any] = {"note": "not measured"}
    if with_loss and not cancelled:
        loss = validation_loss(chat, run_dir, on_event=on_event, should_stop=should_stop)
    rep = EvalReport(summary, rows, loss, str(run_dir), str(questions_jsonl), cancelled=cancelled,
                     seconds=time.perf_counter() - t0)
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    rep.json_path, rep.markdown_path = str(out / "eval.json"), str(out / "eval.md")
    atomic_write_json(out / "eval.json", rep.to_dict())
    atomic_write_text(out / "eval.md", rep.markdown())
    on_event(ev.log(f"evaluation written to {rep.markdown_path}"))
    return rep


def _summarise(rows: list[dict[str, Any]], modes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-mode accuracy, mean F1 and retrieval hit rate."""
    out = {}
    hits = [r["retrieval_hit"] for r in rows if r.get("retrieval_hit") is not None]
    for m in modes:
        res = [r["modes"][m] for r in rows if m in r["modes"]]
        n = len(res)
        out[m] = {"answered": n,
                  "accuracy": sum(r["correct"] for r in res) / n if n else 0.0,
                  "f1": sum(r["f1"] for r in res) / n if n else 0.0,
                  "retrieval_hit_rate": (sum(hits) / len(hits) if hits else None) if m.endswith("+rag") else None}
        if math.isnan(out[m]["f1"]):
            out[m]["f1"] = 0.0
    return out
