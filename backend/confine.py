"""Confinement: a project folder names only what is inside it, and writes never follow a link.

A project travels (zipped, copied, handed over), so every path that comes *from a
project* — a run folder, a document, a ``documents/manifest.json`` entry, an
evalset, a dataset, an index record, the transcript, the lock — is checked here
against one rule (docs/architecture.md, "Trust", "Confinement"):

    a path a project names must resolve inside that project after following links.

Symbolic links inside a project are never followed out of it: a file or folder
that is a link to somewhere else is skipped (and named), never read, written,
indexed or deleted.  Files Tune Studio appends to or locks are opened with
``O_NOFOLLOW`` (an ``lstat`` check on Windows, which has no such flag), so a
link planted in their place is refused instead of written through; atomic
replacements (:mod:`backend.fsutil`) create their temp file with
``O_CREAT | O_EXCL`` and rename over the link itself.

Paths a person gives on the command line or picks in a dialog are theirs to give
and are not confined (an export target, a file to add); only what a project's own
files say is.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path
from typing import Iterator

from backend.errors import TuneError

RULE = "a path a project names must stay inside the project folder, and links are not followed out of it"
"""The rule, in the words every :class:`ConfinementError` quotes."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class ConfinementError(TuneError):
    """A project names a path outside itself, or a file it holds is a link that would be written through."""


def resolved(path: str | Path) -> Path:
    """``path`` with every link followed (the target need not exist)."""
    return Path(os.path.realpath(os.fspath(Path(path).expanduser())))


def is_inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` resolves inside ``root`` (itself included), after following links."""
    try:
        resolved(path).relative_to(resolved(root))
        return True
    except ValueError:
        return False


def confine(path: str | Path, root: str | Path, *, source: str | Path | None = None,
            what: str = "this path") -> Path:
    """``path`` resolved, after checking it stays inside the project ``root``.

    Parameters
    ----------
    path
        The path a project names; a relative one is relative to ``root``.
    root
        The project folder.
    source
        The file that named the path (shown in the message); ``path`` itself by default.
    what
        What the path is, for the message (``"the run"``, ``"the manifest entry"``).

    Returns
    -------
    Path
        The resolved path (inside ``root``).

    Raises
    ------
    ConfinementError
        When it resolves outside ``root``; the message names the file and the rule.
    """
    p = Path(path).expanduser()
    full = p if p.is_absolute() else Path(root) / p
    real = resolved(full)
    if not is_inside(real, root):
        raise ConfinementError(f"{what} {str(path)!r} points outside the project ({real})",
                               file=source if source is not None else full, hint=f"refused: {RULE}")
    return real


def is_link(path: str | Path) -> bool:
    """Whether ``path`` itself is a symbolic link (or a Windows junction)."""
    p = Path(path)
    try:
        if p.is_symlink():
            return True
        is_junction = getattr(p, "is_junction", None)  # Python 3.12+
        return bool(is_junction and is_junction())
    except OSError:
        return False


def walk_files(folder: str | Path, root: str | Path, *, skipped: list[Path] | None = None,
               hidden: bool = True) -> Iterator[Path]:
    """Files under ``folder`` (recursively, sorted) that stay inside ``root``; links out of it are skipped.

    A linked file whose target is inside ``root`` is kept; one whose target is
    outside (or missing) goes to ``skipped``.  Linked folders are never entered
    (a link loop cannot hang a scan) and are added to ``skipped`` when they lead
    outside.

    Parameters
    ----------
    folder
        Where to look (e.g. ``<project>/documents``).
    root
        The boundary: the project folder.
    skipped
        Filled with the links that were not followed, when given.
    hidden
        Also yield files and enter folders whose name starts with a dot.
    """
    folder = Path(folder)
    if is_link(folder) and not is_inside(folder, root):
        if skipped is not None:
            skipped.append(folder)
        return
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            if not hidden and d.startswith("."):
                continue
            sub = here / d
            if is_link(sub):
                if skipped is not None and not is_inside(sub, root):
                    skipped.append(sub)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            if not hidden and f.startswith("."):
                continue
            p = here / f
            if is_link(p):
                target = resolved(p)
                if not target.is_file() or not is_inside(target, root):
                    if skipped is not None:
                        skipped.append(p)
                    continue
            yield p


def skipped_message(links: list[Path], root: str | Path) -> str:
    """One sentence naming the links a scan did not follow (for a warning or a problem list)."""
    root = Path(root)
    names = []
    for p in links[:5]:
        try:
            names.append(Path(p).relative_to(root).as_posix())
        except ValueError:
            names.append(str(p))
    more = f" and {len(links) - 5} more" if len(links) > 5 else ""
    return (f"skipped {len(links)} link(s) that lead outside the project: {', '.join(names)}{more} "
            f"({RULE}; copy the file into the project to use it)")


# -- writes that never follow a link ------------------------------------------------------
def _refuse_link(path: Path, why: str = "is a symbolic link") -> ConfinementError:
    return ConfinementError(f"{path.name} {why}; Tune Studio does not write through links", file=path,
                            hint=f"remove the link (a project's own files are plain files: {RULE})")


def open_no_follow(path: str | Path, flags: int, mode: int = 0o644, *, root: str | Path | None = None) -> int:
    """``os.open`` that refuses a link in the last place of ``path`` (and a parent folder out of ``root``).

    Parameters
    ----------
    path
        The file to open.
    flags
        ``os.O_*`` flags; ``O_NOFOLLOW`` and ``O_CLOEXEC`` are added.
    mode
        Permission bits for a file that is created.
    root
        The project folder, when known: the file's folder must resolve inside it.

    Returns
    -------
    int
        The file descriptor (a regular file's).

    Raises
    ------
    ConfinementError
        ``path`` is a link, not a regular file, or its folder leads outside ``root``.
    OSError
        Any other failure of ``open``.
    """
    path = Path(path)
    if root is not None:
        confine(path.parent, root, source=path, what="the folder of")
    if not _NOFOLLOW and is_link(path):  # Windows: no O_NOFOLLOW, check first
        raise _refuse_link(path)
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _BINARY, mode)
    except OSError as e:
        if e.errno == errno.ELOOP or (e.errno == errno.EMLINK and is_link(path)):  # EMLINK: FreeBSD
            raise _refuse_link(path) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse_link(path, "is not a plain file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_text(path: str | Path, text: str, *, root: str | Path | None = None) -> None:
    """Append ``text`` to a file as one flushed write, never through a link.

    After a crash mid-line the file ends without a newline; the text then starts
    on a line of its own, so it is not glued to the torn one.

    Raises
    ------
    ConfinementError
        ``path`` (or its folder, given ``root``) is a link out of the project.
    OSError
        The disk refused the write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_no_follow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, root=root)
    try:
        data = text.encode("utf-8")
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                data = b"\n" + data
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


# -- text a project supplies, shown on a terminal ----------------------------------------
def printable(text: object) -> str:
    """``text`` with control characters (ESC, BEL, CR, bidi overrides …) shown escaped, never raw.

    A run name, a label or a folder name comes from a project someone else made:
    printed raw, ``\\x1b[2J`` would clear the terminal and ``\\x1b]8;;…`` plant a link.

    >>> printable("run\\x1b[2J one")
    'run\\\\x1b[2J one'
    """
    s = str(text)
    if s.isprintable():
        return s
    out = []
    for c in s:
        if c.isprintable() or c == " ":
            out.append(c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            code = ord(c)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(c)
    return "".join(out)


__all__ = ["ConfinementError", "RULE", "append_text", "confine", "is_inside", "is_link", "open_no_follow",
           "printable", "resolved", "skipped_message", "walk_files"]
