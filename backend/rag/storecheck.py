"""Is the project's Chroma store readable?  Checked without letting a damaged one take the process down.

A truncated ``chroma.sqlite3`` makes Chroma raise; a truncated HNSW ``header.bin``
makes its native code abort the whole process (the app with it); a zero-byte
database is silently replaced by an empty store.  So before the store is opened:

1. cheap checks in this process: the database exists when the record says chunks
   were written, is not empty, is a SQLite file, and passes SQLite's ``quick_check``;
   each HNSW segment's files have the sizes its ``header.bin`` implies (a truncated
   ``data_level0.bin`` can pass a single query and crash the next reader);
2. then a child process (``backend.jobs``, action ``store_probe``) opens the store, counts the collection and runs one query
   (which loads the HNSW files).  A crash there costs the child, not the app.

A store that passed is remembered by a stamp of its files' names, sizes and
modification times, so the child runs only after the files changed.  A damaged
store is moved aside (``index.broken-<time>/``, never deleted) and rebuilt from the
recorded documents (see docs/architecture.md, "RAG").
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
from pathlib import Path

from backend.fsutil import stamped_path

SQLITE_FILE = "chroma.sqlite3"
OK_FILE = ".store-ok"          # the stamp of the files that last passed the check
BROKEN_PREFIX = "index.broken-"
PROBE_TIMEOUT_S = 120


def _stamp(index_dir: Path) -> str:
    """Names, sizes and mtimes of the store's files (our own record files left out)."""
    h = hashlib.sha256()
    for p in sorted(index_dir.rglob("*")):
        if p.is_file() and p.name != OK_FILE and not p.name.endswith(".json"):
            st = p.stat()
            h.update(f"{p.relative_to(index_dir)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# hnswlib's header as Chroma persists it: persist version (int), offsetLevel0, max_elements,
# cur_element_count, size_data_per_element, label_offset, offsetData (size_t), maxlevel (int),
# enterpoint (uint), maxM, maxM0, M (size_t), mult (double), ef_construction (size_t)
HNSW_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")


def hnsw_problem(segment: Path) -> str | None:
    """What is wrong with one HNSW segment folder's file sizes, in words; ``None`` when they agree."""
    header = segment / "header.bin"
    raw = header.read_bytes()
    name = f"{segment.name}/"
    if len(raw) != HNSW_HEADER.size:
        return f"{name}header.bin has {len(raw)} bytes, not {HNSW_HEADER.size}"
    fields = HNSW_HEADER.unpack(raw)
    max_elements, count, per_element = fields[2], fields[3], fields[4]  # (link_lists.bin: sizes not checked)
    if count > max_elements or per_element == 0 or per_element > 1 << 24:
        return f"{name}header.bin holds impossible sizes"
    for fname, want in (("data_level0.bin", max_elements * per_element), ("length.bin", max_elements * 4)):
        f = segment / fname
        have = f.stat().st_size if f.exists() else None
        if have is None:
            return f"{name}{fname} is missing"
        if have < want:
            return f"{name}{fname} is truncated ({have:,} of {want:,} bytes)"
    return None


def quick_check(index_dir: str | Path, expected_chunks: int) -> str | None:
    """Problems visible without opening Chroma, in words; ``None`` when none."""
    db = Path(index_dir) / SQLITE_FILE
    if not db.exists():
        return f"its database {SQLITE_FILE} is missing" if expected_chunks else None
    size = db.stat().st_size
    if size == 0:
        return f"its database {SQLITE_FILE} is empty (0 bytes)" + (
            f" although {expected_chunks} chunks were recorded" if expected_chunks else "")
    with open(db, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            return f"{SQLITE_FILE} is not a SQLite database"
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        return f"{SQLITE_FILE} can't be read ({e})"
    if rows != [("ok",)]:
        return f"{SQLITE_FILE} failed SQLite's check ({'; '.join(str(r[0]) for r in rows[:3])})"
    for header in sorted(Path(index_dir).glob("*/header.bin")):
        try:
            reason = hnsw_problem(header.parent)
        except (OSError, struct.error) as e:
            reason = f"{header.parent.name}/ can't be read ({e})"
        if reason:
            return reason
    return None


def probe(index_dir: str | Path) -> str | None:
    """Open the store in a child process (``backend.jobs``); the reason it failed, in words, or ``None``."""
    from backend import jobs

    out = jobs.run_job({"action": "store_probe", "index_dir": str(Path(index_dir))}, timeout_s=PROBE_TIMEOUT_S,
                       what="the reader")
    if out.timed_out:
        return f"opening it did not finish in {PROBE_TIMEOUT_S} s"
    fin = out.finished
    if fin is not None and fin.get("status") == "completed":
        return None
    if fin is None:
        if out.returncode < 0:
            import signal

            try:
                name = signal.Signals(-out.returncode).name
            except ValueError:
                name = f"signal {-out.returncode}"
            return f"opening it crashed the reader ({name})"
        return f"opening it failed ({out.reason})"
    return f"opening it failed ({str(fin.get('reason') or 'no reason given')[:300]})"


def check(index_dir: str | Path, expected_chunks: int) -> str | None:
    """Whether the store can be used: ``None``, or what is wrong with it in words.

    Parameters
    ----------
    index_dir
        The project's ``index/`` folder.
    expected_chunks
        Chunks the index record says were written (0 for a new index).
    """
    index_dir = Path(index_dir)
    if not index_dir.is_dir():
        return None
    stamp = _stamp(index_dir)
    try:
        if (index_dir / OK_FILE).read_text(encoding="utf-8").strip() == stamp:
            return None
    except OSError:
        pass
    reason = quick_check(index_dir, expected_chunks)
    if reason is None and (index_dir / SQLITE_FILE).exists():
        reason = probe(index_dir)
    if reason is None:
        remember_ok(index_dir)
    return reason


def remember_ok(index_dir: str | Path) -> None:
    """Record that the store's files as they are now are known to be good (after a write we made)."""
    index_dir = Path(index_dir)
    try:
        (index_dir / OK_FILE).write_text(_stamp(index_dir), encoding="utf-8")
    except OSError:
        pass  # a read-only project: the check simply runs again next time


def move_aside(index_dir: str | Path) -> Path:
    """Rename a damaged ``index/`` to ``index.broken-<time>/`` next to it (never deleted); returns the new path."""
    index_dir = Path(index_dir)
    dest = stamped_path(index_dir.parent, BROKEN_PREFIX)
    os.replace(index_dir, dest)
    return dest


def open_and_query(index_dir: str | Path) -> None:
    """The probe child's side: open the store, count, and run one query (loads the HNSW files)."""
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(index_dir), settings=Settings(anonymized_telemetry=False))
    for col in client.list_collections():
        coll = client.get_collection(getattr(col, "name", col))
        n = coll.count()
        if n:
            got = coll.get(limit=1, include=["embeddings"])
            emb = got["embeddings"][0]
            coll.query(query_embeddings=[list(map(float, emb))], n_results=min(2, n))
