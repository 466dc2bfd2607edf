"""RetrievalQA from langchain-core runnables, in four modes.

``retrieve -> prompt with the passages -> chat model -> answer`` plus the
passages as sources (what the deprecated ``RetrievalQA`` class did, built from
runnables).  Modes: {base, tuned} x {with retrieval, without}; *base* is the
same model with its adapter disabled.

A :class:`ChatSession` holds the one chat model and the index and answers
questions in any mode, streaming tokens to a callback.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from backend import events as ev
from backend.errors import RunError
from backend.rag.index import DocumentIndex
from backend.rag.modes import MODES, mode_name, parse_mode
from backend.rag.settings import AnswerSettings, GenerationSettings, RetrievalSettings
from backend.rag.source import Source

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from backend.rag.evidence import Evidence

    from backend.rag.chat_model import HFChatModel
    from backend.workspace import Project

log = logging.getLogger(__name__)

ABSTAIN_ANSWER = "Your documents don't say."
RAG_USER_TEMPLATE = "Context:\n{context}\n\nQuestion: {question}"

# how answers that decline to answer read (the model's own words, or ours)
_ABSTAIN_PATTERNS = re.compile(
    r"documents? (?:do(?:es)?n[o']?t|do(?:es)? not) (?:say|mention|contain|state)|"
    r"\b(?:i )?(?:do not|don'?t|cannot|can'?t) (?:know|tell|say|find|answer)\b|"
    r"\bnot (?:mentioned|stated|specified|provided|given|found) in\b|"
    r"\bno information (?:about|on|in)\b|"
    r"\b(?:context|passages?|documents?) (?:does not|doesn'?t|do not|don'?t) (?:contain|provide|include|mention|say)",
    re.IGNORECASE)


_CLAIM = re.compile(r"\d+(?:[.,:]\d+)*|\b[A-Z][\w-]*[A-Z0-9][\w-]*\b|\b[A-Z][a-z]+\b")


def unsupported_claims(answer: str, context: str, question: str = "") -> list[str]:
    """Numbers, codes and names in ``answer`` that neither the context nor the question contains.

    A small model writes "set to 68 meters" next to a context that says "500 m":
    such an answer states something the documents do not.

    Examples
    --------
    >>> unsupported_claims("The radius is 68 meters.", "default radius 500 m", "How big is the geofence?")
    ['68']
    >>> unsupported_claims("E4 means the Wi-Fi password was rejected.", "E4 — Wi-Fi password rejected.")
    []
    """
    from backend.rag.hybrid import STOPWORDS

    text = context + " " + question
    # whole numbers and whole words: "2" is not supported by "2024", nor "Pro" by "provided"
    known = {t.casefold() for t in re.findall(r"\d+(?:[.,:]\d+)*|[^\W\d_][\w-]*", text)}
    out = []
    for m in _CLAIM.finditer(answer):
        w = m.group(0)
        if w.casefold() in STOPWORDS or w.casefold() in known:
            continue
        out.append(w)
    return list(dict.fromkeys(out))


def ground(answer: str, context: str, question: str, evidence: Sequence[dict[str, Any]],
           grounding: str) -> tuple[str, list[str]]:
    """The answer to show under ``grounding`` (``RetrievalSettings.grounding``), and what it lacked.

    ``"abstain"``: an answer stating numbers or codes that neither the context nor the
    question contains becomes :data:`ABSTAIN_ANSWER` (a wrong figure is the small model's
    usual invention; names are often paraphrased, so they don't count: bench/quality.md).
    Its leading sentences that state nothing unsupported are kept ("3-year warranty. … up to
    7 years." keeps the first sentence); only an answer whose first sentence is unsupported
    is replaced.  ``"quote"``: an answer stating such numbers, codes or names becomes the best
    evidence sentence (whole: the base model's first sentence is often a preamble, "The
    answer would depend on …").  ``"auto"`` is resolved by the caller
    (:func:`grounding_for`).  ``"off"``, an abstention, or nothing unsupported: the answer as it is.

    Examples
    --------
    >>> ev = [{"sentence": "Default radius **500 m**."}]
    >>> ground("It is 68 m.", "Default radius 500 m.", "How big?", ev, "abstain")
    ("Your documents don't say.", ['68'])
    >>> ground("It is 68 m.", "Default radius 500 m.", "How big?", ev, "quote")
    ('Default radius 500 m.', ['68'])
    >>> ground("It is 500 m. Most homes use 68 m.", "Default radius 500 m.", "How big?", ev, "abstain")
    ('It is 500 m.', ['68'])
    >>> ground("Ask Kestrel.", "Default radius 500 m.", "How big?", ev, "abstain")
    ('Ask Kestrel.', [])
    """
    if grounding == "off" or not evidence or is_abstention(answer):
        return answer, []

    def lacking(text: str) -> list[str]:
        claims = unsupported_claims(text, context, question)
        return [c for c in claims if any(ch.isdigit() for ch in c)] if grounding == "abstain" else claims

    claims = lacking(answer)
    if not claims:
        return answer, []
    from backend.rag.evidence import plain, split_sentences

    if grounding == "quote":
        return plain(evidence[0]["sentence"]), claims
    end = 0  # the answer up to the end of its last supported leading sentence
    for a, b in split_sentences(answer):
        if lacking(answer[a:b]):
            break
        end = b
    return (answer[:end] if end else ABSTAIN_ANSWER), claims


def grounding_for(grounding: str, tuned: bool) -> str:
    """The rule a mode uses: ``"auto"`` is *abstain* for the tuned model, *quote* for the base model.

    Measured on the sample evalset (bench/quality.md): the base model invents a figure next
    to the right sentence so often that quoting that sentence beats withholding (15/30
    against 9/30), while the RAFT-tuned model mostly copies, and withholding its rare
    inventions keeps the abstentions on unanswerable questions (19/30 against 16/30).
    """
    if grounding == "auto":
        return "abstain" if tuned else "quote"
    return grounding


def is_abstention(text: str) -> bool:
    """Whether an answer declines to answer ("Your documents don't say.", "I don't know", ...).

    Examples
    --------
    >>> is_abstention(ABSTAIN_ANSWER), is_abstention("E4 means the Wi-Fi password was rejected.")
    (True, False)
    """
    t = " ".join((text or "").replace("’", "'").split())
    if not t:
        return False
    return t.casefold().startswith(ABSTAIN_ANSWER.casefold().rstrip(".")) or bool(_ABSTAIN_PATTERNS.search(t))


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
    abstained
        The chat declined to answer (:data:`ABSTAIN_ANSWER`: nothing relevant
        was retrieved), or the model's answer says it does not know.
    evidence
        The sentences the answer rests on, best first:
        ``{"source_index", "sentence", "start", "end", "score"}`` (``start`` /
        ``end`` are character offsets into ``sources[source_index].text``).
    relevance
        The best evidence sentence's score (compared with the abstention threshold).
    quoted
        The model's answer stated numbers or names the evidence does not hold, so the
        best evidence sentence is shown instead (``RetrievalSettings.grounding``).
    withheld, unsupported
        When grounding replaced the model's words (a quote, or :data:`ABSTAIN_ANSWER`):
        those words, and the numbers, codes or names in them the documents don't contain.
    """

    question: str
    answer: str
    mode: str
    sources: list[Source] = field(default_factory=list)
    seconds: float = 0.0
    stopped: bool = False
    abstained: bool = False
    evidence: list[dict[str, Any]] = field(default_factory=list)
    relevance: float | None = None
    quoted: bool = False
    withheld: str = ""
    unsupported: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (the ``tune ask --json`` output)."""
        return {"question": self.question, "answer": self.answer, "mode": self.mode,
                "sources": [s.to_dict() for s in self.sources], "seconds": round(self.seconds, 3),
                "stopped": self.stopped, "abstained": self.abstained, "evidence": list(self.evidence),
                "relevance": None if self.relevance is None else round(self.relevance, 4), "quoted": self.quoted,
                "withheld": self.withheld, "unsupported": list(self.unsupported)}


# ---------------------------------------------------------------------------
# prompt


def format_context(sources: Sequence[Source], max_chars: int) -> str:
    """The passages as numbered blocks with their file names, cut to ``max_chars``."""
    blocks, used = [], 0
    for i, s in enumerate(sources, 1):
        head = f"[{i}] {s.file}" + (f" (page {s.shown_page})" if s.shown_page is not None else "")
        room = max_chars - used - len(head) - 2
        if room <= 50:
            break
        text = s.text if len(s.text) <= room else s.text[:room].rsplit(" ", 1)[0] + " …"
        blocks.append(f"{head}\n{text}")
        used += len(head) + len(text) + 2
    return "\n\n".join(blocks)


def build_context(question: str, sources: Sequence[Source], settings: RetrievalSettings,
                  embeddings: Any = None, lexicon: Any = None) -> "tuple[str, Evidence | None]":
    """The context text for the prompt and the evidence it was built from.

    With ``settings.evidence`` the best sentences of the passages (and their
    neighbours) within ``settings.evidence_chars``; otherwise the whole
    passages cut to ``settings.max_context_chars``.
    """
    if not sources:
        return "", None
    if settings.evidence:
        from backend.rag.evidence import select_evidence

        ev_ = select_evidence(question, sources, embeddings, budget=settings.evidence_chars,
                              neighbours=settings.evidence_neighbours, lexical_weight=settings.lexical_weight,
                              lexicon=lexicon, section_weight=settings.section_weight)
        return ev_.context, ev_
    return format_context(sources, settings.max_context_chars), None


def rag_prompt(question: str, context: str, settings: RetrievalSettings) -> list[tuple[str, str]]:
    """``[(role, text)]`` of the prompt with retrieved context: the chat and RAFT training use this one format."""
    user = RAG_USER_TEMPLATE.format(context=context, question=question) if context else question
    return [("system", settings.system_prompt), ("user", user)]


def rag_messages(inputs: dict[str, Any], settings: RetrievalSettings) -> list:
    """System + user messages for a question with retrieved passages (``inputs["context"]`` when given)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    context = inputs.get("context")
    if context is None:
        context = format_context(inputs.get("sources") or [], settings.max_context_chars)
    cls = {"system": SystemMessage, "user": HumanMessage}
    return [cls[role](content=text) for role, text in rag_prompt(inputs["question"], context, settings)]


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
            return list(given) if given is not None else index.search(inputs["question"], settings.k, settings)

        def context(inputs: dict[str, Any]) -> str:
            given = inputs.get("context")
            if given is not None:
                return given
            return build_context(inputs["question"], inputs["sources"], settings,
                                 index.embeddings if settings.evidence else None,
                                 index.lexical if settings.evidence else None)[0]

        prompt = RunnableLambda(lambda x: rag_messages(x, settings), name="rag_prompt")
        return (RunnablePassthrough.assign(sources=RunnableLambda(retrieve, name="retrieve"))
                | RunnablePassthrough.assign(context=RunnableLambda(context, name="evidence"))
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
        return self.index.search(question, k or self.settings.k, self.settings)

    def evidence(self, question: str, sources: Sequence[Source]) -> "tuple[str, Evidence | None]":
        """The prompt's context for ``question`` and the evidence sentences it holds."""
        if self.index is None:
            return format_context(sources, self.settings.max_context_chars), None
        emb = self.index.embeddings if self.settings.evidence else None
        lex = self.index.lexical if self.settings.evidence else None
        return build_context(question, sources, self.settings, emb, lex)

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
        chain = self.chain(mode, **kw)  # checks the mode before anything is retrieved
        inputs: dict[str, Any] = {"question": question}
        evidence: list[dict[str, Any]] = []
        relevance: float | None = None
        if parse_mode(mode)[1]:
            found = list(sources) if sources is not None else self.retrieve(question)
            inputs["sources"] = found
            context, ev_ = self.evidence(question, found)
            inputs["context"] = context
            if ev_ is not None:
                evidence, relevance = ev_.records(), ev_.relevance
            if self.settings.abstain and (not found or (relevance is not None and relevance < self.settings.abstain_threshold)):
                # nothing relevant retrieved: say so instead of letting the model invent an answer
                if on_sources is not None and found:
                    on_sources(found)
                if on_token is not None:
                    on_token(ABSTAIN_ANSWER)
                return Answer(question, ABSTAIN_ANSWER, mode, found, time.perf_counter() - t0, False,
                              abstained=True, evidence=evidence, relevance=relevance)
            if self.settings.copy_bias > 0 and context:
                kw["copy_bias"] = (context, self.settings.copy_bias)
                chain = self.chain(mode, **kw)
        parts: list[str] = []
        found = []
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
        text = "".join(parts).strip()
        quoted, withheld, claims = False, "", []
        if evidence and not stopped and "context" in inputs:
            rule = grounding_for(self.settings.grounding, parse_mode(mode)[0])
            shown, claims = ground(text, inputs["context"], question, evidence, rule)
            if claims:  # quote always shows the evidence sentence; abstain shows a shorter answer or abstains
                withheld, text, quoted = text, shown, rule == "quote"
            if not is_abstention(text):
                from backend.rag.evidence import order_by_support

                evidence = order_by_support(text, evidence)  # the sentence the answer rests on first
        return Answer(question, text, mode, found, time.perf_counter() - t0, stopped,
                      abstained=is_abstention(text), evidence=evidence, relevance=relevance, quoted=quoted,
                      withheld=withheld, unsupported=claims)

    def ask_all(self, question: str, modes: Sequence[str] | None = None, **kwargs: Any) -> dict[str, Answer]:
        """Answer in several modes (default: all this session can), retrieving once."""
        modes = list(modes or self.modes)
        shared = self.retrieve(question) if any(m.endswith("+rag") for m in modes) else None
        return {m: self.ask(question, m, sources=shared if m.endswith("+rag") else None, **kwargs) for m in modes}


def ask(project: "Project | str | Path", question: str, *, run_dir: str | Path | None = None,
        tuned: bool | None = None, rag: bool = True, k: int | None = None,
        generation: GenerationSettings | None = None, settings: AnswerSettings | None = None,
        on_token: Callable[[str], None] | None = None, on_event: ev.OnEvent = ev.no_event,
        should_stop: ev.ShouldStop | None = None, allow_hub: bool | None = None) -> Answer:
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
        Passages to retrieve (replaces ``settings.retrieval.k``).
    generation
        Generation settings (replace ``settings.generation``).
    settings
        The answer settings; default: the project's saved ones
        (:meth:`backend.workspace.Project.answer_settings`), as the Chat page answers.
    on_token, on_event, should_stop
        Streaming callback, progress events, cancellation.
    allow_hub
        The person's hub choice (``None``: :func:`backend.trust.hub_allowed`).

    Returns
    -------
    Answer

    Raises
    ------
    IndexStoreError, RunError, ModelError
        No or empty index, a missing run or adapter, an adapter for another base model.
    """
    from backend.rag.chat_model import load_chat_model
    from backend.rag.index import open_index, store_stamp

    index = open_index(project) if rag else None  # cheap checks first: no model load for a missing index
    opened_at = store_stamp(project) if index is not None else None
    if tuned is None:
        tuned = run_dir is not None
    if tuned and run_dir is None:
        raise RunError("tuned mode needs a run", hint="give --run RUN_DIR, or ask the base model with --base")
    base = None
    if run_dir is None:
        base = _project_base_model(project) if isinstance(project, (str, Path)) else project.base_model
    if settings is None:
        settings = saved_settings(project)
    if k:
        settings = settings.with_overrides({"retrieval.k": k})
    chat = load_chat_model(run_dir, base, settings=generation or settings.generation, allow_hub=allow_hub,
                           on_event=on_event)
    answer = ChatSession(chat, index, settings.retrieval).ask(question, mode_name(tuned, rag), on_token=on_token,
                                                              should_stop=should_stop)
    if index is not None and answer.sources:
        _remember_store_read(project, index.dir, opened_at)
    return answer


def _remember_store_read(project: "Project | str | Path", index_dir: Path, opened_at: Any) -> None:
    """After passages came from the store: record its files as checked, so the next reader skips the probe.

    Chroma rewrites the HNSW segment files and touches its database whenever a client
    opens and queries the store, so the stamp :func:`backend.rag.storecheck.check`
    recorded stops matching and every later ``tune ask`` paid the probe child again
    (1.5–3.5 s here).  The files as they are now were written by this process's own
    client and have just answered a query.  They are recorded only under the
    project's write lock (no ingest is half-way through) and when no ingest finished
    since this process opened the store (the index record's stamp is unchanged);
    otherwise, or on any error, the next reader checks as before
    (docs/architecture.md, "The job runner and the model host").
    """
    from backend.lock import ProjectLock
    from backend.rag import storecheck
    from backend.rag.index import store_stamp
    from backend.workspace import Project

    root = project.root if isinstance(project, Project) else Path(project)
    try:
        with ProjectLock(root, "recording that the document index was read"):
            if store_stamp(project) == opened_at:
                storecheck.remember_ok(index_dir)
    except Exception as e:  # noqa: BLE001 - a busy or read-only project: the next reader checks the store
        log.debug("index read not recorded: %s", e)


def saved_settings(project: "Project | str | Path") -> AnswerSettings:
    """A project's saved answer settings (the defaults when it has none, or they are invalid)."""
    from backend.workspace import Project, ProjectError

    if not isinstance(project, Project):
        try:
            project = Project.open(project)
        except (ProjectError, TypeError):
            return AnswerSettings()
    return project.answer_settings()


def _project_base_model(project: "Project | str | Path") -> str:
    """The base model named in a project folder's project.json (``default`` when unset)."""
    from backend.fsutil import read_json

    try:
        d = read_json(Path(project) / "project.json")
    except (OSError, ValueError):
        d = None
    base = d.get("base_model") if isinstance(d, dict) else None  # any content (docs/architecture.md, "Readers")
    return base if isinstance(base, str) and base.strip() else "default"


__all__ = ["unsupported_claims", "ground", "grounding_for", "ABSTAIN_ANSWER", "Answer", "ChatSession", "MODES", "ask", "build_context", "build_rag_chain",
           "format_context", "is_abstention", "mode_name", "parse_mode", "rag_prompt"]
