"""Atomic file writes, file hashes and small JSON helpers."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes, *, root: str | Path | None = None) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename); never writes through a link.

    The temp file is created with ``O_CREAT | O_EXCL`` (``mkstemp``; ``O_NOFOLLOW`` too where
    the system has it) and renamed over ``path``: a link at ``path`` is replaced by the file,
    its target is never opened (docs/architecture.md, "Confinement").

    Parameters
    ----------
    path
        The file to replace.
    data
        Its new bytes.
    root
        The project folder, when ``path`` is one of its files: the file's folder must
        resolve inside it (a linked ``documents/`` is not followed out of the project).

    Raises
    ------
    backend.confine.ConfinementError
        The folder leads outside ``root``.
    """
    path = Path(path)
    if root is not None:
        from backend.confine import confine

        confine(path.parent, root, source=path, what="the folder of")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str, *, root: str | Path | None = None) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"), root=root)


def atomic_write_json(path: str | Path, obj: Any, *, root: str | Path | None = None) -> None:
    """Replace ``path`` with ``obj`` as sorted, indented JSON, atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", root=root)


def read_json(path: str | Path, default: Any = None) -> Any:
    """Read a JSON file; ``default`` when it does not exist.

    Raises ``ValueError`` (:class:`backend.records.BadRecord`) for anything but
    usable JSON — not UTF-8, not JSON, nested too deep, too large — and
    ``OSError`` when it exists but cannot be read (docs/architecture.md, "Readers").
    """
    from backend.records import read_json as _read

    return _read(path, default)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (``OSError`` when unreadable)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


STAMP_FORMAT = "%Y%m%d-%H%M%S"  # local time, sorts as it reads


def timestamp() -> str:
    """Now as ``YYYYmmdd-HHMMSS``: the stamp in every name that must not replace an earlier one."""
    return time.strftime(STAMP_FORMAT)


def stamped_path(folder: str | Path, prefix: str = "", suffix: str = "", *, tail: str = "") -> Path:
    """``folder/<prefix><timestamp><tail><suffix>``, or with ``-2``, ``-3``… before ``suffix`` while that exists.

    The one rule for a new run folder, a distilled or exported dataset, a transcript
    or a damaged index moved aside: never the name of something already there.
    Nothing is created, so two processes in the same second may still pick the same name.

    Parameters
    ----------
    folder
        Where the path goes.
    prefix, tail
        Text before and after the stamp (``"transcript-"``; ``"-my-run"``).
    suffix
        The file's extension with its dot (``".jsonl"``), kept last.
    """
    base = f"{prefix}{timestamp()}{tail}"
    cand, i = Path(folder) / f"{base}{suffix}", 1
    while cand.exists():
        i += 1
        cand = Path(folder) / f"{base}-{i}{suffix}"
    return cand

