"""RAG ingest and query: ``backend.rag`` vs ``Chroma.from_documents`` with default settings.

The same generated corpus (``--chunks`` chunks, default 2,000, from 50 sources),
the same bundled embedding model (all-MiniLM-L6-v2) loaded before the clock
starts for both:

``baseline``   ``Chroma.from_documents(docs, HuggingFaceEmbeddings(model_name=...), persist_directory=...)``
``ours``       ``backend.rag.index_documents(project, docs)`` (persistent, incremental)

Then ``ours`` again on the unchanged corpus (re-ingest: should find nothing to
embed), and the latency of ``DocumentIndex.search`` (embed the question + top-4)
over generated questions: p50 / p95.

``ours`` uses the app's default embedder backend (``auto``: ONNX Runtime on the
CPU, see ``backend/rag/onnx_embed.py``); ``embedder_backend`` records which one
ran.  ``retrieval_agreement`` is the share of questions whose top-4 passages
(in order) are the same from ours and from the baseline store; it must be 1.0:
the faster path may not change what is retrieved.  The machine is shared, so
the two ingests alternate over ``--repeats`` rounds (default 3) and the
medians are compared; process CPU seconds are recorded too.

``ingest_roofline_fraction`` says how close ingest comes to what this CPU's
matrix units can do: the float32 GEMM rate is measured in the same run with
``torch.matmul`` on the embedder's own layer shapes (tokens x 384 -> 1536,
1536 -> 384, 384 -> 1152, 384 -> 384 for MiniLM), on as many cores as the
embedder uses; the roofline time is the chunks' real tokens x the encoder's
GEMM FLOPs per token (attention scores and softmax not counted: the bound is
generous to us) ÷ that rate; the fraction is roofline time ÷ measured ingest
time (1.0 = ingest runs as fast as its matrix products alone could).

``ingest_phases`` says where an ingest's time goes (``IngestReport.phases``,
timed inside ``backend/rag/index.py``): ``ours`` for the chunks above (the
median of each phase over the rounds), ``files`` for ``tune ingest``'s own path
(``backend.rag.index.ingest``) over the same corpus written as one Markdown file
per source, so reading and chunking are in it too.  ``embed`` includes the
embedder's one tokenisation; ``tokenize_alone_s`` is that tokeniser call on the
same chunks, timed alone.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import _text, emit, log, median, percentile, ratio, setup_env

_TOPICS = ("solar panels", "sourdough bread", "river ecology", "tax returns", "bicycle repair", "python threads",
           "chess openings", "bird migration", "kidney health", "jazz harmony", "roof insulation", "tide tables",
           "container shipping", "volcano monitoring", "wine storage", "library cataloguing")


def make_corpus(n_chunks: int, n_sources: int = 50, seed: int = 0):
    """``n_chunks`` LangChain documents (~400-1000 characters) from ``n_sources`` sources, plus questions."""
    from langchain_core.documents import Document

    rng = random.Random(seed)
    docs, questions = [], []
    per = max(1, n_chunks // n_sources)
    for i in range(n_chunks):
        src = f"docs/source-{min(i // per, n_sources - 1):03d}.md"
        topic = rng.choice(_TOPICS)
        code = f"{rng.choice('ABCDEFGH')}{rng.randint(100, 999)}"
        fact = f"The {topic} reference code of section {i} is {code}."
        body = _text(rng, rng.randint(60, 150))
        docs.append(Document(page_content=f"{fact} {body}", metadata={"source": src, "chunk": i % per}))
        if i % max(1, n_chunks // 100) == 0:
            questions.append(f"What is the {topic} reference code of section {i}?")
    return docs, questions


def _baseline_ingest(docs, folder: Path, model_dir: str, emb=None):
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings

    if emb is None:
        emb = HuggingFaceEmbeddings(model_name=model_dir)
        emb.embed_documents(["warm up"])  # model load and first call are not timed
    t, c = time.perf_counter(), time.process_time()
    vs = Chroma.from_documents(docs, emb, persist_directory=str(folder))
    return vs, time.perf_counter() - t, time.process_time() - c, emb


def encoder_shapes(emb) -> dict:
    """Hidden size, feed-forward size and layer count of the embedder (MiniLM-L6's when unknown)."""
    try:
        cfg = emb._client[0].auto_model.config
        return {"hidden": int(cfg.hidden_size), "intermediate": int(cfg.intermediate_size),
                "layers": int(cfg.num_hidden_layers)}
    except Exception:  # noqa: BLE001 - a backend without a torch model: the bundled model's shapes
        return {"hidden": 384, "intermediate": 1536, "layers": 6}


def gemm_shapes(hidden: int, intermediate: int) -> list[tuple[int, int]]:
    """(in, out) of one encoder layer's matrix products: fused QKV, attention output, FFN up, FFN down."""
    return [(hidden, 3 * hidden), (hidden, hidden), (hidden, intermediate), (intermediate, hidden)]


def flops_per_token(shapes: dict) -> float:
    """GEMM FLOPs one token costs in the whole encoder (2 x in x out per product)."""
    return 2.0 * shapes["layers"] * sum(i * o for i, o in gemm_shapes(shapes["hidden"], shapes["intermediate"]))


def measure_gemm(shapes: dict, tokens: int = 4096, repeats: int = 5) -> dict:
    """float32 ``torch.matmul`` rate (FLOP/s) on one layer's shapes: the sum of the median time of each."""
    import torch

    torch.manual_seed(0)
    total_t, total_f = 0.0, 0.0
    for i, o in gemm_shapes(shapes["hidden"], shapes["intermediate"]):
        x, w = torch.randn(tokens, i), torch.randn(i, o)
        out = torch.empty(tokens, o)
        torch.matmul(x, w, out=out)  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            torch.matmul(x, w, out=out)
            times.append(time.perf_counter() - t)
        total_t += median(times)
        total_f += 2.0 * tokens * i * o
    return {"flops_per_s": total_f / total_t, "tokens": tokens, "threads": torch.get_num_threads()}


def count_tokens(emb, texts: list[str]) -> int:
    """Real tokens the embedder sees (its tokenizer, truncated at its max sequence length)."""
    client = emb._client
    enc = client.tokenizer(texts, truncation=True, max_length=int(client.max_seq_length or 512))
    return sum(len(ids) for ids in enc["input_ids"])


def median_phases(reports: list[dict]) -> dict:
    """Each phase's median seconds over the rounds."""
    keys = sorted({k for r in reports for k in r})
    return {k: round(median([r.get(k, 0.0) for r in reports]), 4) for k in keys}


def files_ingest(docs, project: Path, emb) -> dict:
    """``tune ingest``'s path over the corpus as files: one Markdown file per source, then ``index.ingest``."""
    from backend.rag.index import ingest

    folder = project / "documents"
    folder.mkdir(parents=True)
    by_source: dict[str, list[str]] = {}
    for d in docs:
        by_source.setdefault(d.metadata["source"], []).append(d.page_content)
    for src, texts in by_source.items():
        (folder / Path(src).name).write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    log(f"rag: tune ingest's path, {len(by_source)} files …")
    t = time.perf_counter()
    rep = ingest(project, [folder], embeddings=emb)
    s = time.perf_counter() - t
    return {"files": len(by_source), "chunks_embedded": rep.chunks_embedded, "seconds": round(s, 3),
            "phases": rep.phases}


def tokenize_alone(emb, texts: list[str]) -> float:
    """Seconds the embedder's tokeniser takes over ``texts`` on its own (ONNX Runtime's, else the torch model's)."""
    texts = [t.replace("\n", " ") for t in texts]
    onnx = getattr(emb, "_onnx", None)
    t = time.perf_counter()
    if onnx is not None:
        onnx.tokenize(texts)
    else:
        count_tokens(emb, texts)
    return time.perf_counter() - t


def run(n_chunks: int = 2000, n_queries: int = 50, repeats: int = 3) -> dict:
    """Measure; return the ``rag`` block."""
    setup_env()
    try:
        from backend.rag.embeddings import load_embeddings
        from backend.rag.index import index_documents, open_index
        from backend.rag.embeddings import resolve_embedding_model
    except ImportError as e:
        return {"skipped": f"backend.rag not importable ({e})"}
    docs, questions = make_corpus(n_chunks)
    questions = questions[:n_queries]
    model_dir = str(resolve_embedding_model(None))
    log("rag: loading the embedding model (not timed) …")
    ours_emb = load_embeddings()
    ours_emb.embed_documents(["warm up"])
    base_emb = None
    out: dict[str, Any] = {"chunks": len(docs), "sources": len({d.metadata["source"] for d in docs}),
                           "mean_chunk_chars": round(sum(len(d.page_content) for d in docs) / len(docs), 1),
                           "embedding_model": "all-MiniLM-L6-v2 (bundled)",
                           "embedder_backend": ours_emb.backend,
                           "embedder_backend_detail": ours_emb.describe_backend(),
                           "ours_batch_size": int(ours_emb.encode_kwargs.get("batch_size", 0)),
                           "repeats": max(1, repeats)}
    shapes = encoder_shapes(ours_emb)
    gemm = [measure_gemm(shapes)]
    base_s, ours_s, reingest_s, base_cpu, ours_cpu = [], [], [], [], []
    ours_phases: list[dict] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-rag-"))
    ours_project = None
    base_vs = None
    for r in range(max(1, repeats)):
        order = ("baseline", "ours") if r % 2 == 0 else ("ours", "baseline")
        for who in order:
            if who == "baseline":
                log(f"rag: Chroma.from_documents, {len(docs)} chunks …")
                folder = tmp / f"base-{r}"
                base_vs, s, cpu, base_emb = _baseline_ingest(docs, folder, model_dir, base_emb)
                base_s.append(s)
                base_cpu.append(cpu)
                log(f"  {len(docs) / s:.1f} chunks/s")
            else:
                log(f"rag: backend.rag.index_documents, {len(docs)} chunks …")
                project = tmp / f"ours-{r}"
                project.mkdir()
                t, c = time.perf_counter(), time.process_time()
                rep = index_documents(project, docs, embeddings=ours_emb)
                s = time.perf_counter() - t
                ours_s.append(s)
                ours_phases.append(rep.phases)
                ours_cpu.append(time.process_time() - c)
                out["ours_chunks_embedded"] = rep.chunks_embedded
                out["embedder_backend"] = rep.embedder_backend or out["embedder_backend"]
                log(f"  {len(docs) / s:.1f} chunks/s")
                t = time.perf_counter()
                rep2 = index_documents(project, docs, embeddings=ours_emb)
                reingest_s.append(time.perf_counter() - t)
                out["reingest_chunks_embedded"] = rep2.chunks_embedded
                ours_project = project
    gemm.append(measure_gemm(shapes))  # again after the ingests; the faster is the roofline
    b, o, re_ = median(base_s), median(ours_s), median(reingest_s)
    tokens = count_tokens(ours_emb, [d.page_content for d in docs])
    rate = max(g["flops_per_s"] for g in gemm)
    roofline_s = tokens * flops_per_token(shapes) / rate
    out.update({"tokens": tokens, "encoder": shapes, "gemm_gflops_per_s": [round(g["flops_per_s"] / 1e9, 2) for g in gemm],
                "gemm_threads": gemm[0]["threads"], "roofline_s": round(roofline_s, 3),
                "ingest_roofline_fraction": ratio(roofline_s, o, 4),
                "ours_tokens_per_s": round(tokens / o, 1)})
    out.update({
        "baseline_chunks_per_s": round(len(docs) / b, 2), "ours_chunks_per_s": round(len(docs) / o, 2),
        "baseline_s": [round(x, 2) for x in base_s], "ours_s": [round(x, 2) for x in ours_s],
        "reingest_s": [round(x, 3) for x in reingest_s],
        "baseline_cpu_s": [round(x, 1) for x in base_cpu], "ours_cpu_s": [round(x, 1) for x in ours_cpu],
        "ingest_speedup": ratio(b, o), "reingest_fraction": ratio(re_, o, 4),
        "ingest_speedup_cpu": ratio(median(base_cpu), median(ours_cpu)),
    })
    out["ingest_phases"] = {"ours": median_phases(ours_phases),
                            "files": files_ingest(docs, tmp / "files", ours_emb),
                            "tokenize_alone_s": round(tokenize_alone(ours_emb, [d.page_content for d in docs]), 4)}
    # query latency
    idx = open_index(ours_project, embeddings=ours_emb)
    idx.search(questions[0], k=4)
    lat, hits, ours_top = [], 0, []
    for q in questions:
        t = time.perf_counter()
        res = idx.search(q, k=4)
        lat.append((time.perf_counter() - t) * 1000)
        ours_top.append([s.text for s in res])
        sec = q.split("section ")[1].rstrip("?")
        hits += any(f"section {sec} " in s.text
                    for s in res)
    out["query_p50_ms"] = round(percentile(lat, 50), 2)
    out["query_p95_ms"] = round(percentile(lat, 95), 2)
    out["ours_hit_rate"] = round(hits / max(1, len(questions)), 3)
    if base_vs is not None:
        blat, base_top = [], []
        for q in questions:
            t = time.perf_counter()
            res = base_vs.similarity_search(q, k=4)
            blat.append((time.perf_counter() - t) * 1000)
            base_top.append([d.page_content for d in res])
        out["baseline_query_p95_ms"] = round(percentile(blat, 95), 2)
        # the same passages in the same order, question by question (1.0 = identical retrieval)
        same = sum(a == b for a, b in zip(ours_top, base_top))
        out["retrieval_agreement"] = round(same / max(1, len(questions)), 3)
        out["retrieval_overlap"] = round(sum(len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(ours_top, base_top))
                                         / max(1, len(questions)), 3)
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rag", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--chunks", type=int, default=None)
    p.add_argument("--queries", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--out", default=None, help="write the JSON here too")
    a = p.parse_args(argv)
    kw: dict[str, Any] = {}
    if a.quick:
        kw.update(n_chunks=20, n_queries=5, repeats=1)
    if a.chunks is not None:
        kw["n_chunks"] = a.chunks
    if a.queries is not None:
        kw["n_queries"] = a.queries
    if a.repeats is not None:
        kw["repeats"] = a.repeats
    return emit(run(**kw), a.out)


if __name__ == "__main__":
    sys.exit(main())
