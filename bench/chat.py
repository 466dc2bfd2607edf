"""Chat latency: a RAG answer from the default model (k = 4) against the seed articles' pipeline.

The sample project's documents are indexed with ``backend.rag.ingest`` (what
``tune ingest`` runs; not timed).  Then, with the models loaded (as they are in
the running app), the project's example questions are asked in turn,
alternating the two contenders:

``ours``  ``backend.rag.chain.ChatSession.ask`` in ``base+rag`` mode with the app's
          default retrieval (k = 4) and generation settings, streaming tokens;
``seed``  what the seed articles build: ``HuggingFacePipeline`` (a transformers
          ``text-generation`` pipeline on the same model, the same max new tokens,
          greedy) behind a "stuff" retrieval chain over ``Chroma.from_documents`` with
          ``HuggingFaceEmbeddings`` (same embedding model, same k).  ``RetrievalQA`` is
          gone from LangChain 1.x, so the chain is its documented LCEL equivalent
          (retriever | format | prompt | llm); its ``.stream()`` is used, so it gets
          every chance to show a token early.

``first_token_s``: question -> first streamed piece of the answer (median over
questions); ``tokens_per_s``: streamed pieces after the first ÷ their time;
``first_token_speedup_vs_seed`` = seed ÷ ours.  ``ask_cold_s``: ``tune ask
PROJECT "question"`` from process start to exit (answer printed), the median of
``--cold-runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, emit, log, median, ratio, setup_env

SAMPLE = REPO / "resources" / "sample_project"
SEED_PROMPT = ("Use the following pieces of context to answer the question at the end. If you don't know the "
               "answer, just say that you don't know, don't try to make up an answer.\n\n{context}\n\n"
               "Question: {question}\nHelpful Answer:")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def prepare_project(folder: Path, model: str | None, max_documents: int | None = None) -> Path:
    """A copy of the sample project (its base model replaced when ``model`` is given), documents ingested."""
    root = folder / "sample"
    shutil.copytree(SAMPLE, root)
    if model:
        pj = root / "project.json"
        d = json.loads(pj.read_text())
        d["base_model"] = model
        pj.write_text(json.dumps(d, indent=2))
    docs = sorted(str(p) for p in (root / "documents").iterdir() if p.is_file())[:max_documents]
    from backend.rag.index import ingest  # what `tune ingest` and the Chat page call

    ingest(root, docs)
    return root


def _timed_stream(pieces) -> dict:
    """Consume a stream of text pieces; first-piece latency and the rate after it."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    text = []
    for piece in pieces:
        if not piece:
            continue
        now = time.perf_counter()
        if first is None:
            first = now
        last = now
        n += 1
        text.append(piece)
    total = time.perf_counter() - t0
    return {"first_token_s": round(first - t0, 4) if first else round(total, 4), "total_s": round(total, 4),
            "pieces": n, "tokens_per_s": round((n - 1) / (last - first), 2) if n > 1 and last > first else None,
            "chars": len("".join(text))}


def seed_chain(model_path: str, embed_path: str, documents: list[Path], k: int, max_new_tokens: int, folder: Path):
    """The seed articles' RAG chain: HuggingFacePipeline + Chroma.from_documents retriever, "stuff" prompt."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import PromptTemplate
    from langchain_core.runnables import RunnablePassthrough
    from langchain_huggingface import HuggingFaceEmbeddings, HuggingFacePipeline
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    docs = [Document(page_content=p.read_text(encoding="utf-8"), metadata={"source": p.name}) for p in documents]
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=150).split_documents(docs)
    store = Chroma.from_documents(chunks, HuggingFaceEmbeddings(model_name=embed_path),
                                  persist_directory=str(folder / "seed-chroma"))
    llm = HuggingFacePipeline.from_model_id(model_id=model_path, task="text-generation",
                                            pipeline_kwargs={"max_new_tokens": max_new_tokens, "do_sample": False,
                                                             "return_full_text": False})
    retriever = store.as_retriever(search_kwargs={"k": k})

    def fmt(ds) -> str:
        return "\n\n".join(d.page_content for d in ds)

    return ({"context": retriever | fmt, "question": RunnablePassthrough()}
            | PromptTemplate.from_template(SEED_PROMPT) | llm | StrOutputParser())


def ask_cold(project: Path, question: str, runs: int) -> dict:
    """``tune ask PROJECT question``: process start -> exit with the answer printed."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "backend", "ask", str(project), question], cwd=str(REPO),
                              env=_env(), capture_output=True, text=True, timeout=900)
        dt = time.perf_counter() - t0
        if proc.returncode != 0 or not proc.stdout.strip():
            return {"error": f"tune ask failed (rc={proc.returncode}): {proc.stderr[-800:]}"}
        times.append(round(dt, 3))
    return {"ask_cold_s": median(times), "ask_cold_runs_s": times}


def run(model: str | None = None, questions: int = 3, cold_runs: int = 2, max_new_tokens: int | None = None,
        max_documents: int | None = None) -> dict:
    """Measure; return the ``chat`` block (with ``ask_cold_s``)."""
    setup_env()
    try:
        from backend.models import resolve_model
        from backend.rag.chain import ChatSession
        from backend.rag.chat_model import load_chat_model
        from backend.rag.embeddings import resolve_embedding_model
        from backend.rag.index import open_index
        from backend.rag.settings import GenerationSettings, RetrievalSettings
        from backend.workspace import Project
    except ImportError as e:
        return {"skipped": f"backend.rag not importable ({e})"}
    tmp = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    log("chat: ingesting the sample project (not timed) …")
    root = prepare_project(tmp, model, max_documents)
    project = Project.open(root)
    qs = list(project.example_questions)[:questions]
    gen = GenerationSettings() if max_new_tokens is None else GenerationSettings(max_new_tokens=max_new_tokens)
    settings = RetrievalSettings(k=4)
    out: dict[str, Any] = {"questions": qs, "k": settings.k, "max_new_tokens": gen.max_new_tokens,
                           "model": model or "default (SmolLM2-135M-Instruct)"}
    log("chat: loading our chat model and the seeds' pipeline (not timed) …")
    session = ChatSession(load_chat_model(None, project.base_model, settings=gen), open_index(project), settings)
    seed = seed_chain(resolve_model(project.base_model), str(resolve_embedding_model(None)),
                      sorted(p for p in (root / "documents").iterdir() if p.is_file())[:max_documents], settings.k,
                      gen.max_new_tokens, tmp)

    last: dict[str, Any] = {}

    def ours_pieces(q: str):
        import queue
        import threading
        qq: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                last["answer"] = session.ask(q, "base+rag", on_token=qq.put, generation=gen)
            finally:
                qq.put(None)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        while True:
            piece = qq.get()
            if piece is None:
                break
            yield piece
        t.join()

    # warm-up, both: the first generate call pays one-off costs
    _timed_stream(ours_pieces(qs[0]))
    _timed_stream(seed.stream(qs[0]))
    ours, base = [], []
    for i, q in enumerate(qs):
        order = ("ours", "seed") if i % 2 == 0 else ("seed", "ours")
        for who in order:
            log(f"chat: {who}: {q!r} …")
            r = _timed_stream(ours_pieces(q) if who == "ours" else seed.stream(q))
            if who == "ours":
                # an abstention is a canned sentence, not generated: it would flatter the first token
                r["abstained"] = bool(getattr(last.get("answer"), "abstained", False))
            (ours if who == "ours" else base).append(r)
    out["ours"] = ours
    out["seed"] = base
    generated = [r for r in ours if not r.get("abstained")] or ours
    out["abstained"] = sum(1 for r in ours if r.get("abstained"))
    out["first_token_s"] = median([r["first_token_s"] for r in generated])
    out["tokens_per_s"] = median([r["tokens_per_s"] for r in generated if r["tokens_per_s"]])
    out["seed_first_token_s"] = median([r["first_token_s"] for r in base])
    out["seed_tokens_per_s"] = median([r["tokens_per_s"] for r in base if r["tokens_per_s"]])
    out["first_token_speedup_vs_seed"] = ratio(out["seed_first_token_s"], out["first_token_s"])
    # whether the seeds' pipeline really streamed (more than one piece), or showed its answer whole
    out["seed_streamed"] = any(r["pieces"] > 1 for r in base)
    log("chat: tune ask, cold …")
    cold = ask_cold(root, qs[0], cold_runs)
    out.update(cold)
    out["measured"] = ("first token: question -> first streamed piece, models loaded, median over the project's "
                       "example questions, alternating ours / seed; ask_cold_s: `tune ask` process start -> exit")
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chat", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one question, short answers, one cold run (tests)")
    p.add_argument("--model", default=None, help="chat model instead of the sample project's default")
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {"model": a.model}
    if a.quick:
        kw.update(questions=1, cold_runs=1, max_new_tokens=8, max_documents=1)
    return emit(run(**kw), a.out)


if __name__ == "__main__":
    sys.exit(main())
