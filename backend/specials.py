"""Content is content: control strings in user text are never tokenised as control tokens.

A question, a retrieved passage or a training row that contains a model's control
string (``<|im_end|>``, ``<|im_start|>system`` …) would otherwise open or close a
chat turn once the chat template's output is tokenised, because the template is
rendered as text and the tokenizer matches special tokens anywhere in it.  So
every piece of content is *neutralised* before it enters a template: a
zero-width space (U+200B) is put after the first character of each control
string it contains.  The text reads the same to a person; the tokenizer no longer
sees the control token and splits it into ordinary pieces.  The template's own
markers are untouched (see docs/architecture.md, "Trust").
"""

from __future__ import annotations

import re
from typing import Any, Sequence

BREAK = "\u200b"


def special_strings(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's control strings (special and added special tokens), longest first."""
    cached = getattr(tokenizer, "_tune_special_strings", None)
    if cached is not None:
        return cached
    found = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(t, "special", False):
            found.add(getattr(t, "content", ""))
    out = tuple(sorted((s for s in found if s and len(s) > 1), key=len, reverse=True))
    try:
        tokenizer._tune_special_strings = out
    except (AttributeError, TypeError):
        pass
    return out


def _pattern(specials: Sequence[str]) -> re.Pattern | None:
    return re.compile("|".join(re.escape(s) for s in specials)) if specials else None


def find_specials(text: str, specials: Sequence[str]) -> list[str]:
    """The control strings ``text`` contains (each once, in order of first appearance)."""
    pat = _pattern(specials)
    if pat is None or not text:
        return []
    return list(dict.fromkeys(m.group(0) for m in pat.finditer(text)))


def neutralise(text: str, specials: Sequence[str]) -> str:
    """``text`` with every control string broken by a zero-width space after its first character."""
    pat = _pattern(specials)
    if pat is None or not text:
        return text
    return pat.sub(lambda m: m.group(0)[0] + BREAK + m.group(0)[1:], text)
