"""The event vocabulary shared by the engine, the CLI, the GUI and ``metrics.jsonl``.

An event is a flat, JSON-serialisable ``dict`` with at least ``type`` and
``time`` (Unix seconds).  Types:

``progress``   ``{stage, current, total, message}`` — any long job (loading, tokenising, embedding)
``train``      ``{step, max_steps, epoch, loss, learning_rate, grad_norm, tokens_per_s, tokens_seen, eta_s, elapsed_s, memory_mb}``
``eval``       ``{step, eval_loss, perplexity}``
``checkpoint`` ``{step, path}``
``log``        ``{level, message}``
``oom_retry``  ``{step, batch_size, gradient_accumulation, message}``
``finished``   ``{status: completed|failed|cancelled, reason, run_dir, adapter_dir, ...}``

Long jobs take ``on_event(event)`` and ``should_stop() -> bool``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable

EVENT_TYPES = ("progress", "train", "eval", "checkpoint", "log", "oom_retry", "started", "finished")

OnEvent = Callable[[dict], None]
ShouldStop = Callable[[], bool]


def event(type: str, **fields: Any) -> dict:
    """Make an event record of ``type`` with the current time."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return {"type": type, "time": round(time.time(), 3), **fields}


def progress(stage: str, current: int, total: int | None, message: str = "") -> dict:
    """A ``progress`` event."""
    return event("progress", stage=stage, current=current, total=total, message=message)


def log(message: str, level: str = "info") -> dict:
    """A ``log`` event."""
    return event("log", level=level, message=message)


def no_event(_: dict) -> None:
    """Default ``on_event``: ignore."""


def never_stop() -> bool:
    """Default ``should_stop``: never."""
    return False


class MetricsLog:
    """Append-only JSONL event log, flushed and fsynced per record.

    Parameters
    ----------
    path
        The ``metrics.jsonl`` file.  A torn last line (the process was killed
        mid-write) is repaired when the log is opened again.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()
        self._fh = open(self.path, "a", encoding="utf-8")

    def _repair(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)

    def write(self, record: dict) -> None:
        """Append ``record`` as one line and flush it to disk."""
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def trim_after(self, step: int) -> int:
        """Drop step records (train, eval, checkpoint) after ``step``; returns how many.

        Used before a resume replays the steps after its checkpoint, so every
        step appears exactly once.  The file is replaced atomically and reopened.
        """
        from backend.fsutil import atomic_write_text

        self.close()
        keep, dropped = [], 0
        for rec in read_events(self.path):
            if rec.get("type") in ("train", "eval", "checkpoint") and (rec.get("step") or 0) > step:
                dropped += 1
            else:
                keep.append(rec)
        atomic_write_text(self.path, "".join(json.dumps(r, default=str) + "\n" for r in keep))
        self._fh = open(self.path, "a", encoding="utf-8")
        return dropped

    def close(self) -> None:
        """Close the file."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_events(path: str | Path) -> list[dict]:
    """All complete records of a ``metrics.jsonl`` (a torn last line is skipped)."""
    out = []
    path = Path(path)
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
