"""Which documents the index does not hold as they are now, judged as ``tune ingest`` judges them.

The index records each file's sha256 (``index_meta.json``, see
:mod:`backend.rag.index`); a file is stale when it is not recorded or its bytes
hash differently, whatever its modification time says (a copy, a checkout or
a restore can change mtime and not the text, or the reverse).  Hashes are
remembered per (path, size, mtime, ctime, inode) so a GUI refresh hashes
only files that were touched (ctime cannot be set back, so a write that keeps
size and mtime is still seen).  No model is loaded: safe for the GUI thread on ordinary sizes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from backend.documents import file_sha256
from backend.errors import DocumentError
from backend.rag.index import _source_key, index_status

if TYPE_CHECKING:  # pragma: no cover
    from backend.rag.settings import IndexSettings
    from backend.workspace import Project

_HASHES: dict[tuple[str, int, int, int, int], str] = {}
_LOCK = threading.Lock()
_MAX_REMEMBERED = 4096


def _sha256(path: Path) -> str | None:
    """The file's sha256, remembered while its stat stays the same; ``None`` if unreadable."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    with _LOCK:
        sha = _HASHES.get(key)
    if sha is None:
        try:
            sha = file_sha256(path)
        except DocumentError:
            return None
        with _LOCK:
            if len(_HASHES) >= _MAX_REMEMBERED:
                _HASHES.clear()
            _HASHES[key] = sha
    return sha


def stale_documents(project: "Project | str | Path", files: Iterable[str | Path], *,
                    settings: "IndexSettings | None" = None) -> list[Path]:
    """The files among ``files`` that an ingest would embed again.

    Parameters
    ----------
    project
        The project (or its folder) whose index is compared.
    files
        Documents on disk (e.g. :meth:`backend.workspace.Project.document_files`).
    settings
        When given, a file indexed with another chunk size or overlap is stale too.

    Returns
    -------
    list[Path]
        In the order given.  A file that cannot be read is left out: an ingest
        reports it by name, and re-checking it would only fail again.
    """
    root = Path(project.root if hasattr(project, "root") else project)
    indexed = index_status(project).get("sources", {})
    out = []
    for f in files:
        p = Path(f)
        sha = _sha256(p)
        if sha is None:
            continue
        rec = indexed.get(_source_key(p, root))
        if rec is None or rec.get("sha256") != sha:
            out.append(p)
        elif settings is not None and (rec.get("chunk_size"), rec.get("chunk_overlap")) != (
                settings.chunk_size, settings.chunk_overlap):
            out.append(p)
    return out
