"""Batches of similar-length texts, shared by every embedder path (torch, ONNX, the index's bulk path).

A module of its own so that :mod:`backend.rag.embeddings` and
:mod:`backend.rag.onnx_embed` both import it and not each other (see
docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import Iterable, Sequence


def length_batches(lengths: Sequence[int], batch_size: int, rows: Iterable[int] | None = None) -> list[list[int]]:
    """``rows`` (default: all) sorted longest first and cut into batches of ``batch_size``.

    Texts of similar length share a batch, so little of it is padding.
    """
    order = sorted(range(len(lengths)) if rows is None else rows, key=lambda i: -lengths[i])
    bs = max(1, int(batch_size))
    return [order[s:s + bs] for s in range(0, len(order), bs)]
