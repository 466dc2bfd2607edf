"""Counterfactual reading rows: the figures of a RAFT row changed in its passages and its answer alike.

A model tuned on a project's question-answer rows learns their figures, and then writes the
figure it memorised next to a passage that says another (bench/quality.md: "A car with its
driver pays EUR 7.40" — the adult fare — on `marrowby_ferry`).  Training on rows whose passage
and answer were changed together teaches that, when passages are shown, the answer's figure is
the passage's (Longpre et al. 2021, "Entity-Based Knowledge Conflicts in Question Answering":
substituted-entity training rows cut the answers given from memory against the context).

Only figures are changed: a number of the answer that the row's passages also hold is replaced,
everywhere in the prompt and the answer, by another number of the same shape (digits,
decimals, thousands separators; a year stays a plausible year).  Deterministic for a seed.
docs/architecture.md, "The knowledge recipe".
"""

from __future__ import annotations

import random
import re
from typing import Any, Sequence

# a figure: digits with optional thousands separators and decimals, not part of a word or a code ("E4", "T3")
# (times "08:30", dates "12/05" and versions "2.1.0" are left alone)
_FIGURE = re.compile(r"(?<![\w.,:/-])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?![\w]|[.,:/]\d)")


def _figures(text: str) -> list[str]:
    return [m.group(0) for m in _FIGURE.finditer(text)]


def _value(fig: str) -> float:
    return float(fig.replace(",", ""))


def _render(value: float, like: str) -> str:
    """``value`` written the way ``like`` is (decimals, thousands separators)."""
    decimals = len(like.split(".", 1)[1]) if "." in like else 0
    text = f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"
    return text


def other_figure(fig: str, rng: random.Random, avoid: set[str]) -> str | None:
    """A different figure of the same shape as ``fig`` (``None`` when none fits, e.g. ``0``)."""
    v = _value(fig)
    whole = "." not in fig
    if whole and 1900 <= v <= 2100 and len(fig) == 4:  # a year stays a year
        candidates = [v + d for d in (-4, -3, -2, -1, 1, 2, 3, 4)]
    elif v == 0:
        return None
    else:
        candidates = [v * f for f in (0.5, 0.6, 0.75, 1.25, 1.5, 2.0, 3.0)]
    rng.shuffle(candidates)
    for c in candidates:
        if whole:
            c = float(max(1, round(c)))
        text = _render(c, fig)
        if whole and fig.startswith("0") and len(fig) > 1:
            text = text.zfill(len(fig))
        if text != fig and text not in avoid:
            return text
    return None


def swap_figures(messages: Sequence[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]] | None:
    """``messages`` (system, user with passages, assistant) with the answer's figures changed everywhere.

    A figure of the answer is changed only when the prompt (the passages) holds it too, so the
    changed answer is still read from the changed passage.  ``None`` when the answer has no such
    figure (the row is left as it is).
    """
    if not messages or messages[-1].get("role") != "assistant":
        return None
    answer = str(messages[-1].get("content") or "")
    prompt = "\n".join(str(m.get("content") or "") for m in messages[:-1])
    present = set(_figures(prompt))
    wanted = [f for f in dict.fromkeys(_figures(answer)) if f in present]
    if not wanted:
        return None
    everything = present | set(_figures(answer))
    swap: dict[str, str] = {}
    for fig in wanted:
        new = other_figure(fig, rng, everything | set(swap.values()))
        if new is not None:
            swap[fig] = new
    if not swap:
        return None

    def sub(text: str) -> str:
        return _FIGURE.sub(lambda m: swap.get(m.group(0), m.group(0)), text)

    return [{**m, "content": sub(str(m.get("content") or ""))} for m in messages]


__all__ = ["other_figure", "swap_figures"]
