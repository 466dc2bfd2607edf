"""Retrieval-augmented fine-tuning (RAFT, Zhang et al. 2024): training rows shown with their passages.

With ``data.raft`` on, every single-turn question-answer row is rendered the
way the chat will ask the model: the project's index is searched for the
question exactly as the chat searches (hybrid retrieval, evidence sentences,
the same system prompt and user template, :func:`backend.rag.chain.rag_prompt`),
``raft_distractors`` unrelated passages are added, and a share
``raft_p_without_gold`` of the rows is shown without the passage that holds the
answer.  The adapter so learns to find and copy the answer from the context,
which carries over to questions it never saw (``docs/architecture.md``, RAG).

Rendering is deterministic (seeded per row) and cached by content hash in
``<project>/index/raft_cache.json``: the same row, index and settings give the
same prompt without searching again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from backend import events as ev
from backend.data.closedbook import question_answer
from backend.errors import DataCancelled, DataError, IndexStoreError
from backend.fsutil import atomic_write_json, read_json

if TYPE_CHECKING:
    from backend.config import DataConfig
    from backend.data.formats import Example
    from backend.rag.embeddings import LocalEmbeddings
    from backend.rag.index import DocumentIndex
    from backend.rag.source import Source
    from backend.rag.settings import RetrievalSettings

CACHE_FILE = "raft_cache.json"
CACHE_FORMAT = 1


def find_project(dc: "DataConfig") -> Path:
    """The project whose index RAFT searches: ``dc.raft_project``, else the folder above the training files with a project.json.

    Raises
    ------
    DataError
        When no project is named and none holds the training files.
    """
    if dc.raft_project:
        return Path(dc.raft_project).expanduser()
    for f in dc.train_files:
        for parent in Path(f).expanduser().resolve().parents:
            if (parent / "project.json").is_file():
                return parent
    raise DataError("'Train the model to answer from your documents' needs the project's document index",
                    field="data.raft_project",
                    hint="set data.raft_project to the project folder, or keep the datasets inside the project")


def _index_state(index: "DocumentIndex") -> str:
    """A hash of what the index holds (sources and their versions, the embedder)."""
    meta = index.meta
    state = {"embedder": (meta.get("embedder") or {}).get("fingerprint"),
             "sources": sorted((k, r.get("sha256"), r.get("chunks")) for k, r in meta.get("sources", {}).items())}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def _gold(answer: str, sources: Sequence["Source"]) -> int | None:
    """The retrieved passage that holds the answer best (most of the answer's words), or ``None``."""
    from backend.rag.hybrid import tokenize

    want = set(tokenize(answer))
    if not want:
        return None
    best, best_n = None, 0
    for i, s in enumerate(sources):
        n = len(want & set(tokenize(s.text)))
        if n > best_n:
            best, best_n = i, n
    return best


def render_row(question: str, answer: str, index: "DocumentIndex", settings: "RetrievalSettings", *,
               distractors: int, p_without_gold: float, seed: int, all_ids: Sequence[str] | None = None
               ) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The RAFT messages for one question-answer pair.

    Parameters
    ----------
    question, answer
        The training row.
    index
        The project's document index (ready).
    settings
        The chat's retrieval settings (the prompt is built exactly as the chat builds it).
    distractors
        Unrelated passages added (drawn from chunks not retrieved).
    p_without_gold
        Probability that the passage holding the answer is left out.
    seed
        Seeds this row's random choices (with the question), so rendering is deterministic.
    all_ids
        The index's chunk ids (looked up when ``None``).

    Returns
    -------
    messages, info
        ``[{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant", answer}]``
        and ``{"gold": bool, "distractors": n, "sources": [file#chunk, ...]}``.
    """
    from backend.rag.chain import build_context, rag_prompt
    from backend.rag.source import Source

    rng = random.Random(f"{seed}\0{question}")
    found = index.search(question, settings.k, settings)
    without_gold = rng.random() < p_without_gold
    kept = list(found)
    gold = _gold(answer, found)
    if without_gold and gold is not None:
        # drop every retrieved passage that holds the answer's words as well as the best one does
        from backend.rag.hybrid import tokenize

        want = set(tokenize(answer))
        top = len(want & set(tokenize(found[gold].text)))
        kept = [s for s in found if len(want & set(tokenize(s.text))) < top]
    added = 0
    if distractors > 0:
        ids = list(all_ids) if all_ids is not None else sorted(index.lexical.ids())
        taken = {s.id for s in found}
        pool = sorted(i for i in ids if i not in taken)
        pick = rng.sample(pool, min(distractors, len(pool)))
        if pick:
            got = index.collection.get(ids=pick, include=["documents", "metadatas"])
            for i, doc, m in zip(got["ids"], got["documents"], got["metadatas"]):
                m = m or {}
                src = Source(file=str(m.get("file") or Path(str(m.get("source", "?"))).name),
                             path=str(m.get("source", "")), page=None, chunk=int(m.get("chunk", 0)),
                             text=doc or "", score=0.0, id=i)
                kept.insert(rng.randrange(len(kept) + 1), src)
                added += 1
    context, _ev = build_context(question, kept, settings, index.embeddings, index.lexical)
    msgs = [{"role": role, "content": text} for role, text in rag_prompt(question, context, settings)]
    msgs.append({"role": "assistant", "content": answer})
    info = {"gold": not (without_gold and gold is not None), "distractors": added,
            "sources": [f"{s.file}#{s.chunk}" for s in kept]}
    return msgs, info


def _cache_key(question: str, answer: str, state: str, settings: "RetrievalSettings", dc: "DataConfig", seed: int,
               p_without_gold: float) -> str:
    blob = json.dumps([CACHE_FORMAT, question, answer, state, settings.to_dict(), dc.raft_distractors,
                       p_without_gold, seed], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


def _update_index(project: Path, on_event: ev.OnEvent) -> "LocalEmbeddings | None":
    """Index the project's new and changed documents first, as the chat does before it answers.

    A project whose documents were never indexed (a fresh copy of the sample,
    documents added since) would otherwise train on stale or no passages.
    Returns the embedder it loaded (``None`` when nothing was stale).
    """
    from backend.errors import TuneError
    from backend.rag.freshness import stale_documents
    from backend.rag.index import ingest, open_index
    from backend.workspace import Project

    try:
        proj = Project.open(project)
    except TuneError:
        return None  # not a project folder: open_index says what is missing
    stale = stale_documents(proj, proj.document_files())
    if not stale:
        return None
    on_event(ev.progress("raft", 0, None, f"Indexing {len(stale)} document(s) for the passages"))
    emb = open_index(proj, check=False).embeddings  # the embedder recorded with the index, else the bundled one
    ingest(proj, [str(p) for p in stale], embeddings=emb, on_event=on_event)
    return emb


def open_raft_index(dc: "DataConfig", on_event: ev.OnEvent = ev.no_event) -> "DocumentIndex":
    """The project's document index for RAFT (documents indexed first when stale, :func:`_update_index`).

    Raises
    ------
    DataError
        No project or no usable index.
    """
    from backend.rag.index import open_index

    project = find_project(dc)
    emb = _update_index(project, on_event)
    try:
        return open_index(project, embeddings=emb)
    except IndexStoreError as e:
        raise DataError(f"'Train the model to answer from your documents' needs the document index: {e.message}",
                        field="data.raft", file=e.file, hint=e.hint or "add documents first") from None


class _Renderer:
    """Renders question-answer pairs with passages through the content-hash cache (``index/raft_cache.json``)."""

    def __init__(self, index: "DocumentIndex", settings: "RetrievalSettings", dc: "DataConfig", seed: int,
                 on_event: ev.OnEvent):
        self.index, self.settings, self.dc, self.seed, self.on_event = index, settings, dc, seed, on_event
        self.path = index.dir / CACHE_FILE
        try:
            cache = read_json(self.path) or {}
        except ValueError:
            cache = {}
        if cache.get("format") != CACHE_FORMAT:
            cache = {"format": CACHE_FORMAT, "rows": {}}
        self.cache, self.rows = cache, cache["rows"]
        self.state = _index_state(index)
        self.ids: list[str] | None = None
        self.used: set[str] = set()
        self.rendered = self.cached = 0

    def render(self, question: str, answer: str, p_without_gold: float) -> dict[str, Any]:
        """``{"messages": [system, user, assistant], "gold": bool}`` for one pair."""
        key = _cache_key(question, answer, self.state, self.settings, self.dc, self.seed, p_without_gold)
        hit = self.rows.get(key)
        if hit is None:
            if self.ids is None:
                self.ids = sorted(self.index.lexical.ids())
            msgs, info = render_row(question, answer, self.index, self.settings, distractors=self.dc.raft_distractors,
                                    p_without_gold=p_without_gold, seed=self.seed, all_ids=self.ids)
            hit = {"messages": msgs, "gold": info["gold"]}
            self.rows[key] = hit
            self.rendered += 1
        else:
            self.cached += 1
        self.used.add(key)
        return hit

    def save(self) -> None:
        """Write the cache when something was rendered (bounded: other data sets' entries are trimmed)."""
        if not self.rendered:
            return
        others = [k for k in self.rows if k not in self.used]
        for k in others[:-2000] if len(others) > 2000 else []:
            self.rows.pop(k, None)
        try:
            atomic_write_json(self.path, self.cache)
        except OSError as e:  # a read-only project still trains; it only searches again next time
            self.on_event(ev.log(f"RAFT cache not written ({e})", level="warning"))


def apply_raft(examples: Iterable["Example"], dc: "DataConfig", *, seed: int = 42,
               settings: "RetrievalSettings | None" = None, index: "DocumentIndex | None" = None,
               on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop,
               renderer: "_Renderer | None" = None) -> dict[str, int]:
    """Render single-turn chat examples with retrieved passages, in place.

    Parameters
    ----------
    examples
        Normalised examples; single-turn chat rows get the RAFT prompt, other
        rows (multi-turn, completion, plain text) stay as they are.
    dc
        The data config (``raft_distractors``, ``raft_p_without_gold``, ``raft_project``,
        ``raft_counterfactual_share``: that share of the rewordings shown with the right passage
        get their figures changed in passages and answer alike, :mod:`backend.data.counterfactual`).
    seed
        The run's seed.
    settings
        The chat's retrieval settings (default: :class:`~backend.rag.settings.RetrievalSettings`).
    index
        The document index (default: the project's, see :func:`find_project`).
    on_event, should_stop
        Progress (stage ``raft``) and cancellation.
    renderer
        Share one cache with :func:`knowledge_rows` (internal).

    Returns
    -------
    dict
        ``{"rendered": n, "cached": n, "skipped": n, "without_gold": n, "counterfactual": n}``.

    Raises
    ------
    DataError
        No project or no usable index.
    """
    from backend.data.counterfactual import swap_figures
    from backend.rag.settings import RetrievalSettings

    settings = settings or RetrievalSettings()
    examples = list(examples)
    todo = [(ex, qa) for ex in examples if (qa := question_answer(ex)) is not None]
    stats = {"rendered": 0, "cached": 0, "skipped": len(examples) - len(todo), "without_gold": 0,
             "counterfactual": 0}
    if not todo:
        return stats
    own = renderer is None
    if renderer is None:
        renderer = _Renderer(index if index is not None else open_raft_index(dc, on_event), settings, dc, seed,
                             on_event)
    r0, c0 = renderer.rendered, renderer.cached
    for n, (ex, (u, q, a)) in enumerate(todo):
        if should_stop():
            raise DataCancelled()
        if n % 16 == 0:
            on_event(ev.progress("raft", n, len(todo), f"Retrieving passages for training rows {n}/{len(todo)}"))
        hit = renderer.render(q, a, dc.raft_p_without_gold)
        stats["without_gold"] += not hit["gold"]
        # the RAFT prompt replaces the row's system and user turns; turns before it are kept
        before = [m for m in ex.messages[:u] if m.get("role") != "system"]
        shown = [dict(m) for m in hit["messages"]]
        changed = None
        # only copies of a row (its rewordings) change: the row as written always trains its own figure
        if hit["gold"] and dc.raft_counterfactual_share > 0 and ex.origin == "reworded" and u + 2 == len(ex.messages):
            rng = random.Random(f"{seed}\0counterfactual\0{q}")
            if rng.random() < dc.raft_counterfactual_share:
                changed = swap_figures(shown, rng)
        if changed is not None:  # the figures changed in the passages and the answer alike
            ex.messages = before + changed
            ex.origin = "counterfactual"
            stats["counterfactual"] += 1
        else:
            ex.messages = before + shown[:2] + ex.messages[u + 1:]
        ex.train_from = min(ex.train_from, len(before) + 2) if ex.train_from else 0
        if not ex.origin:
            ex.origin = "raft"
    stats["rendered"], stats["cached"] = renderer.rendered - r0, renderer.cached - c0
    on_event(ev.progress("raft", len(todo), len(todo), "Passages retrieved"))
    if own:
        renderer.save()
    on_event(ev.log(f"RAFT: {len(todo)} rows shown with retrieved passages ({stats['cached']} from the cache, "
                    f"{stats['without_gold']} without the right passage, {stats['counterfactual']} with their figures changed)"))
    return stats


def knowledge_rows(examples: Sequence["Example"], dc: "DataConfig", *, seed: int = 42,
                   settings: "RetrievalSettings | None" = None, index: "DocumentIndex | None" = None,
                   on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop,
                   renderer: "_Renderer | None" = None) -> tuple[list["Example"], list["Example"]]:
    """The rows with passages the knowledge recipe adds beside the RAFT rows: abstention and held-out ones.

    Parameters
    ----------
    examples
        The single-turn question-answer rows as written (before :func:`apply_raft`).
    dc
        ``raft_abstain_share`` (abstention rows per row), ``heldout_rewordings``
        (facts with a held-out rewording), ``rewordings`` (the trained ones, skipped).

    Returns
    -------
    abstain, heldout
        Abstention rows (an out-of-scope question made by
        :func:`backend.data.rewording.out_of_scope`, its retrieved passages, the
        chat's :data:`~backend.rag.chain.ABSTAIN_ANSWER`) and held-out rows (one
        untrained rewording per chosen fact, with the passage that holds the answer).
    """
    from backend.data.rewording import out_of_scope, reword
    from backend.rag.chain import ABSTAIN_ANSWER
    from backend.rag.hybrid import tokenize
    from backend.rag.settings import RetrievalSettings

    pairs = [(ex, qa) for ex in examples if (qa := question_answer(ex)) is not None]
    n_abstain = int(round(dc.raft_abstain_share * len(pairs)))
    if not pairs or (not n_abstain and not dc.heldout_rewordings):
        return [], []
    settings = settings or RetrievalSettings()
    own = renderer is None
    if renderer is None:
        renderer = _Renderer(index if index is not None else open_raft_index(dc, on_event), settings, dc, seed,
                             on_event)
    idx = renderer.index
    vocab = set(idx.lexical.df)
    rng = random.Random(f"{seed}\0knowledge")

    def with_passages(ex: "Example", question: str, answer: str, p: float, origin: str) -> "Example":
        hit = renderer.render(question, answer, p)
        return dataclasses.replace(ex, messages=[dict(m) for m in hit["messages"]], train_from=0, origin=origin)

    abstain: list["Example"] = []
    order = list(range(len(pairs)))
    rng.shuffle(order)
    for i in order:
        if len(abstain) >= n_abstain:
            break
        if should_stop():
            raise DataCancelled()
        ex, (_u, q, _a) = pairs[i]
        oos = out_of_scope(q, vocab, tokenize, idx.lexical.idf, seed=seed)
        if oos:
            abstain.append(with_passages(ex, oos, ABSTAIN_ANSWER, 0.0, "abstain"))
    heldout: list["Example"] = []
    seen_answers: set[str] = set()
    for i in order[::-1]:  # other facts first than the abstention rows drew from
        if len(heldout) >= dc.heldout_rewordings:
            break
        ex, (_u, q, a) = pairs[i]
        key = " ".join(a.casefold().split())
        if key in seen_answers:
            continue
        seen_answers.add(key)
        texts = reword(q, 1, seed=seed, skip=dc.rewordings)
        if texts:
            heldout.append(with_passages(ex, texts[0], a, 0.0, "heldout"))
    if own:
        renderer.save()
    on_event(ev.log(f"Knowledge recipe: {len(abstain)} abstention rows, {len(heldout)} held-out rewordings"))
    return abstain, heldout


__all__ = ["CACHE_FILE", "apply_raft", "find_project", "knowledge_rows", "open_raft_index", "render_row"]
