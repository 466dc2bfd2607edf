"""One writer at a time per project: a lock file shared by the CLI and the GUI.

The index, its record and the run list are written by one process at a time.  The
lock is an advisory ``flock`` on ``<project>/.tune-studio.lock`` (``msvcrt.locking``
on Windows), so the kernel releases it when the holder dies — a lock can't go
stale.  The file also says who holds it (pid, host, what for, since when), so the
second writer's message names them.  See docs/architecture.md, "Trust".
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

from backend.confine import open_no_follow
from backend.errors import TuneError

LOCK_FILE = ".tune-studio.lock"


class ProjectBusy(TuneError):
    """Another process is writing this project (an ingest, a training start, a document import)."""


def _try_lock(fh) -> bool:
    try:
        if os.name == "nt":  # pragma: no cover - exercised on Windows only
            import msvcrt
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _unlock(fh) -> None:
    if os.name == "nt":  # pragma: no cover
        import msvcrt
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        import fcntl
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def holder(project_root: str | Path) -> dict[str, Any] | None:
    """Who holds (or last held) the project's lock, as written in the lock file; ``None`` if unknown."""
    from backend import records

    try:
        path = Path(project_root) / LOCK_FILE
        if path.is_symlink():  # never read what a planted link points at
            return None
        info = records.read_json(path, max_bytes=1 << 16)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None  # any content (docs/architecture.md, "Readers")


def describe(info: dict[str, Any] | None) -> str:
    """``'tune ingest (pid 123 on host-a, since 14:02:11)'`` for a holder record."""
    if not info:
        return "another process"
    from backend.records import finite, text

    when = finite(info.get("since"), 0.0)
    since = time.strftime("%H:%M:%S", time.localtime(when)) if 0 < when < 1e11 else "?"
    purpose = " ".join(text(info.get("purpose")).split())[:80] or "another process"
    return f"{purpose} (pid {info.get('pid')!s:.12} on {text(info.get('host'), '?')[:60]}, since {since})"


class ProjectLock:
    """Hold a project's write lock.

    Parameters
    ----------
    project_root
        The project folder.
    purpose
        What the holder is doing, in words (shown to a second writer), e.g. ``"tune ingest"``.
    wait
        Seconds to wait for the lock (0 = fail at once).
    on_wait
        Called once with a message when the lock is busy and we wait.

    Raises
    ------
    ProjectBusy
        When another process holds the lock after ``wait`` seconds; the message names it.
    ConfinementError
        When ``.tune-studio.lock`` is a link (it is never written through).

    The lock is re-entrant within one thread (nested ``with`` blocks for the same
    project share it), since the GUI and the CLI call functions that lock from
    functions that lock; another thread of the same process waits like another process.
    """

    _held: dict[str, list] = {}   # project -> [file, depth, thread]
    _guard = threading.Lock()

    def __init__(self, project_root: str | Path, purpose: str, *, wait: float = 0.0,
                 on_wait: Callable[[str], None] | None = None):
        self.root = Path(project_root).expanduser().resolve()
        self.purpose = purpose
        self.wait = wait
        self.on_wait = on_wait
        self._fh = None

    @property
    def path(self) -> Path:
        return self.root / LOCK_FILE

    def acquire(self) -> "ProjectLock":
        key = str(self.root)
        me = threading.get_ident()
        with ProjectLock._guard:
            held = ProjectLock._held.get(key)
            if held is not None and held[2] == me:  # this thread already holds it
                held[1] += 1
                return self
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            # never through a link: a project from elsewhere may hold .tune-studio.lock -> ~/.bashrc,
            # which "a+" and the truncate below would overwrite (docs/architecture.md, "Confinement")
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT)
            fh = os.fdopen(fd, "r+", encoding="utf-8")
        except OSError as e:
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                # nobody can write this project, so there is nothing to serialise; the write
                # itself then fails with the message that names the real file
                return self
            raise
        deadline = time.monotonic() + self.wait
        told = False
        while not self._take(key, fh, me):
            if time.monotonic() >= deadline:
                fh.close()
                raise ProjectBusy(f"the project is being changed by {describe(holder(self.root))}",
                                  file=self.root,
                                  hint="wait for it to finish and try again (the lock frees itself if that "
                                       "process ends)")
            if not told and self.on_wait is not None:
                self.on_wait(f"Waiting for {describe(holder(self.root))} to finish…")
                told = True
            time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                             "since": round(time.time(), 3)}))
        fh.flush()
        return self

    @staticmethod
    def _take(key: str, fh, me: int) -> bool:
        with ProjectLock._guard:
            if key in ProjectLock._held or not _try_lock(fh):
                return False
            ProjectLock._held[key] = [fh, 1, me]
            return True

    def release(self) -> None:
        key = str(self.root)
        with ProjectLock._guard:
            held = ProjectLock._held.get(key)
            if held is None or held[2] != threading.get_ident():
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del ProjectLock._held[key]
        fh = held[0]
        try:
            _unlock(fh)
        finally:
            fh.close()

    def __enter__(self) -> "ProjectLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
