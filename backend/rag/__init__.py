"""Headless RetrievalQA: a Chroma index of the project's documents, answers with sources.

Modules
-------
``settings``    generation / retrieval / index settings (dataclasses with help texts)
``embeddings``  the sentence embedder (bundled all-MiniLM-L6-v2) and its identity
``index``       the persistent, incremental Chroma index in ``<project>/index/``
``source``      :class:`~backend.rag.source.Source`, one retrieved passage
``hybrid``      BM25 over the chunks' words, fused with the vector search
``chat_model``  a transformers model (+ PEFT adapter) as a streaming LangChain chat model
``chain``       the RetrievalQA chain from runnables; four modes; :class:`ChatSession`
``evaluate``    the four-mode evaluation over a questions file
``cli``         ``tune ingest`` / ``ask`` / ``eval``

``import backend.rag`` loads nothing: import names from the module that defines them
(``from backend.rag.index import open_index``), so the import graph shows the real
dependency (docs/architecture.md, "Layers").
"""
