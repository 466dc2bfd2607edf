"""Read the project's run folders for the history list (read-only, cheap, GUI-safe)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from backend.events import read_events
from backend.fsutil import read_json


@dataclass
class RunSummary:
    """One row of the run history."""

    run_dir: Path
    name: str
    status: str
    created: float
    method: str
    model: str
    step: int | None
    max_steps: int | None
    train_loss: float | None
    eval_loss: float | None
    reason: str
    pid: int | None

    @property
    def has_adapter(self) -> bool:
        """A finished adapter (or full model) is on disk."""
        return (self.run_dir / "adapter").is_dir() or (self.run_dir / "model").is_dir()

    @property
    def adapter_dir(self) -> Path | None:
        """The adapter folder, when there is one."""
        for name in ("adapter", "model"):
            if (self.run_dir / name).is_dir():
                return self.run_dir / name
        return None

    @property
    def when(self) -> str:
        """Local start time, for people."""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created)) if self.created else "?"

    @property
    def interrupted(self) -> bool:
        """Left ``running`` by a process that is gone (crash, killed, closed window)."""
        if self.status not in ("running", "queued"):
            return False
        return self.pid is None or not _pid_alive(self.pid)

    @property
    def resumable(self) -> bool:
        """Has a checkpoint and no final adapter."""
        ck = self.run_dir / "checkpoints"
        return not self.has_adapter and ck.is_dir() and any(ck.glob("checkpoint-*"))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def read_run(run_dir: Path) -> RunSummary | None:
    """Summarise one run folder; ``None`` when it is not a run."""
    try:
        cfg = read_json(run_dir / "config.json")
    except (OSError, ValueError):
        cfg = None
    if not isinstance(cfg, dict):
        return None
    try:
        st = read_json(run_dir / "status.json", {}) or {}
    except (OSError, ValueError):
        st = {}
    metrics = st.get("metrics") or {}
    step = max_steps = train_loss = eval_loss = None
    if isinstance(metrics, dict):
        step = metrics.get("global_step")
        train_loss = metrics.get("train_loss")
        eval_loss = metrics.get("eval_loss")
    if step is None or train_loss is None:
        last = _last_train_record(run_dir / "metrics.jsonl")
        if last:
            step = last.get("step") if step is None else step
            max_steps = last.get("max_steps")
            train_loss = last.get("loss") if train_loss is None else train_loss
    created = st.get("created") or st.get("started") or _mtime(run_dir)
    return RunSummary(run_dir, cfg.get("name") or run_dir.name, st.get("status", "unknown"),
                      float(created or 0), (cfg.get("method") or {}).get("method", "?"),
                      (cfg.get("model") or {}).get("name_or_path", "?"), step, max_steps,
                      train_loss, eval_loss, st.get("reason") or "", st.get("pid"))


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0


def _last_train_record(path: Path) -> dict | None:
    """The last ``train`` record, reading only the file's tail."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 16384))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    import json
    for line in reversed(tail):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("type") == "train":
            return rec
    return None


def list_runs(project_root: Path) -> list[RunSummary]:
    """Every run of the project, newest first."""
    runs_dir = Path(project_root) / "runs"
    if not runs_dir.is_dir():
        return []
    out = [r for d in runs_dir.iterdir() if d.is_dir() for r in [read_run(d)] if r is not None]
    return sorted(out, key=lambda r: r.created, reverse=True)


def interrupted_runs(project_root: Path) -> list[RunSummary]:
    """Runs left ``running`` by a process that no longer exists and that can be resumed."""
    return [r for r in list_runs(project_root) if r.interrupted and r.resumable]


def run_events(run_dir: Path) -> list[dict]:
    """All events of a run, for replaying its plots."""
    return read_events(Path(run_dir) / "metrics.jsonl")
