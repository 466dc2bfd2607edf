"""A retrieved passage (:class:`Source`): what the index's search returns and an answer cites.

Below both the index (:mod:`backend.rag.index`) and the word search
(:mod:`backend.rag.hybrid`), which build it, so neither imports the other for
it (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Source:
    """One retrieved passage: where it comes from and how close it is.

    Attributes
    ----------
    file
        The file name, for display.
    path
        The source as indexed (a path relative to the project when inside it).
    page
        1-based page (PDF) or ``None``.
    chunk
        0-based chunk number within the file.
    text
        The passage.
    score
        Cosine similarity to the question (1 = same meaning, 0 = unrelated).
    bm25
        BM25 score of the passage's words against the question (0 = no word
        in common, or hybrid retrieval off).
    fused
        The reciprocal-rank-fusion score that ordered the passages (0 when
        only the vector search ranked them).
    id
        The chunk's id in the index.
    """

    file: str
    path: str
    page: int | None
    chunk: int
    text: str
    score: float
    bm25: float = 0.0
    fused: float = 0.0
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return asdict(self)

    @property
    def shown_page(self) -> int | None:
        """The page to show: text formats carry page 1 too, and a page number only helps in paged files."""
        return self.page if self.page is not None and self.file.lower().endswith(".pdf") else None

    def label(self) -> str:
        """``'guide.pdf p.3 #2'``."""
        page = f" p.{self.shown_page}" if self.shown_page is not None else ""
        return f"{self.file}{page} #{self.chunk}"
