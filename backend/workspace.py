"""A project folder: documents, datasets, the index and runs (see DESIGN.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.errors import RunError, TuneError
from backend import runs
from backend.fsutil import atomic_write_json, read_json

PROJECT_FILE = "project.json"


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
        return cls(root, d.get("name", root.name), d.get("base_model", "default"), d.get("settings", {}))

    def save(self) -> None:
        """Write project.json atomically."""
        atomic_write_json(self.root / PROJECT_FILE, {"name": self.name, "base_model": self.base_model,
                                                    "settings": self.settings or {},
                                                    "format": 1})

    def new_run_dir(self, name: str = "") -> Path:
        """A fresh ``runs/<run-id>`` folder path (not created)."""
        return new_run_dir(self.runs_dir, name)


def new_run_dir(parent: str | Path, name: str = "") -> Path:
    """``parent/<YYYYmmdd-HHMMSS>[-name]``, unique."""
    parent = Path(parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())[:40].strip("-")
    base = f"{stamp}-{slug}" if slug else stamp
    cand, i = parent / base, 1
    while cand.exists():
        i += 1
        cand = parent / f"{base}-{i}"
    return cand


def require_run_dir(run_dir: str | Path) -> Path:
    """Check that ``run_dir`` is a run folder (see :func:`backend.runs.require_run_dir`)."""
    return runs.require_run_dir(run_dir)
