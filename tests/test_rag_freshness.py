"""Index staleness by content (sha256), the rule `tune ingest` uses — what the Chat page asks."""

from __future__ import annotations

import os

from conftest import build_tiny_embedder

from backend.rag.freshness import stale_documents
from backend.rag.settings import IndexSettings
from backend.workspace import Project


def test_stale_by_content_not_by_mtime(tmp_path):
    from backend.rag.embeddings import load_embeddings
    from backend.rag.index import ingest

    emb = load_embeddings(build_tiny_embedder(tmp_path / "emb"))
    proj = Project.create(tmp_path / "p")
    a, b = proj.documents_dir / "a.md", proj.documents_dir / "b.txt"
    a.write_text("# A\n\nThe warranty lasts two years.\n", encoding="utf-8")
    b.write_text("Error E4 means the sensor is disconnected.\n", encoding="utf-8")
    assert stale_documents(proj, [a, b]) == [a, b]  # no index yet

    ingest(proj, [proj.documents_dir], embeddings=emb)
    assert stale_documents(proj, proj.document_files()) == []

    # touched, same bytes: not stale (the old mtime rule said it was)
    later = os.stat(a).st_mtime + 100
    os.utime(a, (later, later))
    assert stale_documents(proj, [a, b]) == []

    # same size and mtime kept, other bytes: stale all the same
    st = os.stat(b)
    b.write_text("Error E5 means the sensor is disconnected.\n", encoding="utf-8")
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert stale_documents(proj, [a, b]) == [b]

    # a new file, and another chunking, are stale; a file that cannot be read is left out
    c = proj.documents_dir / "c.md"
    c.write_text("New.\n", encoding="utf-8")
    assert stale_documents(proj, [a, c, proj.documents_dir / "gone.md"]) == [c]
    other = IndexSettings(chunk_size=IndexSettings().chunk_size + 100)
    assert stale_documents(proj, [a], settings=other) == [a]
