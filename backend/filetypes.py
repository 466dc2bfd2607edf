"""The one list of file extensions Tune Studio reads (see docs/architecture.md, "The project folder").

Datasets are files of training rows (``backend.data.readers``); documents are
files the RAG index and "train on documents" chunk (``backend.documents``).
Everything that lists, accepts or filters these files — the readers, the
document loader, the project model, the Data page's file dialogs and
drag-and-drop — reads these tuples, so they cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

#: Structured dataset files: one row per line / record / table row.
DATASET_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet")

#: Plain text the dataset reader also accepts (one row per paragraph).  In a
#: project these files are documents; ``tune data check notes.txt`` still works.
TEXT_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".markdown", ".text")

#: Everything :func:`backend.data.readers.read_file` accepts.
READABLE_DATASET_SUFFIXES: tuple[str, ...] = DATASET_SUFFIXES + TEXT_SUFFIXES

#: Documents: indexed for chat, and usable as training text.
DOCUMENT_SUFFIXES: tuple[str, ...] = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm", ".csv")

# Files that sit next to datasets or documents but are ours, not the user's.
_REPORT_SUFFIXES = (".report.json", "_report.json")
_OWN_FILES = {"report.json", "manifest.json"}


def classify(path: str | Path) -> str | None:
    """``"dataset"``, ``"document"`` or ``None`` (unsupported), by extension.

    A ``.csv`` is a dataset: it is far more often rows than reading matter,
    and ``datasets/`` is where the Data page puts it.
    """
    ext = Path(path).suffix.lower()
    if ext in DATASET_SUFFIXES:
        return "dataset"
    if ext in DOCUMENT_SUFFIXES:
        return "document"
    return None


def is_dataset_file(path: Path) -> bool:
    """A user dataset in a project's ``datasets/`` (not a hidden file or a data-check report)."""
    return (path.is_file() and path.suffix.lower() in DATASET_SUFFIXES and not path.name.startswith(".")
            and not path.name.endswith(_REPORT_SUFFIXES) and path.name not in _OWN_FILES)


def is_document_file(path: Path) -> bool:
    """A user document in a project's ``documents/`` (not hidden, not the manifest)."""
    return (path.is_file() and path.suffix.lower() in DOCUMENT_SUFFIXES and not path.name.startswith(".")
            and path.name not in _OWN_FILES)


def dialog_pattern(suffixes: tuple[str, ...]) -> str:
    """``"*.jsonl *.json …"`` for a file dialog's name filter."""
    return " ".join(f"*{s}" for s in suffixes)
