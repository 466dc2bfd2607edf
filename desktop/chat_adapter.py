"""What the Chat page needs from ``backend.rag``, through the model host.

:class:`ChatEngine` sends the page's work to the model host child
(:class:`backend.jobs.ModelHost`), which keeps the chat model, the embedder and
the index between questions.  Its methods are called from ``Job`` threads, one
job at a time (the Chat page never starts two), so the GUI thread never waits
for a model, and the window's process never loads one (docs/architecture.md,
"The job runner and the model host").  Streaming reaches the page as desktop-internal event dicts:
``{"type": "token", "mode", "text"}``, ``{"type": "sources", "mode", "sources"}``,
``{"type": "answer", "mode", "answer"}`` next to the backend's ``progress`` events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from backend import events as ev
from backend.host import answer_from_dict, ingest_report_from_dict, settings_dict, source_from_dict
from backend.jobs import ModelHost


def index_summary(project_root: Path) -> dict[str, Any]:
    """Indexed files and chunks, without loading a model (GUI-safe)."""
    from backend.rag.index import index_status

    try:
        return index_status(project_root)
    except Exception:  # a broken index record must not break the page; ingest rebuilds it
        return {"exists": False, "sources": {}, "files": 0, "chunks": 0, "embedder": None}


class ChatEngine:
    """The Chat page's side of the model host: a thin proxy whose methods run in ``Job`` threads.

    The chat model, the embedder and the index live in the model host child
    (:class:`backend.jobs.ModelHost`, shared with the Evaluate page through the
    session): this object only sends requests and turns the JSON that comes back
    into the backend's objects (``Answer``, ``Source``, ``IngestReport``).

    Parameters
    ----------
    host
        The shared model host (``Session.model_host``); a private one when ``None``.
    """

    def __init__(self, host: ModelHost | None = None) -> None:
        self.host = host if host is not None else ModelHost()
        self._warm: tuple | None = None  # (host start, model key) of the last answer

    def ingest(self, project_root: Path, documents: Sequence[Path], *, on_event: ev.OnEvent = ev.no_event,
               should_stop: ev.ShouldStop = ev.never_stop):
        """Bring the project's index up to date with ``documents`` (incremental), in the model host.

        Returns
        -------
        backend.rag.IngestReport
        """
        d = self.host.request("ingest", {"project_root": str(project_root), "documents": [str(p) for p in documents]},
                              on_event=on_event, should_stop=should_stop)
        return ingest_report_from_dict(d)

    def loaded(self) -> bool:
        """Whether the last answer's chat model is (probably) still warm in the model host."""
        return self._warm is not None and self.host.running() and self._warm[0] == self.host.starts

    def ask(self, project_root: Path, question: str, modes: Sequence[str], *, run_dir: Path | None,
            base_model: str, generation: Any = None, k: int | None = None, retrieval: Any = None,
            on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> dict:
        """Answer ``question`` in each mode (``tuned+rag``, ``tuned``, ``base+rag``, ``base``), streaming.

        Passages are retrieved once and shared by the modes with retrieval.  The
        streamed events carry ``Source`` and ``Answer`` objects, as the page expects.

        Returns
        -------
        dict
            ``{mode: backend.rag.chain.Answer}``.

        Raises
        ------
        TuneError
            No index, no adapter, a model that cannot be loaded; ``backend.jobs.ChildDied``
            when the model process died meanwhile (the next question starts a new one).
        """
        def relay(rec: dict) -> None:
            t = rec.get("type")
            if t == ev.SOURCES:
                rec = {**rec, "sources": [source_from_dict(x) for x in rec.get("sources") or []]}
            elif t == ev.ANSWER:
                rec = {**rec, "answer": answer_from_dict(rec.get("answer"))}
            on_event(rec)

        params = {"project_root": str(project_root), "question": question, "modes": list(modes),
                  "run_dir": str(run_dir) if run_dir else None, "base_model": base_model,
                  "generation": settings_dict(generation), "k": k, "retrieval": settings_dict(retrieval)}
        out = self.host.request("ask", params, on_event=relay, should_stop=should_stop)
        self._warm = (self.host.starts, params["run_dir"], None if run_dir else base_model)
        return {mode: answer_from_dict(a) for mode, a in (out or {}).items()}

    def release(self) -> None:
        """Let the model host drop the chat model (e.g. after a new run; frees memory), if it is idle."""
        self._warm = None
        self.host.release_if_idle()
