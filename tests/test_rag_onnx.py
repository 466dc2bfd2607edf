"""The ONNX Runtime embedder: same vectors and same retrieval as torch, a self-healing cache, clean fall-backs.

Real parts: the bundled all-MiniLM-L6-v2 (exported once per session into a
temporary cache), ONNX Runtime, a persistent Chroma store; a tiny random BERT
folder for the cache-damage tests (it exports in about a second).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import build_tiny_embedder

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

TEXTS = [
    "A cat sits on the mat.",
    "Where is the cat?",
    "x",
    ".",
    "   ",
    "\n\nTwo lines\nof text\n",
    "Ünïcödé, emojis 🙂 and 数字 123 mixed together.",
    "The Orvanne river rises in the Kestrel hills and flows north for 412 kilometres. " * 3,
    " ".join(f"word{i} is followed by more words about sourdough, tides and volcanoes" for i in range(120)),  # >> 256 tokens
    "Geologists measure sulphur dioxide at the summit crater every week. " * 30,  # > 256 tokens
]

CORPUS = [
    "The Orvanne river rises in the Kestrel hills and flows north for 412 kilometres.",
    "Its delta is famous for salt marshes where herons nest in spring.",
    "Barges carried timber down the Orvanne until the railway opened in 1884.",
    "Mount Teskar is a shield volcano; its last eruption, in 1921, sent basalt lava into the valley.",
    "Geologists measure sulphur dioxide at the summit crater every week.",
    "Sourdough bread needs a starter of flour and water fermented by wild yeast.",
    "Bakers fold the dough every half hour and bake it in a hot oven at 250 degrees.",
    "Solar panels lose a little efficiency every year, about half a percent.",
    "A bicycle chain should be cleaned and oiled every few hundred kilometres.",
    "Python threads share memory but the GIL lets only one run Python code at a time.",
    "Chess openings such as the Sicilian Defence start with 1.e4 c5.",
    "Tide tables list the times of high and low water for each day.",
]
QUESTIONS = ["Where does the river rise?", "When did the volcano last erupt?", "How is sourdough made?",
             "What does the GIL do?", "How often should I oil a bike chain?", "What is in a tide table?"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private user cache for the module (exports go here, not into the real one)."""
    import backend.rag.embeddings as E
    import backend.rag.onnx_embed as oe

    mp = pytest.MonkeyPatch()
    where = tmp_path_factory.mktemp("cache")
    mp.setenv("TUNE_STUDIO_CACHE", str(where))
    E._CACHE.clear()  # embedders loaded by other test modules came from another cache
    oe.forget_cached_encoders()
    yield where
    mp.undo()
    E._CACHE.clear()
    oe.forget_cached_encoders()


@pytest.fixture(scope="module")
def torch_emb(cache):
    from backend.rag.embeddings import load_embeddings

    emb = load_embeddings(backend="torch")
    assert emb.backend == "torch"
    return emb


@pytest.fixture(scope="module")
def onnx_emb(cache, torch_emb):
    from backend.rag.embeddings import load_embeddings

    emb = load_embeddings(backend="onnx")
    assert emb.backend == "onnx", emb.backend_reason
    return emb


def test_auto_is_onnx_on_the_cpu_and_the_export_is_recorded(onnx_emb, cache):
    import torch

    from backend.rag.embeddings import load_embeddings

    if not torch.cuda.is_available():
        assert load_embeddings(backend="auto", device="cpu").backend == "onnx"
    metas = list(cache.glob("embeddings-onnx/*/export.json"))
    assert len(metas) == 1
    meta = json.loads(metas[0].read_text())
    assert meta["parity_max_abs_diff"] < 1e-4
    assert meta["fused"].get("Attention") == 6 and meta["fused"].get("SkipLayerNormalization")
    assert onnx_emb.info.dimension == 384


def test_onnx_vectors_match_torch(onnx_emb, torch_emb):
    a = onnx_emb.encode_array(TEXTS)
    b = torch_emb.encode_array(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert np.abs(a - b).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # the LangChain entry points, and a batch size that splits the texts unevenly
    assert np.abs(np.array(onnx_emb.embed_documents(TEXTS)) - b).max() < 1e-4
    assert np.abs(np.array(onnx_emb.embed_query(TEXTS[1])) - b[1]).max() < 1e-4
    assert np.abs(onnx_emb.encode_array(TEXTS, batch_size=3) - b).max() < 1e-4


def test_tokens_are_those_of_sentence_transformers(onnx_emb, torch_emb):
    """Truncation at max_seq_length (256) and the same ids as sentence-transformers' own tokenisation."""
    texts = [t.replace("\n", " ") for t in TEXTS]
    ours = onnx_emb._onnx.tokenize(texts)["input_ids"]
    theirs = torch_emb._client.tokenize(texts)
    for i, ids in enumerate(ours):
        n = int(theirs["attention_mask"][i].sum())
        assert ids == theirs["input_ids"][i][:n].tolist()
    assert max(len(x) for x in ours) == torch_emb._client.max_seq_length == 256


def test_iter_encode_covers_every_text_once_longest_first(onnx_emb, torch_emb):
    b = torch_emb.encode_array(TEXTS)
    for emb in (onnx_emb, torch_emb):
        batches = list(emb.iter_encode(TEXTS, batch_size=4))
        for rows, vectors in batches:
            assert len(rows) == len(vectors) <= 4
            assert np.abs(np.asarray(vectors) - b[rows]).max() < 1e-4
        assert sorted(r for rows, _ in batches for r in rows) == list(range(len(TEXTS)))
        assert max(range(len(TEXTS)), key=lambda i: len(TEXTS[i])) in batches[0][0]
        assert TEXTS.index("x") not in batches[0][0]


def test_top_k_retrieval_is_identical_to_torch(onnx_emb, torch_emb, tmp_path):
    from langchain_core.documents import Document

    from backend.rag.index import index_documents, open_index

    docs = [Document(page_content=t, metadata={"source": f"doc-{i % 4}.txt"}) for i, t in enumerate(CORPUS)]
    hits = {}
    for name, emb in (("onnx", onnx_emb), ("torch", torch_emb)):
        rep = index_documents(tmp_path / name, docs, embeddings=emb)
        assert rep.embedder_backend == name
        idx = open_index(tmp_path / name, embeddings=emb)
        hits[name] = [[(s.path, s.chunk) for s in idx.search(q, k=4)] for q in QUESTIONS]
    assert hits["onnx"] == hits["torch"]
    # and an index built by one backend is queried by the other: same embedder identity
    assert onnx_emb.info.same_model(torch_emb.info)
    idx = open_index(tmp_path / "onnx", embeddings=torch_emb)
    assert [[(s.path, s.chunk) for s in idx.search(q, k=4)] for q in QUESTIONS] == hits["onnx"]


def test_forced_torch_never_touches_onnx(cache, monkeypatch):
    import backend.rag.onnx_embed as oe
    from backend.rag.embeddings import load_embeddings
    from backend.rag.settings import IndexSettings

    def boom(*a, **k):
        raise AssertionError("the ONNX path was used")

    monkeypatch.setattr(oe, "load_onnx_encoder", boom)
    emb = load_embeddings(backend="torch")
    assert emb.backend == "torch" and "torch" in emb.describe_backend()
    assert IndexSettings(embedding_backend="torch").embedding_backend == "torch"
    from backend.errors import ConfigError
    with pytest.raises(ConfigError):
        IndexSettings(embedding_backend="tensorrt")


# ---------------------------------------------------------------------------
# a tiny BERT: cache damage and fall-backs


@pytest.fixture()
def tiny_bert(tmp_path):
    """A tiny random BERT sentence-transformers folder with MiniLM's tokenizer and pooling."""
    return build_tiny_embedder(tmp_path / "tiny-bert")


def _fresh(folder, backend="onnx"):
    """Load without the in-process caches (as a new process would)."""
    import backend.rag.embeddings as E
    import backend.rag.onnx_embed as oe

    E._CACHE.clear()
    oe.forget_cached_encoders()
    return E.load_embeddings(folder, backend=backend)


def test_corrupt_cached_export_is_exported_again(tiny_bert, cache, caplog):
    emb = _fresh(tiny_bert)
    assert emb.backend == "onnx", emb.backend_reason
    want = emb.encode_array(TEXTS)
    (path,) = [p for p in cache.glob("embeddings-onnx/tiny-bert-*/model.onnx")]
    meta = json.loads((path.parent / "export.json").read_text())

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with caplog.at_level(logging.WARNING, logger="backend.rag.onnx_embed"):
        emb = _fresh(tiny_bert)
    assert emb.backend == "onnx", emb.backend_reason
    assert "exporting again" in caplog.text
    from backend.fsutil import sha256_file
    assert json.loads((path.parent / "export.json").read_text())["sha256"] == sha256_file(path)
    assert path.stat().st_size > 1000 and meta["parity_max_abs_diff"] < 1e-4
    assert np.abs(emb.encode_array(TEXTS) - want).max() < 1e-4

    # a flipped byte that still parses is caught by the recorded hash
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="backend.rag.onnx_embed"):
        emb = _fresh(tiny_bert)
    assert emb.backend == "onnx" and "hash" in caplog.text
    assert np.abs(emb.encode_array(TEXTS) - want).max() < 1e-4
    _fresh(tiny_bert, "torch")


def test_export_failure_falls_back_to_torch_with_the_reason(tiny_bert, cache, monkeypatch, caplog):
    import backend.rag.onnx_embed as oe

    def broken(*a, **k):
        raise RuntimeError("exporter broken on purpose")

    monkeypatch.setattr(oe, "_export", broken)
    monkeypatch.setenv("TUNE_STUDIO_CACHE", str(cache / "elsewhere"))
    with caplog.at_level(logging.WARNING, logger="backend.rag.embeddings"):
        emb = _fresh(tiny_bert, "auto")
    assert emb.backend == "torch"
    assert "broken on purpose" in emb.backend_reason and "broken on purpose" in caplog.text
    assert emb.encode_array(["still works"]).shape == (1, 32)


def test_parity_failure_falls_back_to_torch(tiny_bert, cache, monkeypatch):
    import backend.rag.onnx_embed as oe

    monkeypatch.setattr(oe, "PARITY_TOL", 0.0)  # nothing passes
    monkeypatch.setenv("TUNE_STUDIO_CACHE", str(cache / "strict"))
    emb = _fresh(tiny_bert, "onnx")
    assert emb.backend == "torch" and "differs from torch" in emb.backend_reason
    assert not list((cache / "strict").glob("embeddings-onnx/*/export.json"))


def test_missing_onnxruntime_falls_back_to_torch(tiny_bert, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails, as in a build without it
    emb = _fresh(tiny_bert, "auto")
    assert emb.backend == "torch" and "onnxruntime is not available" in emb.backend_reason


def test_a_runtime_failure_mid_ingest_switches_to_torch(tiny_bert, cache):
    emb = _fresh(tiny_bert)
    want = _fresh(tiny_bert, "torch").encode_array(TEXTS)
    emb = _fresh(tiny_bert)
    assert emb.backend == "onnx"
    real = emb._onnx.run_batch
    calls = []

    def flaky(toks, rows):
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("session died")
        return real(toks, rows)

    emb._onnx.workers = 1
    emb._onnx.run_batch = flaky
    got = np.zeros_like(want)
    seen = []
    for rows, vectors in emb.iter_encode(TEXTS, batch_size=3):
        got[rows] = vectors
        seen += rows
    assert sorted(seen) == list(range(len(TEXTS)))
    assert emb.backend == "torch" and "session died" in emb.backend_reason
    assert np.abs(got - want).max() < 1e-4


def test_unsupported_model_chains_are_refused_with_a_reason(tmp_path):
    from backend.rag.onnx_embed import OnnxUnavailable, pipeline_spec

    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(OnnxUnavailable, match="Transformer -> Pooling"):
        pipeline_spec(tmp_path)
