"""The run history for the window: a thin re-export of :mod:`backend.runs` (the run folder's owner)."""

from __future__ import annotations

from backend.runs import RunSummary, events as run_events, interrupted_runs, list_runs, read_run

__all__ = ["RunSummary", "interrupted_runs", "list_runs", "read_run", "run_events"]
