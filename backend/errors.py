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


class DataCancelled(DataError):
    """Data preparation (reading, RAFT, tokenising) was stopped by ``should_stop``."""

    def __init__(self) -> None:
        super().__init__("data preparation was cancelled")


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


# -- a full disk, found in any exception ----------------------------------------------------------
_FULL_WORDS = ("no space left on device", "database or disk is full", "disk quota exceeded", "os error 28",
               "errno 28")
_UNNAMED_WRITE_FAILURE = ("file write failed", "failed writing file")  # torch's zip writer names no cause


def _chain(e: BaseException | None):
    seen: set[int] = set()
    while e is not None and id(e) not in seen and len(seen) < 16:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def free_bytes(folder: str | Path) -> int | None:
    """Free space on the disk that holds ``folder`` (its nearest existing parent), or ``None``."""
    import shutil

    p = Path(folder)
    for q in (p, *p.parents):
        try:
            return shutil.disk_usage(q).free
        except OSError:
            continue
    return None


def human_size(n: int | float) -> str:
    """``'1.4 GB'``, ``'12 MB'``, ``'640 KB'``."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{int(n)} bytes"


def human_duration(seconds: float) -> str:
    """``'40 s'``, ``'12 min'``, ``'3.5 hours'``, ``'19 days'``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        h = seconds / 3600
        return f"{h:.1f} hours" if h < 10 else f"{h:.0f} hours"
    return f"{seconds / 86400:.0f} days"


def is_disk_full(e: BaseException, folder: str | Path | None = None) -> bool:
    """Whether ``e`` (or an exception it came from) is the disk filling up.

    Libraries word it their own way: ``OSError`` ENOSPC / EDQUOT, safetensors'
    "No space left on device (os error 28)", SQLite's "database or disk is
    full", torch's "file write failed" (which names no cause, so it counts only
    when ``folder``'s disk has under 64 MB free).
    """
    import errno as _errno

    for x in _chain(e):
        if isinstance(x, OSError) and x.errno in (_errno.ENOSPC, getattr(_errno, "EDQUOT", -1)):
            return True
        text = str(x).lower()
        if any(w in text for w in _FULL_WORDS):
            return True
        if folder is not None and any(w in text for w in _UNNAMED_WRITE_FAILURE):
            free = free_bytes(folder)
            return free is not None and free < 64 << 20
    return False


def disk_full(folder: str | Path, *, doing: str = "", needed: int | None = None,
              then: str = "") -> EnvironmentProblem:
    """The message for a full disk: the folder, what is free and about how much is needed.

    Parameters
    ----------
    folder
        The folder being written.
    doing
        What was being done (``"saving a checkpoint"``).
    needed
        About how many bytes the write needs (``None``: not known).
    then
        What to run once space is freed (``"then `tune resume RUN`"``).
    """
    free = free_bytes(folder)
    where = f" while {doing}" if doing else ""
    facts = []
    if needed:
        facts.append(f"about {human_size(needed)} is needed")
    if free is not None:
        facts.append(f"{human_size(free)} is free")
    msg = f"the disk is full{where}" + (f" ({', '.join(facts)})" if facts else "")
    more = f" (at least {human_size(max(needed - (free or 0), 1 << 20))} more)" if needed else ""
    hint = f"free space on the disk that holds {folder}{more}{', ' + then if then else ''}"
    return EnvironmentProblem(msg, file=folder, hint=hint)


def disk_problem(e: BaseException, folder: str | Path, *, doing: str = "", needed: int | None = None,
                 then: str = "") -> EnvironmentProblem | None:
    """:func:`disk_full` when ``e`` is a full disk (:func:`is_disk_full`), else ``None``."""
    return disk_full(folder, doing=doing, needed=needed, then=then) if is_disk_full(e, folder) else None


def unsafe_pickle_problem(e: BaseException, checkpoint: str | Path) -> RunError | None:
    """The message for a checkpoint file that torch refused to unpickle (``None``: ``e`` is something else).

    torch loads checkpoints with ``weights_only=True``: a file holding other
    Python objects is refused before any of its code runs, and torch's own
    message suggests ``weights_only=False`` — advice that must never reach a
    person about a file from elsewhere.  This names the file and the way out.
    """
    import pickle

    if not any(isinstance(x, pickle.UnpicklingError) or "weights only load failed" in str(x).lower()
               for x in _chain(e)):
        return None
    checkpoint = Path(checkpoint)
    bad = _unsafe_pickles(checkpoint)
    what = ", ".join(bad) if bad else "a file"
    verb, it = ("hold", "them") if len(bad) > 1 else ("holds", "it")
    return RunError(f"{what} in {checkpoint.name} {verb} Python objects, not only tensors and numbers; loading "
                    f"{it} could run code, so {it} {'were' if len(bad) > 1 else 'was'} not loaded",
                    file=checkpoint / bad[0] if len(bad) == 1 else checkpoint,
                    hint="resume only from checkpoints made on this machine: delete this checkpoint folder to "
                         "resume from an earlier one, or start the run again")


def _unsafe_pickles(folder: Path) -> list[str]:
    """The pickle files in ``folder`` that torch's safe loader refuses."""
    import contextlib
    import pickle

    import torch

    try:  # the numpy types the Trainer itself allows in rng_state.pth
        from transformers.trainer_pt_utils import safe_globals
    except ImportError:  # pragma: no cover
        safe_globals = contextlib.nullcontext
    out = []
    for f in sorted(folder.glob("*")):
        # training_args.bin is the Trainer's own pickle of its arguments: written, never loaded on resume
        if f.suffix not in (".pt", ".pth", ".bin") or f.name == "training_args.bin" or not f.is_file():
            continue
        try:
            with safe_globals():
                torch.load(f, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            out.append(f.name)
        except Exception:  # unreadable for another reason: not what this message is about
            continue
    return out
