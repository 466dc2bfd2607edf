"""Plain functions the GUI runs in worker threads (no Qt; testable with a Mock callback).

Each takes the controls it needs (``on_event``, ``should_stop``) as keywords,
like the backend's own long jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend import events as ev


@dataclass
class ResolvedModel:
    """A base model ready to load: its folder, facts and chat template."""

    source: str
    path: str
    info: Any              # backend.models.ModelInfo, or None for a hub id not yet downloaded
    chat_template: str


def resolve_and_describe(source: str, *, allow_hub: bool = False, allow_pickle_weights: bool = False,
                         on_event: ev.OnEvent = ev.no_event) -> ResolvedModel:
    """Resolve a model source (converting a GGUF once) and read its facts.

    Raises
    ------
    ModelError
        When the source cannot be used (see :func:`backend.models.resolve_model`).
    """
    from backend.models import model_info, read_chat_template, resolve_model

    on_event(ev.progress("resolve", 0, 1, f"Looking for {source}…"))
    path = resolve_model(source, allow_hub=allow_hub, allow_pickle_weights=allow_pickle_weights,
                         on_event=on_event)
    info = model_info(path) if Path(path).is_dir() else None
    template = read_chat_template(path) if Path(path).is_dir() else ""
    on_event(ev.progress("resolve", 1, 1, "Ready"))
    return ResolvedModel(source, path, info, template)


def detect_device_task() -> Any:
    """Detect the training device (imports torch, so never on the GUI thread)."""
    from backend.runtime import detect_device

    return detect_device("auto")
