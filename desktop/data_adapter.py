"""What the Data page needs from ``backend.data``, in one place (run in a worker).

:func:`check_project_data` loads the chosen model's tokenizer, checks every
dataset file of the project with :func:`backend.data.check_files`, and renders
a few rows of the training files with :func:`backend.data.preview` so the label
mask can be shown.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend import events as ev


@dataclass
class DataReport:
    """The Data page's view of the project's datasets.

    Attributes
    ----------
    check
        ``backend.data.CheckReport`` over every dataset file (also those switched off).
    files
        Per-file summary dicts from the check, keyed by the file's path.
    preview
        ``backend.data.PreviewRow`` list: the first rows of the training files.
    train_rows, eval_rows
        Rows a run would train and evaluate on (the split is approximate when
        the rows are split by ``validation_split``).
    fact_rows
        Usable rows in the training files before any split: what the "Learn
        the facts" preset is fitted to (it trains every row).
    """

    check: Any
    files: dict[str, dict]
    preview: list
    train_rows: int
    eval_rows: int
    train_files: list[str] = field(default_factory=list)
    document_problems: list = field(default_factory=list)  # documents that can't be read
    fact_rows: int = 0
    has_validation_files: bool = False

    def rows_for(self, cfg) -> int:
        """Training rows under ``cfg``'s validation split (the check may have run under another one)."""
        if self.has_validation_files or not self.fact_rows:
            return self.train_rows
        from backend.data.pipeline import validation_count

        return self.fact_rows - validation_count(self.fact_rows, cfg.data.validation_split)

    @property
    def problems(self) -> list:
        """Every problem: the datasets' and the documents'."""
        return [*self.check.problems, *self.document_problems]

    @property
    def facts(self):
        """The rows as the configuration shapes them (``backend.recipes.FactSet``): what "Learn the facts" is fitted to."""
        from backend.recipes import FactSet

        return FactSet.from_summary(self.check.summary)

    @property
    def knowledge(self) -> dict:
        """Facts and rows per fact per epoch (``{"facts", "rows_per_fact", "rows_by_origin"}``), for the Data page."""
        return dict(self.check.summary.get("knowledge") or {})

    @property
    def mean_tokens(self) -> float | None:
        """Mean tokens per usable row (after truncation)."""
        stats = self.check.summary.get("tokens_kept") or self.check.summary.get("tokens") or {}
        return stats.get("mean")

    def problems_for(self, path: str | Path) -> list:
        """Problems located in one file."""
        p = str(path)
        return [q for q in self.problems if q.file == p]

    def errors_in(self, paths: list[str]) -> list:
        """Error-level problems in any of ``paths``."""
        ps = {str(p) for p in paths}
        return [q for q in self.problems if q.severity == "error" and q.file in ps]


def check_documents(documents: list[str], *, should_stop: ev.ShouldStop = ev.never_stop) -> list:
    """Read each document as the index and training will; a ``Problem`` per one that can't be read."""
    from backend.data.readers import Problem
    from backend.documents import load_document
    from backend.errors import DocumentError

    out = []
    for d in documents:
        if should_stop():
            break
        try:
            load_document(d)
        except DocumentError as e:
            out.append(Problem(str(d), e.line, e.message, e.hint or "replace the file with a readable copy, "
                               "or remove it from the project", "error", "page" if str(d).lower().endswith(".pdf")
                               else "line"))
    return out


def check_project_data(files: list[str], train_files: list[str], validation_files: list[str],
                       model_path: str, cfg, *, documents: list[str] = (), host: Any = None,
                       on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> DataReport:
    """Check ``files`` with the model's tokenizer, preview the training files, and read ``documents``.

    With ``host`` (a :class:`backend.jobs.ModelHost`) the tokenizer loads and the
    check runs in the model host child, so the window's process never imports
    transformers or torch; without, here.

    Raises
    ------
    ModelError
        The tokenizer cannot be loaded.
    DataCancelled
        ``should_stop()`` turned true.
    """
    from backend.data.pipeline import validation_count

    if host is not None:
        from backend.host import unpack

        report, rows = unpack(host.request("check_data", {
            "files": list(files), "train_files": list(train_files), "model_path": str(model_path),
            "config": cfg.to_dict(), "preview": 8}, on_event=on_event, should_stop=should_stop))
    else:
        from backend.data.pipeline import check_files, preview
        from backend.models import load_tokenizer

        on_event(ev.progress("data", 0, None, "Loading the tokenizer…"))
        tok = load_tokenizer(model_path, trust_remote_code=cfg.model.trust_remote_code)
        report = check_files(files, tok, cfg, on_event=on_event, should_stop=should_stop)
        ok_train = [f for f in train_files if not any(p.file == f for p in report.errors)]
        rows = [] if not ok_train else preview(ok_train, tok, cfg, n=8)
    per_file = {f["path"]: f for f in report.summary.get("files", [])}
    usable_train = sum(per_file.get(f, {}).get("rows_usable", 0) for f in train_files)
    usable_val = sum(per_file.get(f, {}).get("rows_usable", 0) for f in validation_files)
    if validation_files:
        train_n, eval_n = usable_train, usable_val
    else:
        eval_n = validation_count(usable_train, cfg.data.validation_split)
        train_n = usable_train - eval_n
    on_event(ev.progress("data", 0, None, "Reading the documents…"))
    return DataReport(report, per_file, rows, train_n, eval_n, list(train_files),
                      check_documents(list(documents), should_stop=should_stop), fact_rows=usable_train,
                      has_validation_files=bool(validation_files))


def unique_destination(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem-2.ext`` … when it exists."""
    dest = folder / name
    stem, suffix, i = Path(name).stem, Path(name).suffix, 1
    while dest.exists():
        i += 1
        dest = folder / f"{stem}-{i}{suffix}"
    return dest


def copy_into(folder: Path, paths: list[Path]) -> list[Path]:
    """Copy files into a project folder (keeping the originals); return the copies."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        if p.resolve().parent == folder.resolve():
            out.append(p)
            continue
        dest = unique_destination(folder, p.name)
        shutil.copy2(p, dest)
        out.append(dest)
    return out
