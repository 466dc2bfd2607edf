"""App-wide settings (recent projects, dismissed offers), kept in the user data folder.

A small JSON file rather than ``QSettings`` so tests can isolate it with
``TUNE_STUDIO_HOME`` and people can read it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from backend.fsutil import atomic_write_json, read_json
from backend.runtime import data_dir

SETTINGS_FILE = "desktop.json"
SAMPLE_NAME = "sample"


def resources_dir() -> Path:
    """The folder with the sample project (repo checkout, installed tree or bundle)."""
    env = os.environ.get("TUNE_STUDIO_RESOURCES")
    if env:
        return Path(env)
    candidates = [Path(__file__).resolve().parents[1] / "resources"]
    bundle = os.environ.get("TUNE_STUDIO_BUNDLE") or getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.insert(0, Path(bundle) / "resources")
    candidates.append(Path(sys.prefix) / "share" / "tune-studio" / "resources")
    for c in candidates:
        if (c / "sample_project").is_dir():
            return c
    return candidates[0]


def sample_project_source() -> Path:
    """The shipped sample project folder."""
    return resources_dir() / "sample_project"


def projects_dir() -> Path:
    """Where new projects go by default."""
    return data_dir() / "projects"


def install_sample_project(force: bool = False) -> Path | None:
    """Copy the sample project into the user data folder once; return its path.

    ``None`` when the sample is not shipped with this installation.
    """
    dest = projects_dir() / SAMPLE_NAME
    src = sample_project_source()
    if (dest / "project.json").exists() and not force:
        return dest
    if not (src / "project.json").exists():
        return None
    if force and dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("runs", "index", "__pycache__"))
    for sub in ("runs", "datasets", "documents"):
        (tmp / sub).mkdir(exist_ok=True)
    os.replace(tmp, dest)
    return dest


class AppSettings:
    """``desktop.json`` in the user data folder."""

    def __init__(self, path: Path | None = None):
        self.path = path or data_dir() / SETTINGS_FILE
        try:
            self.data: dict[str, Any] = read_json(self.path, {}) or {}
        except (OSError, ValueError):
            self.data = {}

    def save(self) -> None:
        """Write the file atomically (errors are ignored: settings are a convenience)."""
        try:
            atomic_write_json(self.path, self.data)
        except OSError:
            pass

    @property
    def recent_projects(self) -> list[str]:
        """Most recent first, existing only."""
        return [p for p in self.data.get("recent_projects", []) if Path(p, "project.json").exists()]

    def add_recent(self, root: Path) -> None:
        """Put ``root`` first in the recent list."""
        root_s = str(Path(root).resolve())
        rec = [p for p in self.data.get("recent_projects", []) if p != root_s]
        self.data["recent_projects"] = [root_s, *rec][:10]
        self.data["last_project"] = root_s
        self.save()

    @property
    def last_project(self) -> str | None:
        """The project open when the app last closed, if it still exists."""
        p = self.data.get("last_project")
        return p if p and Path(p, "project.json").exists() else None

    def resume_dismissed(self, run_dir: Path) -> bool:
        """Whether the user declined resuming this run."""
        return str(run_dir) in self.data.get("resume_dismissed", [])

    def dismiss_resume(self, run_dir: Path) -> None:
        """Do not offer resuming ``run_dir`` again."""
        lst = self.data.setdefault("resume_dismissed", [])
        if str(run_dir) not in lst:
            lst.append(str(run_dir))
        self.save()
