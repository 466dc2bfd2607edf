"""The project's document index: a persistent Chroma collection in ``<project>/index/``.

Incremental by file content: each indexed source is recorded in
``index/index_meta.json`` with its sha256, its chunk count and the chunking
settings.  On ingest, new and changed files are embedded, unchanged ones cost
one hash, and files that are gone from disk lose their chunks.  The embedder's
identity is recorded too; opening the index with another embedder raises
:class:`~backend.errors.IndexStoreError` offering a rebuild.

Chunk ids are derived from (source, sha256, chunk number), so writing a chunk
twice overwrites it, and a crash mid-ingest never leaves duplicates behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from backend import events as ev
from backend import records
from backend.confine import is_inside, skipped_message, walk_files
from backend.errors import DocumentError, IndexStoreError, TuneError, disk_problem
from backend.lock import ProjectLock
from backend.fsutil import atomic_write_json, read_json
from backend.rag.hybrid import LEXICAL_FILE, BM25Index
from backend.rag import storecheck
from backend.rag.settings import IndexSettings, RetrievalSettings
from backend.rag.source import Source

if TYPE_CHECKING:
    from langchain_core.documents import Document

    from backend.rag.embeddings import EmbedderInfo, LocalEmbeddings
    from backend.workspace import Project

COLLECTION = "documents"
META_FILE = "index_meta.json"
META_FORMAT = 1
LOCK_WAIT_S = 600  # a second writer waits this long for the first (an ingest of a big folder)
_FLUSH_CHUNKS = 1024  # chunks per Chroma write: large writes are much cheaper per chunk


# ---------------------------------------------------------------------------
# results


@dataclass
class IngestReport:
    """What an ingest did.

    ``added`` / ``updated`` / ``unchanged`` / ``removed`` list sources;
    ``failed`` lists ``{source, error}`` of files that could not be read (the
    others were indexed); ``skipped`` lists files of unsupported types found in
    folders.  ``chunks_per_s`` counts embedded chunks over the whole call.
    ``embedder_backend`` is ``onnx`` or ``torch`` when chunks were embedded.
    """

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_removed: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    cancelled: bool = False
    rebuilt: bool = False
    embedder: str = ""
    embedder_backend: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase of the call, exclusive (bench/rag.py tabulates them): ``scan`` (finding and hashing
    files), ``read_chunk`` (reading, parsing and chunking them), ``load_model``, ``embed`` (tokenising and
    encoding, as the ingest waits for it), ``chroma_write`` (upserts, deletes), ``bm25`` (the lexical index's
    update and save), ``meta`` (``index_meta.json``), ``other`` (the rest)."""

    @property
    def chunks_per_s(self) -> float:
        """Embedded chunks per second of the whole call."""
        return self.chunks_embedded / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for people."""
        head = "cancelled: " if self.cancelled else ("rebuilt: " if self.rebuilt else "")
        rate = f" ({self.chunks_embedded / self.embed_seconds:.1f} chunks/s embedding)" \
            if self.chunks_embedded and self.embed_seconds > 0 else ""
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (f"{head}{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
                f"{len(self.removed)} removed{failed}; {self.chunks_embedded} chunks embedded in {self.seconds:.1f}s{rate}; "
                f"{self.total_chunks} chunks in the index")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable."""
        return {**asdict(self), "chunks_per_s": round(self.chunks_per_s, 2)}


class _Phases:
    """Seconds per phase into a dict (``IngestReport.phases``); an inner phase is not counted in the outer one."""

    def __init__(self, into: dict[str, float] | None = None):
        self.into = into if into is not None else {}
        self._inner: list[float] = []

    @contextlib.contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            inner = self._inner.pop()
            self.into[name] = self.into.get(name, 0.0) + dt - inner
            if self._inner:
                self._inner[-1] += dt

    def finish(self, seconds: float) -> None:
        """Round the figures and add ``other``: ``seconds`` less the timed phases."""
        self.into["other"] = max(0.0, seconds - sum(v for k, v in self.into.items() if k != "other"))
        for k, v in self.into.items():
            self.into[k] = round(v, 4)


# ---------------------------------------------------------------------------
# Chroma


_CLIENTS: dict[str, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(path: Path):
    """One Chroma client per folder and process, telemetry off (Chroma refuses two with different settings)."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    key = str(path.resolve())
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(key)
        if c is None:
            path.mkdir(parents=True, exist_ok=True)
            _SEEN.setdefault(key, _stamp(path))  # what the store was when this client first read it
            c = chromadb.PersistentClient(path=key, settings=Settings(anonymized_telemetry=False))
            _CLIENTS[key] = c
        return c


def _drop_client(path: Path) -> None:
    """Forget this process's Chroma client of ``path`` (before its folder is moved aside)."""
    key = str(path.resolve())
    with _CLIENTS_LOCK:
        _SEEN.pop(key, None)
        if _CLIENTS.pop(key, None) is not None:
            try:
                from chromadb.api.client import SharedSystemClient

                SharedSystemClient.clear_system_cache()
            except Exception:  # a client that never opened cleanly has nothing to clear
                pass


_SEEN: dict[str, Any] = {}  # index folder -> the store_stamp this process's client is current with


def _stamp(index_dir: Path) -> tuple | None:
    try:
        st = (index_dir / META_FILE).stat()
    except OSError:
        return None
    # the record is replaced by a rename at every write, so its inode changes even within one clock tick
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def store_stamp(project: "Project | str | Path") -> tuple | None:
    """When the index record was last written (any process), as ``(inode, mtime_ns, size)``; ``None`` without one.

    Every ingest ends by writing ``index_meta.json``: a reader holding a Chroma client opened
    before another process's ingest (a training run's RAFT rows or its check after training)
    must reopen, or Chroma answers from its stale in-memory segments ("Error finding id").
    A client records the stamp when it is created and after each write of this process's own,
    so :func:`open_index` reopens exactly when another process wrote since.
    """
    index_dir, _root = _project_index(project)
    return _stamp(index_dir)


class IndexDamaged(IndexStoreError):
    """The Chroma store can't be read; ``tune ingest`` (or Rebuild) moves it aside and rebuilds it."""


_SOURCE_RECORD = {"sha256": "text", "chunks": "integer", "kind": "text", "path": "text", "file": "text",
                  "chunk_size": "integer", "chunk_overlap": "integer", "indexed_at": "number"}


def clean_meta(meta: Any, path: str | Path = META_FILE,
               skipped: "list[records.Skipped] | None" = None) -> dict[str, Any]:
    """The index record with every entry of the wrong shape left out (and named in ``skipped``).

    ``index_meta.json`` travels with the project (docs/architecture.md,
    "Readers"): a source whose ``sha256`` is not text or whose ``chunks`` is
    not a whole number ≥ 0 is dropped, so the next ingest indexes that file
    again; an ``embedder`` that is not an object is dropped as unknown.
    """
    notes: list = [] if skipped is None else skipped
    if not isinstance(meta, dict):
        if meta is not None:
            notes.append(records.Skipped(str(path), None, "not a JSON object"))
        return {"sources": {}}
    meta = dict(meta)
    if "embedder" in meta and not isinstance(meta["embedder"], (dict, type(None))):
        notes.append(records.Skipped(str(path), None, "'embedder' should be an object"))
        meta.pop("embedder")
    sources = meta.get("sources")
    if not isinstance(sources, dict):
        if sources is not None:
            notes.append(records.Skipped(str(path), None, "'sources' should be an object"))
        sources = {}
    clean = {}
    for key, rec in sources.items():
        problem = records.field_problem(rec, _SOURCE_RECORD) if isinstance(rec, dict) else "not an object"
        if problem is None and "sha256" not in rec:
            problem = "no 'sha256'"
        if problem is None and (rec.get("chunks", 0) < 0 or "\0" in key):
            problem = "a negative chunk count" if rec.get("chunks", 0) < 0 else "a NUL in its name"
        if problem:
            notes.append(records.Skipped(str(path), None, f"source {key[:80]!r}: {problem}"))
            continue
        clean[key] = rec
    meta["sources"] = clean
    return meta


def _read_meta(index_dir: Path) -> dict[str, Any]:
    """``index_meta.json`` cleaned (:func:`clean_meta`); ``ValueError`` when it is not usable JSON."""
    return clean_meta(read_json(index_dir / META_FILE), index_dir / META_FILE)


def _recorded_chunks(index_dir: Path) -> int:
    try:
        meta = _read_meta(index_dir)
    except (ValueError, OSError):
        return 0
    return sum(int(r.get("chunks", 0)) for r in meta["sources"].values())


def damage(index_dir: str | Path) -> str | None:
    """What is wrong with a project's index in words (unreadable record or store), or ``None``."""
    index_dir = Path(index_dir)
    try:
        meta = read_json(index_dir / META_FILE)
    except ValueError as e:
        return f"its record {META_FILE} is unreadable ({e})"
    except OSError:
        meta = None
    if meta is not None and not isinstance(meta, dict):
        return f"its record {META_FILE} is not a JSON object"
    return storecheck.check(index_dir, _recorded_chunks(index_dir))


def _has_collection(client) -> bool:
    """Whether the Chroma store holds our collection."""
    names = [getattr(c, "name", c) for c in client.list_collections()]
    return COLLECTION in names


def _get_collection(client, create: bool):
    """Our collection (cosine space), created on demand."""
    if create:
        return client.get_or_create_collection(COLLECTION, embedding_function=None,
                                               configuration={"hnsw": {"space": "cosine"}})
    return client.get_collection(COLLECTION, embedding_function=None)


# ---------------------------------------------------------------------------
# the index


def _source_key(path: Path, root: Path) -> str:
    """The key of a file: relative to the project when inside it (a moved project still matches)."""
    p = path.resolve()
    try:
        return p.relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.as_posix()


def _key_path(key: str, root: Path) -> Path:
    """Inverse of :func:`_source_key`."""
    p = Path(key)
    return p if p.is_absolute() else root / p


def _chunk_ids(key: str, sha: str, n: int) -> list[str]:
    """Deterministic ids of a source version's chunks."""
    base = hashlib.sha256(f"{key}\0{sha}".encode()).hexdigest()[:20]
    return [f"{base}:{i}" for i in range(n)]


def _embed_batches(emb: Any, texts: list[str], batch_size: int):
    """``(positions, vectors)`` per batch, longest texts first.

    Uses the embedder's own :meth:`~backend.rag.embeddings.LocalEmbeddings.iter_encode`
    (one tokenisation, one global sort); any other LangChain ``Embeddings``
    is sorted by characters here and asked batch by batch.
    """
    it = getattr(emb, "iter_encode", None)
    if it is not None:
        yield from it(texts, batch_size=batch_size)
        return
    from backend.rag.embeddings import length_batches

    for rows in length_batches([len(t) for t in texts], batch_size):
        yield rows, emb.embed_documents([texts[i] for i in rows])


def _chroma_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Keep the scalar metadata Chroma accepts (no None, lists or objects)."""
    out = {}
    for k, v in meta.items():
        if v is None:
            continue
        out[str(k)] = v if isinstance(v, (str, int, float, bool)) else str(v)
    return out


class DocumentIndex:
    """A project's persistent Chroma index and its record of indexed sources.

    Parameters
    ----------
    index_dir
        ``<project>/index``.
    embeddings
        The embedder (it must be the one the index was built with), or
        ``None`` to load the one at ``embedding_model`` when first needed:
        checking the index and re-ingesting unchanged files never load a model.
    root
        The project folder (source paths inside it are stored relative to it).
    embedding_model
        The embedder's folder when ``embeddings`` is ``None`` (default: the
        bundled all-MiniLM-L6-v2).
    embedding_backend
        ``auto`` / ``torch`` / ``onnx`` for that load (``None``: the process default,
        see :func:`~backend.rag.embeddings.load_embeddings`).

    Use :func:`open_index` to open one for questions (it checks that it exists,
    is not empty and matches the embedder) and :func:`ingest` to fill it.
    """

    def __init__(self, index_dir: str | Path, embeddings: "LocalEmbeddings | None" = None,
                 root: str | Path | None = None, *, embedding_model: str | Path | None = None,
                 embedding_backend: str | None = None):
        self.dir = Path(index_dir)
        self.root = Path(root) if root is not None else self.dir.parent
        self._embeddings = embeddings
        self._embedding_model = embedding_model
        self._embedding_backend = embedding_backend
        self.meta_path = self.dir / META_FILE
        self._phase = _Phases()  # update() points it at its report's phases
        self._meta: dict[str, Any] | None = None
        self._collection = None
        self._store = None
        self._lexical = None  # BM25 over the chunks (backend.rag.hybrid), loaded on first use

    @property
    def embeddings(self) -> "LocalEmbeddings":
        """The embedder (loaded on first use)."""
        if self._embeddings is None:
            from backend.rag.embeddings import load_embeddings

            self._embeddings = load_embeddings(self._embedding_model, backend=self._embedding_backend)
        return self._embeddings

    @property
    def embedder(self) -> "EmbedderInfo":
        """The embedder's identity, without loading it."""
        if self._embeddings is not None:
            return self._embeddings.info
        from backend.rag.embeddings import embedder_info

        return embedder_info(self._embedding_model)

    # -- state ------------------------------------------------------------
    @property
    def meta(self) -> dict[str, Any]:
        """The index record (``embedder``, ``sources``); read once from disk."""
        if self._meta is None:
            try:
                self._meta = clean_meta(read_json(self.meta_path), self.meta_path)
            except ValueError as e:
                raise IndexStoreError(f"the index record is unreadable ({e})", file=self.meta_path,
                                      hint="rebuild the index (`tune ingest --rebuild` or Rebuild on the Chat page)") from None
            self._meta.setdefault("sources", {})
        return self._meta

    def _save_meta(self) -> None:
        with self._phase("meta"):
            self._save_meta_timed()

    def _save_meta_timed(self) -> None:
        if self._lexical is not None and self._lexical_dirty:
            # written before the record: a crash in between is caught by the id check in `lexical`
            with self._phase("bm25"):
                self._lexical.save(self.dir / LEXICAL_FILE)
            self._lexical_dirty = False
        self.meta["format"] = META_FORMAT
        self.meta["embedder"] = self.embedder.to_dict()
        self.meta["updated_at"] = round(time.time(), 3)
        atomic_write_json(self.meta_path, self.meta)
        key = str(self.dir.resolve())
        with _CLIENTS_LOCK:
            if key in _CLIENTS:  # this process's own write: its client holds what it just wrote
                _SEEN[key] = _stamp(self.dir)

    @property
    def exists(self) -> bool:
        """Whether an index was ever built here."""
        return self.meta_path.exists()

    def check_embedder(self) -> None:
        """Raise :class:`IndexStoreError` when the index was built with another embedder."""
        from backend.rag.embeddings import describe

        stored = self.meta.get("embedder")
        if stored and not self.embedder.same_model(stored):
            raise IndexStoreError(
                f"the index was built with the embedder {describe(stored)}, but {describe(self.embedder)} "
                "is selected; their vectors cannot be compared", file=self.dir,
                hint="rebuild the index with the selected embedder (`tune ingest PROJECT --rebuild`, or Rebuild "
                     "on the Chat page), or select the embedder the index was built with")

    @property
    def collection(self):
        """The raw Chroma collection (created on first use)."""
        if self._collection is None:
            self._collection = _get_collection(_client(self.dir), create=True)
        return self._collection

    @property
    def vectorstore(self):
        """The index as a LangChain :class:`~langchain_chroma.Chroma` vector store."""
        if self._store is None:
            from langchain_chroma import Chroma

            self._store = Chroma(client=_client(self.dir), collection_name=COLLECTION,
                                 embedding_function=self.embeddings, create_collection_if_not_exists=False)
        return self._store

    def count(self) -> int:
        """Chunks in the index (0 when none was built)."""
        if not self.exists:
            return 0
        client = _client(self.dir)
        if not _has_collection(client):
            return 0
        return self.collection.count()

    # -- words (BM25) -----------------------------------------------------
    _lexical_dirty = False

    @property
    def lexical(self) -> BM25Index:
        """The BM25 index of the chunks' words (``index/lexical.json``).

        Kept in step with the vectors by :meth:`update`; rebuilt from the
        stored chunk texts when it is missing (an index built before hybrid
        retrieval), unreadable, or holds other chunk ids than Chroma (a crash
        between the two writes).  No model is needed for that.
        """
        if self._lexical is None:
            bm = BM25Index.load(self.dir / LEXICAL_FILE) if (self.dir / LEXICAL_FILE).exists() else None
            client = _client(self.dir) if self.exists else None
            if client is None or not _has_collection(client):
                # no chunks stored: an old file (if any) is stale and is overwritten at the next save
                self._lexical, self._lexical_dirty = BM25Index(), bm is not None
                return self._lexical
            present = set(self.collection.get(include=[])["ids"])
            if bm is None or bm.ids() != present:
                bm = BM25Index()
                ids = sorted(present)
                for j in range(0, len(ids), _FLUSH_CHUNKS):
                    got = self.collection.get(ids=ids[j:j + _FLUSH_CHUNKS], include=["documents"])
                    bm.add(got["ids"], [d or "" for d in got["documents"]])
                self._lexical = bm
                self._lexical_dirty = True
                bm.save(self.dir / LEXICAL_FILE)
                self._lexical_dirty = False
            else:
                self._lexical = bm
        return self._lexical

    def _lex_remove(self, ids: Sequence[str]) -> None:
        if ids:
            self.lexical.remove(ids)
            self._lexical_dirty = True

    def sources(self) -> dict[str, dict[str, Any]]:
        """Indexed sources: key -> ``{path, file, sha256, chunks, ...}``."""
        return dict(self.meta["sources"])

    # -- questions --------------------------------------------------------
    def search(self, query: str, k: int = 4, settings: RetrievalSettings | None = None) -> list[Source]:
        """The ``k`` passages that best match ``query``, best first.

        With ``settings.hybrid`` (the default) the vector ranking and the BM25
        ranking of the chunks' words are fused (:func:`backend.rag.hybrid.hybrid_search`);
        otherwise only the vectors rank.

        Raises
        ------
        IndexStoreError
            When the index is missing, empty or built with another embedder.
        """
        from backend.rag.hybrid import hybrid_search

        self.require_ready()
        return hybrid_search(self, query, int(k), settings or RetrievalSettings())

    def require_ready(self) -> None:
        """Raise :class:`IndexStoreError` unless the index exists, matches the embedder and has chunks."""
        if not self.exists or not _has_collection(_client(self.dir)):
            raise IndexStoreError("there is no document index yet", file=self.dir,
                                  hint="add documents first: `tune ingest PROJECT FILE...` or the Data page")
        self.check_embedder()
        if self.collection.count() == 0:
            raise IndexStoreError("the document index is empty (no chunks: every indexed file was removed or had no text)",
                                  file=self.dir, hint="add documents with text: `tune ingest PROJECT FILE...`")

    # -- writing ----------------------------------------------------------
    def _reset(self) -> None:
        """Drop every chunk and the record (for a rebuild with another embedder)."""
        client = _client(self.dir)
        if _has_collection(client):
            client.delete_collection(COLLECTION)
        self._collection = None
        self._store = None
        self._meta = {"sources": {}}
        self._lexical = BM25Index()
        self._lexical_dirty = True

    def _heal(self) -> set[str]:
        """Make Chroma and the record agree after a crash; return keys whose chunks are missing."""
        coll = self.collection
        present = set(coll.get(include=[])["ids"])
        expected: dict[str, str] = {}
        broken = set()
        for key, rec in self.meta["sources"].items():
            ids = _chunk_ids(key, rec["sha256"], int(rec.get("chunks", 0)))
            if not present.issuperset(ids):
                broken.add(key)
            expected.update(dict.fromkeys(ids, key))
        orphans = [i for i in present if i not in expected]
        for i in range(0, len(orphans), _FLUSH_CHUNKS):
            coll.delete(ids=orphans[i:i + _FLUSH_CHUNKS])
        return broken

    def update(self, versions: dict[str, tuple[str, Callable[[], list["Document"]] | list["Document"], dict]],
               *, remove: Iterable[str] = (), rebuild: bool = False, batch_size: int = 0,
               report: IngestReport | None = None, on_event: ev.OnEvent = ev.no_event,
               should_stop: ev.ShouldStop = ev.never_stop) -> IngestReport:
        """Bring the index up to date with the given source versions.

        Parameters
        ----------
        versions
            key -> ``(sha256, documents or a loader returning them, record fields)``.
            Sources whose sha256 and chunking match the record are left alone.
        remove
            Keys of sources to drop.
        rebuild
            Drop everything first (also needed after changing the embedder).
        batch_size
            Chunks per embedding batch (0 = the embedder's default).
        report
            A report to fill in (a new one by default).
        on_event, should_stop
            Progress events (stages ``read`` and ``embed``) and cancellation,
            checked between files and between embedding batches.  A cancelled
            update leaves no partly-indexed source behind.

        Returns
        -------
        IngestReport

        Raises
        ------
        IndexStoreError
            When the index was built with another embedder and ``rebuild`` is off.
        """
        t0 = time.perf_counter()
        rep = report or IngestReport()
        self._phase = ph = _Phases(rep.phases)
        rep.embedder = self.embedder.name
        if rebuild:
            old = self.meta.get("sources", {}) if self.exists else {}
            self._reset()
            rep.rebuilt = True
            rep.chunks_removed += sum(int(r.get("chunks", 0)) for r in old.values())
        else:
            self.check_embedder()
        sources = self.meta["sources"]
        broken = self._heal() if sources else set()

        with ph("chroma_write"):
            coll = self.collection
        with ph("bm25"):
            _ = self.lexical  # in step with Chroma before anything changes
        # 1. removed sources lose their chunks
        for key in remove:
            rec = sources.pop(key, None)
            if rec is None:
                continue
            ids = _chunk_ids(key, rec["sha256"], int(rec.get("chunks", 0)))
            with ph("chroma_write"):
                for i in range(0, len(ids), _FLUSH_CHUNKS):
                    coll.delete(ids=ids[i:i + _FLUSH_CHUNKS])
            with ph("bm25"):
                self._lex_remove(ids)
            rep.removed.append(key)
            rep.chunks_removed += len(ids)

        # 2. which versions are new or changed
        todo: list[tuple[str, str, Any, dict]] = []
        for key, (sha, docs, extra) in versions.items():
            rec = sources.get(key)
            same_chunking = rec is not None and all(rec.get(k) == v for k, v in extra.items()
                                                    if k in ("chunk_size", "chunk_overlap"))
            if rec is not None and rec.get("sha256") == sha and same_chunking and key not in broken:
                rep.unchanged.append(key)
                continue
            todo.append((key, sha, docs, extra))

        # 3. read and chunk them
        pending: list[tuple[str, str, list, dict]] = []
        errors: list[DocumentError] = []
        for i, (key, sha, docs, extra) in enumerate(todo):
            if should_stop():
                rep.cancelled = True
                break
            on_event(ev.progress("read", i, len(todo), f"Reading {Path(key).name}"))
            try:
                with ph("read_chunk"):
                    chunks = docs() if callable(docs) else list(docs)
            except DocumentError as e:
                # one unreadable file does not stop a folder; its old chunks (if any) stay
                errors.append(e)
                rep.failed.append({"source": key, "error": str(e)})
                on_event(ev.log(f"skipped {key}: {e}", level="warning"))
                continue
            chunks = [d for d in chunks if d.page_content and d.page_content.strip()]
            pending.append((key, sha, chunks, extra))
        if todo:
            on_event(ev.progress("read", len(todo), len(todo), "Read"))
        if errors and not pending and not rep.unchanged and not rep.removed and not rep.cancelled:
            raise errors[0]  # nothing else to do: the error is the answer
        if rep.cancelled:
            self._save_meta()
            rep.total_chunks = coll.count()
            rep.seconds = time.perf_counter() - t0
            return rep

        # 4. the old versions of changed sources go first, so the record never
        #    claims chunks that are gone (a crash now just re-embeds them)
        for key, _sha, _chunks, _extra in pending:
            rec = sources.pop(key, None)
            if rec is not None:
                ids = _chunk_ids(key, rec["sha256"], int(rec.get("chunks", 0)))
                with ph("chroma_write"):
                    for j in range(0, len(ids), _FLUSH_CHUNKS):
                        coll.delete(ids=ids[j:j + _FLUSH_CHUNKS])
                with ph("bm25"):
                    self._lex_remove(ids)
                rep.chunks_removed += len(ids)
                rep.updated.append(key)
            else:
                rep.added.append(key)
        if pending or rep.removed:
            self._save_meta()

        # 5. embed every new chunk; the embedder sorts them all by length first
        #    (tokenised once), so batches of similar length waste little on padding
        items: list[tuple[str, str, int, Any]] = []  # (key, id, chunk number, document)
        for key, sha, chunks, _extra in pending:
            ids = _chunk_ids(key, sha, len(chunks))
            items.extend((key, ids[n], n, d) for n, d in enumerate(chunks))
        # identical chunks (boilerplate, repeated headers) are embedded once
        first: dict[str, int] = {}
        copies: dict[int, list[int]] = {}
        for j, it in enumerate(items):
            k0 = first.setdefault(it[3].page_content, j)
            if k0 != j:
                copies.setdefault(k0, []).append(j)
        unique = list(first.values())
        remaining = {key: len(chunks) for key, _s, chunks, _e in pending}
        info = {key: (sha, len(chunks), extra) for key, sha, chunks, extra in pending}
        for key, n in remaining.items():
            if n == 0:  # a file without text: recorded, so it is not read again
                self._finish(key, *info[key])
        if unique and self._embeddings is None:
            on_event(ev.progress("load", 0, 1, "Loading the embedding model…"))
            with ph("load_model"):
                _ = self.embeddings  # load now, so the first batch's progress is about embedding alone
            on_event(ev.progress("load", 1, 1, "Embedding model loaded"))
        if unique:
            rep.embedder_backend = getattr(self.embeddings, "backend", "")
        bs = batch_size or (int(self.embeddings.encode_kwargs.get("batch_size", 32)) if unique else 32)
        total = len(items)
        stored: list[int] = []  # item numbers written to Chroma
        buf: list[tuple[int, Any]] = []
        t_embed = 0.0
        done = 0
        if total:
            on_event(ev.progress("embed", 0, total, f"Embedding {total} chunks"))
        batches = _embed_batches(self.embeddings, [items[j][3].page_content for j in unique], bs) if unique else None
        try:
            while batches is not None:
                if should_stop():
                    rep.cancelled = True
                    break
                t1 = time.perf_counter()
                with ph("embed"):
                    nxt = next(batches, None)
                t_embed += time.perf_counter() - t1
                if nxt is None:
                    break
                rows, vectors = nxt
                for r, v in zip(rows, vectors):
                    j = unique[r]
                    buf.append((j, v))
                    buf.extend((c, v) for c in copies.get(j, ()))
                done = len(stored) + len(buf)
                if len(buf) >= _FLUSH_CHUNKS or done == total:
                    stored.extend(self._flush(items, buf, remaining, info))
                    buf = []
                on_event(ev.progress("embed", done, total, f"Embedded {done}/{total} chunks"))
        finally:
            if batches is not None:
                batches.close()
        kept = done
        if rep.cancelled:
            # no half-indexed files: drop the chunks of sources not finished
            unfinished = {key for key, n in remaining.items() if n > 0}
            drop = [items[j][1] for j in stored if items[j][0] in unfinished]
            for j in range(0, len(drop), _FLUSH_CHUNKS):
                coll.delete(ids=drop[j:j + _FLUSH_CHUNKS])
            self._lex_remove(drop)
            for key in unfinished:
                for lst in (rep.added, rep.updated):
                    if key in lst:
                        lst.remove(key)
            kept = sum(info[k][1] for k, n in remaining.items() if n == 0)
            self._save_meta()
        if self._lexical_dirty:
            with ph("bm25"):
                self._lexical.save(self.dir / LEXICAL_FILE)
            self._lexical_dirty = False
        rep.chunks_embedded = kept
        rep.embed_seconds = round(t_embed, 3)
        with ph("chroma_write"):
            rep.total_chunks = coll.count()
        rep.seconds = round(time.perf_counter() - t0, 3)
        ph.finish(rep.seconds)
        return rep

    def _flush(self, items, buf, remaining: dict[str, int], info) -> list[int]:
        """Write embedded chunks to Chroma; record sources whose chunks are all stored."""
        import numpy as np

        ids = [items[j][1] for j, _ in buf]
        docs = [items[j][3] for j, _ in buf]
        metas = []
        for j, _ in buf:
            key, _id, n, d = items[j]
            m = _chroma_metadata(d.metadata or {})
            m["source"] = key
            m.setdefault("file", Path(key).name)
            m["chunk"] = n
            metas.append(m)
        vectors = np.asarray([v for _, v in buf], dtype=np.float32)
        with self._phase("chroma_write"):
            client = _client(self.dir)
            step = client.get_max_batch_size()
            for i in range(0, len(ids), step):
                self.collection.upsert(ids=ids[i:i + step], embeddings=vectors[i:i + step],
                                       documents=[d.page_content for d in docs[i:i + step]],
                                       metadatas=metas[i:i + step])
        with self._phase("bm25"):
            self.lexical.add(ids, [d.page_content for d in docs])
        self._lexical_dirty = True
        finished = False
        for j, _ in buf:
            key = items[j][0]
            remaining[key] -= 1
            if remaining[key] == 0:
                self._finish(key, *info[key], save=False)
                finished = True
        if finished:
            self._save_meta()
        return [j for j, _ in buf]

    def _finish(self, key: str, sha: str, n: int, extra: dict, save: bool = True) -> None:
        """Record a source whose chunks are all stored."""
        self.meta["sources"][key] = {**extra, "sha256": sha, "chunks": n, "indexed_at": round(time.time(), 3)}
        if save:
            self._save_meta()


# ---------------------------------------------------------------------------
# loading documents


def loader() -> tuple[Callable[[str | Path, int, int], list["Document"]], tuple[str, ...]]:
    """The shared document loader (``backend.documents.load_and_chunk``) and the suffixes it reads."""
    from backend.documents import DOCUMENT_SUFFIXES, load_and_chunk

    return load_and_chunk, tuple(DOCUMENT_SUFFIXES)


def _confined_sources(sources: dict[str, dict], root: Path) -> tuple[dict[str, dict], list[str]]:
    """The index record's file sources that resolve inside the project, and the keys that do not.

    The record (``index_meta.json``) comes with the project: a key naming ``/home/…/.ssh/config``
    or a link out of the project is never read again by a refresh or a rebuild
    (docs/architecture.md, "Confinement").  Sources that are not files (chunked documents
    given by name) are kept.
    """
    kept: dict[str, dict] = {}
    skipped: list[str] = []
    for key, rec in sources.items():
        if isinstance(rec, dict) and rec.get("kind", "file") == "file" and not is_inside(_key_path(key, root), root):
            skipped.append(key)
        else:
            kept[key] = rec
    return kept, skipped


def _expand(paths: Sequence[str | Path], suffixes: tuple[str, ...], on_event: ev.OnEvent,
            root: Path | None = None) -> tuple[list[Path], list[str]]:
    """Files to index: given files, and supported files inside given folders (recursively).

    A folder is walked without following links out of it (or out of the project ``root``
    when it lies inside): such links are skipped and named in a warning.
    """
    files: list[Path] = []
    skipped: list[str] = []
    links: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            boundary = root if root is not None and is_inside(p, root) else p
            for f in walk_files(p, boundary, skipped=links, hidden=False):
                if f.suffix.lower() in suffixes:
                    files.append(f)
                else:
                    skipped.append(str(f))
        elif p.is_file():
            if root is not None and is_inside(p.parent, root) and not is_inside(p, root):
                links.append(p)  # a project's file that is a link out of it
                continue
            if p.suffix.lower() not in suffixes:
                raise DocumentError(f"cannot index '{p.suffix or p.name}' files", file=p,
                                    hint=f"supported: {', '.join(suffixes)}")
            files.append(p)
        else:
            raise DocumentError("file or folder not found", file=p, hint="check the path")
    if skipped:
        on_event(ev.log(f"skipped {len(skipped)} files of unsupported types (e.g. {Path(skipped[0]).name})",
                        level="warning"))
    if links:
        on_event(ev.log(skipped_message(links, root or Path(".")), level="warning"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique, skipped


# ---------------------------------------------------------------------------
# public functions


def _project_index(project: "Project | str | Path") -> tuple[Path, Path]:
    """(index folder, project root) of a Project or a project folder."""
    if isinstance(project, (str, os.PathLike)):  # a folder (note: Path has a .root of its own)
        root = Path(project).expanduser()
        return root / "index", root
    return Path(project.index_dir), Path(project.root)


def open_index(project: "Project | str | Path", *, embeddings: "LocalEmbeddings | None" = None,
               check: bool = True) -> DocumentIndex:
    """Open a project's index for questions.

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder.
    embeddings
        The embedder (default: the one recorded with the index when it is
        still available, else the bundled all-MiniLM-L6-v2).
    check
        Raise unless the index is ready for questions.

    Returns
    -------
    DocumentIndex

    Raises
    ------
    IndexStoreError
        No index yet, an empty index, or one built with another embedder.
    """
    index_dir, root = _project_index(project)
    model = None
    if embeddings is None:
        # the embedder the index was built with, when it is still where it was
        path = (index_status(project)["embedder"] or {}).get("path")
        model = path if path and Path(path).is_dir() else None
    if check:
        reason = damage(index_dir)
        if reason:
            raise IndexDamaged(f"the document index is damaged: {reason}", file=index_dir,
                               hint="rebuild it: `tune ingest PROJECT --rebuild`, or Update index on the Chat page "
                                    "(the damaged folder is kept as index.broken-<time>)")
    key, stamp = str(index_dir.resolve()), store_stamp(project)
    if key in _SEEN and _SEEN[key] != stamp:  # written by another process since this one opened it
        _drop_client(index_dir)
    _SEEN[key] = stamp
    idx = DocumentIndex(index_dir, embeddings, root, embedding_model=model)
    if check:
        idx.require_ready()
    return idx


def index_status(project: "Project | str | Path") -> dict[str, Any]:
    """What the index holds, without loading any model (for the GUI and ``tune doctor``).

    Returns
    -------
    dict
        ``{exists, embedder, sources: {key: record}, files, chunks}``.
    """
    index_dir, _root = _project_index(project)
    try:
        raw = read_json(index_dir / META_FILE)
    except (ValueError, OSError):
        raw = None
    meta = clean_meta(raw, index_dir / META_FILE) if raw else {}
    sources = meta.get("sources", {})
    return {"exists": bool(meta), "embedder": meta.get("embedder"), "sources": sources,
            "files": len(sources), "chunks": sum(int(r.get("chunks", 0)) for r in sources.values())}


def ingest(project: "Project | str | Path", paths: Sequence[str | Path] = (), *,
           settings: IndexSettings | None = None, rebuild: bool = False,
           embeddings: "LocalEmbeddings | None" = None, on_event: ev.OnEvent = ev.no_event,
           should_stop: ev.ShouldStop = ev.never_stop) -> IngestReport:
    """Index documents into the project's Chroma index, incrementally.

    New and changed files are chunked and embedded; unchanged files cost one
    sha256; indexed files that no longer exist on disk lose their chunks.
    Files indexed before and not named now stay indexed.

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder.
    paths
        Files and folders (folders are searched recursively for supported files).
        May be empty: then only removed files are dropped (and, with
        ``rebuild``, everything still on disk is embedded again).
    settings
        Chunking and embedding settings (:class:`IndexSettings`).
    rebuild
        Drop the index and embed every file again, e.g. after changing the
        embedding model.  Files indexed before and still on disk are included.
    embeddings
        An already loaded embedder (default: ``settings.embedding_model``).
    on_event
        Receives ``progress`` events (stages ``scan``, ``read``, ``embed``) and ``log`` events.
    should_stop
        Checked between files and between embedding batches; a stopped ingest
        keeps the files finished so far and leaves no partly indexed file.

    Returns
    -------
    IngestReport

    Raises
    ------
    DocumentError
        A path that does not exist, an unsupported file type, or an
        unreadable file when there is nothing else to do (otherwise unreadable
        files are listed in ``IngestReport.failed``).
    IndexStoreError
        The index was built with another embedder (pass ``rebuild=True``).
    """
    index_dir, root = _project_index(project)
    with ProjectLock(root, "updating the document index", wait=LOCK_WAIT_S,
                     on_wait=lambda m: on_event(ev.log(m, level="warning"))):
        try:
            return _ingest(project, index_dir, root, paths, settings, rebuild, embeddings, on_event, should_stop)
        except TuneError:
            raise
        except Exception as e:  # Chroma's SQLite says "database or disk is full": a full disk, in words
            problem = disk_problem(e, index_dir, doing="indexing the documents",
                                   needed=_index_bytes(paths, settings), then="then run the ingest again")
            if problem is None:
                raise
            raise problem from e


def _index_bytes(paths: Sequence[str | Path], settings: "IndexSettings | None") -> int | None:
    """About how much indexing ``paths`` writes: their text stored and searchable (~3x) plus a vector per chunk."""
    total = 0
    for p in paths:
        p = Path(p)
        try:
            files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]
            total += sum(f.stat().st_size for f in files)
        except OSError:
            continue
    if not total:
        return None
    chunk = (settings.chunk_size if settings else 1000) or 1000
    return 3 * total + (total // chunk + 1) * 384 * 4 * 3


def _recover(index_dir: Path, root: Path, on_event: ev.OnEvent) -> list[Path] | None:
    """Move a damaged index aside; the documents to index again (``None`` when it was fine)."""
    reason = damage(index_dir)
    if reason is None:
        return None
    _drop_client(index_dir)
    moved = storecheck.move_aside(index_dir)
    files: dict[str, Path] = {}
    try:
        old = _read_meta(moved)
    except (ValueError, OSError):
        old = {}
    sources, outside = _confined_sources(old.get("sources") or {}, root)
    if outside:
        on_event(ev.log(f"not rebuilt from {len(outside)} recorded source(s) outside the project "
                        f"(e.g. {outside[0]}): a project's index names only its own files", level="warning"))
    for key, rec in sources.items():
        if isinstance(rec, dict) and rec.get("kind", "file") == "file":
            files[key] = _key_path(key, root)
    try:
        from backend.documents import project_documents
        from backend.workspace import Project

        for f in project_documents(Project.open(root)):  # confined by read_manifest
            files.setdefault(_source_key(Path(f), root), Path(f))
    except Exception as e:  # not a project folder (a bare index) or no manifest: the record's files only
        on_event(ev.log(f"no document list to rebuild from besides the index record ({e})", level="warning"))
    on_event(ev.log(f"The document index was damaged ({reason}). It was moved to {moved.name} (kept, not "
                    f"deleted) and is being rebuilt from {len(files)} recorded document(s).", level="warning"))
    return [p for p in files.values() if p.is_file()]


def _ingest(project, index_dir: Path, root: Path, paths: Sequence[str | Path], settings: IndexSettings | None,
            rebuild: bool, embeddings, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> IngestReport:
    """:func:`ingest` under the project lock."""
    from backend.documents import file_sha256

    t0 = time.perf_counter()
    phases: dict[str, float] = {}
    ph = _Phases(phases)
    scan = ph("scan")
    scan.__enter__()
    settings = settings or IndexSettings()
    again = _recover(index_dir, root, on_event)
    if again is not None:
        paths, rebuild = [*paths, *again], True
    load, suffixes = loader()
    files, skipped = _expand(paths, suffixes, on_event, root)
    _warn_skipped_links(root, paths, on_event)
    idx = DocumentIndex(index_dir, embeddings, root, embedding_model=settings.embedding_model or None,
                        embedding_backend=settings.embedding_backend)
    if not rebuild:
        idx.check_embedder()  # fail before hashing anything
    known = idx.meta["sources"] if idx.exists else {}
    # the record comes with the project: a rebuild re-reads only its keys inside the project (a forged
    # index_meta.json naming ~/.ssh/config is not read); files named now were chosen by the person
    inside = _confined_sources(known, root)[0]

    # files indexed before: gone from disk -> removed; with rebuild -> embedded again
    keys = {_source_key(f, root): f for f in files}
    remove = []
    for key, rec in known.items():
        if not isinstance(rec, dict) or rec.get("kind", "file") != "file":
            continue
        p = _key_path(key, root)
        if not p.is_file():
            remove.append(key)
        elif rebuild and key not in keys and key in inside:
            keys[key] = p

    versions: dict[str, tuple[str, Any, dict]] = {}
    for i, (key, f) in enumerate(keys.items()):
        if should_stop():
            break
        if i % 50 == 0:
            on_event(ev.progress("scan", i, len(keys), f"Checking {f.name}"))
        sha = file_sha256(f)  # raises DocumentError naming the file
        extra = {"path": key, "file": f.name, "kind": "file", "chunk_size": settings.chunk_size,
                 "chunk_overlap": settings.chunk_overlap}
        versions[key] = (sha, _bound_loader(load, f, settings), extra)
    scan.__exit__(None, None, None)
    rep = IngestReport(skipped=skipped, phases=phases)
    if should_stop():
        rep.cancelled = True
        rep.seconds = time.perf_counter() - t0
        return rep
    on_event(ev.progress("scan", len(keys), len(keys), f"Checked {len(keys)} files"))
    idx.update(versions, remove=remove, rebuild=rebuild, batch_size=settings.embed_batch_size,
               report=rep, on_event=on_event, should_stop=should_stop)
    storecheck.remember_ok(index_dir)  # our own write: no need to probe these files again
    rep.seconds = round(time.perf_counter() - t0, 3)
    ph.finish(rep.seconds)  # `other` over the whole call, scanning included
    on_event(ev.log(rep.describe()))
    return rep


def _warn_skipped_links(root: Path, paths: Sequence[str | Path], on_event: ev.OnEvent) -> None:
    """Name the links in ``documents/`` that lead out of the project (the GUI indexes its document list)."""
    from backend.workspace import Project

    docs = root / "documents"
    if not (root / "project.json").is_file() or any(Path(p).expanduser() == docs for p in paths):
        return  # not a project, or the folder itself was given: _expand has named them
    links = [p for p in Project(root, root.name).skipped_links() if docs in p.parents or p == docs]
    if links:
        on_event(ev.log(skipped_message(links, root), level="warning"))


def _bound_loader(load: Callable, f: Path, settings: IndexSettings) -> Callable[[], list["Document"]]:
    """A loader call for one file, with its errors made readable."""
    def run() -> list["Document"]:
        try:
            return load(f, settings.chunk_size, settings.chunk_overlap)
        except (DocumentError, IndexStoreError):
            raise
        except OSError as e:
            raise DocumentError(f"cannot read the file ({e.strerror or e})", file=f) from None
    return run


def index_documents(project: "Project | str | Path", documents: Sequence["Document"], *,
                    remove: Iterable[str] = (), rebuild: bool = False, batch_size: int = 0,
                    embeddings: "LocalEmbeddings | None" = None, on_event: ev.OnEvent = ev.no_event,
                    should_stop: ev.ShouldStop = ev.never_stop) -> IngestReport:
    """Index already chunked LangChain documents, incrementally by source.

    Chunks are grouped by ``metadata["source"]``; a source whose chunks are
    the same as last time is not embedded again.  Sources not given stay.

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder.
    documents
        Chunks with ``metadata`` ``source`` (required), and optionally ``page``
        and ``file``.
    remove
        Sources to drop.
    rebuild, batch_size, embeddings, on_event, should_stop
        As for :func:`ingest`.

    Returns
    -------
    IngestReport

    Raises
    ------
    DocumentError
        A document without ``metadata["source"]``.
    IndexStoreError
        The index was built with another embedder (pass ``rebuild=True``).
    """
    t0 = time.perf_counter()
    index_dir, root = _project_index(project)
    groups: dict[str, list] = {}
    for n, d in enumerate(documents):
        src = (d.metadata or {}).get("source")
        if not src:
            raise DocumentError(f"document {n} has no metadata['source']", field="source",
                                hint="give every chunk the file or name it comes from")
        groups.setdefault(str(src), []).append(d)
    versions = {}
    for src, docs in groups.items():
        h = hashlib.sha256()
        for d in docs:
            h.update(d.page_content.encode("utf-8", "surrogatepass"))
            h.update(repr(sorted(_chroma_metadata(d.metadata or {}).items())).encode())
        versions[src] = (h.hexdigest(), docs, {"path": src, "file": Path(src).name, "kind": "documents"})
    with ProjectLock(root, "updating the document index", wait=LOCK_WAIT_S,
                     on_wait=lambda m: on_event(ev.log(m, level="warning"))):
        idx = DocumentIndex(index_dir, embeddings, root)
        rep = idx.update(versions, remove=remove, rebuild=rebuild, batch_size=batch_size,
                         on_event=on_event, should_stop=should_stop)
        storecheck.remember_ok(index_dir)
    rep.seconds = round(time.perf_counter() - t0, 3)
    return rep


def remove_sources(project: "Project | str | Path", sources: Iterable[str | Path], *,
                   embeddings: "LocalEmbeddings | None" = None) -> IngestReport:
    """Drop sources (file paths or document source names) from the index.

    Returns
    -------
    IngestReport
        ``removed`` lists the sources that were indexed.
    """
    index_dir, root = _project_index(project)
    with ProjectLock(root, "updating the document index", wait=LOCK_WAIT_S):
        idx = DocumentIndex(index_dir, embeddings, root)
        known = idx.meta["sources"]
        keys = []
        for s in sources:
            s = str(s)
            if s in known:
                keys.append(s)
            else:
                k = _source_key(Path(s).expanduser(), root)
                if k in known:
                    keys.append(k)
        rep = idx.update({}, remove=keys)
        storecheck.remember_ok(index_dir)
        return rep
