"""Single-turn question-answer rows and their closed-book copies (the knowledge recipe's rewordings).

Used by the data pipeline (``data.rewordings`` without RAFT, the fact counts)
and by RAFT (:mod:`backend.data.raft`), so it sits below both
(docs/architecture.md, "Layers" and "The knowledge recipe").
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from backend.data.formats import Example


def question_answer(ex: "Example") -> tuple[int, str, str] | None:
    """``(user message index, question, answer)`` of a single-turn chat row, else ``None``."""
    msgs = ex.messages
    if not msgs:
        return None
    users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
    if len(users) != 1 or users[0] + 1 >= len(msgs) or msgs[users[0] + 1].get("role") != "assistant":
        return None
    u = users[0]
    return u, str(msgs[u].get("content") or ""), str(msgs[u + 1].get("content") or "")


def closed_book_row(ex: "Example", question: str, answer: str, origin: str) -> "Example":
    """A closed-book copy of a single-turn row: ``question`` -> ``answer``, its system turn kept."""
    system = [dict(m) for m in (ex.messages or []) if m.get("role") == "system"][:1]
    return dataclasses.replace(ex, messages=system + [{"role": "user", "content": question},
                                                      {"role": "assistant", "content": answer}],
                               train_from=0, origin=origin)


def reworded_rows(examples: Sequence["Example"], n: int, *, seed: int = 42,
                  as_written: bool = False) -> list[tuple[int, "Example"]]:
    """Closed-book rows for single-turn rows: ``(position in examples, row)``, deterministic.

    Each row gets ``n`` template rewordings of its question (:func:`backend.data.rewording.reword`),
    preceded by the question as written when ``as_written`` (RAFT: the row itself carries passages).
    """
    from backend.data.rewording import reword

    out = []
    for i, ex in enumerate(examples):
        qa = question_answer(ex)
        if qa is None:
            continue
        _u, q, a = qa
        if as_written:
            out.append((i, closed_book_row(ex, q, a, "closed_book")))
        for text in reword(q, n, seed=seed):
            out.append((i, closed_book_row(ex, text, a, "reworded")))
    return out


__all__ = ["closed_book_row", "question_answer", "reworded_rows"]
