"""Hybrid retrieval: BM25 over the chunks' words, fused with the vector search.

Sentence embedders place "E4" near "E5" and "1987" near any year: codes,
numbers and names are found far more reliably by their words.  This module
keeps a small BM25 index of every chunk next to the Chroma store
(``index/lexical.json``), updated with the vectors (same chunk ids, added and
removed in the same :meth:`~backend.rag.index.DocumentIndex.update`), and
fuses its ranking with the vector ranking by weighted reciprocal rank fusion
(Cormack et al. 2009), see ``docs/architecture.md`` (RAG).

Why a hand-written BM25 rather than ``bm25s``: a project holds hundreds to a
few thousand chunks, where a dictionary of term counts scores a query in
about a millisecond; ``bm25s`` would add a dependency (and scipy's sparse
matrices) and rebuilds its matrix on every change, while this index is
updated incrementally chunk by chunk and stored as plain JSON.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sequence

from backend.fsutil import atomic_write_json, read_json

LEXICAL_FILE = "lexical.json"
LEXICAL_FORMAT = 1
TOKENIZER_VERSION = 2  # bump when tokenize() changes: stored indexes are rebuilt

# Words that carry no meaning for matching; kept short so that "not", "no"
# and numbers stay searchable.
STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have how i if in into is it its
me my of on or our so than that the their them then there these they this to too was we were what when
where which who whom why will with would you your yours about after before during should shall may might
much many any some such very just also only own same each other
""".split())

_TOKEN = re.compile(r"[0-9a-z\u00c0-\u024f]+(?:[-.'][0-9a-z\u00c0-\u024f]+)*", re.IGNORECASE)


def _stem(w: str) -> str:
    """A very light English stemmer (plural, -ing, -ed, final e), enough to match questions to text.

    >>> [_stem(w) for w in ("updating", "update", "updates", "expired", "batteries")]
    ['updat', 'updat', 'updat', 'expir', 'battery']
    """
    if len(w) <= 3 or not w.isalpha():
        return w
    for suf, rep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3 and not w.endswith("ss"):
            w = w[: len(w) - len(suf)] + rep
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def tokenize(text: str) -> list[str]:
    """Lower-case search terms of ``text``: words, codes and numbers.

    A compound like ``PA-2``, ``4.3.0`` or ``KT3-`` is kept whole *and* split
    into its parts, so "PA-2" matches "PA-2" exactly and "adapter PA 2" still
    scores.  Stop words are dropped; other words get a light stemming.

    Examples
    --------
    >>> tokenize("What does error E4 mean on the PA-2?")
    ['error', 'e4', 'mean', 'pa-2', 'pa', '2']
    """
    out: list[str] = []
    for m in _TOKEN.finditer(text):
        w = m.group(0).casefold().strip("'")
        if not w:
            continue
        if any(c in w for c in "-.'"):
            parts = [p for p in re.split(r"[-.']", w) if p]
            out.append(w)
            out.extend(_stem(p) for p in parts if p not in STOPWORDS)
            continue
        if w in STOPWORDS:
            continue
        out.append(_stem(w))
    return out


class BM25Index:
    """Okapi BM25 over chunks, incrementally updatable and JSON-persistable.

    Parameters
    ----------
    k1, b
        The usual BM25 constants (term-frequency saturation, length normalisation).

    Examples
    --------
    >>> bm = BM25Index()
    >>> bm.add(["a", "b"], ["E4: Wi-Fi password rejected.", "E5: battery low."])
    >>> bm.search("What is E4?", 1)[0][0]
    'a'
    """

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1, self.b = float(k1), float(b)
        self.docs: dict[str, dict[str, int]] = {}   # id -> term counts
        self.lengths: dict[str, int] = {}
        self.df: Counter[str] = Counter()
        self._total = 0

    def __len__(self) -> int:
        return len(self.docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.docs

    def ids(self) -> set[str]:
        """The chunk ids in the index."""
        return set(self.docs)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Add (or replace) chunks."""
        for i, t in zip(ids, texts):
            if i in self.docs:
                self.remove([i])
            tf = Counter(tokenize(t))
            self.docs[i] = dict(tf)
            self.lengths[i] = sum(tf.values())
            self._total += self.lengths[i]
            self.df.update(tf.keys())

    def remove(self, ids: Iterable[str]) -> None:
        """Drop chunks (unknown ids are ignored)."""
        for i in ids:
            tf = self.docs.pop(i, None)
            if tf is None:
                continue
            self._total -= self.lengths.pop(i, 0)
            for term in tf:
                self.df[term] -= 1
                if self.df[term] <= 0:
                    del self.df[term]

    def idf(self, term: str) -> float:
        """BM25 idf (the non-negative variant: ``log(1 + (N - df + .5) / (df + .5))``)."""
        n, df = len(self.docs), self.df.get(term, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: str | Sequence[str]) -> dict[str, float]:
        """BM25 score of every chunk that shares a term with ``query`` (text or tokens)."""
        terms = tokenize(query) if isinstance(query, str) else list(query)
        if not self.docs or not terms:
            return {}
        avg = self._total / len(self.docs) if self.docs else 1.0
        out: dict[str, float] = {}
        for term, qn in Counter(terms).items():
            if term not in self.df:
                continue
            w = self.idf(term)
            for i, tf in self.docs.items():
                f = tf.get(term)
                if not f:
                    continue
                norm = f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self.lengths[i] / max(avg, 1e-9)))
                out[i] = out.get(i, 0.0) + qn * w * norm
        return out

    def search(self, query: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` best ``(id, score)`` for ``query``, best first (ties by id, so the order is stable)."""
        sc = self.scores(query)
        return sorted(sc.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, int(n))]

    def coverage(self, query: str, text: str) -> float:
        """Share of the query's idf weight whose terms occur in ``text`` (0..1).

        A question whose rare words appear nowhere in the retrieved text is
        probably not answered by it; used to calibrate abstention.
        """
        q = set(tokenize(query))
        if not q:
            return 0.0
        t = set(tokenize(text))
        total = sum(self.idf(w) for w in q)
        return sum(self.idf(w) for w in q if w in t) / total if total > 0 else 0.0

    # -- persistence ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (statistics are recomputed on load)."""
        return {"format": LEXICAL_FORMAT, "tokenizer": TOKENIZER_VERSION, "k1": self.k1, "b": self.b,
                "docs": self.docs}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BM25Index":
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            Another format or tokenizer version (the caller rebuilds from the chunks).
        """
        if d.get("format") != LEXICAL_FORMAT or d.get("tokenizer") != TOKENIZER_VERSION:
            raise ValueError("lexical index of another format")
        bm = cls(float(d.get("k1", 1.5)), float(d.get("b", 0.75)))
        for i, tf in (d.get("docs") or {}).items():
            tf = {str(k): int(v) for k, v in tf.items()}
            bm.docs[str(i)] = tf
            bm.lengths[str(i)] = sum(tf.values())
            bm._total += bm.lengths[str(i)]
            bm.df.update(tf.keys())
        return bm

    def save(self, path: str | Path) -> None:
        """Write atomically."""
        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "BM25Index | None":
        """Read ``path``; ``None`` when missing, unreadable or of another format (rebuild it)."""
        try:
            d = read_json(Path(path))
        except (OSError, ValueError):
            return None
        if not d:
            return None
        try:
            return cls.from_dict(d)
        except (ValueError, TypeError, AttributeError):
            return None


def rrf(rankings: Sequence[Sequence[str]], weights: Sequence[float] | None = None, k: int = 60) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion.

    Each id scores ``sum_r weight_r / (k + rank_r)`` over the rankings it
    appears in (rank 1 = best).  A weight of 0 switches a ranking off.

    Parameters
    ----------
    rankings
        Lists of ids, best first.
    weights
        One per ranking (default 1 each).
    k
        The RRF constant: larger values flatten the difference between ranks.

    Returns
    -------
    list of (id, score)
        Best first; ties keep the order of first appearance.

    Examples
    --------
    >>> [i for i, _ in rrf([["a", "b", "c"], ["b", "c"]])]
    ['b', 'c', 'a']
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    score: dict[str, float] = {}
    for ranking, w in zip(rankings, weights):
        if w <= 0:
            continue
        for r, i in enumerate(ranking, 1):
            score[i] = score.get(i, 0.0) + w / (k + r)
    order = {i: n for n, i in enumerate(dict.fromkeys(i for ranking in rankings for i in ranking))}
    return sorted(score.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def _cosine(q, vectors):
    """Cosine similarity of ``q`` with each row of ``vectors``."""
    import numpy as np

    v = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    qn = float(np.linalg.norm(q)) or 1.0
    vn = np.linalg.norm(v, axis=1)
    vn[vn == 0] = 1.0
    return (v @ q) / (vn * qn)


def hybrid_search(index: Any, query: str, k: int, settings: Any) -> list:
    """The ``k`` best passages of ``index`` for ``query``: vectors and BM25 fused by weighted RRF.

    Parameters
    ----------
    index
        A ready :class:`~backend.rag.index.DocumentIndex`.
    query
        The question.
    k
        Passages to return.
    settings
        :class:`~backend.rag.settings.RetrievalSettings`: ``hybrid`` (fuse or
        vectors alone), ``vector_weight``, ``bm25_weight``, ``rrf_k``,
        ``candidates`` (how deep each ranking is read before fusing) and
        ``bm25_min_share`` (word matches scoring below this share of the best
        one are left out of the word ranking).

    Returns
    -------
    list[Source]
        Best first.  ``score`` is always the passage's cosine similarity to
        the question (also for passages only BM25 found), ``bm25`` its BM25
        score and ``fused`` its fusion score.
    """
    import numpy as np

    from backend.rag.source import Source

    coll = index.collection
    total = coll.count()
    n = min(int(k), total)
    if n <= 0:
        return []
    q = np.asarray(index.embeddings.embed_query(query), dtype=np.float32)
    use_words = bool(settings.hybrid) and settings.bm25_weight > 0
    depth = min(total, max(int(settings.candidates), n)) if use_words else n
    res = coll.query(query_embeddings=[q.tolist()], n_results=depth, include=["documents", "metadatas", "distances"])
    found: dict[str, tuple[str, dict, float]] = {}
    vec_ids = list(res["ids"][0])
    for i, doc, meta, dist in zip(vec_ids, res["documents"][0], res["metadatas"][0], res["distances"][0]):
        found[i] = (doc or "", meta or {}, 1.0 - float(dist))
    bm: dict[str, float] = {}
    if use_words:
        bm = index.lexical.scores(query)
        ranked = sorted(bm.items(), key=lambda kv: (-kv[1], kv[0]))[:depth]
        # chunks that share only common words with the question score a small fraction of the
        # best match; ranked 2nd, 3rd... they would outvote a rare code's one match in the fusion
        floor = ranked[0][1] * float(settings.bm25_min_share) if ranked else 0.0
        bm_ids = [i for i, sc in ranked if sc >= floor]
        weights = [settings.vector_weight, settings.bm25_weight]
        order = rrf([vec_ids, bm_ids], weights, int(settings.rrf_k))[:n]
        missing = [i for i, _ in order if i not in found]
        if missing:
            got = coll.get(ids=missing, include=["documents", "metadatas", "embeddings"])
            sims = _cosine(q, got["embeddings"])
            for i, doc, meta, sim in zip(got["ids"], got["documents"], got["metadatas"], sims):
                found[i] = (doc or "", meta or {}, float(sim))
    else:
        order = [(i, 0.0) for i in vec_ids[:n]]
    out = []
    for i, fused in order:
        if i not in found:  # deleted between the two reads
            continue
        doc, m, sim = found[i]
        page = m.get("page")
        out.append(Source(file=str(m.get("file") or Path(str(m.get("source", "?"))).name),
                          path=str(m.get("source", "")),
                          page=int(page) if isinstance(page, (int, float)) and page >= 0 else None,
                          chunk=int(m.get("chunk", 0)), text=doc, score=round(sim, 4),
                          bm25=round(bm.get(i, 0.0), 4), fused=round(fused, 6), id=i))
    return out


__all__ = ["BM25Index", "LEXICAL_FILE", "STOPWORDS", "hybrid_search", "rrf", "tokenize"]
