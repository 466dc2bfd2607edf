"""Question rewordings and out-of-scope questions, made offline from a project's own questions.

Two kinds of rows the knowledge recipe adds (``docs/architecture.md``, "The knowledge recipe"):

* **Rewordings** (:func:`reword`): the same question in other words, by fixed
  templates chosen deterministically per question.  A fact a small model sees
  in several phrasings becomes extractable from phrasings it never saw (Allen-Zhu
  & Li 2024, "Physics of Language Models 3.1"); a fact seen in one phrasing
  stays tied to it.
* **Out-of-scope questions** (:func:`out_of_scope`): a project question whose most
  specific word (the one rarest in the documents) is replaced by a thing no
  document mentions, checked against the documents' vocabulary.  Shown with the
  passages the chat retrieves for it (the near-miss passages of the original
  question), its target is the chat's abstention: the model learns that a
  passage about the geofence radius does not answer a question about the
  "loyalty points radius".  The project's own questions paired with unrelated
  passages would instead teach it to refuse facts it was trained to know.

Pure text functions: no model, no index (the caller passes the vocabulary).
"""

from __future__ import annotations

import random
import re
from typing import Callable, Collection, Sequence

_LEAD = re.compile(r"^(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
                   r"should|will|would|has|have|may|must)\b", re.IGNORECASE)


def _lower_first(q: str) -> str:
    """``q`` with its first letter lower-cased unless the first word is a name or code ("E4", "Brisa")."""
    first = q.split(" ", 1)[0]
    if first[:1].isupper() and _LEAD.match(first):
        return q[:1].lower() + q[1:]
    return q


def _embedded(q: str) -> str:
    """A direct question as an embedded one: "what is the radius" -> "what the radius is" (simple cases)."""
    m = re.match(r"^(what|which|who|where|when|how(?: \w+)?) (is|are|was|were) (.+)$", q, re.IGNORECASE)
    if m:
        return f"{m.group(1).lower()} {m.group(3)} {m.group(2).lower()}"
    return _lower_first(q)


TEMPLATES: tuple[Callable[[str], str], ...] = (
    lambda q: f"Can you tell me {_embedded(q)}?",
    lambda q: f"Quick question: {_lower_first(q)}?",
    lambda q: f"I'd like to know {_embedded(q)}.",
    lambda q: f"{q}? Please answer briefly.",
    lambda q: f"Do you know {_embedded(q)}?",
    lambda q: f"Please tell me: {_lower_first(q)}?",
    lambda q: f"I have a question. {q}?",
    lambda q: f"Could you explain {_embedded(q)}?",
)
# the templates that embed the question ("Can you tell me what …") read wrong for a yes/no question
_EMBEDDING = frozenset({0, 2, 4, 7})
_WH = re.compile(r"^(what|which|who|whom|whose|when|where|why|how)\b", re.IGNORECASE)


def reword(question: str, n: int, *, seed: int = 0, skip: int = 0) -> list[str]:
    """``n`` rewordings of ``question`` by template, deterministic for (question, seed).

    Parameters
    ----------
    question
        The question as written.
    n
        How many rewordings (at most ``len(TEMPLATES) - skip``).
    seed
        Seeds the template order (with the question).
    skip
        Leave out the first ``skip`` rewordings of that order (a held-out rewording is
        ``reword(q, 1, skip=k)`` when ``k`` were trained).

    Examples
    --------
    >>> reword("What is the default geofence radius?", 2, seed=1) == reword("What is the default geofence radius?", 2, seed=1)
    True
    >>> len(set(reword("What does E4 mean?", 4)))
    4
    """
    q = question.strip()
    if not q or n <= 0:
        return []
    core = q.rstrip(" ?.!")
    order = [i for i in range(len(TEMPLATES)) if _WH.match(q) or i not in _EMBEDDING]
    random.Random(f"{seed}\0{q}").shuffle(order)
    out = []
    for i in order[skip:]:
        text = TEMPLATES[i](core)
        text = text[:1].upper() + text[1:]
        if text != q and text not in out:
            out.append(text)
        if len(out) >= n:
            break
    return out


# things a project's documents rarely mention: each replaces the question's most specific word
OUT_OF_SCOPE_TERMS: tuple[str, ...] = (
    "loyalty points", "stock price", "parking fee", "CEO", "fax number", "mascot", "insurance premium",
    "tax rate", "shoe size", "bank holiday", "passport", "helicopter", "vending machine", "swimming pool",
    "carbon offset", "franchise fee", "Bluetooth version", "vegetarian menu", "dress code", "pet policy",
    "lottery", "satellite", "marathon", "karaoke", "sauna", "crypto wallet", "submarine", "opera",
)


_BEFORE_NOUN = frozenset({"the", "a", "an", "my", "your", "our", "its", "their", "his", "her", "of", "for", "per",
                          "each", "every", "any", "this", "that"})
_BEFORE_VERB = frozenset({"i", "you", "we", "they", "to", "can", "could", "do", "does", "did", "will", "would",
                          "should", "may", "must", "might", "please"})
NOUN_BONUS = 0.5  # idf units: a word after a determiner wins over a slightly rarer verb


def out_of_scope(question: str, vocabulary: Collection[str], tokenize: Callable[[str], list[str]],
                 idf: Callable[[str], float], *, seed: int = 0,
                 terms: Sequence[str] = OUT_OF_SCOPE_TERMS) -> str | None:
    """A near-miss question no document can answer, made from ``question``; ``None`` when none can be made.

    The question's word that is rarest in the documents (highest ``idf`` among its
    words the documents contain; a word after a determiner or "of" counts
    ``NOUN_BONUS`` more, so the thing asked about is replaced, not a verb) is replaced by a term from ``terms`` none of whose
    search terms occur in the documents (``vocabulary``: the index's terms, as
    ``tokenize`` makes them).

    Examples
    --------
    >>> from backend.rag.hybrid import tokenize
    >>> vocab = set(tokenize("The default geofence radius is 500 m."))
    >>> q = out_of_scope("What is the default geofence radius?", vocab, tokenize, lambda t: 1.0 if t == "geofenc" else 0.1)
    >>> "geofence" not in q and q.startswith("What is the default ")
    True
    """
    rng = random.Random(f"{seed}\0oos\0{question}")
    words = [(m.start(), m.end(), m.group(0)) for m in re.finditer(r"[\w][\w'-]*", question)]
    best, best_idf = None, -1.0
    for k, (a, b, w) in enumerate(words):
        toks = tokenize(w)
        if not toks or not all(t in vocabulary for t in toks):
            continue
        # a word after "the", "a", "of" … is most likely the thing asked about (a noun), not a verb
        before = words[k - 1][2].casefold() if k > 0 else ""
        if before in _BEFORE_VERB:  # "can I take", "to book": a verb, not the thing asked about
            continue
        score = max(idf(t) for t in toks) + (NOUN_BONUS if before in _BEFORE_NOUN else 0.0)
        if score > best_idf:
            best, best_idf = (a, b), score
    if best is None:
        return None
    candidates = [t for t in terms if not any(x in vocabulary for x in tokenize(t))]
    if not candidates:
        return None
    term = rng.choice(candidates)
    a, b = best
    out = question[:a] + term + question[b:]
    return out[:1].upper() + out[1:]


__all__ = ["OUT_OF_SCOPE_TERMS", "TEMPLATES", "out_of_scope", "reword"]
