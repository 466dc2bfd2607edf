"""A project folder and its ``project.json``: the one project model the GUI and the CLI share.

See docs/architecture.md, "The project folder".  ``project.json`` is read and
written here only.  Besides the name and base model it holds, under
``settings``:

``run_config``          the Configure page's values, without per-run paths and
                        without the per-machine trust flags (see below)
``dataset_roles``       ``{file name: "train" | "validation" | "off"}`` for files in ``datasets/``
``train_on_documents``  documents (paths relative to ``documents/``) whose text is also training text
``example_questions``   questions the Chat page offers as examples
``description``         a few words shown on the Project page
``answer``              the answer settings (:class:`backend.rag.settings.AnswerSettings`:
                        retrieval and generation) the Chat page, the Evaluate page,
                        ``tune ask`` and ``tune eval`` answer with
``preset``              the preset the Configure page applied, while the user has not changed
                        its values by hand (a derived one is re-fitted as the rows change)

:func:`backend.planning.resolve_run_config` turns a project (plus a preset and
overrides) into the :class:`~backend.config.RunConfig` a new run starts with; the
Train page and ``tune train --project`` both call it, so they train the same thing.

``model.trust_remote_code``, ``model.allow_pickle_weights`` and ``model.allow_hub``
are never read from ``project.json``: opening someone's project must not run
their code or reach the network.  A
project that asks for them has them dropped, and :meth:`Project.trust_notices`
says what it asked and how the user can allow it on this machine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from backend import runs
from backend.confine import is_inside, is_link, walk_files
from backend.errors import ConfigError, TuneError
from backend.filetypes import is_dataset_file, is_document_file
from backend.fsutil import atomic_write_json, read_json, stamped_path
from backend.trust import TRUST_FIELDS, notices

if TYPE_CHECKING:  # pragma: no cover
    from backend.config import RunConfig
    from backend.rag.settings import AnswerSettings

PROJECT_FILE = "project.json"
ROLES = ("train", "validation", "off")
# Filled in when a run starts (they name this machine's files), so never saved.
_PATH_KEYS = ("train_files", "validation_files", "document_files")


class ProjectError(TuneError):
    """A project folder is missing or its project.json is unreadable."""


@dataclass
class Project:
    """A Tune Studio project folder.

    Layout::

        project.json  documents/manifest.json  datasets/  index/  runs/<run-id>/
    """

    root: Path
    name: str
    base_model: str = "default"
    settings: dict[str, Any] | None = None
    #: Trust fields ``project.json`` asked for and did not get (see :meth:`trust_notices`).
    trust_requests: list[str] = field(default_factory=list)

    @property
    def documents_dir(self) -> Path:
        return self.root / "documents"

    @property
    def manifest_path(self) -> Path:
        return self.documents_dir / "manifest.json"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def runs_dir(self) -> Path:
        return runs.runs_dir(self.root)

    @property
    def evalsets_dir(self) -> Path:
        return self.root / "evalsets"

    @property
    def chat_dir(self) -> Path:
        """``chat/``: the Chat page's transcript and the ones cleared before it (backend/transcript.py)."""
        return self.root / "chat"

    @property
    def transcript_path(self) -> Path:
        """``chat/transcript.jsonl``: the project's chat, one answer per line (backend/transcript.py)."""
        return self.chat_dir / "transcript.jsonl"

    @classmethod
    def create(cls, root: str | Path, name: str | None = None, base_model: str = "default") -> "Project":
        """Create (or open, if it exists) a project folder."""
        root = Path(root).expanduser().resolve()
        if (root / PROJECT_FILE).exists():
            return cls.open(root)
        if root.exists() and not root.is_dir():
            raise ProjectError("a file with this name exists; a project needs a folder", file=root)
        proj = cls(root, name or root.name, base_model, {})
        for d in (proj.documents_dir, proj.datasets_dir, proj.runs_dir):
            d.mkdir(parents=True, exist_ok=True)
        proj.save()
        return proj

    @classmethod
    def open(cls, root: str | Path) -> "Project":
        """Open an existing project folder.

        Raises
        ------
        ProjectError
            When the folder has no readable ``project.json``.
        """
        root = Path(root).expanduser().resolve()
        try:
            d = read_json(root / PROJECT_FILE)
        except (OSError, ValueError) as e:
            raise ProjectError(f"project.json is unreadable ({e})", file=root / PROJECT_FILE,
                               hint="restore it from a backup or create a new project") from None
        if d is None:
            raise ProjectError("not a Tune Studio project (no project.json)", file=root,
                               hint="create a project here first (`tune new` or the Project page)")
        if not isinstance(d, dict):
            raise ProjectError("project.json must hold a JSON object", file=root / PROJECT_FILE,
                               hint="restore it from a backup or create a new project")
        settings = d.get("settings")
        settings, asked = _without_trust(settings if isinstance(settings, dict) else {})
        return cls(root, str(d.get("name") or root.name), str(d.get("base_model") or "default"), settings, asked)

    def save(self) -> None:
        """Write project.json atomically (never with the trust flags)."""
        settings, _ = _without_trust(self.settings or {})
        atomic_write_json(self.root / PROJECT_FILE, {"name": self.name, "base_model": self.base_model,
                                                    "settings": settings, "format": 1}, root=self.root)

    def _set(self, key: str, value: Any, save: bool) -> None:
        settings = dict(self.settings or {})
        settings[key] = value
        self.settings = settings
        if save:
            self.save()

    # -- what project.json asked for and did not get ------------------------------
    def trust_notices(self, *, cli: bool = False) -> list[str]:
        """One sentence per trust flag this project asked for, saying how to allow it.

        Parameters
        ----------
        cli
            Name the ``tune`` flag rather than the GUI's checkbox.
        """
        return notices(list(self.trust_requests), "This project", cli=cli)

    # -- files ------------------------------------------------------------------------
    def dataset_files(self) -> list[Path]:
        """Dataset files in ``datasets/``, sorted (see :mod:`backend.filetypes`); links out of the project skipped."""
        if not self.datasets_dir.is_dir():
            return []
        return sorted(p for p in self._confined(self.datasets_dir, recursive=False) if is_dataset_file(p))

    def document_files(self) -> list[Path]:
        """Document files anywhere under ``documents/``, sorted; links out of the project skipped.

        A link whose target is outside the project (``documents/config -> ~/.ssh/config``)
        is never read or indexed: :meth:`skipped_links` names it (docs/architecture.md,
        "Confinement").
        """
        if not self.documents_dir.is_dir():
            return []
        return sorted(p for p in self._confined(self.documents_dir) if is_document_file(p))

    def _confined(self, folder: Path, *, recursive: bool = True, skipped: list[Path] | None = None) -> list[Path]:
        """Files under ``folder`` that stay inside the project (:func:`backend.confine.walk_files`)."""
        if not recursive:
            found = []
            for p in sorted(folder.iterdir()):
                if is_link(p) and not (p.is_file() and is_inside(p, self.root)):
                    if skipped is not None:
                        skipped.append(p)
                    continue
                if p.is_file():
                    found.append(p)
            return found
        return list(walk_files(folder, self.root, skipped=skipped))

    def skipped_links(self) -> list[Path]:
        """Links in ``documents/``, ``datasets/`` and ``evalsets/`` that lead outside the project (never read).

        The Data page and ``tune ingest`` name them in a warning
        (:func:`backend.confine.skipped_message`).
        """
        out: list[Path] = []
        for folder, recursive in ((self.documents_dir, True), (self.datasets_dir, False), (self.evalsets_dir, False)):
            if is_link(folder) and not is_inside(folder, self.root):
                out.append(folder)
            elif folder.is_dir():
                self._confined(folder, recursive=recursive, skipped=out)
        return out

    def dataset_role(self, path: str | Path) -> str:
        """``train``, ``validation`` or ``off`` for a file in ``datasets/`` (``train`` unless set)."""
        roles = (self.settings or {}).get("dataset_roles")
        role = roles.get(Path(path).name, "train") if isinstance(roles, dict) else "train"
        return role if role in ROLES else "train"

    def set_dataset_role(self, path: str | Path, role: str, *, save: bool = True) -> None:
        """Use a dataset file for training, validation, or not at all.

        Raises
        ------
        ConfigError
            When ``role`` is not one of :data:`ROLES`.
        """
        if role not in ROLES:
            raise ConfigError(f"unknown dataset role '{role}'", field="dataset_roles",
                              hint=f"use one of {', '.join(ROLES)}")
        roles = (self.settings or {}).get("dataset_roles")
        roles = dict(roles) if isinstance(roles, dict) else {}
        roles[Path(path).name] = role
        self._set("dataset_roles", roles, save)

    def files_with_role(self, role: str) -> list[Path]:
        """Dataset files used as ``role``."""
        return [p for p in self.dataset_files() if self.dataset_role(p) == role]

    def document_key(self, path: str | Path) -> str:
        """How ``project.json`` names a document: relative to ``documents/`` when inside it."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.documents_dir.resolve()).as_posix()
        except ValueError:
            return str(p)

    def _train_on_keys(self) -> list[str]:
        keys = (self.settings or {}).get("train_on_documents")
        return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []

    def trains_on_document(self, path: str | Path) -> bool:
        """Whether a document's text is also used as training text."""
        return self.document_key(path) in self._train_on_keys()

    def set_document_training(self, path: str | Path, on: bool, *, save: bool = True) -> None:
        """Use (or stop using) a document's text as training rows (domain adaptation)."""
        key = self.document_key(path)
        keys = [k for k in self._train_on_keys() if k != key]
        if on:
            keys.append(key)
        self._set("train_on_documents", sorted(keys), save)

    def training_documents(self) -> list[Path]:
        """Documents whose text is training text."""
        keys = set(self._train_on_keys())
        return [p for p in self.document_files() if self.document_key(p) in keys]

    # -- the preset chosen on the Configure page ------------------------------------------
    @property
    def preset(self) -> str | None:
        """The preset the Configure page applied and the user has not changed by hand since (``None``: custom)."""
        from backend.presets import PRESET_KEYS

        key = (self.settings or {}).get("preset")
        return key if key in PRESET_KEYS else None

    def set_preset(self, key: str | None, *, save: bool = True) -> None:
        """Remember the preset in effect (``None``: the settings are the user's own)."""
        self._set("preset", key, save)

    # -- what the Project and Chat pages show ------------------------------------------
    @property
    def description(self) -> str:
        """A few words about the project ('' when none)."""
        d = (self.settings or {}).get("description")
        return d if isinstance(d, str) else ""

    @property
    def example_questions(self) -> list[str]:
        """Questions the Chat page offers as examples."""
        qs = (self.settings or {}).get("example_questions")
        return [q for q in qs if isinstance(q, str) and q.strip()] if isinstance(qs, list) else []

    def set_example_questions(self, questions: list[str], *, save: bool = True) -> None:
        """Replace the example questions."""
        self._set("example_questions", [q.strip() for q in questions if q.strip()], save)

    def evalset_files(self) -> list[Path]:
        """Question sets in ``evalsets/`` (``.jsonl`` and ``.csv``), sorted."""
        if not self.evalsets_dir.is_dir():
            return []
        return sorted(p for p in self._confined(self.evalsets_dir, recursive=False)
                      if p.suffix.lower() in (".jsonl", ".csv") and not p.name.startswith("."))

    # -- the answer settings ---------------------------------------------------------------
    def answer_settings(self, *, strict: bool = False) -> "AnswerSettings":
        """The settings every answer of this project uses (Chat, Evaluate, ``tune ask`` / ``tune eval``).

        Parameters
        ----------
        strict
            Raise when the saved settings are invalid (the CLI: the person
            sees the field); otherwise fall back to the defaults (the GUI,
            which shows the error beside them).

        Raises
        ------
        ConfigError
            ``strict`` and ``settings.answer`` holds an unknown key or a bad
            value; names ``project.json`` and the field.
        """
        from backend.rag.settings import AnswerSettings

        saved = (self.settings or {}).get("answer")
        if saved is None:
            return AnswerSettings()
        try:
            return AnswerSettings.from_dict(saved)
        except ConfigError as e:
            if not strict:
                return AnswerSettings()
            e.file = str(self.root / PROJECT_FILE)
            e.field = f"settings.answer.{e.field}" if e.field else "settings.answer"
            e.hint = (e.hint + "; " if e.hint else "") + "or remove settings.answer to use the defaults"
            e.args = (str(e),)
            raise

    def set_answer_settings(self, settings: "AnswerSettings", *, save: bool = True) -> None:
        """Remember the answer settings (the Chat page's panel)."""
        self._set("answer", settings.to_dict(), save)

    # -- the run configuration -----------------------------------------------------------
    def saved_run_config(self) -> "RunConfig":
        """The configuration saved by the Configure page, with the project's base model.

        A project with documents whose saved configuration does not say otherwise
        has ``data.raft`` on: training rows teach answering from the passages
        (docs/architecture.md, "The knowledge recipe").
        Per-run paths are empty (see :func:`backend.planning.resolve_run_config`).  A saved config
        that no longer validates (an older version, a hand edit) gives the defaults.
        """
        from backend.config import RunConfig

        saved = (self.settings or {}).get("run_config")
        cfg = RunConfig()
        if isinstance(saved, dict):
            try:
                cfg = RunConfig.from_dict(portable_config(saved))
            except ConfigError:
                cfg = RunConfig()
        extra: dict[str, Any] = {"model.name_or_path": self.base_model or "default"}
        data = saved.get("data") if isinstance(saved, dict) else None
        if not (isinstance(data, dict) and "raft" in data) and self.document_files():
            # a project with documents trains on answering from them unless the user said otherwise
            extra["data.raft"] = True
        return cfg.with_overrides(extra)

    def set_run_config(self, cfg: "RunConfig", *, save: bool = True) -> None:
        """Remember ``cfg`` (without paths and trust flags) and its base model."""
        self.base_model = cfg.model.name_or_path
        self._set("run_config", portable_config(cfg.to_dict()), save)

    def new_run_dir(self, name: str = "") -> Path:
        """A fresh ``runs/<run-id>`` folder path (not created)."""
        return new_run_dir(self.runs_dir, name)


def portable_config(d: Mapping[str, Any]) -> dict[str, Any]:
    """A run config dict fit for ``project.json``: no per-run paths, no trust flags.

    The paths are filled in when a run starts (:func:`backend.planning.resolve_run_config`); the
    trust flags are this machine's choice, never a file's.
    """
    d = copy.deepcopy(dict(d))
    d.pop("output_dir", None)
    data = d.get("data")
    if isinstance(data, dict):
        for key in _PATH_KEYS:
            data.pop(key, None)
    model = d.get("model")
    if isinstance(model, dict):
        for key in TRUST_FIELDS:
            model.pop(key, None)
    return d


def _without_trust(settings: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``settings`` without trust flags in its run config, and the flags that were switched on."""
    settings = copy.deepcopy(dict(settings))
    model = (settings.get("run_config") or {}).get("model") if isinstance(settings.get("run_config"), dict) else None
    asked = []
    if isinstance(model, dict):
        for key in TRUST_FIELDS:
            if model.pop(key, False) not in (False, None, 0, "", "false", "False"):
                asked.append(key)
    return settings, asked


def new_run_dir(parent: str | Path, name: str = "") -> Path:
    """``parent/<YYYYmmdd-HHMMSS>[-name]``, unique."""
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())[:40].strip("-")
    return stamped_path(parent, tail=f"-{slug}" if slug else "")


def require_run_dir(run_dir: str | Path) -> Path:
    """Check that ``run_dir`` is a run folder (see :func:`backend.runs.require_run_dir`)."""
    return runs.require_run_dir(run_dir)
