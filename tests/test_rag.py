"""RetrievalQA backend: the incremental Chroma index, the chat model, four modes, evaluation, CLI.

Real parts throughout: the bundled MiniLM embedder (loaded once per module), a
real persistent Chroma store in tmp folders, the session's tiny random Llama
with the real SmolLM2 tokenizer, and a real PEFT LoRA adapter on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny_embedder

from backend.errors import ConfigError, IndexStoreError, ModelError, RunError

CORPUS = {
    "rivers.txt": (
        "The Orvanne river rises in the Kestrel hills and flows north for 412 kilometres. "
        "Its delta is famous for salt marshes where herons nest in spring.\n\n"
        "Barges carried timber down the Orvanne until the railway opened in 1884."
    ),
    "volcanoes.md": (
        "# Mount Teskar\n\nMount Teskar is a shield volcano. Its last eruption, in 1921, sent basalt lava "
        "flows into the eastern valley.\n\nGeologists measure sulphur dioxide at the summit crater every week."
    ),
    "bread.txt": (
        "Sourdough bread needs a starter of flour and water fermented by wild yeast. "
        "Bakers fold the dough every half hour and bake it in a hot oven at 250 degrees."
    ),
}


def write_corpus(folder: Path, corpus: dict[str, str] = CORPUS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in corpus.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def embedder():
    """The real bundled all-MiniLM-L6-v2, loaded once."""
    from backend.rag.embeddings import load_embeddings

    return load_embeddings()


@pytest.fixture(scope="module")
def other_embedder(tmp_path_factory):
    """A second, real sentence-transformers model: a tiny random BERT with MiniLM's tokenizer."""
    from backend.rag.embeddings import load_embeddings

    return load_embeddings(build_tiny_embedder(tmp_path_factory.mktemp("tiny") / "tiny-embedder"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, embedder):
    """A project with the corpus indexed."""
    from backend.rag.index import ingest
    from backend.workspace import Project

    proj = Project.create(tmp_path_factory.mktemp("proj") / "p")
    docs = write_corpus(proj.documents_dir / "corpus")
    ingest(proj, [docs], embeddings=embedder)
    return proj


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory, tiny_model_dir):
    """A run folder like training writes: config.json, a real LoRA adapter with nonzero weights, metrics."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.config import RunConfig

    root = tmp_path_factory.mktemp("runs")
    data = root / "chat.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"Where does the Orvanne river rise? ({i})"},
        {"role": "assistant", "content": "In the Kestrel hills."}]}) + "\n" for i in range(8)), encoding="utf-8")
    run = root / "run-1"
    run.mkdir()
    cfg = RunConfig.from_dict({"model": {"name_or_path": str(tiny_model_dir)},
                               "data": {"train_files": [str(data)], "validation_split": 0.25, "max_length": 128}})
    (run / "config.json").write_text(cfg.to_json())
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # init_lora_weights=False: random A and B, so the adapter really changes the outputs
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=32, init_lora_weights=False,
                                                 target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]))
    peft_model.save_pretrained(run / "adapter")
    (run / "metrics.jsonl").write_text(json.dumps({"type": "eval", "time": 0, "step": 4, "eval_loss": 9.5,
                                                   "perplexity": 13359.7}) + "\n")
    return run


@pytest.fixture(scope="module")
def chat(tuned_run):
    from backend.rag.chat_model import load_chat_model
    from backend.rag.settings import GenerationSettings

    return load_chat_model(tuned_run, settings=GenerationSettings(max_new_tokens=6))


# ---------------------------------------------------------------------------
# the index


def test_ingest_is_incremental(tmp_path, embedder):
    from backend.rag.index import index_status, ingest, open_index
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    docs = write_corpus(tmp_path / "docs")
    events = []
    first = ingest(proj, [docs], embeddings=embedder, on_event=events.append)
    assert sorted(Path(k).name for k in first.added) == sorted(CORPUS)
    assert first.chunks_embedded == first.total_chunks > 0
    embed = [e for e in events if e["type"] == "progress" and e["stage"] == "embed"]
    assert embed[-1]["current"] == embed[-1]["total"] == first.chunks_embedded
    assert (proj.index_dir / "index_meta.json").exists()

    events.clear()
    again = ingest(proj, [docs], on_event=events.append)  # no embedder given: none is loaded for unchanged files
    assert again.chunks_embedded == 0 and not again.added and not again.updated and len(again.unchanged) == 3
    assert not [e for e in events if e["type"] == "progress" and e["stage"] in ("load", "embed")]
    assert again.total_chunks == first.total_chunks

    (docs / "bread.txt").write_text("Rye bread is dense and dark. It keeps for a week.", encoding="utf-8")
    changed = ingest(proj, [docs], embeddings=embedder)
    assert [Path(k).name for k in changed.updated] == ["bread.txt"] and len(changed.unchanged) == 2
    assert changed.chunks_embedded == 1
    hits = open_index(proj, embeddings=embedder).search("How long does rye bread keep?", k=1)
    assert hits[0].file == "bread.txt" and "Rye" in hits[0].text

    (docs / "volcanoes.md").unlink()
    removed = ingest(proj, [docs], embeddings=embedder)
    assert [Path(k).name for k in removed.removed] == ["volcanoes.md"]
    idx = open_index(proj, embeddings=embedder)
    assert all(s.file != "volcanoes.md" for s in idx.search("shield volcano eruption basalt", k=10))
    status = index_status(proj)
    assert status["files"] == 2 and status["chunks"] == idx.count() == removed.total_chunks


def test_ingest_stop_leaves_no_partial_file(tmp_path, embedder):
    from backend.rag.index import index_status, ingest, open_index
    from backend.rag.settings import IndexSettings
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    long_text = "\n\n".join(f"Paragraph {i} about the harbour cranes and the tides of the bay." * 3 for i in range(12))
    docs = write_corpus(tmp_path / "docs", {**CORPUS, "harbour.txt": long_text})
    seen = []

    def stop() -> bool:  # stop after the first embedding batch
        return any(e["type"] == "progress" and e["stage"] == "embed" and e["current"] > 0 for e in seen)

    settings = IndexSettings(chunk_size=200, chunk_overlap=20, embed_batch_size=4)
    rep = ingest(proj, [docs], settings=settings, embeddings=embedder, on_event=seen.append, should_stop=stop)
    assert rep.cancelled
    status = index_status(proj)
    # only whole files are recorded, and Chroma holds exactly their chunks
    assert open_index(proj, embeddings=embedder, check=False).count() == status["chunks"]
    assert "harbour.txt" not in {r["file"] for r in status["sources"].values()}

    done = ingest(proj, [docs], settings=settings, embeddings=embedder)
    assert not done.cancelled and index_status(proj)["files"] == 4
    assert done.total_chunks == index_status(proj)["chunks"]


def test_index_documents_accepts_langchain_documents(tmp_path, embedder):
    from langchain_core.documents import Document

    from backend.rag.index import index_documents, open_index

    docs = [Document(page_content="The lighthouse keeper lit the lamp at dusk.", metadata={"source": "log.txt", "page": 2}),
            Document(page_content="Ships passed the cape at night.", metadata={"source": "log.txt", "page": 3})]
    first = index_documents(tmp_path, docs, embeddings=embedder)
    assert first.added == ["log.txt"] and first.chunks_embedded == 2
    assert index_documents(tmp_path, docs, embeddings=embedder).unchanged == ["log.txt"]
    hit = open_index(tmp_path, embeddings=embedder).search("Who lit the lamp?", k=1)[0]
    assert (hit.file, hit.page, hit.chunk) == ("log.txt", 2, 0) and 0 < hit.score <= 1


def test_no_index_and_empty_index_errors(tmp_path, embedder):
    from backend.rag.index import ingest, open_index
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    with pytest.raises(IndexStoreError, match="no document index yet.*tune ingest"):
        open_index(proj, embeddings=embedder)
    f = tmp_path / "note.txt"
    f.write_text("A short note about owls.", encoding="utf-8")
    ingest(proj, [f], embeddings=embedder)
    f.unlink()
    rep = ingest(proj, [], embeddings=embedder)
    assert [Path(k).name for k in rep.removed] == ["note.txt"]
    with pytest.raises(IndexStoreError, match="index is empty"):
        open_index(proj, embeddings=embedder)


def test_embedder_mismatch_offers_rebuild(tmp_path, embedder, other_embedder):
    from backend.rag.index import index_status, ingest, open_index
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    docs = write_corpus(proj.root / "docs")  # a rebuild re-reads only recorded files inside the project
    ingest(proj, [docs], embeddings=embedder)
    msg = r"built with the embedder all-MiniLM-L6-v2 \(384-d\).*--rebuild"
    with pytest.raises(IndexStoreError, match=msg):
        ingest(proj, [docs], embeddings=other_embedder)
    with pytest.raises(IndexStoreError, match=msg):
        open_index(proj, embeddings=other_embedder)
    rebuilt = ingest(proj, [], embeddings=other_embedder, rebuild=True)  # files on record are embedded again
    assert rebuilt.rebuilt and len(rebuilt.added) == 3
    assert index_status(proj)["embedder"]["dimension"] == 32
    assert open_index(proj, embeddings=other_embedder).search("volcano", k=1)


def test_ingest_rejects_missing_and_unsupported_files(tmp_path, embedder):
    from backend.errors import DocumentError
    from backend.rag.index import ingest

    with pytest.raises(DocumentError, match="not found"):
        ingest(tmp_path, [tmp_path / "nope.txt"], embeddings=embedder)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    with pytest.raises(DocumentError, match="cannot index '.png' files"):
        ingest(tmp_path, [tmp_path / "image.png"], embeddings=embedder)
    # one unreadable file in a folder is reported; the others are indexed
    docs = write_corpus(tmp_path / "docs", {"bread.txt": CORPUS["bread.txt"]})
    (docs / "broken.pdf").write_bytes(b"this is not a pdf")
    rep = ingest(tmp_path, [docs], embeddings=embedder)
    assert [Path(k).name for k in rep.added] == ["bread.txt"]
    assert len(rep.failed) == 1 and "broken.pdf" in rep.failed[0]["error"] and "1 failed" in rep.describe()
    with pytest.raises(DocumentError, match="broken.pdf.*not a PDF"):
        ingest(tmp_path, [docs / "broken.pdf"], embeddings=embedder)


# ---------------------------------------------------------------------------
# the chat model and the four modes


def test_four_modes_answer_with_sources(chat, project, embedder):
    from backend.rag.chain import ABSTAIN_ANSWER, MODES, ChatSession
    from backend.rag.index import open_index

    session = ChatSession(chat, open_index(project, embeddings=embedder))
    assert session.modes == MODES
    answers = {}
    for mode in MODES:
        tokens, got_sources = [], []
        a = session.ask("Where does the Orvanne river rise?", mode, on_token=tokens.append,
                        on_sources=got_sources.append)
        answers[mode] = a
        # the answer is the streamed text, or grounding withheld that text (docs/architecture.md)
        assert tokens and (a.withheld or a.answer) == "".join(tokens).strip() and a.mode == mode
        # (abstain: the chat's abstention; quote, the default: the evidence sentence, marked quoted)
        assert not a.withheld or (a.unsupported and (a.answer == ABSTAIN_ANSWER or (a.quoted and a.answer in a.evidence[0]["sentence"].replace("**", ""))))
        if mode.endswith("+rag"):
            assert a.sources and a.sources[0].file == "rivers.txt" and got_sources == [a.sources]
            assert {"file", "path", "page", "chunk", "text", "score"} <= set(a.to_dict()["sources"][0])
        else:
            assert a.sources == []
        json.dumps(a.to_dict())
    # the adapter changes the answers: base mode really is the adapter switched off
    assert answers["tuned"].answer != answers["base"].answer


def test_base_mode_equals_the_plain_base_model(chat, tiny_model_dir):
    from backend.models import load_model, load_tokenizer
    from backend.rag.chat_model import HFChatModel

    plain = HFChatModel(hf_model=load_model(str(tiny_model_dir)), tokenizer=load_tokenizer(str(tiny_model_dir)),
                        settings=chat.settings)
    q = "Name a river."
    assert chat.invoke(q, adapter=False).content == plain.invoke(q).content
    assert chat.invoke(q).content != plain.invoke(q).content
    # streaming and non-streaming agree
    assert "".join(c.content for c in chat.stream(q)) == chat.invoke(q).content


def test_should_stop_ends_generation(chat):
    from backend.rag.chain import ChatSession
    from backend.rag.settings import GenerationSettings

    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) >= 2

    a = ChatSession(chat).ask("Tell me a story.", "tuned", should_stop=stop,
                              generation=GenerationSettings(max_new_tokens=200))
    assert a.stopped and len(calls) < 20


def test_run_errors(tmp_path, tuned_run, real_tokenizer_dir):
    from conftest import build_tiny_model

    from backend.rag.chain import ChatSession
    from backend.rag.chat_model import HFChatModel, load_chat_model

    with pytest.raises(RunError, match="run folder not found"):
        load_chat_model(tmp_path / "missing-run")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(tuned_run / "config.json", unfinished / "config.json")
    with pytest.raises(RunError, match="no adapter yet"):
        load_chat_model(unfinished)
    other = build_tiny_model(tmp_path / "other-base", real_tokenizer_dir, hidden=32)
    with pytest.raises(ModelError, match="trained on a different base model"):
        load_chat_model(tuned_run, base_model=str(other))
    plain = HFChatModel(hf_model=object(), tokenizer=object())
    with pytest.raises(RunError, match="tuned mode needs a run"):
        ChatSession(plain).ask("hi", "tuned")


# ---------------------------------------------------------------------------
# evaluation and CLI


def test_questions_file_errors_name_the_line(tmp_path):
    from backend.errors import DataError
    from backend.rag.evaluate import read_questions

    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "ok?", "answer": "yes"}\n{"question": "no expectation"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"q.jsonl:2: \[answer\] no expected 'answer' or 'keywords'"):
        read_questions(f)


def test_cli_ingest_ask_eval(tmp_path, tuned_run, capsys):
    from backend.rag import cli

    parser = argparse.ArgumentParser(prog="tune")
    cli.register(parser.add_subparsers(dest="command"))
    proj = tmp_path / "proj"
    docs = write_corpus(tmp_path / "docs")

    def run(*argv: str) -> str:
        args = parser.parse_args([str(a) for a in argv])
        assert args.func(args) == 0
        return capsys.readouterr().out

    assert "3 added" in run("ingest", proj, docs)
    assert "3 unchanged" in run("ingest", proj, docs)
    out = json.loads(run("ask", proj, "When did Mount Teskar erupt?", "--run", tuned_run, "--json",
                         "-k", "2", "--max-new-tokens", "4"))
    assert out["mode"] == "tuned+rag" and len(out["sources"]) == 2
    assert out["sources"][0]["file"] == "volcanoes.md" and isinstance(out["answer"], str)
    # the project's answer settings (the Chat page's, in project.json), then --set over them
    from backend.rag.settings import AnswerSettings
    from backend.workspace import Project

    Project.open(proj).set_answer_settings(AnswerSettings().with_overrides({"retrieval.k": 1}))
    out = json.loads(run("ask", proj, "When did Mount Teskar erupt?", "--run", tuned_run, "--json",
                         "--max-new-tokens", "4"))
    assert len(out["sources"]) == 1
    out = json.loads(run("ask", proj, "When did Mount Teskar erupt?", "--run", tuned_run, "--json",
                         "--set", "retrieval.k=3", "--set", "generation.max_new_tokens=4"))
    assert len(out["sources"]) == 3
    with pytest.raises(ConfigError, match=r"unknown key 'retrieval.kk' — did you mean 'retrieval.k'"):
        run("ask", proj, "x", "--set", "retrieval.kk=3")
    Project.open(proj).set_answer_settings(AnswerSettings())
    out = json.loads(run("ask", proj, "Hello?", "--run", tuned_run, "--base", "--no-rag", "--json",
                         "--max-new-tokens", "4"))
    assert out["mode"] == "base" and out["sources"] == []
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": "What do bakers fold?", "answer": "dough", "source": "bread.txt"}) + "\n")
    text = run("eval", proj, q, "--run", tuned_run, "--out", tmp_path / "ev", "--no-loss", "--max-new-tokens", "4")
    # the report is named after the questions file (tests/test_evaluate.py covers its content)
    assert "| base+rag |" in text and (tmp_path / "ev" / "q.json").exists()
    with pytest.raises(RunError, match="run folder not found"):
        run("ask", proj, "x", "--run", tmp_path / "nope", "--json")


# ---------------------------------------------------------------------------
# end to end on the real default models


@pytest.mark.e2e
def test_e2e_default_models_answer_from_the_documents(tmp_path):
    from backend.rag.chain import ask
    from backend.rag.index import ingest
    from backend.rag.settings import GenerationSettings
    from backend.workspace import Project

    proj = Project.create(tmp_path / "e2e")
    docs = write_corpus(tmp_path / "docs", {
        **CORPUS,
        "festival.txt": ("The Zorblatt lantern festival is held every March in the fishing town of Quenvik. "
                         "Visitors release paper lanterns over the harbour at midnight."),
    })
    rep = ingest(proj, [docs])
    assert len(rep.added) == 4
    a = ask(proj, "In which town is the Zorblatt lantern festival held?",
            generation=GenerationSettings(max_new_tokens=24))
    assert a.mode == "base+rag"
    assert a.sources[0].file == "festival.txt"
    assert a.answer.strip()


@pytest.mark.parametrize("asked_before", [True, False], ids=["asked-before", "ingested-only"])
def test_index_written_by_another_process_is_reopened(tmp_path, embedder, asked_before):
    """A reader's Chroma client opened before another process's ingest (a training run's RAFT rows, its check
    after training) reopens instead of answering from stale segments (the model host saw "Error finding id").
    ``ingested-only`` is the model host's path in ``bench --quick``: it indexed the documents itself and asked
    nothing before the run's RAFT rows indexed the rest (CI failed there)."""
    import subprocess
    import sys

    from backend.rag.index import ingest, open_index
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    docs = write_corpus(tmp_path / "docs")
    ingest(proj, [docs], embeddings=embedder)
    if asked_before:
        assert open_index(proj, embeddings=embedder).search("shield volcano", k=1)
    new = tmp_path / "docs" / "tea.txt"
    new.write_text("Oolong tea is partly oxidised. It is steeped at 90 degrees for three minutes.", encoding="utf-8")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "backend", "ingest", str(proj.root), str(new)], cwd=root,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = open_index(proj, embeddings=embedder).search("At what temperature is oolong tea steeped?", k=10)
    assert any(h.file == "tea.txt" for h in hits)
