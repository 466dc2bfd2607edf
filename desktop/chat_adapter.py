"""What the Chat page needs from ``backend.rag``, run in worker threads.

:class:`ChatEngine` keeps the loaded chat model, the embedder and the index
between questions.  Its methods are called from ``Job`` threads, one job at a
time (the Chat page never starts two), so the GUI thread never loads, embeds
or generates.  Streaming reaches the page as desktop-internal event dicts:
``{"type": "token", "mode", "text"}``, ``{"type": "sources", "mode", "sources"}``,
``{"type": "answer", "mode", "answer"}`` next to the backend's ``progress`` events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from backend import events as ev


def index_summary(project_root: Path) -> dict[str, Any]:
    """Indexed files and chunks, without loading a model (GUI-safe)."""
    from backend.rag import index_status

    try:
        return index_status(project_root)
    except Exception:  # a broken index record must not break the page; ingest rebuilds it
        return {"exists": False, "sources": {}, "files": 0, "chunks": 0, "embedder": None}


class ChatEngine:
    """The chat model and document index of one project, loaded on first use."""

    def __init__(self) -> None:
        self._chat_key: tuple | None = None
        self._chat = None
        self._index = None
        self._index_root: Path | None = None
        self._embeddings = None

    # -- documents -------------------------------------------------------------
    def _embedder(self, on_event: ev.OnEvent):
        if self._embeddings is None:
            from backend.rag import load_embeddings
            on_event(ev.progress("load", 0, 1, "Loading the embedding model…"))
            self._embeddings = load_embeddings()
        return self._embeddings

    def ingest(self, project_root: Path, documents: Sequence[Path], *, on_event: ev.OnEvent = ev.no_event,
               should_stop: ev.ShouldStop = ev.never_stop):
        """Bring the project's index up to date with ``documents`` (incremental).

        Returns
        -------
        backend.rag.IngestReport
        """
        from backend.rag import ingest

        report = ingest(project_root, [str(p) for p in documents], embeddings=self._embedder(on_event),
                        on_event=on_event, should_stop=should_stop)
        self._index = None  # reopen with the new content
        return report

    def _open_index(self, project_root: Path, on_event: ev.OnEvent):
        from backend.rag import open_index

        if self._index is None or self._index_root != project_root:
            self._index = open_index(project_root, embeddings=self._embedder(on_event))
            self._index_root = project_root
        return self._index

    # -- the chat model ------------------------------------------------------------
    def _session(self, project_root: Path, run_dir: Path | None, base_model: str, rag: bool,
                 on_event: ev.OnEvent):
        from backend.rag import ChatSession, load_chat_model

        key = (str(run_dir) if run_dir else None, None if run_dir else base_model)
        if self._chat is None or self._chat_key != key:
            self._chat = None
            self._chat = load_chat_model(run_dir, None if run_dir else base_model, on_event=on_event)
            self._chat_key = key
        index = self._open_index(project_root, on_event) if rag else None
        return ChatSession(self._chat, index)

    def loaded(self) -> bool:
        """Whether a chat model is in memory."""
        return self._chat is not None

    def ask(self, project_root: Path, question: str, modes: Sequence[str], *, run_dir: Path | None,
            base_model: str, generation: Any = None, k: int | None = None, retrieval: Any = None,
            on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop) -> dict:
        """Answer ``question`` in each mode (``tuned+rag``, ``tuned``, ``base+rag``, ``base``), streaming.

        Passages are retrieved once and shared by the modes with retrieval.

        Returns
        -------
        dict
            ``{mode: backend.rag.Answer}``.

        Raises
        ------
        TuneError
            No index, no adapter, a model that cannot be loaded.
        """
        rag = any(m.endswith("+rag") for m in modes)
        session = self._session(project_root, run_dir, base_model, rag, on_event)
        if retrieval is not None:  # the Chat page's retrieval settings (hybrid, evidence, abstention...)
            session.settings = retrieval
        if k:
            session.settings.k = k
        shared = session.retrieve(question) if rag else None
        out = {}
        for mode in modes:
            if should_stop():
                break
            on_event(ev.event(ev.ANSWER_START, mode=mode))

            def token(text: str, mode: str = mode) -> None:
                on_event(ev.event(ev.TOKEN, mode=mode, text=text))

            use = shared if mode.endswith("+rag") else None
            if use is not None:
                on_event(ev.event(ev.SOURCES, mode=mode, sources=list(use)))
            answer = session.ask(question, mode, sources=use, on_token=token, should_stop=should_stop,
                                 generation=generation)
            on_event(ev.event(ev.ANSWER, mode=mode, answer=answer))
            out[mode] = answer
        return out

    def release(self) -> None:
        """Drop the chat model (e.g. after a new run; frees memory)."""
        self._chat = None
        self._chat_key = None
        self._index = None
