"""What every export module shares: the export kinds, the export error, and the export record.

Below the export family (:mod:`backend.export`, :mod:`backend.gguf_export`,
:mod:`backend.ollama`, :mod:`backend.parity`) so each can import it and none
imports another for these (docs/architecture.md, "Layers" and "Export").
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from backend import records, runs
from backend.errors import RunError, TuneError
from backend.fsutil import read_json


class ExportError(TuneError):
    """A model cannot be exported in the format asked for (architecture, tokenizer, quantization)."""


class ExportTargetExists(ExportError, RunError):
    """The export target is there already: replaced only with ``force`` (``--force``, the GUI asks first)."""


@dataclass(frozen=True)
class ExportKind:
    """One export format: the ``tune export`` flag and the Export dialog's choice are built from it.

    A new format is a row in :data:`KINDS` plus its writer in :func:`backend.export.export_run`
    (docs/architecture.md, "Export").
    """

    key: str
    title: str          # the dialog's choice
    help: str           # the dialog's explanation
    metavar: str        # ``tune export --<key> METAVAR``
    flag_help: str      # that flag's help
    target: str         # default target under ``<run>/exports/``: ``{run}`` the run folder's name, ``{quant}``
    needs_quant: bool   # a GGUF inside: the quantization applies (``--quant``, the dialog's box) and is recorded
    dialog_row: int     # the dialog lists the kinds by this (most asked-for first)

    def default_target(self, run_name: str, quant: str) -> str:
        """The file or folder name an export of ``run_name`` gets unless the user picks another."""
        return self.target.format(run=run_name, quant=quant)


# in the order ``tune export`` writes them when given several
KINDS: dict[str, ExportKind] = {k.key: k for k in (
    ExportKind("adapter", "Adapter only", "The small PEFT adapter folder; needs the same base model to load.",
               "DIR", "copy of the PEFT adapter folder", "{run}-adapter", False, 3),
    ExportKind("merged", "Merged safetensors", "The adapter merged into the base model: a plain Hugging Face "
                                               "folder that loads without PEFT.",
               "DIR", "folder for the merged safetensors model", "{run}-merged", False, 2),
    ExportKind("gguf", "GGUF file", "One file for llama.cpp, LM Studio and Ollama, with the tokenizer and chat "
                                    "template inside.",
               "OUT.gguf", "one GGUF file (llama.cpp, LM Studio, Ollama)", "{run}-{quant}.gguf", True, 0),
    ExportKind("ollama", "Ollama folder", "The GGUF, a Modelfile (the chat template, the Chat page's settings, the "
                                          "system prompt) and a README with `ollama create`.",
               "DIR", "folder with the GGUF, a Modelfile and a README", "{run}-ollama", True, 1),
)}
EXPORT_KINDS: tuple[str, ...] = tuple(KINDS)


def dialog_kinds() -> list[ExportKind]:
    """The kinds in the order the Export dialog lists them (and ``tune export`` names them in its hints)."""
    return sorted(KINDS.values(), key=lambda k: k.dialog_row)


def needs_quant(kind: str) -> bool:
    """Whether an export of ``kind`` holds a GGUF, so a quantization applies to it."""
    return KINDS[kind].needs_quant
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


__all__ = ["EXPORT_KINDS", "EXPORT_RECORD", "KINDS", "PARITY_RECORD", "ExportError", "ExportKind", "ExportRecord",
           "ExportTargetExists", "dialog_kinds", "export_name", "list_exports", "needs_quant", "record_dir"]
