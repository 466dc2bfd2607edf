"""The data pipeline: files -> examples -> rendered, tokenised, filtered rows.

:func:`prepare` feeds the training engine; :func:`check_files` and
:func:`preview` feed ``tune data check`` and the GUI's Data page.  All three run
the same steps, so what the check reports is what training gets.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from backend import events as ev
from backend.config import DataConfig, RunConfig
from backend.data.closedbook import question_answer, reworded_rows
from backend.data.encode import Encoded, Rendered, Renderer, TemplateError, segments
from backend.data.formats import Example, FileExamples, normalise_file
from backend.data.readers import FileRead, Problem, read_file
from backend.errors import DataCancelled, DataError, TuneError
from backend.specials import find_specials, neutralise, special_strings

MAX_LISTED = 50  # per kind of row-level warning, in problem lists (counts are always complete)


@dataclass
class PreparedData:
    """Token rows for training, ready for a collator (no padding).

    Attributes
    ----------
    train
        ``{"input_ids": list[int], "labels": list[int]}`` rows; labels are
        ``-100`` on tokens that carry no loss.
    eval
        Validation rows in the same form, or ``None``.
    report
        JSON-serialisable summary: files, formats, row counts, truncated /
        dropped / duplicates, problems (with file:line), token statistics.
    """

    train: list[dict]
    eval: list[dict] | None
    report: dict


@dataclass
class Row:
    """An example through the pipeline, with what happened to it."""

    example: Example
    rendered: Rendered | None = None
    encoded: Encoded | None = None
    length: int = 0          # tokens before truncation
    status: str = "kept"     # kept | truncated | overlong | no_loss | duplicate | template_error
    duplicate_of: str | None = None
    control_strings: list[str] = field(default_factory=list)  # neutralised, see backend/specials.py
    cut_from_chars: int = 0  # the row's characters before it was cut to a safe bound (0 = not cut)

    @property
    def usable(self) -> bool:
        """Whether this row goes into training."""
        return self.status in ("kept", "truncated")


@dataclass
class FileResult:
    """One file through the pipeline."""

    path: str
    kind: str | None = None
    format: str | None = None
    encoding: str | None = None
    mapping: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Summary for reports."""
        counts = Counter(r.status for r in self.rows)
        return {"path": self.path, "kind": self.kind, "format": self.format, "encoding": self.encoding,
                "column_mapping": self.mapping, "rows_read": self.rows_read,
                "rows_valid": len(self.rows), "rows_usable": counts["kept"] + counts["truncated"],
                "errors": sum(p.severity == "error" for p in self.problems),
                "warnings": sum(p.severity == "warning" for p in self.problems)}


def _n(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _by_line(p: Problem) -> tuple[bool, int]:
    return (p.line is not None, p.line or 0)


def _data_cfg(cfg: RunConfig | DataConfig | None) -> DataConfig:
    if cfg is None:
        return DataConfig()
    if isinstance(cfg, RunConfig):
        return cfg.data
    return cfg


def _seed(cfg: RunConfig | DataConfig | None) -> int:
    return cfg.training.seed if isinstance(cfg, RunConfig) else 42


def _label(path: str) -> str:
    from pathlib import Path
    return Path(path).name


def read_and_normalise(files: Sequence[str], dc: DataConfig, *, strict_files: bool,
                       on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop,
                       fmt: str | None = None) -> list[FileResult]:
    """Read every file and normalise its rows; file-level errors raise when ``strict_files``."""
    out = []
    for k, path in enumerate(files):
        if should_stop():
            raise DataCancelled()
        on_event(ev.progress("data", k, len(files), f"Reading {_label(str(path))}"))
        res = FileResult(str(path))
        out.append(res)
        try:
            fr: FileRead = read_file(path)
        except TuneError as e:
            if strict_files:
                raise
            res.problems.append(Problem(e.file or str(path), e.line, e.message, e.hint))
            continue
        res.kind, res.encoding, res.rows_read = fr.kind, fr.encoding, len(fr.rows)
        res.problems.extend(fr.problems)
        fe: FileExamples = normalise_file(fr.rows, str(path), fmt or dc.format, column_mapping=dc.column_mapping,
                                          system_prompt=dc.system_prompt, train_on_prompt=dc.train_on_prompt)
        res.format, res.mapping = fe.format, fe.mapping
        res.problems.extend(fe.problems)
        res.problems.sort(key=_by_line)
        res.rows = [Row(ex) for ex in fe.examples]
        if not fr.rows and not any(p.severity == "error" for p in res.problems):
            res.problems.append(Problem(str(path), None, "the file has no rows",
                                        "add rows, or check the file holds what you expect"))
    on_event(ev.progress("data", len(files), len(files), "Read"))
    return out


def document_results(files: Sequence[str], dc: DataConfig, *, strict_files: bool,
                     on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop
                     ) -> list[FileResult]:
    """Documents cut into chunks, each a plain-text example (located by page)."""
    from backend.documents import load_and_chunk

    out = []
    for k, path in enumerate(files):
        if should_stop():
            raise DataCancelled()
        on_event(ev.progress("data", k, len(files), f"Reading {_label(str(path))}"))
        res = FileResult(str(path), kind="document", format="text")
        out.append(res)
        try:
            chunks = load_and_chunk(path, dc.document_chunk_size, dc.document_chunk_overlap)
        except TuneError as e:
            if strict_files:
                raise
            res.problems.append(Problem(e.file or str(path), e.line, e.message, e.hint,
                                        unit="page" if e.line else "line"))
            continue
        res.rows_read = len(chunks)
        res.rows = [Row(Example(str(path), int(c.metadata.get("page") or 1), "text", "page", text=c.page_content))
                    for c in chunks]
    return out


def dedupe(results: Iterable[FileResult], seen: dict[str, str] | None = None) -> int:
    """Mark exact duplicate examples (first occurrence kept); returns how many."""
    seen = {} if seen is None else seen
    n = 0
    for res in results:
        for row in res.rows:
            if not row.usable:
                continue
            key = row.example.key()
            first = seen.get(key)
            if first is None:
                seen[key] = f"{row.example.file}:{row.example.line}"
            else:
                row.status, row.duplicate_of = "duplicate", first
                n += 1
    return n


def encode_rows(rows: list[Row], tokenizer, dc: DataConfig, *, keep_offsets: bool = False,
                on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop,
                batch_size: int = 512) -> None:
    """Render, tokenise and truncate/drop rows in place (status set per row)."""
    renderer = Renderer(tokenizer, train_on_prompt=dc.train_on_prompt)
    todo = [r for r in rows if r.usable]
    specials = special_strings(tokenizer)
    # Tokenising a 50 MB row in full took minutes and GBs of offsets; no token can be shorter
    # than a character, and real text runs 3-5 characters a token, so this keeps every token
    # that max_length can hold.
    char_bound = dc.max_length * CHARS_PER_TOKEN_BOUND
    for r in todo:
        r.control_strings = _neutralise_example(r.example, specials)
        r.cut_from_chars = _bound_example(r.example, char_bound)
    total = len(todo)
    for start in range(0, total, batch_size):
        if should_stop():
            raise DataCancelled()
        chunk = todo[start:start + batch_size]
        rendered = renderer.render([r.example for r in chunk])
        good = []
        for r, x in zip(chunk, rendered):
            if isinstance(x, TemplateError):
                r.status = "template_error"
                r.rendered = None
                r.duplicate_of = str(x)
            else:
                r.rendered = x
                good.append(r)
        encoded = renderer.encode([r.rendered for r in good], keep_offsets=keep_offsets, batch_size=batch_size)
        for r, e in zip(good, encoded):
            r.encoded = e
            r.length = len(e)
            if not e.trained:
                r.status = "no_loss"
            elif r.length > dc.max_length:
                if dc.overlong == "drop":
                    r.status = "overlong"
                else:
                    e.truncate(dc.max_length)
                    r.status = "truncated" if e.trained else "no_loss"
        on_event(ev.progress("tokenize", min(start + batch_size, total), total,
                             f"Tokenising {min(start + batch_size, total)}/{total} rows"))


CHARS_PER_TOKEN_BOUND = 16  # characters kept per token of max_length before tokenising a huge row


def _example_texts(ex: Example) -> list[tuple[Any, Any]]:
    """(container, key) pairs of every text field of an example, for in-place rewriting."""
    out: list[tuple[Any, Any]] = [(m, "content") for m in (ex.messages or []) if isinstance(m.get("content"), str)]
    out += [(ex, a) for a in ("prompt", "completion", "text") if isinstance(getattr(ex, a), str)]
    return out


def _get(obj: Any, key: str) -> str:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def _put(obj: Any, key: str, value: str) -> None:
    if isinstance(obj, dict):
        obj[key] = value
    else:
        setattr(obj, key, value)


def _neutralise_example(ex: Example, specials: Sequence[str]) -> list[str]:
    """Neutralise control strings in the example's content; returns those it contained."""
    found: list[str] = []
    for obj, key in _example_texts(ex):
        text = _get(obj, key)
        hits = find_specials(text, specials)
        if hits:
            found += [h for h in hits if h not in found]
            _put(obj, key, neutralise(text, specials))
    return found


def _bound_example(ex: Example, limit: int) -> int:
    """Cut each text field to ``limit`` characters; returns the example's length before, if cut."""
    fields = _example_texts(ex)
    total = sum(len(_get(o, k)) for o, k in fields)
    if not any(len(_get(o, k)) > limit for o, k in fields):
        return 0
    for obj, key in fields:
        text = _get(obj, key)
        if len(text) > limit:
            _put(obj, key, text[:limit])
    return total


def row_problems(results: list[FileResult], dc: DataConfig) -> None:
    """Turn row statuses into problems (warnings), and flag files left with no usable rows."""
    for res in results:
        listed: Counter = Counter()
        for r in res.rows:
            ex = r.example
            p = None
            if r.status == "overlong":
                p = Problem(ex.file, ex.line, f"{r.length} tokens, over max_length {dc.max_length}: row dropped",
                            "raise data.max_length, shorten the row, or set data.overlong to 'truncate'",
                            "warning", ex.unit)
            elif r.status == "truncated":
                p = Problem(ex.file, ex.line, f"{r.length} tokens, over max_length {dc.max_length}: truncated",
                            "raise data.max_length to keep the whole row", "warning", ex.unit)
            elif r.status == "no_loss":
                why = (f"after truncation to max_length {dc.max_length} no answer token is left"
                       if r.length > dc.max_length else "no token carries loss")
                p = Problem(ex.file, ex.line, f"{why} ({r.length} tokens): row dropped",
                            "raise data.max_length or shorten the prompt", "warning", ex.unit)
            elif r.status == "template_error":
                p = Problem(ex.file, ex.line, r.duplicate_of or "the chat template failed",
                            "check the roles and their order (some templates require user/assistant turns "
                            "to alternate)", "error", ex.unit)
            if p is not None and r.cut_from_chars:
                p.message += (f" (the row has {r.cut_from_chars:,} characters; only the first "
                              f"{dc.max_length * CHARS_PER_TOKEN_BOUND:,} per field were tokenised)")
            if r.control_strings and r.usable:
                listed["control"] += 1
                if listed["control"] <= MAX_LISTED:
                    res.problems.append(Problem(
                        ex.file, ex.line, f"contains the model's control string {r.control_strings[0]!r}"
                        + (f" (and {len(r.control_strings) - 1} more)" if len(r.control_strings) > 1 else "")
                        + ": trained as plain text, not as a control token",
                        "remove it from the row if it was not meant to be there", "warning", ex.unit))
            if p is not None:
                listed[r.status] += 1
                if listed[r.status] <= MAX_LISTED or p.severity == "error":
                    res.problems.append(p)
        for status, n in listed.items():
            if n > MAX_LISTED and status != "template_error":
                res.problems.append(Problem(res.path, None, f"{n - MAX_LISTED} more rows {status} (not listed)",
                                            None, "warning"))
        res.problems.sort(key=_by_line)
        has_errors = any(p.severity == "error" for p in res.problems)
        if res.rows and not any(r.usable or r.status == "duplicate" for r in res.rows) and not has_errors:
            reasons = Counter(r.status for r in res.rows)
            res.problems.append(Problem(
                res.path, None, f"no usable rows left ({', '.join(f'{n} {s}' for s, n in reasons.items())})",
                f"raise data.max_length (now {dc.max_length}) or set data.overlong to 'truncate'"
                if reasons.get("overlong") or reasons.get("no_loss") else "fix the rows listed above"))


def token_stats(lengths: Sequence[int]) -> dict[str, Any]:
    """min / median / p95 / max / mean of token lengths (``{}`` when empty)."""
    if not len(lengths):
        return {}
    a = np.asarray(lengths)
    return {"count": int(a.size), "min": int(a.min()), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": int(a.max()), "mean": round(float(a.mean()), 1),
            "total": int(a.sum())}


def histogram(lengths: Sequence[int], max_length: int | None = None, bins: int = 20) -> dict[str, Any]:
    """Token-length histogram: ``{"edges": [...], "counts": [...], "max_length": N}``."""
    if not len(lengths):
        return {"edges": [], "counts": [], "max_length": max_length}
    a = np.asarray(lengths)
    hi = max(int(a.max()), 1)
    counts, edges = np.histogram(a, bins=min(bins, max(1, hi - int(a.min()) + 1)), range=(int(a.min()), hi + 1))
    return {"edges": [round(float(e), 1) for e in edges], "counts": counts.astype(int).tolist(),
            "max_length": max_length}


def validation_count(n: int, fraction: float) -> int:
    """How many of ``n`` rows a ``validation_split`` of ``fraction`` holds out (at least 1, never all)."""
    if fraction <= 0 or n < 2:
        return 0
    return min(max(1, int(round(n * fraction))), n - 1)


def split_rows(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministic train / validation indices (both sorted) for ``n`` rows."""
    n_val = validation_count(n, fraction)
    if not n_val:
        return list(range(n)), []
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    return sorted(idx[n_val:]), sorted(idx[:n_val])


def _first_error(results: list[FileResult]) -> tuple[Problem | None, int]:
    errs = [p for res in results for p in res.problems if p.severity == "error"]
    return (errs[0] if errs else None), len(errs)


def _as_row(r: Row) -> dict:
    return {"input_ids": r.encoded.input_ids, "labels": r.encoded.labels}


def _summary(results: list[FileResult], dc: DataConfig, duplicates: int) -> dict[str, Any]:
    rows = [r for res in results for r in res.rows]
    counts = Counter(r.status for r in rows)
    usable = [r for r in rows if r.usable]
    lengths = [r.length for r in rows if r.encoded is not None]
    kept_lengths = [len(r.encoded) for r in usable]
    fit = fit_rows(rows, dc)
    roles: Counter = Counter()
    for r in rows:
        roles.update(r.example.roles())
    formats = sorted({res.format for res in results if res.format})
    return {
        "files": [res.to_dict() for res in results],
        "format": formats[0] if len(formats) == 1 else ("mixed" if formats else None),
        "formats": formats,
        "rows_read": sum(res.rows_read for res in results),
        "rows_valid": len(rows),
        "rows_kept": len(usable),
        "truncated": counts["truncated"],
        "dropped_overlong": counts["overlong"],
        "dropped_no_loss": counts["no_loss"],
        "duplicates": duplicates,
        "template_errors": counts["template_error"],
        "over_max_length": sum(1 for n in lengths if n > dc.max_length),
        "max_length": dc.max_length,
        "overlong": dc.overlong,
        "roles": dict(roles),
        "tokens": token_stats(lengths),
        "tokens_kept": token_stats(kept_lengths),
        "trained_tokens": int(sum(r.encoded.trained for r in usable)),
        "problems": [p.to_dict() for res in results for p in res.problems],
        "fit": {"rows": len(fit), "tokens": token_stats([r.length for r in fit])},
        "knowledge": knowledge_counts(fit),
    }


def fit_rows(rows: Sequence[Row], dc: DataConfig) -> list[Row]:
    """The rows that train once ``max_length`` holds them, whatever it is now.

    Kept, truncated, dropped as overlong, or left without an answer token by the
    cut: what a derived preset is fitted to (``summary["fit"]``: their number and
    untruncated lengths), so the fit is the same under any ``max_length``.
    """
    return [r for r in rows if r.encoded is not None and (
        r.usable or r.status == "overlong" or (r.status == "no_loss" and r.length > dc.max_length))]


def knowledge_counts(rows: Sequence[Row]) -> dict[str, Any]:
    """Facts and how often each is trained per epoch (the Data page's "exposures per fact").

    A fact is an answer (its text, case and spacing folded); every usable chat row
    ending in it is one exposure per epoch, whatever its question's wording and
    whether it carries passages.  Abstention and counterfactual rows (whose figures were
    changed) are counted apart.
    """
    per_fact: Counter = Counter()
    origins: Counter = Counter()
    for r in rows:
        ex = r.example
        origins[ex.origin or "row"] += 1
        if ex.origin in ("abstain", "counterfactual") or ex.messages is None:
            continue
        last = ex.messages[-1] if ex.messages else None
        if not last or last.get("role") != "assistant":
            continue
        if ex.origin == "" and question_answer(ex) is None:
            continue
        per_fact[" ".join(str(last.get("content") or "").casefold().split())] += 1
    counts = sorted(per_fact.values())
    stats = ({"min": counts[0], "median": float(np.median(counts)), "max": counts[-1]} if counts else {})
    return {"facts": len(counts), "rows_per_fact": stats, "rows_by_origin": dict(origins)}


def _run(files: Sequence[str], tokenizer, dc: DataConfig, *, strict: bool, on_event: ev.OnEvent,
         should_stop: ev.ShouldStop, seen: dict[str, str] | None = None, keep_offsets: bool = False,
         documents: Sequence[str] = (), seed: int = 42, heldout: list[Row] | None = None
         ) -> tuple[list[FileResult], int]:
    """Read, shape, dedupe, encode.  ``heldout`` (a list) receives the held-out rewordings, encoded."""
    results = read_and_normalise(files, dc, strict_files=strict, on_event=on_event, should_stop=should_stop)
    held: list[Example] = []
    if dc.raft:
        held = _raft(results, dc, seed, on_event, should_stop, strict=strict)
    elif dc.rewordings:
        _add_rows(results, _reworded(results, dc, seed, as_written=False))
    results += document_results(documents, dc, strict_files=strict, on_event=on_event, should_stop=should_stop)
    if strict:
        _raise_first(results)
    duplicates = dedupe(results, seen) if dc.dedupe else 0
    encode_rows([r for res in results for r in res.rows], tokenizer, dc, keep_offsets=keep_offsets,
                on_event=on_event, should_stop=should_stop)
    row_problems(results, dc)
    if heldout is not None and held:
        rows = [Row(ex) for ex in held]
        encode_rows(rows, tokenizer, dc, on_event=on_event, should_stop=should_stop)
        heldout.extend(r for r in rows if r.usable)
    return results, duplicates


def _reworded(results: list[FileResult], dc: DataConfig, seed: int, *, as_written: bool,
              limit: int | None = None, n: int | None = None) -> list[tuple[Row, Example]]:
    """Plain rows: ``n`` (default ``data.rewordings``) rewordings of each question, after the question
    as written when ``as_written``; each with the row it follows."""
    rows = [r for res in results for r in res.rows if r.usable][:limit]
    return [(rows[i], ex) for i, ex in reworded_rows([r.example for r in rows], dc.rewordings if n is None else n,
                                                      seed=seed, as_written=as_written)]


def _add_rows(results: list[FileResult], extra: list[tuple[Row, Example]]) -> None:
    """Insert each new row right after the row it was made from (same file, same line)."""
    after: dict[int, list[Example]] = {}
    for src, ex in extra:
        after.setdefault(id(src), []).append(ex)
    for res in results:
        out: list[Row] = []
        for r in res.rows:
            out.append(r)
            out.extend(Row(ex) for ex in after.get(id(r), []))
        res.rows = out


def _raft(results: list[FileResult], dc: DataConfig, seed: int, on_event: ev.OnEvent,
          should_stop: ev.ShouldStop, *, strict: bool = True, limit: int | None = None) -> list[Example]:
    """``data.raft``: question-answer rows shown with the passages the chat retrieves (backend.data.raft).

    With the knowledge recipe's options, closed-book rows (the question as written and its
    rewordings), abstention rows and held-out rewordings are made too (docs/architecture.md,
    "The knowledge recipe"); the held-out rows are returned (the checks and previews drop them).
    Not strict (checks, previews): a missing index becomes a problem of the first file instead of an error.
    """
    from backend.data.raft import _Renderer, apply_raft, knowledge_rows, open_raft_index
    from backend.rag.settings import RetrievalSettings

    rows = [r.example for res in results for r in res.rows][:limit]
    try:
        settings = RetrievalSettings()
        renderer = _Renderer(open_raft_index(dc, on_event), settings, dc, seed, on_event)
        # the question as written once without passages (the fact is stored); its rewordings are shown
        # with the passages retrieved for them like the row itself, so most rows teach reading
        closed = _reworded(results, dc, seed, as_written=True, limit=limit, n=0) if dc.raft_closed_book else []
        abstain, held = ([], []) if limit is not None else knowledge_rows(
            rows, dc, seed=seed, settings=settings, on_event=on_event, should_stop=should_stop, renderer=renderer)
        reworded = _reworded(results, dc, seed, as_written=False, limit=limit) if dc.rewordings else []
        rows += [ex for _src, ex in reworded]
        apply_raft(rows, dc, seed=seed, settings=settings, on_event=on_event, should_stop=should_stop,
                   renderer=renderer)
        closed = closed + reworded
        renderer.save()
    except DataCancelled:
        raise
    except DataError as e:
        if strict or not results:
            raise
        results[0].problems.append(Problem(results[0].path, None, e.message, e.hint or ""))
        return []
    _add_rows(results, closed)
    by_file = {res.path: res for res in results}
    for ex in abstain:  # after the rows of the file their question came from
        by_file.get(ex.file, results[0]).rows.append(Row(ex))
    return held


def _raise_first(results: list[FileResult]) -> None:
    first, n = _first_error(results)
    if first is not None:
        files = " ".join(res.path for res in results)
        extra = f"({n - 1} more problem{'s' if n > 2 else ''}; run `tune data check {files}` to list them all)" \
            if n > 1 else ""
        raise first.to_error(DataError, extra)


def prepare(cfg: RunConfig, tokenizer, *, on_event: ev.OnEvent = ev.no_event,
            should_stop: ev.ShouldStop = ev.never_stop) -> PreparedData:
    """Turn the config's data files into token rows for training.

    Parameters
    ----------
    cfg
        The run config; ``cfg.data`` says which files and how, ``cfg.training.seed``
        fixes the validation split.
    tokenizer
        The base model's fast tokenizer (from :func:`backend.models.load_tokenizer`).
    on_event
        Receives ``progress`` events (stages ``data`` and ``tokenize``) and a
        ``log`` event with the summary.
    should_stop
        Checked between files and batches.

    Returns
    -------
    PreparedData

    Raises
    ------
    DataError
        Unreadable or malformed input (naming file and line), or no usable rows.
    DataCancelled
        When ``should_stop()`` became true.
    """
    dc = cfg.data
    if not dc.train_files and not dc.document_files:
        raise DataError("no training files given", field="data.train_files",
                        hint="add dataset files (jsonl, json, csv, parquet, txt) on the Data page or with --data")
    if dc.document_files and dc.document_chunk_overlap >= dc.document_chunk_size:
        raise DataError(f"document_chunk_overlap ({dc.document_chunk_overlap}) must be below document_chunk_size "
                        f"({dc.document_chunk_size})", field="data.document_chunk_overlap",
                        hint="use an overlap of at most 20% of the chunk size, or 0")
    seen: dict[str, str] = {}
    heldout: list[Row] = []
    results, dups = _run(dc.train_files, tokenizer, dc, strict=True, on_event=on_event, seed=_seed(cfg),
                         should_stop=should_stop, seen=seen, documents=dc.document_files, heldout=heldout)
    _raise_first(results)
    usable = [r for res in results for r in res.rows if r.usable]
    if not usable:
        raise DataError("no usable training rows", file=dc.train_files[0] if len(dc.train_files) == 1 else None,
                        hint=f"raise data.max_length (now {dc.max_length}) or check the files with `tune data check`")
    report = _summary(results, dc, dups)
    eval_rows: list[Row] | None
    if dc.validation_files:
        vres, vdups = _run(dc.validation_files, tokenizer, dc, strict=True, on_event=on_event, seed=_seed(cfg),
                           should_stop=should_stop, seen=dict(seen) if dc.dedupe else None)
        _raise_first(vres)
        eval_rows = [r for res in vres for r in res.rows if r.usable]
        if not eval_rows:
            raise DataError("no usable validation rows", field="data.validation_files",
                            hint="check the validation files with `tune data check`")
        report["validation"] = _summary(vres, dc, vdups)
        train_rows = usable
    elif heldout:  # data.heldout_rewordings: every fact trains; untrained rewordings measure recall
        train_rows, eval_rows = usable, heldout
    else:
        tr, va = split_rows(len(usable), dc.validation_split, _seed(cfg))
        train_rows = [usable[i] for i in tr]
        eval_rows = [usable[i] for i in va] or None
        if dc.validation_split > 0 and not va:
            report["problems"].append(Problem((dc.train_files or dc.document_files)[0], None, "only one usable row: no validation split",
                                              "add rows or validation files", "warning").to_dict())
    report["train_rows"] = len(train_rows)
    report["eval_rows"] = len(eval_rows) if eval_rows else 0
    report["split"] = ("files" if dc.validation_files else "held-out rewordings" if heldout and not dc.validation_files
                       else f"{dc.validation_split:g} by seed {_seed(cfg)}")
    on_event(ev.log(f"data: {report['rows_kept']} usable rows of {report['rows_read']} "
                    f"({report['train_rows']} train, {report['eval_rows']} eval; {report['truncated']} truncated, "
                    f"{report['dropped_overlong']} dropped as overlong, {report['duplicates']} duplicates)"))
    return PreparedData([_as_row(r) for r in train_rows],
                        [_as_row(r) for r in eval_rows] if eval_rows else None, report)


# ---------------------------------------------------------------------------
# check and preview

@dataclass
class CheckReport:
    """What ``tune data check`` and the Data page show about a set of files.

    ``usable`` is true when there is no error-level problem and at least one
    usable row.  ``summary`` holds the counts (see :func:`prepare`'s report).
    """

    summary: dict[str, Any]
    problems: list[Problem]
    histogram: dict[str, Any]

    @property
    def usable(self) -> bool:
        """No errors and at least one row to train on."""
        return self.summary.get("rows_kept", 0) > 0 and not self.errors

    @property
    def errors(self) -> list[Problem]:
        """Error-level problems."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Warning-level problems."""
        return [p for p in self.problems if p.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return {**self.summary, "usable": self.usable, "problems": [p.to_dict() for p in self.problems],
                "histogram": self.histogram}

    def text(self) -> str:
        """A human-readable report (what the CLI prints)."""
        s = self.summary
        lines = []
        for f in s["files"]:
            enc = f" {f['encoding']}" if f.get("encoding") and f["encoding"] != "utf-8" else ""
            mp = f", columns mapped {f['column_mapping']}" if f.get("column_mapping") else ""
            lines.append(f"{f['path']}: {f['kind'] or '?'}{enc}, format {f['format'] or '?'}{mp}, "
                         f"{_n(f['rows_read'], 'row')}, {f['rows_usable']} usable")
        if len(s["formats"]) > 1:
            lines.append(f"formats: {', '.join(s['formats'])} (one per file)")
        else:
            lines.append(f"format: {s['format'] or 'unknown'}")
        lines.append(f"rows: {s['rows_read']} read, {s['rows_valid']} valid, {s['rows_kept']} usable, "
                     f"{s['duplicates']} duplicates removed")
        if s["roles"]:
            lines.append("roles: " + ", ".join(f"{k} {v}" for k, v in sorted(s["roles"].items())))
        t = s["tokens"]
        if t:
            lines.append(f"tokens per row: min {t['min']}, median {t['median']:g}, p95 {t['p95']:g}, max {t['max']} "
                         f"({t['total']} in all; {s['trained_tokens']} carry loss after filtering)")
        k = s.get("knowledge") or {}
        if k.get("facts"):
            rpf = k["rows_per_fact"]
            made = {o: n for o, n in sorted(k["rows_by_origin"].items()) if o != "row"}
            lines.append(f"facts: {k['facts']}, trained {rpf['median']:g} times per epoch each (median; "
                         f"min {rpf['min']}, max {rpf['max']})"
                         + (f"; rows made by the recipe: {', '.join(f'{o} {n}' for o, n in made.items())}" if made else ""))
        lines.append(f"over max_length {s['max_length']}: {_n(s['over_max_length'], 'row')} "
                     f"({s['truncated']} truncated, {s['dropped_overlong']} dropped; data.overlong = {s['overlong']})")
        if self.problems:
            lines.append(f"problems ({len(self.errors)} errors, {len(self.warnings)} warnings):")
            for p in self.problems:
                lines.append(f"  {p.severity}: {p.text()}")
        lines.append("usable: yes" if self.usable else "usable: NO — fix the errors above")
        return "\n".join(lines)


def check_files(files: Sequence[str], tokenizer, cfg: RunConfig | DataConfig | None = None, *,
                format: str | None = None, on_event: ev.OnEvent = ev.no_event,
                should_stop: ev.ShouldStop = ev.never_stop) -> CheckReport:
    """Check dataset files against a tokenizer and report every problem.

    Parameters
    ----------
    files
        Dataset files or saved-dataset folders.
    tokenizer
        The chosen model's tokenizer.
    cfg
        A ``RunConfig`` or ``DataConfig`` (format, mapping, max_length, ...);
        defaults when ``None``.
    format
        Override ``cfg.data.format``.

    Returns
    -------
    CheckReport
        Never raises for bad data: every problem is in ``report.problems``.
    """
    dc = _data_cfg(cfg)
    if format and format != dc.format:
        dc = DataConfig(**{**dc.__dict__, "format": format})
    results, dups = _run(list(files), tokenizer, dc, strict=False, on_event=on_event, should_stop=should_stop,
                         seed=_seed(cfg))
    summary = _summary(results, dc, dups)
    problems = [p for res in results for p in res.problems]
    lengths = [r.length for res in results for r in res.rows if r.encoded is not None]
    return CheckReport(summary, problems, histogram(lengths, dc.max_length))


@dataclass
class PreviewRow:
    """One rendered row: ``segments`` are ``(text, trained)`` runs in order."""

    file: str
    line: int
    format: str
    segments: list[tuple[str, bool]]
    tokens: int
    trained_tokens: int
    status: str

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {"file": self.file, "line": self.line, "format": self.format, "tokens": self.tokens,
                "trained_tokens": self.trained_tokens, "status": self.status,
                "segments": [{"text": t, "trained": b} for t, b in self.segments]}

    def marked(self, open_mark: str = "⟦", close_mark: str = "⟧") -> str:
        """The row as text with masked (no-loss) runs wrapped in marks."""
        return "".join(t if b else f"{open_mark}{t}{close_mark}" for t, b in self.segments)


def preview(files: Sequence[str], tokenizer, cfg: RunConfig | DataConfig | None = None, n: int = 5, *,
            format: str | None = None) -> list[PreviewRow]:
    """The first ``n`` valid rows rendered as the model will see them.

    Parameters
    ----------
    files, tokenizer, cfg, format
        As for :func:`check_files`.
    n
        How many rows.

    Returns
    -------
    list[PreviewRow]
        Each with ``segments``: ``(text, trained)`` runs, after truncation.
    """
    dc = _data_cfg(cfg)
    if format and format != dc.format:
        dc = DataConfig(**{**dc.__dict__, "format": format})
    results = read_and_normalise(list(files), dc, strict_files=False)
    if dc.raft:
        _raft(results, dc, _seed(cfg), ev.no_event, ev.never_stop, strict=False, limit=max(0, n))
    rows = [r for res in results for r in res.rows][:max(0, n)]
    encode_rows(rows, tokenizer, dc, keep_offsets=True)
    out = []
    for r in rows:
        if r.encoded is None or r.rendered is None:
            segs: list[tuple[str, bool]] = []
        else:
            segs = segments(r.rendered, r.encoded, tokenizer)
        out.append(PreviewRow(r.example.file, r.example.line, r.example.format, segs,
                              len(r.encoded) if r.encoded else 0,
                              r.encoded.trained if r.encoded else 0, r.status))
    return out
