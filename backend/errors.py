"""Typed errors for mistakes a person can fix.

Every error carries what a person needs to act on it: the file, the line or
field, what was expected and how to fix it.  The CLI prints ``str(err)`` and
exits with code 2; the GUI shows it on the page where it happened.  A traceback
is only ever written to the log.
"""

from __future__ import annotations

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
