"""The model host's side: the chat model, the embedder and the index, kept warm in one child process.

The Chat and Evaluate pages send their work here through
:class:`backend.jobs.ModelHost` (docs/architecture.md, "The job runner and the
model host").  :class:`Models` holds one chat model (keyed by run and base
model: a request for another one replaces it), the embedder and the open index
of one project; :data:`OPS` are the requests it answers, each a plain function
of JSON parameters returning JSON.  ``tune ask`` / ``tune eval`` call the same
backend functions in their own process.

The module also turns the JSON results back into the backend's objects
(:func:`answer_from_dict`, :func:`ingest_report_from_dict`, …) for the
supervising side; those helpers import nothing heavy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from backend import events as ev


# ---------------------------------------------------------------------------
# JSON -> objects (the supervising side; no heavy imports)


def source_from_dict(d: Any):
    """A :class:`backend.rag.source.Source` from its dict (an object is passed through)."""
    from backend.rag.source import Source

    if not isinstance(d, dict):
        return d
    names = {f.name for f in dataclasses.fields(Source)}
    page = d.get("page")
    kw = {k: v for k, v in d.items() if k in names}
    kw.setdefault("file", Path(str(d.get("path") or "?")).name)
    kw.setdefault("path", "")
    kw.setdefault("chunk", 0)
    kw.setdefault("text", "")
    kw.setdefault("score", 0.0)
    kw["page"] = int(page) if isinstance(page, (int, float)) else None
    return Source(**kw)


def answer_from_dict(d: Any):
    """A :class:`backend.rag.chain.Answer` from ``Answer.to_dict()`` (an object is passed through)."""
    from backend.rag.chain import Answer

    if not isinstance(d, dict):
        return d
    names = {f.name for f in dataclasses.fields(Answer)}
    kw = {k: v for k, v in d.items() if k in names}
    kw["sources"] = [source_from_dict(s) for s in d.get("sources") or []]
    return Answer(**kw)


def ingest_report_from_dict(d: dict):
    """A :class:`backend.rag.index.IngestReport` from its dict."""
    from backend.rag.index import IngestReport

    names = {f.name for f in dataclasses.fields(IngestReport)}
    return IngestReport(**{k: v for k, v in d.items() if k in names})


def rows_from_dicts(rows: list[dict]) -> list:
    """:class:`backend.evalsets.EvalRow` objects from ``dataclasses.asdict`` dicts."""
    from backend.evalsets import EvalRow

    return [EvalRow(**r) for r in rows]


def pack(obj: Any) -> dict:
    """An object without a JSON form (a data check's report) as a JSON value: ``{"pickle": base64}``.

    Only results travel this way, from the host child to the process that started
    it (the same program and version); nothing read from a file is ever unpickled.
    """
    import base64
    import pickle

    return {"pickle": base64.b64encode(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")}


def unpack(value: dict) -> Any:
    """The object :func:`pack` sent (from our own host child)."""
    import base64
    import pickle

    return pickle.loads(base64.b64decode(value["pickle"]))  # noqa: S301 (our own child's result)


def settings_dict(settings: Any) -> dict | None:
    """Settings (a dataclass with ``to_dict``, or a dict) as the plain dict a request carries."""
    if settings is None:
        return None
    if isinstance(settings, dict):
        return dict(settings)
    to_dict = getattr(settings, "to_dict", None)
    return to_dict() if callable(to_dict) else dataclasses.asdict(settings)


# ---------------------------------------------------------------------------
# the host's state


class Models:
    """What the host keeps between requests: one chat model, the embedder and one project's index."""

    def __init__(self) -> None:
        self.chat = None
        self.chat_key: tuple | None = None
        self.embeddings = None
        self.index = None
        self.index_root: str | None = None
        self.index_stamp: tuple | None = None

    def embedder(self, on_event: ev.OnEvent):
        """The sentence embedder, loaded on first use."""
        if self.embeddings is None:
            from backend.rag.embeddings import load_embeddings

            on_event(ev.progress("load", 0, 1, "Loading the embedding model…"))
            self.embeddings = load_embeddings()
        return self.embeddings

    def chat_model(self, run_dir: str | None, base_model: str | None, on_event: ev.OnEvent):
        """The chat model of ``run_dir`` (or ``base_model`` without a run); another one replaces it."""
        from backend.rag.chat_model import load_chat_model

        key = (run_dir or None, None if run_dir else base_model)
        if self.chat is None or self.chat_key != key:
            self.chat = self.chat_key = None  # free the old one before the new one loads
            self.chat = load_chat_model(run_dir, None if run_dir else base_model, on_event=on_event)
            self.chat_key = key
        return self.chat

    def open_index(self, root: str, on_event: ev.OnEvent):
        """The project's index, opened once (and again after an ingest here or in another process)."""
        from backend.rag.index import open_index
        from backend.rag.index import store_stamp

        stamp = store_stamp(root)
        if self.index is None or self.index_root != root or self.index_stamp != stamp:
            self.index = open_index(root, embeddings=self.embedder(on_event))
            self.index_root, self.index_stamp = root, stamp
        return self.index

    def release(self) -> None:
        """Drop the chat model and the index (the embedder is small and stays)."""
        self.chat = self.chat_key = None
        self.index = self.index_root = None


def _settings(cls_path: str, d: dict | None):
    if d is None:
        return None
    module, name = cls_path.rsplit(".", 1)
    import importlib

    return getattr(importlib.import_module(module), name)(**d)


# ---------------------------------------------------------------------------
# the requests


def op_ask(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Answer a question in each mode, streaming ``answer_start`` / ``sources`` / ``token`` / ``answer``."""
    from backend.rag.chain import ChatSession

    modes = list(p["modes"])
    rag = any(x.endswith("+rag") for x in modes)
    chat = m.chat_model(p.get("run_dir"), p.get("base_model"), on_event)
    index = m.open_index(str(p["project_root"]), on_event) if rag else None
    session = ChatSession(chat, index)
    retrieval = _settings("backend.rag.settings.RetrievalSettings", p.get("retrieval"))
    if retrieval is not None:  # the Chat page's retrieval settings (hybrid, evidence, abstention...)
        session.settings = retrieval
    if p.get("k"):
        session.settings.k = int(p["k"])
    generation = _settings("backend.rag.settings.GenerationSettings", p.get("generation"))
    question = p["question"]
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
            on_event(ev.event(ev.SOURCES, mode=mode, sources=[s.to_dict() for s in use]))
        answer = session.ask(question, mode, sources=use, on_token=token, should_stop=should_stop,
                             generation=generation)
        on_event(ev.event(ev.ANSWER, mode=mode, answer=answer.to_dict()))
        out[mode] = answer.to_dict()
    return out


def op_ingest(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Bring the project's index up to date with the documents (incremental)."""
    from backend.rag.index import ingest

    report = ingest(p["project_root"], [str(x) for x in p.get("documents") or []],
                    embeddings=m.embedder(on_event), on_event=on_event, should_stop=should_stop)
    m.index = m.index_root = None  # reopen with the new content
    return report.to_dict()


def op_evaluate(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Index the documents, then score a run in four modes; the report's dict (also written to the run)."""
    from backend.rag.evaluate import evaluate

    emb = m.embedder(on_event)
    if p.get("documents"):
        from backend.rag.index import ingest

        ingest(p["project_root"], [str(x) for x in p["documents"]], embeddings=emb, on_event=on_event,
               should_stop=should_stop)
        m.index = m.index_root = None
    chat = m.chat_model(str(p["run_dir"]), None, on_event)
    # the Chat page's settings (default: the project's saved ones); evaluate() decodes greedily
    if p.get("settings"):
        from backend.rag.settings import AnswerSettings

        settings = AnswerSettings.from_dict(p["settings"])
    else:
        from backend.rag.chain import saved_settings

        settings = saved_settings(p["project_root"])
    if p.get("max_new_tokens"):
        settings = settings.with_overrides({"generation.max_new_tokens": int(p["max_new_tokens"])})
    rep = evaluate(p["project_root"], p["evalset"], p["run_dir"], forgetting=bool(p.get("forgetting")),
                   settings=settings, chat_model=chat, embeddings=emb, on_event=on_event, should_stop=should_stop)
    return rep.to_dict()


def _rows_and_overlap(rows: list, against: Any) -> dict:
    from backend.evalsets import training_overlap

    return {"rows": [dataclasses.asdict(r) for r in rows], "overlap": training_overlap(rows, against)}


def op_from_validation(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """The run's held-out validation rows as test rows, and which of them are also training rows."""
    from backend.evalsets import from_validation

    rows = from_validation(p["run_dir"], limit=int(p.get("limit") or 50), on_event=on_event,
                           should_stop=should_stop)
    return _rows_and_overlap(rows, p["run_dir"])


def op_draft(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Questions drafted from the documents by a teacher model, and their training overlap."""
    from backend.evalsets import draft_from_documents
    from backend.workspace import Project

    project = Project.open(Path(p["project_root"]))
    m.release()  # the teacher needs the memory more than a warm chat model
    rows = draft_from_documents(project, n=int(p.get("n") or 20), teacher=p.get("teacher") or None,
                                on_event=on_event, should_stop=should_stop)
    return _rows_and_overlap(rows, project)


def op_release(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> None:
    """Drop the chat model and the index (frees memory; the next request loads them again)."""
    m.release()


def op_resolve_model(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Resolve a model source (converting a GGUF once) and read its facts."""
    from backend.models import model_info, read_chat_template, resolve_model

    source = p["source"]
    on_event(ev.progress("resolve", 0, 1, f"Looking for {source}…"))
    path = resolve_model(source, allow_hub=bool(p.get("allow_hub")),
                         allow_pickle_weights=bool(p.get("allow_pickle_weights")), on_event=on_event)
    is_dir = Path(path).is_dir()
    info = model_info(path) if is_dir else None
    template = read_chat_template(path) if is_dir else ""
    on_event(ev.progress("resolve", 1, 1, "Ready"))
    return {"source": source, "path": str(path), "info": info.to_dict() if info else None,
            "chat_template": template}


def op_detect_device(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """The device training will use (imports torch: here, never in the window's process)."""
    from backend.runtime import detect_device

    return dataclasses.asdict(detect_device(p.get("want") or "auto"))


def op_check_data(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """Check dataset files with the model's tokenizer and preview the training files (the Data page's check).

    Returns :func:`pack` of ``(backend.data.CheckReport, [backend.data.PreviewRow])``.
    """
    from backend.config import RunConfig
    from backend.data.pipeline import check_files, preview
    from backend.models import load_tokenizer

    cfg = RunConfig.from_dict(p["config"])
    on_event(ev.progress("data", 0, None, "Loading the tokenizer…"))
    tok = load_tokenizer(p["model_path"], trust_remote_code=cfg.model.trust_remote_code)
    report = check_files(list(p["files"]), tok, cfg, on_event=on_event, should_stop=should_stop)
    ok_train = [f for f in p.get("train_files") or [] if not any(x.file == f for x in report.errors)]
    rows = [] if not ok_train else preview(ok_train, tok, cfg, n=int(p.get("preview") or 8))
    return pack((report, rows))


def op_ping(m: Models, p: dict, on_event: ev.OnEvent, should_stop: ev.ShouldStop) -> dict:
    """What the host holds (tests and the log)."""
    import os
    import sys

    heavy = sorted(x for x in ("torch", "transformers", "chromadb", "onnxruntime") if x in sys.modules)
    return {"pid": os.getpid(), "chat": list(m.chat_key) if m.chat_key else None,
            "embedder": m.embeddings is not None, "index": m.index_root, "modules": heavy}


Op = Callable[[Models, dict, ev.OnEvent, ev.ShouldStop], Any]
OPS: dict[str, Op] = {"ask": op_ask, "ingest": op_ingest, "evaluate": op_evaluate,
                      "from_validation": op_from_validation, "draft": op_draft, "release": op_release,
                      "resolve_model": op_resolve_model, "detect_device": op_detect_device, "check_data": op_check_data,
                      "ping": op_ping}
"""The requests a model host answers: ``{"op": name, "params": {...}}``."""


__all__ = ["Models", "OPS", "answer_from_dict", "ingest_report_from_dict", "pack", "rows_from_dicts", "settings_dict",
           "source_from_dict", "unpack"]
