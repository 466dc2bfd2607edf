"""The wizard's state: project, base model, data, configuration and run.  No Qt.

Pages read and change a :class:`Session`; they learn about each other's
changes through its emitters (``session.events.<name>.connect(callback)``).
Persisted per project in ``project.json`` under ``settings``:

``run_config``     the Configure page's values (paths left out)
``dataset_roles``  ``{file name: "train" | "validation" | "off"}`` for files in ``datasets/``
``train_on_documents``  documents (paths relative to ``documents/``) whose text is also training text
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.workspace import Project
from desktop.emitter import Emitter

DATASET_EXTS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
DOCUMENT_EXTS = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm", ".csv")
ROLES = ("train", "validation", "off")
_PATH_KEYS = (("output_dir",), ("data", "train_files"), ("data", "validation_files"))


def _is_dataset_file(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in DATASET_EXTS and not p.name.startswith(".")
            and not p.name.endswith((".report.json", "_report.json")) and p.name != "report.json")


def _is_document_file(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in DOCUMENT_EXTS and not p.name.startswith(".")
            and p.name != "manifest.json")


@dataclass
class SessionEvents:
    """One emitter per part of the state."""

    project: Emitter = field(default_factory=Emitter)   # (Project | None)
    model: Emitter = field(default_factory=Emitter)     # ()  source or resolved facts changed
    device: Emitter = field(default_factory=Emitter)    # (DeviceInfo)
    data: Emitter = field(default_factory=Emitter)      # ()  files, roles or report changed
    config: Emitter = field(default_factory=Emitter)    # (RunConfig)
    run: Emitter = field(default_factory=Emitter)       # (Path | None) selected run


class Session:
    """What the user has chosen so far."""

    def __init__(self) -> None:
        self.events = SessionEvents()
        self.project: Project | None = None
        self.config = RunConfig()
        self.model_path: str | None = None       # resolved local folder
        self.model_info: Any = None              # backend.models.ModelInfo
        self.chat_template: str = ""
        self.model_error: Exception | None = None
        self.device: Any = None                  # backend.runtime.DeviceInfo
        self.data_report: Any = None             # desktop.data_adapter.DataReport
        self.run_dir: Path | None = None

    # -- project -----------------------------------------------------------
    def open_project(self, root: str | Path, *, model_override: str | None = None) -> Project:
        """Open the project at ``root`` and load its saved settings.

        Raises
        ------
        ProjectError
            When the folder is not a project (no readable ``project.json``).
        """
        project = Project.open(Path(root))
        self.project = project
        settings = project.settings or {}
        cfg = RunConfig()
        saved = settings.get("run_config")
        if isinstance(saved, dict):
            try:
                cfg = RunConfig.from_dict(_strip_paths(saved))
            except ConfigError:
                cfg = RunConfig()  # an older or hand-edited config: start from defaults
        src = model_override or project.base_model or "default"
        self.config = cfg.replace(model={**cfg.to_dict()["model"], "name_or_path": src})
        self.model_path = self.model_info = self.model_error = None
        self.chat_template = ""
        self.data_report = None
        self.run_dir = None
        self.events.project.emit(project)
        self.events.config.emit(self.config)
        self.events.model.emit()
        self.events.data.emit()
        self.events.run.emit(None)
        return project

    def save_project(self) -> None:
        """Write the model choice, config and dataset roles into ``project.json``."""
        if self.project is None:
            return
        self.project.base_model = self.config.model.name_or_path
        settings = dict(self.project.settings or {})
        settings["run_config"] = _strip_paths(self.config.to_dict())
        self.project.settings = settings
        self.project.save()

    # -- model -------------------------------------------------------------
    def set_model_source(self, source: str, **options: Any) -> None:
        """Choose a base model (``default``, a folder, a .gguf file or a hub id)."""
        model = {**self.config.to_dict()["model"], "name_or_path": source, **options}
        changed = model != self.config.to_dict()["model"]
        self.config = self.config.replace(model=model)
        if changed:
            self.model_path = self.model_info = self.model_error = None
            self.chat_template = ""
            self.data_report = None
            self.events.config.emit(self.config)
            self.events.model.emit()

    def set_model_resolved(self, path: str, info: Any, chat_template: str) -> None:
        """Record the resolved model folder and its facts."""
        self.model_path, self.model_info, self.chat_template = path, info, chat_template
        self.model_error = None
        self.events.model.emit()

    def set_model_error(self, error: Exception) -> None:
        """Record why the model could not be resolved."""
        self.model_path = self.model_info = None
        self.model_error = error
        self.events.model.emit()

    def set_device(self, device: Any) -> None:
        """Record the detected training device."""
        self.device = device
        self.events.device.emit(device)

    # -- data ----------------------------------------------------------------
    def dataset_files(self) -> list[Path]:
        """Dataset files in the project's ``datasets/`` folder, sorted."""
        if self.project is None or not self.project.datasets_dir.is_dir():
            return []
        return sorted(p for p in self.project.datasets_dir.iterdir() if _is_dataset_file(p))

    def document_files(self) -> list[Path]:
        """Document files in the project's ``documents/`` folder, sorted."""
        if self.project is None or not self.project.documents_dir.is_dir():
            return []
        return sorted(p for p in self.project.documents_dir.rglob("*") if _is_document_file(p))

    def dataset_role(self, path: Path) -> str:
        """``train``, ``validation`` or ``off`` for a file in ``datasets/``."""
        roles = (self.project.settings or {}).get("dataset_roles", {}) if self.project else {}
        role = roles.get(path.name, "train")
        return role if role in ROLES else "train"

    def set_dataset_role(self, path: Path, role: str) -> None:
        """Use a dataset file for training, validation, or not at all."""
        if self.project is None or role not in ROLES:
            return
        settings = dict(self.project.settings or {})
        roles = dict(settings.get("dataset_roles", {}))
        roles[path.name] = role
        settings["dataset_roles"] = roles
        self.project.settings = settings
        self.project.save()
        self.data_report = None
        self.events.data.emit()

    def files_with_role(self, role: str) -> list[Path]:
        """Dataset files used as ``role``."""
        return [p for p in self.dataset_files() if self.dataset_role(p) == role]

    def trains_on_document(self, path: Path) -> bool:
        """Whether a document's text is also used as training text."""
        if self.project is None:
            return False
        rel = self._doc_key(path)
        return rel in (self.project.settings or {}).get("train_on_documents", [])

    def set_document_training(self, path: Path, on: bool) -> None:
        """Use (or stop using) a document's text as training rows (domain adaptation)."""
        if self.project is None:
            return
        settings = dict(self.project.settings or {})
        keys = [k for k in settings.get("train_on_documents", []) if k != self._doc_key(path)]
        if on:
            keys.append(self._doc_key(path))
        settings["train_on_documents"] = sorted(keys)
        self.project.settings = settings
        self.project.save()
        self.events.data.emit()

    def _doc_key(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.project.documents_dir.resolve()).as_posix()
        except ValueError:
            return str(Path(path).resolve())

    def training_documents(self) -> list[Path]:
        """Documents whose text is training text."""
        return [p for p in self.document_files() if self.trains_on_document(p)]

    def set_data_report(self, report: Any) -> None:
        """Record the latest data check."""
        self.data_report = report
        self.events.data.emit()

    def data_changed(self) -> None:
        """Files were added or removed."""
        self.data_report = None
        self.events.data.emit()

    # -- config --------------------------------------------------------------
    def set_config(self, cfg: RunConfig) -> None:
        """Replace the run configuration (paths are filled in by :meth:`run_config`)."""
        self.config = cfg
        self.events.config.emit(cfg)

    def run_config(self) -> RunConfig:
        """The configuration a new run starts with: files and model filled in."""
        d = copy.deepcopy(self.config.to_dict())
        d["data"]["train_files"] = [str(p) for p in self.files_with_role("train")]
        d["data"]["validation_files"] = [str(p) for p in self.files_with_role("validation")]
        if "document_files" in d["data"]:
            d["data"]["document_files"] = [str(p) for p in self.training_documents()]
        d["output_dir"] = ""
        return RunConfig.from_dict(d)

    # -- runs ------------------------------------------------------------------
    def select_run(self, run_dir: Path | None) -> None:
        """Make ``run_dir`` the run whose adapter the chat uses."""
        self.run_dir = Path(run_dir) if run_dir else None
        self.events.run.emit(self.run_dir)


def _strip_paths(d: dict) -> dict:
    """A config dict without the per-run paths (they are filled in at start)."""
    d = copy.deepcopy(d)
    d.pop("output_dir", None)
    data = d.get("data")
    if isinstance(data, dict):
        for key in ("train_files", "validation_files", "document_files"):
            data.pop(key, None)
    return d
