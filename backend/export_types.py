"""What every export module shares: the export kinds, the export error, and the export record.

Below the export family (:mod:`backend.export`, :mod:`backend.gguf_export`,
:mod:`backend.ollama`, :mod:`backend.parity`) so each can import it and none
imports another for these (docs/architecture.md, "Layers" and "Export").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from backend import records, runs
from backend.errors import RunError, TuneError
from backend.fsutil import read_json


class ExportError(TuneError):
    """A model cannot be exported in the format asked for (architecture, tokenizer, quantization)."""


class ExportTargetExists(ExportError, RunError):
    """The export target is there already: replaced only with ``force`` (``--force``, the GUI asks first)."""


ExportKind = Literal["adapter", "merged", "gguf", "ollama"]
EXPORT_KINDS: tuple[str, ...] = ("adapter", "merged", "gguf", "ollama")
EXPORT_RECORD = "export.json"
PARITY_RECORD = "parity.json"


@dataclass
class ExportRecord:
    """One export of a run: what was written where, and how it compares with the in-app model."""

    name: str
    kind: str
    path: str
    quant: str | None = None
    size_bytes: int = 0
    sha256: str | None = None       # of the file (GGUF), or of the main weights file in a folder
    seconds: float = 0.0
    created: float = 0.0
    run_dir: str = ""
    parity: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return asdict(self)


def export_name(out: str | Path) -> str:
    """The record name of an export: its file or folder name without ``.gguf``, made file-safe."""
    stem = Path(out).name
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    return re.sub(r"[^\w.-]+", "-", stem).strip(".-") or "export"


def record_dir(run_dir: str | Path, name: str) -> Path:
    """``<run>/exports/<name>/``: where an export's ``export.json`` and ``parity.json`` live."""
    return runs.exports_dir(run_dir) / name


def list_exports(run_dir: str | Path) -> list[ExportRecord]:
    """The run's recorded exports, newest first, each with its parity result when checked."""
    out = []
    d = runs.exports_dir(run_dir)
    for sub in sorted(d.iterdir()) if d.is_dir() else ():
        # the run folder may come from elsewhere: a record of another shape is left out
        # (docs/architecture.md, "Readers")
        notes: list[str] = []
        try:
            rec = records.conform(read_json(sub / EXPORT_RECORD), _RECORD_SHAPE, EXPORT_RECORD, notes)
        except (OSError, ValueError):  # unreadable, not JSON, or not a record (records.Mismatch)
            continue
        known = {f for f in ExportRecord.__dataclass_fields__}
        r = ExportRecord(**{k: v for k, v in rec.items() if k in known and k != "parity"})
        try:
            r.parity = records.conform(read_json(sub / PARITY_RECORD), _PARITY_SHAPE, PARITY_RECORD, notes)
        except (OSError, ValueError):
            r.parity = None
        out.append(r)
    return sorted(out, key=lambda r: -r.created)


_RECORD_SHAPE = {"name!": "text", "kind!": "text", "path!": "text", "quant": "text?", "size_bytes": "integer",
                 "sha256": "text?", "seconds": "number", "created": "number", "run_dir": "text", "notes": ["text"]}
_PARITY_SHAPE = {"summary!": "text", "ok": "true/false", "source": "text?",
                 "changed": [{"question!": "text", "app!": "text", "export!": "text"}]}


__all__ = ["EXPORT_KINDS", "EXPORT_RECORD", "PARITY_RECORD", "ExportError", "ExportKind", "ExportRecord",
           "ExportTargetExists", "export_name", "list_exports", "record_dir"]
