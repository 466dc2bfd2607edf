"""The four answer modes: the tuned or the base model, with or without the documents' passages.

One list for the chain (:mod:`backend.rag.chain`), the evaluation, ``tune eval --modes``
and the Evaluate page; it imports nothing, so the CLI's help and the window's
process read it without loading the chain (docs/architecture.md, "RAG").
"""

from __future__ import annotations

MODES = ("tuned+rag", "tuned", "base+rag", "base")


def mode_name(tuned: bool, rag: bool) -> str:
    """``'tuned+rag'``, ``'tuned'``, ``'base+rag'`` or ``'base'``."""
    return ("tuned" if tuned else "base") + ("+rag" if rag else "")


def parse_mode(mode: str) -> tuple[bool, bool]:
    """``'base+rag'`` -> ``(tuned=False, rag=True)``.

    Raises
    ------
    ValueError
        For an unknown mode name.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode.startswith("tuned"), mode.endswith("+rag")


__all__ = ["MODES", "mode_name", "parse_mode"]
