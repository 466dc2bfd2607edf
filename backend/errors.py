"""Typed errors for mistakes a person can fix.

Every error carries what a person needs to act on it: the file, the line or
field, what was expected and how to fix it.  The CLI prints ``str(err)`` and
exits with code 2; the GUI shows it on the page where it happened.  A traceback
is only ever written to the log.
"""

from __future__ import annotations

import os
from pathlib import Path


class TuneError(Exception):
    """Base class of every user-facing error.

    Parameters
    ----------
    message
        What went wrong, in words.
    file
        The file the problem is in, if any.
    line
        1-based line (or row / page) in ``file``, if known.
    field
        The config field or data column concerned, if any.
    hint
        What to do about it.
    """

    exit_code = 2

    def __init__(self, message: str, *, file: str | Path | None = None,
                 line: int | None = None, field: str | None = None,
                 hint: str | None = None):
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.__str__())

    def location(self) -> str:
        """``file:line`` (or just the file) where the problem is, or ``""``."""
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def __str__(self) -> str:
        parts = []
        loc = self.location()
        if loc:
            parts.append(f"{loc}: ")
        if self.field:
            parts.append(f"[{self.field}] ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" — {self.hint}")
        return "".join(parts)

    def to_dict(self) -> dict:
        """JSON-serialisable form, used by events and ``--json`` output."""
        return {"error": type(self).__name__, "message": self.message,
                "file": self.file, "line": self.line, "field": self.field,
                "hint": self.hint, "text": str(self)}


class ConfigError(TuneError, ValueError):
    """A config value is invalid, unknown or inconsistent with another."""


class ModelError(TuneError):
    """A base model cannot be found, loaded or trusted."""


class DataError(TuneError):
    """A dataset file is unreadable, malformed or has no usable rows."""


class DocumentError(TuneError):
    """A document cannot be read (corrupt, encrypted, unsupported)."""


class IndexStoreError(TuneError):
    """The document index is missing, empty or built with another embedder."""


class RunError(TuneError):
    """A run folder is missing, incomplete or cannot be resumed."""


class TrainingError(TuneError):
    """Training cannot go on (e.g. out of memory at micro-batch 1)."""


class EnvironmentProblem(TuneError):
    """The machine refused an operation: a read-only or full disk, no permission, a damaged file."""


def from_os_error(e: OSError, *, doing: str = "", resume_hint: str = "",
                  folder: str | Path | None = None) -> EnvironmentProblem:
    """A person's message for an ``OSError`` (disk full, read-only, no permission, missing file).

    Parameters
    ----------
    e
        The error the operating system raised.
    doing
        What was being done, e.g. ``"writing the index"`` (optional).
    resume_hint
        What to run once fixed, e.g. ``"then `tune resume RUN`"``.
    folder
        The folder being written, named when the error carries no file name (a full disk).

    Returns
    -------
    EnvironmentProblem
        Carries the path and what to do; raise it ``from e`` so the traceback stays in the log.
    """
    import errno as _errno

    path = _real_target(e.filename) if e.filename else (str(folder) if folder else None)
    where = f" {doing}" if doing else ""
    then = f", {resume_hint}" if resume_hint else ""
    code = e.errno
    if code in (_errno.ENOSPC, getattr(_errno, "EDQUOT", -1)):
        holder = path or "the folder being written"
        msg, hint = f"the disk is full{where}", f"free space on the disk that holds {holder}{then}"
    elif code == _errno.EROFS:
        msg, hint = f"the file system is read-only{where}", f"copy the project to a writable folder{then}"
    elif code in (_errno.EACCES, _errno.EPERM):
        msg, hint = f"permission denied{where}", f"make the folder writable for your user or choose another one{then}"
    elif code == _errno.ENOENT:
        msg, hint = f"no such file or folder{where}", "check the path; it may have been moved or deleted"
    elif code == _errno.ENOTDIR:
        msg, hint = f"a file is in the way of a folder{where}", "choose another folder, or move the file away"
    elif code == _errno.EISDIR:
        msg, hint = f"a folder is in the way{where}", "give the path of a file, not a folder"
    else:
        msg, hint = f"{e.strerror or type(e).__name__}{where}", f"check the file and the disk{then}"
    return EnvironmentProblem(msg, file=path, hint=hint)


def _real_target(name: str | bytes) -> str:
    """The file a failed atomic write was replacing (``.manifest.json.x1y2.tmp`` -> ``manifest.json``)."""
    p = Path(os.fsdecode(name))
    parts = p.name.split(".")
    if p.name.startswith(".") and p.suffix == ".tmp" and len(parts) >= 4:
        return str(p.with_name(".".join(parts[1:-2])))
    return str(p)
