"""The wizard's state: project, base model, data, configuration and run.  No Qt.

Pages read and change a :class:`Session`; they learn about each other's
changes through its emitters (``session.events.<name>.connect(callback)``).
What is saved in ``project.json`` (dataset roles, documents used for training,
the run configuration) belongs to :class:`backend.workspace.Project`; the
session only adds what is chosen but not saved, and tells the pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.config import RunConfig
from backend.jobs import ModelHost
from backend.planning import resolve_run_config
from backend.trust import hub_allowed, set_hub_access
from backend.workspace import ROLES, Project
from desktop.emitter import Emitter

__all__ = ["ROLES", "Session", "SessionEvents"]


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
        # The one model host of the Chat and Evaluate pages (docs/architecture.md, "The job runner and
        # the model host"): a child process started on first use, ended when the project closes.
        self.model_host = ModelHost()

    def close_models(self, *, wait: bool = True) -> None:
        """End the model host child (its memory returns to the system); the next request starts a new one."""
        self.model_host.close(wait=wait)

    # -- project -----------------------------------------------------------
    def open_project(self, root: str | Path, *, model_override: str | None = None) -> Project:
        """Open the project at ``root`` and load its saved settings.

        Raises
        ------
        ProjectError
            When the folder is not a project (no readable ``project.json``).
        """
        project = Project.open(Path(root))
        if self.project is not None:  # the old project's models go with it
            self.close_models(wait=False)
        self.project = project
        cfg = project.saved_run_config()
        # hub access is the person's, for the whole process (never project.json's): backend/trust.py
        cfg = cfg.with_overrides({"model.allow_hub": hub_allowed()})
        if model_override:
            cfg = cfg.with_overrides({"model.name_or_path": model_override})
        self.config = cfg
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

    @property
    def project_notices(self) -> list[str]:
        """What the open project asked for and did not get (trust flags), in words."""
        return self.project.trust_notices() if self.project is not None else []

    @property
    def active_preset(self) -> str | None:
        """The preset the user chose on the Configure page and has not changed by hand since (``project.json``).

        A derived one ("Learn the facts") is fitted again whenever the Data page's check comes back.
        """
        return self.project.preset if self.project is not None else None

    @active_preset.setter
    def active_preset(self, key: str | None) -> None:
        if self.project is not None:
            self.project.set_preset(key, save=False)

    def save_project(self) -> None:
        """Write the model choice and config into ``project.json`` (never the trust flags)."""
        if self.project is None:
            return
        self.project.set_run_config(self.config)

    # -- model -------------------------------------------------------------
    def set_model_source(self, source: str, **options: Any) -> None:
        """Choose a base model (``default``, a folder, a .gguf file or a hub id)."""
        if "allow_hub" in options and bool(options["allow_hub"]) != hub_allowed():
            set_hub_access(bool(options["allow_hub"]))  # the person's tick: this process and its children
            self.close_models(wait=False)  # the host reads the switch when it starts: the next request starts anew
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
        return self.project.dataset_files() if self.project is not None else []

    def document_files(self) -> list[Path]:
        """Document files in the project's ``documents/`` folder, sorted."""
        return self.project.document_files() if self.project is not None else []

    def dataset_role(self, path: Path) -> str:
        """``train``, ``validation`` or ``off`` for a file in ``datasets/``."""
        return self.project.dataset_role(path) if self.project is not None else "train"

    def set_dataset_role(self, path: Path, role: str) -> None:
        """Use a dataset file for training, validation, or not at all."""
        if self.project is None or role not in ROLES:
            return
        self.project.set_dataset_role(path, role)
        self.data_report = None
        self.events.data.emit()

    def files_with_role(self, role: str) -> list[Path]:
        """Dataset files used as ``role``."""
        return self.project.files_with_role(role) if self.project is not None else []

    def trains_on_document(self, path: Path) -> bool:
        """Whether a document's text is also used as training text."""
        return self.project is not None and self.project.trains_on_document(path)

    def set_document_training(self, path: Path, on: bool) -> None:
        """Use (or stop using) a document's text as training rows (domain adaptation)."""
        if self.project is None:
            return
        self.project.set_document_training(path, on)
        self.events.data.emit()

    def training_documents(self) -> list[Path]:
        """Documents whose text is training text."""
        return self.project.training_documents() if self.project is not None else []

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
        """The configuration a new run starts with (:func:`backend.planning.resolve_run_config`).

        The Configure page's values over the project's files; the trust flags
        are the ones ticked on the Model page in this session.
        """
        if self.project is None:
            return self.config.with_overrides({"output_dir": ""})
        m = self.config.model
        return resolve_run_config(self.project, base=self.config, trust_remote_code=m.trust_remote_code,
                                  allow_pickle_weights=m.allow_pickle_weights, allow_hub=m.allow_hub)

    # -- runs ------------------------------------------------------------------
    def select_run(self, run_dir: Path | None) -> None:
        """Make ``run_dir`` the run whose adapter the chat uses."""
        self.run_dir = Path(run_dir) if run_dir else None
        self.events.run.emit(self.run_dir)

