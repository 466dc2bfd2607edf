"""Documents: read .txt .md .pdf .docx .html .csv into LangChain ``Document`` chunks.

Used by the RAG index (``load_and_chunk``), by training on documents (chunks as
plain-text rows, see ``DataConfig.document_files`` and
:func:`export_text_dataset`), and by ``tune docs add``, which records each file
in ``<project>/documents/manifest.json``.

Parsers: pypdf (PDF), python-docx (DOCX), BeautifulSoup (HTML), the csv module
(one document per row, "column: value" lines, like LangChain's CSVLoader) and
charset detection for text files.  Chunking: LangChain's
``RecursiveCharacterTextSplitter`` (markdown-aware for .md).  Chunk metadata:
``source`` (the path as given), ``file_name``, ``page`` (1-based; 1 for formats
without pages), ``chunk`` (0-based index in the file), ``start_index`` (in the
page text), ``type`` (the suffix); CSV chunks also carry ``row``.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from backend import events as ev
from backend import records
from backend.errors import DocumentError
from backend.filetypes import DOCUMENT_SUFFIXES
from backend.fsutil import atomic_write_json, atomic_write_text, read_json, sha256_file, stamped_path
from backend.textio import decode_text, read_bytes

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.documents import Document

    from backend.workspace import Project

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


# ---------------------------------------------------------------------------
# loading

def _doc(text: str, source: str, page: int, **meta: Any) -> "Document":
    from langchain_core.documents import Document

    return Document(page_content=text, metadata={"source": source, "file_name": Path(source).name,
                                                 "page": page, "type": Path(source).suffix.lower().lstrip("."),
                                                 **meta})


def _load_text(p: Path, source: str) -> list["Document"]:
    text, _, _ = decode_text(read_bytes(p, error_cls=DocumentError), source, error_cls=DocumentError)
    return [_doc(text, source, 1)]


def _load_pdf(p: Path, source: str) -> list["Document"]:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

    data = read_bytes(p, error_cls=DocumentError)
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise DocumentError("not a PDF file (no %PDF header)", file=source,
                            hint="check the file; if it is another format, give it the right extension")
    # pypdf logs recoverable damage as warnings; keep them out of the user's terminal
    pdf_log = logging.getLogger("pypdf")
    level = pdf_log.level
    pdf_log.setLevel(logging.ERROR)
    try:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    ok = reader.decrypt("")
                except (FileNotDecryptedError, PyPdfError, NotImplementedError) as e:
                    raise DocumentError(f"the PDF is encrypted and cannot be opened ({e})", file=source,
                                        hint="save an unencrypted copy (e.g. print to PDF) and add that") from None
                if not ok:
                    raise DocumentError("the PDF is password-protected", file=source,
                                        hint="save an unencrypted copy (open it with the password and print to PDF)")
            pages = reader.pages
            n = len(pages)
        except DocumentError:
            raise
        except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
            raise DocumentError(f"the PDF is corrupt or incomplete ({type(e).__name__}: {e})", file=source,
                                hint="re-download or re-export the PDF") from None
        docs = []
        for i in range(n):
            try:
                text = pages[i].extract_text() or ""
            except FileNotDecryptedError:
                raise DocumentError("the PDF is password-protected", file=source, line=i + 1,
                                    hint="save an unencrypted copy and add that") from None
            except Exception as e:  # pypdf raises many types on damaged pages
                raise DocumentError(f"page {i + 1} cannot be read ({type(e).__name__}: {e})", file=source,
                                    line=i + 1, hint="re-export the PDF, or remove the damaged page") from None
            if text.strip():
                docs.append(_doc(text, source, i + 1))
    finally:
        pdf_log.setLevel(level)
    if n == 0:
        raise DocumentError("the PDF has no pages (corrupt or incomplete?)", file=source,
                            hint="re-download or re-export the PDF")
    if not docs:
        raise DocumentError(f"no text found on any of the {n} pages (a scan?)", file=source,
                            hint="run OCR on it first (e.g. ocrmypdf) so the pages contain text")
    return docs


def _load_docx(p: Path, source: str) -> list["Document"]:
    import zipfile

    data = read_bytes(p, error_cls=DocumentError)
    if data.startswith(b"\xd0\xcf\x11\xe0"):
        raise DocumentError("this is an old .doc file or a password-protected .docx", file=source,
                            hint="open it in a word processor and save it as an unprotected .docx (or PDF)")
    try:
        import docx

        d = docx.Document(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise DocumentError(f"not a valid .docx file ({type(e).__name__}: {e})", file=source,
                            hint="open it in a word processor and save it again as .docx") from None
    except Exception as e:  # python-docx raises PackageNotFoundError and lxml errors
        raise DocumentError(f"the .docx cannot be read ({type(e).__name__}: {e})", file=source,
                            hint="open it in a word processor and save it again as .docx") from None
    parts = [para.text for para in d.paragraphs]
    for table in d.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    text = "\n".join(parts)
    if not text.strip():
        raise DocumentError("the document has no text", file=source, hint="check that it is the right file")
    return [_doc(text, source, 1)]


def _load_html(p: Path, source: str) -> list["Document"]:
    from bs4 import BeautifulSoup

    text, _, _ = decode_text(read_bytes(p, error_cls=DocumentError), source, error_cls=DocumentError)
    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    lines = [ln.strip() for ln in soup.get_text("\n").splitlines()]
    body = "\n".join(ln for ln in lines if ln)
    if not body.strip():
        raise DocumentError("the page has no visible text", file=source, hint="check that it is the right file")
    return [_doc(body, source, 1, title=title)]


def _load_csv(p: Path, source: str) -> list["Document"]:
    text, _, _ = decode_text(read_bytes(p, error_cls=DocumentError), source, error_cls=DocumentError)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)
    docs = []
    try:
        for n, row in enumerate(reader, start=1):
            content = "\n".join(f"{k}: {v}" for k, v in row.items() if k is not None and v not in (None, ""))
            if content.strip():
                docs.append(_doc(content, source, 1, row=n))
    except csv.Error as e:
        raise DocumentError(f"cannot parse the CSV ({e})", file=source, line=reader.line_num,
                            hint="check quoting: fields with separators or newlines need double quotes") from None
    if not docs:
        raise DocumentError("the CSV has no rows", file=source, hint="check that it is the right file")
    return docs


_LOADERS = {".txt": _load_text, ".md": _load_text, ".markdown": _load_text, ".pdf": _load_pdf,
            ".docx": _load_docx, ".html": _load_html, ".htm": _load_html, ".csv": _load_csv}


def load_document(path: str | Path) -> list["Document"]:
    """Read a document into LangChain ``Document`` objects (one per page / CSV row).

    Parameters
    ----------
    path
        A .txt, .md, .pdf, .docx, .html or .csv file.

    Returns
    -------
    list[Document]
        With metadata ``source``, ``file_name``, ``page``, ``type`` (``row`` for CSV).

    Raises
    ------
    DocumentError
        Missing, unreadable, unsupported, binary, corrupt or encrypted files,
        or files with no text; the message names the file (and page) and what to do.
    """
    p = Path(path).expanduser()
    source = str(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise DocumentError("this is a folder; give the files in it", file=source)
    loader = _LOADERS.get(suffix)
    if loader is None:
        if not p.exists():
            read_bytes(p, error_cls=DocumentError)
        raise DocumentError(f"unsupported document type '{suffix or p.name}'", file=source,
                            hint=f"use one of {', '.join(DOCUMENT_SUFFIXES)}")
    docs = loader(p, source)
    if suffix in (".txt", ".md", ".markdown") and not any(d.page_content.strip() for d in docs):
        raise DocumentError("the file is empty", file=source, hint="add text to it, or leave it out")
    return docs


def _splitter(suffix: str, chunk_size: int, chunk_overlap: int):
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if chunk_size < 1:
        raise DocumentError(f"chunk size must be at least 1, got {chunk_size}", field="chunk_size")
    if not 0 <= chunk_overlap < chunk_size:
        raise DocumentError(f"chunk overlap {chunk_overlap} must be between 0 and the chunk size {chunk_size}",
                            field="chunk_overlap", hint="use an overlap of about 10-20% of the chunk size")
    kw = dict(chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True)
    if suffix in (".md", ".markdown"):
        return RecursiveCharacterTextSplitter.from_language(Language.MARKDOWN, **kw)
    return RecursiveCharacterTextSplitter(**kw)


def load_and_chunk(path: str | Path, chunk_size: int = 800, chunk_overlap: int = 100) -> list["Document"]:
    """Read a document and split it into chunks for retrieval or training.

    Parameters
    ----------
    path
        A .txt, .md, .pdf, .docx, .html or .csv file.
    chunk_size
        Maximum characters per chunk.
    chunk_overlap
        Characters shared by neighbouring chunks (less than ``chunk_size``).

    Returns
    -------
    list[Document]
        Chunks in reading order, with metadata ``source``, ``file_name``,
        ``page`` (1-based), ``chunk`` (0-based index in the file),
        ``start_index`` and ``type``.

    Raises
    ------
    DocumentError
        As :func:`load_document`, or for an invalid chunk size / overlap.
    """
    splitter = _splitter(Path(path).suffix.lower(), chunk_size, chunk_overlap)
    docs = load_document(path)
    chunks = splitter.split_documents(docs)
    chunks = [c for c in chunks if c.page_content.strip()]
    for i, c in enumerate(chunks):
        c.metadata["chunk"] = i
    return chunks


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    try:
        return sha256_file(path)
    except OSError as e:
        raise DocumentError(f"cannot read the file ({e.strerror or e})", file=path,
                            hint="check the path and permissions") from None


# ---------------------------------------------------------------------------
# the project manifest

_ENTRY = {"path": "text", "name": "text", "sha256": "text", "size": "integer", "chunks": "integer",
          "chunk_size": "integer", "chunk_overlap": "integer", "status": "text", "error": "text?",
          "added": "text", "updated": "text"}


def read_manifest(project: "Project", skipped: "list[records.Skipped] | None" = None) -> dict[str, Any]:
    """The project's ``documents/manifest.json`` (an empty one when missing).

    Shape: ``{"version": 1, "documents": {abs_path: {path, name, sha256, size,
    chunks, chunk_size, chunk_overlap, status, error, added, updated}}}``;
    ``status`` is ``ok`` or ``error``.  An entry of another shape (a field of
    the wrong type) is left out and named in ``skipped`` (docs/architecture.md,
    "Readers"); adding the file again writes it anew.

    Raises
    ------
    DocumentError
        When the manifest exists but is not a JSON object with a ``documents`` table.
    backend.confine.ConfinementError
        When the manifest is a link that leads outside the project.
    """
    from backend.confine import confine

    notes: list = [] if skipped is None else skipped
    if project.manifest_path.is_symlink():  # never read (or later replace) a file elsewhere unnoticed
        confine(project.manifest_path, project.root, what="the documents manifest")
    try:
        m = read_json(project.manifest_path, None)
    except (ValueError, OSError) as e:
        raise DocumentError(f"the documents manifest is unreadable ({e})", file=project.manifest_path,
                            hint="restore it from a backup, or delete it and add the documents again") from None
    if m is None:
        return {"version": MANIFEST_VERSION, "documents": {}}
    docs = m.get("documents") if isinstance(m, dict) else None
    if not isinstance(docs, dict):
        raise DocumentError("the documents manifest has no 'documents' table", file=project.manifest_path,
                            hint="delete it and add the documents again")
    kept = {}
    for k, v in docs.items():
        problem = records.field_problem(v, _ENTRY) if isinstance(v, dict) else "not an object"
        if problem is None and "\0" in (k + str(v.get("path") or "")):
            problem = "a NUL in its path"
        if problem:
            notes.append(records.Skipped(str(project.manifest_path), None, f"entry {k[:80]!r}: {problem}"))
            continue
        key = _manifest_key(project, k, v)
        v.setdefault("path", key)
        kept[key] = v
    m["documents"] = kept
    return m


def _manifest_key(project: "Project", key: str, entry: dict) -> str:
    """An entry's absolute path: a relative one is relative to ``documents/``, never to the current folder.

    An entry that leads out of the project — an absolute path elsewhere, ``../../etc/x``,
    or a file in ``documents/`` that is a link to somewhere else — is kept but marked as
    an error, so it is neither read nor indexed (docs/architecture.md, "Confinement"):
    a manifest comes with the project and may have been written by anyone.
    """
    from backend.confine import RULE, is_inside, resolved

    raw = Path(str(entry.get("path") or key)).expanduser()
    path = resolved(raw if raw.is_absolute() else project.documents_dir / raw)
    entry["path"] = str(path)
    if not is_inside(path, project.root):
        entry.update(status="error", error=f"{raw} points outside the project folder ({RULE}); add the file again "
                                           "(`tune docs add` copies it into documents/)")
    return str(path)


def _copy_in(project: "Project", src: Path, entries: dict[str, dict]) -> Path:
    """A person's file from outside the project, copied into ``documents/`` (the same copy when added again)."""
    from backend.fsutil import atomic_write_bytes

    origin = str(src.resolve())
    for key, e in entries.items():
        if e.get("copied_from") == origin and Path(key).parent == project.documents_dir.resolve():
            dest = Path(key)
            break
    else:
        dest = project.documents_dir / src.name
        stem, suffix, i = src.stem, src.suffix, 1
        while dest.exists() or dest.is_symlink():
            i += 1
            dest = project.documents_dir / f"{stem}-{i}{suffix}"
    # atomic: a link planted at dest is replaced, never written through
    atomic_write_bytes(dest, read_bytes(src, error_cls=DocumentError), root=project.root)
    return dest


@dataclass
class AddResult:
    """What :func:`add_documents` did, file by file."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, DocumentError]] = field(default_factory=list)
    chunks: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No file failed."""
        return not self.failed

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "failed": [{"path": p, **e.to_dict()} for p, e in self.failed], "chunks": self.chunks}


def add_documents(project: "Project", files: Sequence[str | Path], *, chunk_size: int = 800,
                  chunk_overlap: int = 100, on_event: ev.OnEvent = ev.no_event,
                  should_stop: ev.ShouldStop = ev.never_stop) -> AddResult:
    """Record documents in the project's manifest; unchanged files are skipped.

    Each file is read and chunked (to check it and count chunks); its path,
    SHA-256, size, chunk count and status go into ``documents/manifest.json``,
    written atomically once at the end.  A file that cannot be read is recorded
    with ``status: "error"`` and its message, and listed in ``failed``.  A file
    from outside the project is first copied into ``documents/`` (adding it again
    refreshes the same copy; ``copied_from`` remembers where it came from), so the
    manifest only ever names files inside the project (docs/architecture.md,
    "Confinement").

    Parameters
    ----------
    project
        The project (``backend.workspace.Project``).
    files
        Document files.
    chunk_size, chunk_overlap
        As for :func:`load_and_chunk`; a change re-chunks unchanged files too.

    Returns
    -------
    AddResult

    Raises
    ------
    backend.confine.ConfinementError
        ``documents/`` is a link that leads outside the project.
    """
    from backend.lock import ProjectLock

    # read-modify-write of the manifest: a second writer would lose this one's entries
    with ProjectLock(project.root, "adding documents", wait=60,
                     on_wait=lambda m: on_event(ev.log(m))):
        return _add_documents(project, files, chunk_size, chunk_overlap, on_event, should_stop)


def _add_documents(project: "Project", files: Sequence[str | Path], chunk_size: int, chunk_overlap: int,
                   on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> AddResult:
    """:func:`add_documents` under the project lock."""
    from backend.confine import confine, is_inside

    # documents/ itself must not lead elsewhere: the manifest and the copies are written there
    confine(project.documents_dir, project.root, what="the documents folder")
    manifest = read_manifest(project)
    entries: dict[str, dict] = manifest["documents"]
    result = AddResult()
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    for k, f in enumerate(files):
        if should_stop():
            break
        p = Path(f).expanduser()
        on_event(ev.progress("documents", k, len(files), f"Reading {p.name}"))
        origin = None
        try:
            if p.is_file() and not is_inside(p, project.root):
                # the project names only files inside it: a file from elsewhere is copied in
                origin, p = str(p.resolve()), _copy_in(project, p, entries)
        except DocumentError as e:
            key = str(p.resolve())
            result.failed.append((key, e))
            entries[key] = {**entries.get(key, {}), "path": key, "name": p.name, "status": "error",
                            "error": str(e), "updated": now}
            entries[key].setdefault("added", now)
            continue
        key = str(p.resolve())
        old = entries.get(key)
        try:
            if not p.is_file():
                read_bytes(p, error_cls=DocumentError)  # raises the right message
            sha = file_sha256(p)
            if (old and old.get("sha256") == sha and old.get("status") == "ok"
                    and old.get("chunk_size") == chunk_size and old.get("chunk_overlap") == chunk_overlap):
                result.unchanged.append(key)
                result.chunks[key] = old.get("chunks", 0)
                continue
            chunks = load_and_chunk(p, chunk_size, chunk_overlap)
        except DocumentError as e:
            result.failed.append((key, e))
            entries[key] = {**(old or {}), "path": key, "name": p.name, "status": "error", "error": str(e),
                            "updated": now}
            entries[key].setdefault("added", now)
            continue
        entries[key] = {"path": key, "name": p.name, "sha256": sha, "size": p.stat().st_size,
                        "chunks": len(chunks), "chunk_size": chunk_size, "chunk_overlap": chunk_overlap,
                        "status": "ok", "error": None, "added": (old or {}).get("added", now), "updated": now}
        if origin or (old or {}).get("copied_from"):
            entries[key]["copied_from"] = origin or old["copied_from"]
        (result.updated if old else result.added).append(key)
        result.chunks[key] = len(chunks)
    on_event(ev.progress("documents", len(files), len(files), "Documents recorded"))
    manifest["version"] = MANIFEST_VERSION
    atomic_write_json(project.manifest_path, manifest, root=project.root)
    return result


def project_documents(project: "Project") -> list[str]:
    """Paths of the manifest's documents with status ``ok``."""
    return [e["path"] for e in read_manifest(project)["documents"].values() if e.get("status") == "ok"]


# ---------------------------------------------------------------------------
# documents -> training text

def document_text_rows(files: Sequence[str | Path], chunk_size: int = 2000, chunk_overlap: int = 0,
                       on_event: ev.OnEvent = ev.no_event) -> list[dict]:
    """Chunks of documents as plain-text rows ``{"text", "source", "page", "chunk"}``.

    Raises
    ------
    DocumentError
        For the first document that cannot be read.
    """
    rows = []
    for k, f in enumerate(files):
        on_event(ev.progress("documents", k, len(files), f"Chunking {Path(f).name}"))
        for c in load_and_chunk(f, chunk_size, chunk_overlap):
            rows.append({"text": c.page_content, "source": c.metadata["source"], "page": c.metadata["page"],
                         "chunk": c.metadata["chunk"]})
    return rows


def export_text_dataset(files: Sequence[str | Path], out: str | Path, *, chunk_size: int = 2000,
                        chunk_overlap: int = 0, dedupe: bool = True, overwrite: bool = False,
                        on_event: ev.OnEvent = ev.no_event) -> Path:
    """Write document chunks as a plain-text JSONL dataset (domain adaptation).

    Parameters
    ----------
    files
        Documents to read.
    out
        A ``.jsonl`` file, or a folder (e.g. ``<project>/datasets``) in which a
        new ``documents-<timestamp>.jsonl`` is created.
    dedupe
        Drop chunks whose text repeats.
    overwrite
        Replace ``out`` if it exists (atomically); otherwise an existing file is
        an error, so good data is never overwritten by accident.

    Returns
    -------
    Path
        The dataset file: one ``{"text", "source", "page", "chunk"}`` per line.
    """
    import json

    out = Path(out)
    if out.suffix != ".jsonl":
        out.mkdir(parents=True, exist_ok=True)
        out = stamped_path(out, "documents-", ".jsonl")
    elif out.exists() and not overwrite:
        raise DocumentError("the output file exists", file=out, hint="choose another name, or pass overwrite")
    rows = document_text_rows(files, chunk_size, chunk_overlap, on_event)
    if dedupe:
        seen: set[str] = set()
        rows = [r for r in rows if not (r["text"] in seen or seen.add(r["text"]))]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return out
