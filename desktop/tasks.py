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
                         host: Any = None, on_event: ev.OnEvent = ev.no_event,
                         should_stop: ev.ShouldStop = ev.never_stop) -> ResolvedModel:
    """Resolve a model source (converting a GGUF once) and read its facts.

    With ``host`` (a :class:`backend.jobs.ModelHost`) the work runs in the model
    host child, so the window's process never imports transformers or torch.

    Raises
    ------
    ModelError
        When the source cannot be used (see :func:`backend.models.resolve_model`).
    """
    if host is not None:
        from backend.models import ModelInfo

        d = host.request("resolve_model", {"source": source, "allow_hub": allow_hub,
                                           "allow_pickle_weights": allow_pickle_weights},
                         on_event=on_event, should_stop=should_stop)
        return ResolvedModel(source, d["path"], ModelInfo(**d["info"]) if d.get("info") else None,
                             d.get("chat_template") or "")
    from backend.models import model_info, read_chat_template, resolve_model

    on_event(ev.progress("resolve", 0, 1, f"Looking for {source}…"))
    path = resolve_model(source, allow_hub=allow_hub, allow_pickle_weights=allow_pickle_weights,
                         on_event=on_event)
    info = model_info(path) if Path(path).is_dir() else None
    template = read_chat_template(path) if Path(path).is_dir() else ""
    on_event(ev.progress("resolve", 1, 1, "Ready"))
    return ResolvedModel(source, path, info, template)


def detect_device_task(host: Any = None) -> Any:
    """Detect the training device (imports torch: in the model host child when ``host`` is given)."""
    if host is not None:
        from backend.runtime import DeviceInfo

        return DeviceInfo(**host.request("detect_device", {"want": "auto"}))
    from backend.runtime import detect_device

    return detect_device("auto")
