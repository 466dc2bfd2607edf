"""Evidence sentences: the few sentences of the retrieved passages that answer the question.

A 135M-parameter model reads a short context far better than 6,000
characters of passages.  So the passages are cut into sentences, each
sentence is scored against the question (cosine similarity from the embedder
that built the index, plus the share of the question's rare words it
contains), and the best sentences, each with its neighbours for context, are
put first in the prompt inside a small character budget.  The same scores
tell how relevant the retrieved text is at all, which decides abstention
(see ``docs/architecture.md``, RAG).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

from backend.rag.hybrid import BM25Index, tokenize

# A block break: a blank line, or a line that starts a list item, heading or table row.
_BLOCK = re.compile(r"\n\s*\n|\n(?=\s*(?:[-*+] |#|\||\d+[.)] ))")
# A sentence end: . ! ? (optionally closed by ** or a quote) followed by space and a capital/digit/mark.
_SENT = re.compile(r"(?<=[.!?])(?:\*\*|[\"'”’)])?\s+(?=[\"'“(*\[]?[A-Z0-9])")
_LIST_NUMBER = re.compile(r"\d{1,3}[.)]")
_MARKUP = re.compile(r"\*\*|__|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)|^#+\s*|^\s*[-+]\s+", re.MULTILINE)

_CACHE_MAX = 4096
HEADING_WEIGHT = 0.5
_cache: "OrderedDict[tuple[str, str], Any]" = OrderedDict()
_cache_lock = threading.Lock()


@dataclass
class Sentence:
    """A sentence of a retrieved passage and how well it matches the question."""

    source_index: int
    start: int
    end: int
    text: str
    similarity: float = 0.0
    coverage: float = 0.0
    score: float = 0.0  # similarity + lexical weight x coverage: how well the sentence itself matches
    rank: float = 0.0  # score + section weight x its section title's similarity: the order evidence is chosen in
    heading: bool = False
    section: int | None = None  # the sentence number of the heading above it (same source), if any

    def to_dict(self) -> dict[str, Any]:
        """The contract's evidence record (``docs/architecture.md``, evaluation)."""
        return {"source_index": self.source_index, "sentence": self.text, "start": self.start,
                "end": self.end, "score": round(self.score, 4)}


@dataclass
class Evidence:
    """What :func:`select_evidence` chose.

    Attributes
    ----------
    context
        The text put into the prompt.
    best
        The best sentences (the answer rests on them), best first.
    relevance
        The best-matching sentence's own score (its section title not
        counted): low means the retrieved text does not answer the question
        (compared with the abstention threshold).
    """

    context: str
    best: list[Sentence] = field(default_factory=list)
    relevance: float = 0.0

    def records(self) -> list[dict[str, Any]]:
        """``Answer.evidence``: one dict per best sentence."""
        return [s.to_dict() for s in self.best]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` spans of the sentences of ``text`` (whitespace trimmed).

    Blank lines, list items, headings and table rows end a sentence as well
    as ``.``, ``!`` and ``?``; a line break inside a paragraph does not.

    Examples
    --------
    >>> t = "**E4 — Wi-Fi rejected.** Re-enter it.\\n\\n## Next\\nE5 low."
    >>> [t[a:b] for a, b in split_sentences(t)]
    ['**E4 — Wi-Fi rejected.**', 'Re-enter it.', '## Next', 'E5 low.']
    """
    spans: list[tuple[int, int]] = []
    pos = 0
    blocks = []
    for m in _BLOCK.finditer(text):
        blocks.append((pos, m.start()))
        pos = m.end()
    blocks.append((pos, len(text)))
    for b0, b1 in blocks:
        # a heading line is its own sentence even without a full stop
        seg_start = b0
        block = text[b0:b1]
        if block.lstrip().startswith("#") and "\n" in block:
            nl = block.index("\n")
            spans.append((b0, b0 + nl))
            seg_start = b0 + nl + 1
        s0 = seg_start
        for m in _SENT.finditer(text, seg_start, b1):
            close = m.group(0).rstrip()  # a closing ** or quote stays with the sentence it closes
            spans.append((s0, m.start() + len(close)))
            s0 = m.end()
        spans.append((s0, b1))
    out: list[tuple[int, int]] = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b <= a:
            continue
        if out and _LIST_NUMBER.fullmatch(text[out[-1][0]:out[-1][1]]):
            out[-1] = (out[-1][0], b)  # "2." of a numbered list belongs to the item's text
            continue
        out.append((a, b))
    return out


def plain(text: str) -> str:
    """Text without Markdown emphasis, heading marks and bullets, on one line (for the prompt)."""
    return " ".join(_MARKUP.sub("", text).split())


def _vectors(embeddings: Any, texts: list[str]):
    """Embeddings of ``texts`` (cached per embedder and text: the same passages recur across questions)."""
    import numpy as np

    key = getattr(getattr(embeddings, "info", None), "fingerprint", None) or str(id(embeddings))
    out: list[Any] = [None] * len(texts)
    todo = []
    with _cache_lock:
        for n, t in enumerate(texts):
            v = _cache.get((key, t))
            if v is None:
                todo.append(n)
            else:
                _cache.move_to_end((key, t))
                out[n] = v
    if todo:
        vs = embeddings.embed_documents([texts[n] for n in todo])
        with _cache_lock:
            for n, v in zip(todo, vs):
                arr = np.asarray(v, dtype=np.float32)
                out[n] = arr
                _cache[(key, texts[n])] = arr
                if len(_cache) > _CACHE_MAX:
                    _cache.popitem(last=False)
    return np.stack(out) if out else np.zeros((0, 1), dtype=np.float32)


def score_sentences(question: str, sources: Sequence[Any], embeddings: Any | None, *,
                    lexical_weight: float = 0.5, lexicon: BM25Index | None = None,
                    section_weight: float = 0.0) -> list[Sentence]:
    """Every sentence of ``sources`` scored against ``question``.

    Parameters
    ----------
    question
        The question.
    sources
        Retrieved passages (:class:`~backend.rag.source.Source`), best first.
    embeddings
        The index's embedder (``embed_query`` / ``embed_documents``); ``None``
        scores by words alone.
    lexical_weight
        Weight of the word score (the idf-weighted share of the question's
        words that the sentence contains) next to the cosine similarity.
    lexicon
        The index's BM25 statistics for the idf weights (default: the
        sentences themselves).
    section_weight
        Weight of the similarity of the sentence's section title (the Markdown
        heading or title line above it) added to its ``rank``.

    Returns
    -------
    list[Sentence]
        In source order, each with ``similarity``, ``coverage``, ``score`` and ``rank``.
    """
    import numpy as np

    sents: list[Sentence] = []
    for i, s in enumerate(sources):
        section = None
        for a, b in split_sentences(s.text):
            t = s.text[a:b]
            if len(tokenize(t)) == 0:
                continue
            head = _is_heading(t)
            sents.append(Sentence(i, a, b, t, heading=head, section=None if head else section))
            if head:
                section = len(sents) - 1
    if not sents:
        return []
    if lexicon is None or len(lexicon) == 0:
        lexicon = BM25Index()
        lexicon.add([str(n) for n in range(len(sents))], [s.text for s in sents])
    if embeddings is not None:
        q = np.asarray(embeddings.embed_query(question), dtype=np.float32)
        v = _vectors(embeddings, [plain(s.text) for s in sents])
        sims = (v @ q) / (np.maximum(np.linalg.norm(v, axis=1), 1e-9) * max(float(np.linalg.norm(q)), 1e-9))
    else:
        sims = np.zeros(len(sents), dtype=np.float32)
    for s, sim in zip(sents, sims):
        s.similarity = float(sim)
        s.coverage = lexicon.coverage(question, s.text)
        s.score = s.similarity + lexical_weight * s.coverage
        if s.heading:  # a title names the topic but answers nothing: it comes as context, rarely as evidence
            s.score *= HEADING_WEIGHT
    for s in sents:
        s.rank = s.score
        if section_weight and s.section is not None:
            s.rank += section_weight * sents[s.section].similarity
    return sents


def _is_heading(text: str) -> bool:
    """A Markdown heading, or a short line without a sentence mark (a title in a text file)."""
    t = text.strip()
    if t.startswith("#"):
        return True
    if t[:1] in "-*+|" or ":" in t or _LIST_NUMBER.match(t):  # list items and table rows state facts
        return False
    return t[-1:] not in ".!?;)" and len(t.split()) <= 6 and "\n" not in t


def select_evidence(question: str, sources: Sequence[Any], embeddings: Any | None, *, budget: int = 900,
                    neighbours: int = 1, lexical_weight: float = 0.5, top: int = 3,
                    lexicon: BM25Index | None = None, labels: bool = False,
                    section_weight: float = 0.0) -> Evidence:
    """The context for the prompt: the best sentences first, each with its neighbours, within ``budget``.

    Parameters
    ----------
    question, sources, embeddings, lexical_weight, lexicon, section_weight
        As for :func:`score_sentences`: sentences are chosen by ``rank``.
    budget
        Characters of context at most (a sentence that does not fit is left
        out; the best one is always kept, cut at a word if it alone is longer).
    neighbours
        Sentences before and after each chosen one that come with it.
    top
        How many best sentences are reported as evidence.
    labels
        Start each passage's sentences with its file name (``[1] guide.md``).

    Returns
    -------
    Evidence
    """
    sents = score_sentences(question, sources, embeddings, lexical_weight=lexical_weight, lexicon=lexicon,
                            section_weight=section_weight)
    if not sents:
        return Evidence("", [], 0.0)
    ranked = sorted(range(len(sents)), key=lambda n: -sents[n].rank)
    chosen: set[int] = set()
    used = 0
    group_order: list[int] = []  # source indexes in the order their best sentence ranks
    for n in ranked:
        want = [m for m in range(n - neighbours, n + neighbours + 1)
                if 0 <= m < len(sents) and sents[m].source_index == sents[n].source_index and m not in chosen]
        sec = sents[n].section
        if sec is not None and sec not in chosen and sec not in want:
            want.append(sec)  # the section's title: e.g. the version a release note belongs to
        # the sentence itself first; neighbours only if they fit too
        cost_self = len(plain(sents[n].text)) + 1 if n not in chosen else 0
        if n not in chosen and used + cost_self > budget and chosen:
            continue
        for m in sorted(want, key=lambda m: (m != n, m != sec, abs(m - n))):
            c = len(plain(sents[m].text)) + 1
            if used + c > budget and chosen:
                continue
            chosen.add(m)
            used += c
        if sents[n].source_index not in group_order and n in chosen:
            group_order.append(sents[n].source_index)
        if used >= budget:
            break
    blocks = []
    for si in group_order:
        idx = sorted(m for m in chosen if sents[m].source_index == si)
        parts, prev = [], None
        for m in idx:
            if prev is not None and m != prev + 1:
                parts.append("…")
            parts.append(plain(sents[m].text))
            prev = m
        body = " ".join(parts)
        if labels:
            body = f"[{si + 1}] {sources[si].file}\n{body}"
        blocks.append(body)
    context = "\n\n".join(blocks)
    if len(context) > budget and budget > 0:
        context = context[:budget].rsplit(" ", 1)[0] + " …"
    best = [sents[n] for n in ranked if not sents[n].heading][:max(1, top)] or [sents[ranked[0]]]
    answers = [s.score for s in sents if not s.heading] or [best[0].score]
    return Evidence(context, best, max(answers))


def order_by_support(answer: str, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``Answer.evidence`` records with the sentences that hold most of the answer's words first.

    The question ranked the evidence before the answer existed; once it does, the sentence it
    rests on is the one sharing its words and figures ("3-year limited warranty" rests on
    "warrants … for 3 years", not on "extends the warranty to 5 years").  Ties keep the
    question's order.
    """
    words = set(tokenize(answer))
    if not words or len(records) < 2:
        return list(records)
    return sorted(records, key=lambda r: -len(words & set(tokenize(r.get("sentence", "")))))


__all__ = ["Evidence", "Sentence", "order_by_support", "plain", "score_sentences", "select_evidence",
           "split_sentences"]
