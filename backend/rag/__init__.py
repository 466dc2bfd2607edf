"""Headless RetrievalQA: a Chroma index of the project's documents, answers with sources.

Modules
-------
``settings``    generation / retrieval / index settings (dataclasses with help texts)
``embeddings``  the sentence embedder (bundled all-MiniLM-L6-v2) and its identity
``index``       the persistent, incremental Chroma index in ``<project>/index/``
``chat_model``  a transformers model (+ PEFT adapter) as a streaming LangChain chat model
``chain``       the RetrievalQA chain from runnables; four modes; :class:`ChatSession`
``evaluate``    the four-mode evaluation over a questions file
``cli``         ``tune ingest`` / ``ask`` / ``eval``

Names are imported lazily: ``import backend.rag`` loads no heavy library.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GenerationSettings": "settings", "RetrievalSettings": "settings", "IndexSettings": "settings",
    "load_embeddings": "embeddings", "EmbedderInfo": "embeddings",
    "DocumentIndex": "index", "IngestReport": "index", "Source": "index", "ingest": "index",
    "index_documents": "index", "open_index": "index", "index_status": "index", "remove_sources": "index",
    "HFChatModel": "chat_model", "load_chat_model": "chat_model",
    "Answer": "chain", "ChatSession": "chain", "MODES": "chain", "ask": "chain", "build_rag_chain": "chain",
    "EvalReport": "evaluate", "evaluate": "evaluate", "read_questions": "evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'backend.rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"backend.rag.{mod}"), name)
    globals()[name] = value
    return value
