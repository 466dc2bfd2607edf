"""RetrievalQA from langchain-core runnables, in four modes.

``retrieve -> prompt with the passages -> chat model -> answer`` plus the
passages as sources (what the deprecated ``RetrievalQA`` class did, built from
runnables).  Modes: {base, tuned} x {with retrieval, without}; *base* is the
same model with its adapter disabled.

A :class:`ChatSession` holds the one chat model and the index and answers
questions in any mode, streaming tokens to a callback.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from backend import events as ev
from backend.errors import RunError
from backend.rag.index import DocumentIndex, Source
from backend.rag.settings import GenerationSettings, RetrievalSettings

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from backend.rag.chat_model import HFChatModel
    from backend.workspace import Project

MODES = ("tuned+rag", "tuned", "base+rag", "base")


def mode_name(tuned: bool, rag: bool) -> str:
    """``'tuned+rag'``, ``'tuned'``, ``'base+rag'`` or ``'base'``."""
    return ("tuned" if tuned else "base") + ("+rag" if rag else "")


def parse_mode(mode: str) -> tuple[bool, bool]:
    """``'base+rag'`` -> ``(tuned=False, rag=True)``.

    Raises
    ------
    ValueError
        For an unknown mode name.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode.startswith("tuned"), mode.endswith("+rag")


@dataclass
class Answer:
    """An answer and where it came from.

    Attributes
    ----------
    question, answer
        What was asked and what the model wrote.
    mode
        One of :data:`MODES`.
    sources
        The retrieved passages (empty without retrieval), best first.
    seconds
        Wall time, retrieval included.
    stopped
        The answer was cut short by ``should_stop``.
    """

    question: str
    answer: str
    mode: str
    sources: list[Source] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (the ``tune ask --json`` output)."""
        return {"question": self.question, "answer": self.answer, "mode": self.mode,
                "sources": [s.to_dict() for s in self.sources], "seconds": round(self.seconds, 3),
                "stopped": self.stopped}


# ---------------------------------------------------------------------------
# prompt


def format_context(sources: Sequence[Source], max_chars: int) -> str:
    """The passages as numbered blocks with their file names, cut to ``max_chars``."""
    blocks, used = [], 0
    for i, s in enumerate(sources, 1):
        head = f"[{i}] {s.file}" + (f" (page {s.page})" if s.page is not None and s.file.lower().endswith(".pdf") else "")
        room = max_chars - used - len(head) - 2
        if room <= 50:
            break
        text = s.text if len(s.text) <= room else s.text[:room].rsplit(" ", 1)[0] + " …"
        blocks.append(f"{head}\n{text}")
        used += len(head) + len(text) + 2
    return "\n\n".join(blocks)


def rag_messages(inputs: dict[str, Any], settings: RetrievalSettings) -> list:
    """System + user messages for a question with retrieved passages."""
    from langchain_core.messages import HumanMessage, SystemMessage

    context = format_context(inputs.get("sources") or [], settings.max_context_chars)
    user = f"Context:\n{context}\n\nQuestion: {inputs['question']}" if context else inputs["question"]
    return [SystemMessage(content=settings.system_prompt), HumanMessage(content=user)]


def plain_messages(inputs: dict[str, Any], settings: RetrievalSettings) -> list:
    """System + user messages for a question without retrieval."""
    from langchain_core.messages import HumanMessage, SystemMessage

    msgs = [HumanMessage(content=inputs["question"])]
    if settings.no_rag_system_prompt:
        msgs.insert(0, SystemMessage(content=settings.no_rag_system_prompt))
    return msgs


# ---------------------------------------------------------------------------
# chains


def build_rag_chain(chat_model: "Runnable", index: DocumentIndex | None, settings: RetrievalSettings | None = None,
                    *, rag: bool = True) -> "Runnable":
    """The RetrievalQA chain: ``{"question"} -> {"question", "sources", "answer"}``.

    Parameters
    ----------
    chat_model
        A chat model runnable, e.g. ``HFChatModel.bind(adapter=False)`` for base mode.
    index
        The document index (needed when ``rag`` is on).
    settings
        ``k``, context size and system prompts.
    rag
        With retrieval (``True``) or the question alone.  When the input
        already holds ``"sources"``, they are used instead of retrieving again.

    Returns
    -------
    Runnable
        Streams dict pieces: ``{"sources": [...]}`` once, then ``{"answer": token}``.
    """
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    settings = settings or RetrievalSettings()
    if rag:
        if index is None:
            raise ValueError("retrieval needs an index")

        def retrieve(inputs: dict[str, Any]) -> list[Source]:
            given = inputs.get("sources")
            return list(given) if given is not None else index.search(inputs["question"], settings.k)

        prompt = RunnableLambda(lambda x: rag_messages(x, settings), name="rag_prompt")
        return (RunnablePassthrough.assign(sources=RunnableLambda(retrieve, name="retrieve"))
                | RunnablePassthrough.assign(answer=prompt | chat_model | StrOutputParser()))
    prompt = RunnableLambda(lambda x: plain_messages(x, settings), name="plain_prompt")
    return (RunnablePassthrough.assign(sources=RunnableLambda(lambda _x: [], name="no_retrieval"))
            | RunnablePassthrough.assign(answer=prompt | chat_model | StrOutputParser()))


class ChatSession:
    """One chat model and the project's index, answering in any of the four modes.

    Parameters
    ----------
    chat_model
        From :func:`~backend.rag.chat_model.load_chat_model`.
    index
        From :func:`~backend.rag.index.open_index`; ``None`` allows only modes
        without retrieval.
    settings
        Retrieval settings.

    Examples
    --------
    In a GUI worker thread::

        session = ChatSession(load_chat_model(run_dir), open_index(project))
        answer = session.ask(question, mode="tuned+rag", on_token=signal.emit,
                             should_stop=lambda: self._stop)
    """

    def __init__(self, chat_model: "HFChatModel", index: DocumentIndex | None = None,
                 settings: RetrievalSettings | None = None):
        self.chat_model = chat_model
        self.index = index
        self.settings = settings or RetrievalSettings()

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this session can answer in."""
        return tuple(m for m in MODES if (self.chat_model.has_adapter or m.startswith("base"))
                     and (self.index is not None or not m.endswith("+rag")))

    def retrieve(self, question: str, k: int | None = None) -> list[Source]:
        """The passages for ``question`` (to reuse across modes)."""
        if self.index is None:
            raise RunError("retrieval needs a document index", hint="ingest documents first (`tune ingest`)")
        return self.index.search(question, k or self.settings.k)

    def chain(self, mode: str = "tuned+rag", **model_kwargs: Any) -> "Runnable":
        """The runnable for ``mode`` (``model_kwargs`` are bound to the chat model)."""
        tuned, rag = parse_mode(mode)
        if tuned and not self.chat_model.has_adapter:
            raise RunError("tuned mode needs a run with an adapter",
                           hint="give a run folder (`--run RUN_DIR`, or pick a run on the Chat page), or ask the base model")
        if rag and self.index is None:
            from backend.errors import IndexStoreError
            raise IndexStoreError("retrieval needs a document index",
                                  hint="ingest documents first (`tune ingest PROJECT FILE...`), or turn retrieval off")
        llm = self.chat_model.bind(adapter=tuned, **model_kwargs)
        return build_rag_chain(llm, self.index, self.settings, rag=rag)

    def ask(self, question: str, mode: str = "tuned+rag", *, sources: Sequence[Source] | None = None,
            on_token: Callable[[str], None] | None = None, on_sources: Callable[[list[Source]], None] | None = None,
            should_stop: ev.ShouldStop | None = None, generation: GenerationSettings | None = None) -> Answer:
        """Answer ``question`` in ``mode``, streaming.

        Parameters
        ----------
        question
            The question.
        mode
            One of :data:`MODES`.
        sources
            Passages already retrieved for this question (skips retrieval;
            evaluation reuses them across modes).
        on_token
            Called with each piece of text as it is generated.
        on_sources
            Called once with the retrieved passages, before the first token.
        should_stop
            Checked after every token; the answer so far is returned with ``stopped=True``.
        generation
            Generation settings for this question (default: the model's).

        Returns
        -------
        Answer

        Raises
        ------
        RunError
            Tuned mode without an adapter.
        IndexStoreError
            Retrieval without an index, or with an empty one.
        """
        t0 = time.perf_counter()
        kw: dict[str, Any] = dict(generation.to_dict()) if generation is not None else {}
        if should_stop is not None:
            kw["should_stop"] = should_stop
        chain = self.chain(mode, **kw)
        inputs: dict[str, Any] = {"question": question}
        if sources is not None:
            inputs["sources"] = list(sources)
        parts: list[str] = []
        found: list[Source] = []
        for piece in chain.stream(inputs):
            if "sources" in piece and piece["sources"] is not None and not found:
                found = list(piece["sources"])
                if on_sources is not None and found:
                    on_sources(found)
            text = piece.get("answer")
            if text:
                parts.append(text)
                if on_token is not None:
                    on_token(text)
        stopped = bool(should_stop and should_stop())
        return Answer(question, "".join(parts).strip(), mode, found, time.perf_counter() - t0, stopped)

    def ask_all(self, question: str, modes: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Answer]:
        """Answer in several modes (default: all this session can), retrieving once."""
        modes = list(modes or self.modes)
        shared = self.retrieve(question) if any(m.endswith("+rag") for m in modes) else None
        return {m: self.ask(question, m, sources=shared if m.endswith("+rag") else None, **kwargs) for m in modes}


def ask(project: "Project | str | Path", question: str, *, run_dir: str | Path | None = None,
        tuned: bool | None = None, rag: bool = True, k: int | None = None,
        generation: GenerationSettings | None = None, on_token: Callable[[str], None] | None = None,
        on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop | None = None) -> Answer:
    """Answer one question over a project's documents (loads everything; for the CLI).

    Parameters
    ----------
    project
        A :class:`~backend.workspace.Project` or its folder.
    question
        The question.
    run_dir
        A run whose adapter to apply; ``None`` = the project's base model.
    tuned
        Answer with the adapter (default: when a run is given).
    rag
        Retrieve passages from the index.
    k
        Passages to retrieve (default 4).
    generation
        Generation settings.
    on_token, on_event, should_stop
        Streaming callback, progress events, cancellation.

    Returns
    -------
    Answer

    Raises
    ------
    IndexStoreError, RunError, ModelError
        No or empty index, a missing run or adapter, an adapter for another base model.
    """
    from backend.rag.chat_model import load_chat_model
    from backend.rag.index import open_index

    index = open_index(project) if rag else None  # cheap checks first: no model load for a missing index
    if tuned is None:
        tuned = run_dir is not None
    if tuned and run_dir is None:
        raise RunError("tuned mode needs a run", hint="give --run RUN_DIR, or ask the base model with --base")
    base = None
    if run_dir is None:
        base = _project_base_model(project) if isinstance(project, (str, Path)) else project.base_model
    chat = load_chat_model(run_dir, base, settings=generation, on_event=on_event)
    settings = RetrievalSettings(k=k) if k else RetrievalSettings()
    return ChatSession(chat, index, settings).ask(question, mode_name(tuned, rag), on_token=on_token,
                                                  should_stop=should_stop)


def _project_base_model(project: "Project | str | Path") -> str:
    """The base model named in a project folder's project.json (``default`` when unset)."""
    from backend.fsutil import read_json

    try:
        d = read_json(Path(project) / "project.json") or {}
    except ValueError:
        d = {}
    return d.get("base_model") or "default"


__all__ = ["Answer", "ChatSession", "MODES", "ask", "build_rag_chain", "format_context", "mode_name", "parse_mode"]
