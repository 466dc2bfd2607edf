"""Answer quality parts of the RAG chat: hybrid retrieval, evidence sentences, abstention, RAFT, the facts recipe.

Real parts: a persistent Chroma store in tmp folders, the seeded tiny random
BERT embedder (its vectors carry no meaning, which is what makes the word
search's contribution visible), the session's tiny random Llama for the chat.
See docs/architecture.md (RAG).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_tiny_embedder

_CAUSES = ["the intake valve is stuck", "the filter needs care", "the fan is blocked", "the door is open",
           "the tank is empty", "the pump runs dry", "the sensor is dirty", "the battery is weak", "the lid is loose",
           "the water is too hard", "the hose is kinked", "the drain is slow"]
_CODES = ["QX-93", "BT-17", "ZR-11", "LM-40", "KP-58", "WD-26", "HN-72", "VF-05", "SC-39", "GA-84", "YE-61", "PU-13"]
CODES = {f"code-{i:02d}.txt": f"Maintenance note. Fault {c} means {x}." for i, (c, x) in enumerate(zip(_CODES, _CAUSES))}
# with the seeded tiny embedder, the meaning search ranks this one 7th for its own code
MISSED, MISSED_FILE = "SC-39", "code-08.txt"


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    from backend.rag.embeddings import load_embeddings

    return load_embeddings(build_tiny_embedder(tmp_path_factory.mktemp("emb") / "tiny-embedder"))


def _project(root: Path, corpus: dict[str, str], embedder):
    from backend.rag.index import ingest
    from backend.workspace import Project

    proj = Project.create(root)
    docs = proj.documents_dir / "corpus"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in corpus.items():
        (docs / name).write_text(text, encoding="utf-8")
    ingest(proj, [docs], embeddings=embedder)
    return proj


@pytest.fixture(scope="module")
def codes_project(tmp_path_factory, tiny_embedder):
    return _project(tmp_path_factory.mktemp("codes") / "p", CODES, tiny_embedder)


# ---------------------------------------------------------------------------
# BM25 and fusion


def test_tokenize_keeps_codes_and_numbers():
    from backend.rag.hybrid import tokenize

    assert tokenize("What does E4 mean on the PA-2 since 1987?") == ["e4", "mean", "pa-2", "pa", "2", "sinc", "1987"]
    assert tokenize("Updating") == tokenize("updates") == ["updat"]


def test_rrf_order_and_weights():
    from backend.rag.hybrid import rrf

    fused = rrf([["a", "b", "c"], ["b", "c"]])
    assert [i for i, _ in fused] == ["b", "c", "a"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    # a weight of 0 switches a ranking off; a heavier ranking wins ties of rank
    assert [i for i, _ in rrf([["a", "b"], ["b", "a"]], [0.0, 1.0])] == ["b", "a"]
    assert [i for i, _ in rrf([["a", "b"], ["b", "a"]], [2.0, 1.0])] == ["a", "b"]


def test_bm25_incremental_equals_rebuilt_and_round_trips(tmp_path):
    from backend.rag.hybrid import BM25Index

    texts = {"1": "E4 Wi-Fi password rejected", "2": "E5 battery low", "3": "PA-2 power adapter for the C-wire",
             "4": "the warranty lasts 3 years"}
    inc = BM25Index()
    inc.add(list(texts), list(texts.values()))
    inc.add(["2"], ["E5 battery low below 3.6 V"])      # replaced
    inc.remove(["4", "unknown"])
    fresh = BM25Index()
    fresh.add(["1", "2", "3"], [texts["1"], "E5 battery low below 3.6 V", texts["3"]])
    assert inc.ids() == {"1", "2", "3"}
    assert inc.scores("battery PA-2") == pytest.approx(fresh.scores("battery PA-2"))
    assert inc.df == fresh.df
    inc.save(tmp_path / "lex.json")
    back = BM25Index.load(tmp_path / "lex.json")
    assert back is not None and back.scores("E4 password") == pytest.approx(inc.scores("E4 password"))
    assert back.search("What is PA-2?", 1)[0][0] == "3"
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert BM25Index.load(tmp_path / "bad.json") is None


def test_hybrid_finds_a_code_the_vector_search_misses(codes_project, tiny_embedder):
    from backend.rag.index import open_index
    from backend.rag.settings import RetrievalSettings

    idx = open_index(codes_project, embeddings=tiny_embedder)
    q = f"What does fault {MISSED} mean?"
    vector = idx.search(q, 1, RetrievalSettings(hybrid=False))
    assert vector[0].file != MISSED_FILE  # random vectors: the meaning search alone misses it
    hybrid = idx.search(q, 1, RetrievalSettings())
    assert hybrid[0].file == MISSED_FILE and MISSED in hybrid[0].text
    assert hybrid[0].bm25 > 0 and hybrid[0].fused > 0
    assert -1.0 <= hybrid[0].score <= 1.0  # still the cosine similarity, also for a word-only hit
    # word weight 0 = the vector ranking
    assert [s.id for s in idx.search(q, 3, RetrievalSettings(bm25_weight=0.0))] == \
        [s.id for s in idx.search(q, 3, RetrievalSettings(hybrid=False))]


def test_lexical_index_follows_ingest_and_is_rebuilt_when_missing(tmp_path, tiny_embedder):
    from backend.rag.hybrid import LEXICAL_FILE, BM25Index
    from backend.rag.index import ingest, open_index, remove_sources

    proj = _project(tmp_path / "p", {"a.txt": "Fault QX-93 means a stuck valve.", "b.txt": "Pattern 4 blinks."},
                    tiny_embedder)
    lex_path = proj.index_dir / LEXICAL_FILE

    def stored_ids():
        idx = open_index(proj, embeddings=tiny_embedder)
        return set(idx.collection.get(include=[])["ids"])

    saved = BM25Index.load(lex_path)
    assert saved is not None and saved.ids() == stored_ids() and len(saved) == 2

    docs = proj.documents_dir / "corpus"
    (docs / "a.txt").write_text("Fault ZR-11 means the fan is blocked.", encoding="utf-8")
    ingest(proj, [docs], embeddings=tiny_embedder)
    saved = BM25Index.load(lex_path)
    assert saved.ids() == stored_ids()
    assert not saved.scores("QX-93") and saved.search("ZR-11", 1)

    remove_sources(proj, [docs / "b.txt"], embeddings=tiny_embedder)
    saved = BM25Index.load(lex_path)
    assert len(saved) == 1 and saved.ids() == stored_ids()

    lex_path.unlink()  # an index built before hybrid retrieval: rebuilt from the stored chunks
    idx = open_index(proj, embeddings=tiny_embedder)
    assert idx.search("ZR-11", 1)[0].file == "a.txt"
    assert BM25Index.load(lex_path).ids() == stored_ids()


# ---------------------------------------------------------------------------
# evidence sentences


def _source(text: str, file: str = "guide.md", chunk: int = 0):
    from backend.rag.source import Source

    return Source(file=file, path=file, page=None, chunk=chunk, text=text, score=0.5)


def test_sentences_split_on_marks_blocks_and_lists():
    from backend.rag.evidence import plain, split_sentences

    text = "# Codes\n**E4 — Wi-Fi password rejected.** Re-enter it.\n\n1. Turn the\n   power off.\n2. Wait."
    got = [plain(text[a:b]) for a, b in split_sentences(text)]
    assert got == ["Codes", "E4 — Wi-Fi password rejected.", "Re-enter it.", "1. Turn the power off.", "2. Wait."]


def test_evidence_puts_the_answering_sentence_first_within_budget():
    from backend.rag.evidence import select_evidence

    filler = " ".join(f"Sentence {i} talks about the weather in spring." for i in range(30))
    text = filler + " Fault QX-93 means the intake valve is stuck. Close the main tap first. " + filler
    sources = [_source("The office opens at nine. Lunch is at noon.", "other.md"), _source(text)]
    ev = select_evidence("What does fault QX-93 mean?", sources, None, budget=200, neighbours=1)
    best = ev.best[0]
    assert best.source_index == 1 and best.text == "Fault QX-93 means the intake valve is stuck."
    assert sources[1].text[best.start:best.end] == best.text
    assert ev.context.startswith("Sentence 29 talks") and "Close the main tap first." in ev.context
    assert len(ev.context) <= 200
    rec = ev.records()[0]
    assert set(rec) == {"source_index", "sentence", "start", "end", "score"} and rec["score"] == pytest.approx(best.score, abs=1e-4)
    assert ev.relevance == best.score > ev.best[1].score


def test_section_title_ranks_the_sentence_under_it():
    """A sentence under "## Limited warranty" answers "How long is the warranty?" though it says "warrants"."""
    from backend.rag.embeddings import load_embeddings
    from backend.rag.evidence import select_evidence

    emb = load_embeddings()  # the real bundled all-MiniLM-L6-v2
    sources = [_source("Certified installation extends the thermostat warranty from 3 to 5 years. "
                       "Installation costs USD 129.", "faq.txt"),
               _source("# Warranty and returns\n\n## Limited warranty\n\nKestrel warrants the thermostat against "
                       "defects for 3 years from the date of purchase. Sensors are covered for 2 years.\n\n"
                       "## Returns\n\nProducts can be returned within 60 days.", "warranty.md")]
    q = "How long is the warranty?"
    plain_rank = select_evidence(q, sources, emb, budget=900, section_weight=0.0)
    titled = select_evidence(q, sources, emb, budget=900, section_weight=0.6)
    assert plain_rank.best[0].source_index == 0 and plain_rank.context.startswith("Certified installation")
    assert titled.best[0].text.startswith("Kestrel warrants") and titled.context.startswith("Warranty and returns")
    # the abstention's relevance is the best sentence's own match, whatever the title weight
    assert titled.relevance == pytest.approx(plain_rank.relevance)
    assert titled.best[0].rank > titled.best[0].score


def test_the_evidence_the_answer_rests_on_comes_first():
    from backend.rag.evidence import order_by_support

    ev = [{"sentence": "Installation by a Certified Installer extends the thermostat warranty to **5 years**."},
          {"sentence": "The warranty does **not** cover water damage."},
          {"sentence": "Kestrel warrants the Brisa T3 and T3 Pro for **3 years** from the date of purchase."}]
    ordered = order_by_support("The Brisa T3 and Brisa T3 Pro have a 3-year limited warranty.", ev)
    assert ordered[0] is ev[2] and ordered[1:] == ev[:2]
    assert order_by_support("", ev) == ev and order_by_support("Nothing in common here.", ev) == ev


def test_is_abstention():
    from backend.rag.chain import ABSTAIN_ANSWER, is_abstention

    assert ABSTAIN_ANSWER == "Your documents don't say."
    for text in (ABSTAIN_ANSWER, "your documents don’t say", "I don't know.", "The context does not mention it."):
        assert is_abstention(text), text
    for text in ("E4 means the Wi-Fi password was rejected.", "", "Don't unplug it during the update."):
        assert not is_abstention(text), text


def test_abstains_below_the_threshold_without_generating(codes_project, tiny_embedder, tiny_model_dir):
    from backend.rag.chain import ABSTAIN_ANSWER, ChatSession
    from backend.rag.chat_model import load_chat_model
    from backend.rag.index import open_index
    from backend.rag.settings import GenerationSettings, RetrievalSettings

    chat = load_chat_model(None, str(tiny_model_dir), settings=GenerationSettings(max_new_tokens=4))
    idx = open_index(codes_project, embeddings=tiny_embedder)
    q = f"What does fault {MISSED} mean?"
    tokens: list[str] = []
    never = ChatSession(chat, idx, RetrievalSettings(abstain_threshold=3.0))  # nothing scores 3
    a = never.ask(q, "base+rag", on_token=tokens.append)
    assert a.abstained and a.answer == ABSTAIN_ANSWER and tokens == [ABSTAIN_ANSWER]
    assert a.sources and a.evidence and a.relevance is not None and a.relevance < 3.0
    assert a.to_dict()["abstained"] is True
    always = ChatSession(chat, idx, RetrievalSettings(abstain_threshold=0.0))
    b = always.ask(q, "base+rag")
    assert b.answer != ABSTAIN_ANSWER
    assert b.evidence and MISSED in b.evidence[0]["sentence"]
    off = ChatSession(chat, idx, RetrievalSettings(abstain=False, abstain_threshold=3.0))
    assert off.ask(q, "base+rag").answer != ABSTAIN_ANSWER
    # without retrieval the threshold does not apply
    plain = never.ask(q, "base")
    assert plain.answer != ABSTAIN_ANSWER and plain.relevance is None and not plain.evidence


# ---------------------------------------------------------------------------
# RAFT


def _raft_project(root: Path, embedder) -> tuple[object, Path]:
    proj = _project(root, CODES, embedder)
    data = proj.root / "datasets"
    data.mkdir(exist_ok=True)
    rows = [{"messages": [{"role": "user", "content": f"What does fault {c} mean?"},
                          {"role": "assistant", "content": f"Fault {c} means {x}."}]}
            for c, x in list(zip(_CODES, _CAUSES))[:6]]
    rows.append({"messages": [{"role": "user", "content": "What is QX-93?"},
                              {"role": "assistant", "content": "A stuck intake valve."},
                              {"role": "user", "content": "And then?"},
                              {"role": "assistant", "content": "Close the main tap."}]})
    f = data / "qa.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return proj, f


def test_raft_renders_rows_like_the_chat_deterministically_and_caches(tmp_path, tiny_embedder, monkeypatch):
    from backend.config import RunConfig
    from backend.data import raft
    from backend.data.pipeline import read_and_normalise
    from backend.rag.chain import rag_prompt
    from backend.rag.index import open_index
    from backend.rag.settings import RetrievalSettings

    proj, f = _raft_project(tmp_path / "p", tiny_embedder)
    idx = open_index(proj, embeddings=tiny_embedder)
    cfg = RunConfig.from_dict({"data": {"train_files": [str(f)], "raft": True, "raft_distractors": 1,
                                        "raft_p_without_gold": 0.5}})
    assert raft.find_project(cfg.data).resolve() == Path(proj.root).resolve()

    def examples():
        res = read_and_normalise(cfg.data.train_files, cfg.data, strict_files=True)
        return [r.example for x in res for r in x.rows]

    first = examples()
    stats = raft.apply_raft(first, cfg.data, seed=7, index=idx)
    assert stats["rendered"] == 6 and stats["skipped"] == 1 and stats["cached"] == 0
    assert 0 < stats["without_gold"] < 6
    settings = RetrievalSettings()
    row = first[0].messages
    assert [m["role"] for m in row] == ["system", "user", "assistant"]
    assert row[0]["content"] == settings.system_prompt
    q0 = f"What does fault {_CODES[0]} mean?"
    assert row[1]["content"].startswith("Context:\n") and row[1]["content"].endswith(f"Question: {q0}")
    assert row[2]["content"] == f"Fault {_CODES[0]} means {_CAUSES[0]}."
    context = row[1]["content"].split("\n", 1)[1].rsplit("\n\nQuestion: ", 1)[0]
    assert [("system", row[0]["content"]), ("user", row[1]["content"])] == rag_prompt(q0, context, settings)
    assert first[6].messages[0]["content"] == "What is QX-93?"  # multi-turn rows stay as they are
    assert (idx.dir / raft.CACHE_FILE).is_file()

    # the same rows again: identical, from the cache, without searching
    def no_search(*a, **k):
        raise AssertionError("searched although cached")

    monkeypatch.setattr(raft, "render_row", no_search)
    second = examples()
    again = raft.apply_raft(second, cfg.data, seed=7, index=idx)
    assert again["cached"] == 6 and again["rendered"] == 0
    assert [e.messages for e in second] == [e.messages for e in first]
    monkeypatch.undo()

    # a fresh render (no cache) gives the same prompts: rendering is deterministic
    (idx.dir / raft.CACHE_FILE).unlink()
    third = examples()
    raft.apply_raft(third, cfg.data, seed=7, index=idx)
    assert [e.messages for e in third] == [e.messages for e in first]


def test_raft_indexes_documents_added_since_the_last_index_update(tmp_path, tiny_embedder):
    # a run started straight after adding a document trains on its passages, as the chat would answer from it
    from backend.config import RunConfig
    from backend.data import raft
    from backend.data.pipeline import read_and_normalise
    from backend.rag.index import index_status

    proj, f = _raft_project(tmp_path / "p", tiny_embedder)
    (proj.documents_dir / "late.txt").write_text("Service bulletin. Fault ZZ-77 means the drum is loose.\n",
                                                 encoding="utf-8")
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "What does fault ZZ-77 mean?"},
                                          {"role": "assistant", "content": "The drum is loose."}]}) + "\n")
    cfg = RunConfig.from_dict({"data": {"train_files": [str(f)], "raft": True, "raft_p_without_gold": 0.0}})
    rows = [r.example for x in read_and_normalise(cfg.data.train_files, cfg.data, strict_files=True) for r in x.rows]
    events = []
    raft.apply_raft(rows, cfg.data, seed=1, on_event=events.append)  # no index given: the project's, updated
    assert any("late.txt" in str(s) for s in index_status(proj)["sources"])
    assert "Fault ZZ-77 means the drum is loose." in rows[0].messages[1]["content"]
    assert any("Indexing 1 document" in (e.get("message") or "") for e in events)


def test_raft_without_a_project_names_the_field(tmp_path):
    from backend.config import RunConfig
    from backend.data.raft import find_project
    from backend.errors import DataError

    f = tmp_path / "qa.jsonl"
    f.write_text("{}\n", encoding="utf-8")
    cfg = RunConfig.from_dict({"data": {"train_files": [str(f)], "raft": True}})
    with pytest.raises(DataError, match="needs the project's document index"):
        find_project(cfg.data)


# ---------------------------------------------------------------------------
# the facts recipe


@pytest.mark.parametrize("rows", [12, 40, 130, 400])
def test_facts_recipe_gives_enough_steps_and_a_valid_config(rows):
    import math

    from backend.config import RunConfig
    from backend.recipes import facts_recipe, is_small

    r = facts_recipe(rows)
    eff = r["training.batch_size"] * r["training.gradient_accumulation"]
    steps = math.ceil(rows / eff) * r["training.epochs"]
    assert is_small(rows) and steps >= 24 and r["training.epochs"] >= 2
    assert r["data.validation_split"] == 0.0
    cfg = RunConfig().with_overrides(r)
    assert cfg.training.epochs == r["training.epochs"]
    long = facts_recipe(rows, mean_tokens=400, raft=True)
    assert long["training.epochs"] <= r["training.epochs"] and long["data.max_length"] >= 512


def test_source_panel_highlights_the_evidence_and_escapes_text():
    from desktop.pages.chat import highlighted_html

    text = "Intro <b>bold?</b> & more.\nFault SC-39 means the sensor is dirty. Next line."
    a = text.index("Fault")
    b = text.index("dirty.") + len("dirty.")
    out = highlighted_html(text, [{"source_index": 0, "sentence": text[a:b], "start": a, "end": b, "score": 0.9},
                                  {"start": 0, "end": 999, "score": 0.1}])  # out of range: ignored
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more." in out and "<b>" not in out
    assert "<a name='evidence'></a><span style='background:#ffe27a'>Fault SC-39 means the sensor is dirty.</span>" in out
    assert out.count("<span") == 1


def test_copy_bias_raises_exactly_the_context_tokens(tiny_model_dir):
    import torch

    from backend.rag.chat_model import load_chat_model

    chat = load_chat_model(None, str(tiny_model_dir))
    gen, _, _ = chat._generate_kwargs(None, {"copy_bias": ("Fault SC-39", 3.0)})
    (proc,) = gen["logits_processor"]
    ids = set(chat.tokenizer("Fault SC-39", add_special_tokens=False)["input_ids"])
    scores = proc(torch.zeros((1, 1), dtype=torch.long), torch.zeros((1, len(chat.tokenizer))))
    assert {int(i) for i in torch.nonzero(scores[0]).flatten()} == ids
    assert float(scores[0, next(iter(ids))]) == 3.0
    off, _, _ = chat._generate_kwargs(None, {"copy_bias": ("Fault SC-39", 0.0)})
    assert "logits_processor" not in off


def test_unsupported_claims_and_the_grounding_setting():
    from backend.errors import ConfigError
    from backend.rag.chain import unsupported_claims
    from backend.rag.settings import RetrievalSettings

    ctx = "When everyone's phone leaves the geofence (default radius 500 m), the Brisa switches to Eco Range."
    assert unsupported_claims("The default radius is 500 m.", ctx, "How big is the geofence?") == []
    assert unsupported_claims("It is set to 68 meters by Kestrel.", ctx) == ["68", "Kestrel"]
    assert unsupported_claims("The Brisa switches to Eco Range.", ctx) == []
    assert RetrievalSettings().grounding == "quote"  # one rule for tuned and base: bench/quality.md
    assert RetrievalSettings(grounding="abstain").grounding == "abstain"
    with pytest.raises(ConfigError, match="unknown grounding"):
        RetrievalSettings(grounding="maybe")


def test_answer_settings_are_one_typed_object(tmp_path):
    """Retrieval and generation in one dataclass: defaults, help, choices, unknown keys, cross-field checks."""
    import dataclasses

    from backend.config import RunConfig
    from backend.errors import ConfigError
    from backend.fields import field_choices, leaf_fields
    from backend.rag.settings import ANSWER_KEYS, AnswerSettings, describe_settings
    from backend.workspace import Project

    s = AnswerSettings()
    assert s.retrieval.section_weight == 0.6 and s.generation.temperature == 0.0
    assert AnswerSettings.from_dict(s.to_dict()) == s and AnswerSettings.from_dict({}) == s
    assert field_choices(type(s.retrieval), "grounding") == ("auto", "abstain", "quote", "off")
    for key, _cls, f, _tp in leaf_fields(AnswerSettings):  # every field: a default and a help text
        assert f.metadata.get("help") and f.default is not dataclasses.MISSING, key
    assert "retrieval.section_weight" in ANSWER_KEYS and "generation.max_new_tokens" in ANSWER_KEYS
    # --set: dotted keys (or a bare field name), parsed like tune train --set (the same code)
    t = s.with_overrides({"retrieval.section_weight": "0.25", "k": "6", "generation.temperature": "0.3"})
    assert (t.retrieval.section_weight, t.retrieval.k, t.generation.temperature) == (0.25, 6, 0.3)
    assert RunConfig().with_overrides({"max_steps": "7"}).training.max_steps == 7
    with pytest.raises(ConfigError, match=r"unknown key 'retrieval.section_wieght' — did you mean 'retrieval.section_weight'"):
        s.with_overrides({"retrieval.section_wieght": 1})
    with pytest.raises(ConfigError, match=r"unknown key 'generation.topp' — did you mean 'generation.top_p'"):
        AnswerSettings.from_dict({"generation": {"topp": 0.5}})
    with pytest.raises(ConfigError, match=r"\[retrieval.grounding\] 'qoute' is not a valid choice — did you mean 'quote'"):
        s.with_overrides({"retrieval.grounding": "qoute"})
    with pytest.raises(ConfigError, match=r"\[retrieval.k\] 0 is below the minimum 1"):
        s.with_overrides({"k": 0})
    with pytest.raises(ConfigError, match=r"\[retrieval.vector_weight\] hybrid retrieval with both ranking weights "
                                          r"at 0 ranks nothing — give .* or turn retrieval.hybrid off"):
        s.with_overrides({"retrieval.vector_weight": 0, "retrieval.bm25_weight": 0})
    assert s.with_overrides({"retrieval.vector_weight": 0, "retrieval.bm25_weight": 0, "hybrid": False})
    assert describe_settings(s.to_dict()) == "default settings"
    assert describe_settings(t.to_dict()) == ("settings: defaults except retrieval.k = 6, retrieval.section_weight"
                                              " = 0.25, generation.temperature = 0.3")
    assert describe_settings({}) == "settings not recorded"
    # saved with the project (project.json is Project's): a bad saved value names the file and the field
    p = Project.create(tmp_path / "p")
    assert p.answer_settings() == s
    p.set_answer_settings(t)
    assert Project.open(p.root).answer_settings() == t
    p.settings["answer"] = {"retrieval": {"k": "many"}}
    p.save()
    again = Project.open(p.root)
    assert again.answer_settings() == s  # the GUI: the defaults (and the error beside them)
    with pytest.raises(ConfigError, match=r"project.json.*\[settings.answer.retrieval.k\] expected a whole number"):
        again.answer_settings(strict=True)


def test_grounding_withholds_figures_the_documents_do_not_hold():
    from backend.rag.chain import ABSTAIN_ANSWER, ground

    ctx = "**E4 — Wi-Fi password rejected.** Re-enter the password. The warranty is 3 years."
    ev = [{"sentence": "**E4 — Wi-Fi password rejected.**"}]
    q = "What does error E4 mean?"
    # a figure or code the context and the question lack: abstain (or quote), and say what was lacking
    assert ground("E4 means the Y1 wire is off for 15 min.", ctx, q, ev, "abstain") == (
        ABSTAIN_ANSWER, ["Y1", "15"])
    assert ground("The warranty is 5 years.", ctx, q, ev, "quote") == ("E4 — Wi-Fi password rejected.", ["5"])
    # supported figures (from the context or the question) and unsupported names pass under "abstain"
    assert ground("E4 means the Wi-Fi password was rejected.", ctx, q, ev, "abstain") == (
        "E4 means the Wi-Fi password was rejected.", [])
    assert ground("Kestrel says: re-enter it.", ctx, q, ev, "abstain") == ("Kestrel says: re-enter it.", [])
    assert ground("Kestrel says: re-enter it.", ctx, q, ev, "quote")[1] == ["Kestrel"]
    # only the sentences from the first unsupported one on are withheld ("How long is the warranty?")
    assert ground("The warranty is 3 years. Some last up to 7 years. E4 is Wi-Fi.", ctx, q, ev, "abstain") == (
        "The warranty is 3 years.", ["7"])
    assert ground("The warranty is 3 years. Some last up to 7 years.", ctx, q, ev, "quote") == (
        "E4 — Wi-Fi password rejected.", ["7"])  # quote replaces the whole answer
    assert ground("Some last 7 years. The warranty is 3 years.", ctx, q, ev, "abstain") == (ABSTAIN_ANSWER, ["7"])
    # off, no evidence, or already an abstention: untouched
    assert ground("It is 7 years.", ctx, q, ev, "off") == ("It is 7 years.", [])
    assert ground("It is 7 years.", ctx, q, [], "abstain") == ("It is 7 years.", [])
    assert ground("I don't know, maybe 7.", ctx, q, ev, "abstain") == ("I don't know, maybe 7.", [])


def test_auto_grounding_abstains_for_the_tuned_model_and_quotes_for_the_base_model():
    from backend.rag.chain import grounding_for

    assert grounding_for("auto", tuned=True) == "abstain" and grounding_for("auto", tuned=False) == "quote"
    assert all(grounding_for(g, t) == g for g in ("abstain", "quote", "off") for t in (True, False))


def test_withheld_answers_are_kept_in_the_transcript_and_its_markdown(tmp_path):
    from backend import transcript
    from backend.rag.chain import ABSTAIN_ANSWER, Answer

    a = Answer("What does E4 mean?", ABSTAIN_ANSWER, "tuned+rag", abstained=True,
               withheld="E4 means the Y1 wire is off.", unsupported=["Y1"])
    assert a.to_dict()["withheld"] == "E4 means the Y1 wire is off." and a.to_dict()["unsupported"] == ["Y1"]
    path = tmp_path / "transcript.jsonl"
    transcript.append(path, transcript.answer_record(a, exchange="x1"))
    (ex,) = transcript.load(path)
    (rec,) = ex.answers
    assert rec["withheld"] == "E4 means the Y1 wire is off." and rec["unsupported"] == ["Y1"]
    md = transcript.to_markdown([ex])
    assert ABSTAIN_ANSWER in md and "The model wrote: E4 means the Y1 wire is off." in md and "contain Y1" in md


# ---------------------------------------------------------------------------
# the knowledge recipe's rows (issue 25; docs/architecture.md, "The knowledge recipe")


def test_rewordings_are_deterministic_distinct_and_keep_the_question():
    from backend.data.rewording import TEMPLATES, reword

    q = "What is the default geofence radius?"
    three = reword(q, 3, seed=5)
    assert three == reword(q, 3, seed=5) and len(set(three)) == 3 and q not in three
    assert all("default geofence radius" in t for t in three)
    held = reword(q, 1, seed=5, skip=3)  # the held-out one is never among the trained ones
    assert held and held[0] not in three
    assert len(reword(q, 99)) == len(TEMPLATES) and reword("", 3) == [] and reword(q, 0) == []
    assert reword("Does fault QX-93 need a visit?", 8, seed=1)[0].count("QX-93") == 1  # codes keep their case


def test_out_of_scope_questions_ask_about_what_no_document_mentions():
    from backend.data.rewording import OUT_OF_SCOPE_TERMS, out_of_scope
    from backend.rag.hybrid import BM25Index, tokenize

    bm = BM25Index()
    bm.add([f"c{i}" for i in range(len(CODES))], list(CODES.values()))
    vocab = set(bm.df)
    q = "What does fault QX-93 mean?"
    oos = out_of_scope(q, vocab, tokenize, bm.idf, seed=3)
    assert oos and oos == out_of_scope(q, vocab, tokenize, bm.idf, seed=3)
    assert "QX-93" not in oos and oos.startswith("What does fault ")  # the rarest document word was replaced
    term = oos[len("What does fault "):-len(" mean?")]
    assert term in OUT_OF_SCOPE_TERMS and not any(t in vocab for t in tokenize(term))
    assert out_of_scope("Hello?", vocab, tokenize, bm.idf) is None  # nothing the documents know to replace
    assert out_of_scope(q, vocab, tokenize, bm.idf, terms=["fault"]) is None  # every candidate is in the documents


def _shaped(proj, f, tokenizer_dir, **data):
    from backend.config import RunConfig
    from backend.data import prepare
    from backend.models import load_tokenizer

    cfg = RunConfig.from_dict({"data": {"train_files": [str(f)], "raft": True, "max_length": 1024,
                                        "validation_split": 0.0, **data}})
    return prepare(cfg, load_tokenizer(str(tokenizer_dir))), cfg


def test_knowledge_recipe_rows_with_passages(tmp_path, tiny_embedder, real_tokenizer_dir):
    from backend.data import check_files
    from backend.data.pipeline import _run
    from backend.data.closedbook import question_answer
    from backend.models import load_tokenizer
    from backend.rag.chain import ABSTAIN_ANSWER
    from backend.recipes import FactSet

    proj, f = _raft_project(tmp_path / "p", tiny_embedder)
    opts = {"raft_closed_book": True, "rewordings": 2, "raft_abstain_share": 0.5, "heldout_rewordings": 2}
    prepared, cfg = _shaped(proj, f, real_tokenizer_dir, **opts)
    tok = load_tokenizer(str(real_tokenizer_dir))
    results, _ = _run(cfg.data.train_files, tok, cfg.data, strict=True, on_event=lambda e: None,
                      should_stop=lambda: False)
    rows = [r.example for res in results for r in res.rows]
    origins = [ex.origin for ex in rows]
    # 6 single-turn rows: with passages, as written without, 2 rewordings; 3 abstention rows; the multi-turn row as it is
    assert origins.count("raft") == 6 and origins.count("closed_book") == 6 and origins.count("reworded") == 12
    assert origins.count("abstain") == 3 and origins.count("") == 1 and len(prepared.train) == 28
    first = rows[:4]  # each row's closed-book forms follow it
    assert [ex.origin for ex in first] == ["raft", "closed_book", "reworded", "reworded"]
    assert first[0].messages[1]["content"].startswith("Context:\n")
    assert first[1].messages == [{"role": "user", "content": f"What does fault {_CODES[0]} mean?"},
                                 {"role": "assistant", "content": f"Fault {_CODES[0]} means {_CAUSES[0]}."}]
    assert all(ex.messages[-1]["content"] == first[1].messages[-1]["content"] for ex in first)
    # the rewordings are read from their own retrieved passages, like the row itself
    assert all(ex.messages[1]["content"].startswith("Context:\n") for ex in first[2:])
    assert first[2].messages[1]["content"].rsplit("Question: ", 1)[1] != f"What does fault {_CODES[0]} mean?"
    for ex in (ex for ex in rows if ex.origin == "abstain"):
        assert ex.messages[-1] == {"role": "assistant", "content": ABSTAIN_ANSWER}  # the chat's own words
        question = ex.messages[1]["content"].rsplit("Question: ", 1)[1]
        assert ex.messages[1]["content"].startswith("Context:\n") and not any(c in question for c in _CODES)
    # held-out rewordings: the validation set, with passages, never trained
    assert prepared.eval is not None and len(prepared.eval) == 2 and prepared.report["split"] == "held-out rewordings"
    trained_questions = {question_answer(ex)[1] for ex in rows if question_answer(ex)}
    assert prepared.report["knowledge"]["facts"] == 6
    assert prepared.report["knowledge"]["rows_per_fact"] == {"min": 4, "median": 4.0, "max": 4}
    again, _ = _shaped(proj, f, real_tokenizer_dir, **opts)  # deterministic (and from the cache)
    assert again.train == prepared.train and again.eval == prepared.eval
    rep = check_files([str(f)], tok, cfg)
    assert "facts: 6, trained 4 times per epoch each" in rep.text()
    fs = FactSet.from_summary(rep.summary)
    assert fs.rows == 28 and fs.written == 7 and fs.rows_per_fact == 4.0 and fs.max_tokens > 100
    from backend.data.rewording import reword

    held_out = {reword(f"What does fault {c} mean?", 1, seed=42, skip=2)[0] for c in _CODES[:6]}
    assert held_out and not held_out & trained_questions  # the rewording that picks the checkpoint is never trained


def test_knowledge_recipe_parts_switch_off(tmp_path, tiny_embedder, real_tokenizer_dir):
    proj, f = _raft_project(tmp_path / "p", tiny_embedder)
    plain, _ = _shaped(proj, f, real_tokenizer_dir)  # RAFT alone: one row per row, as before issue 25
    assert len(plain.train) == 7 and plain.eval is None
    assert plain.report["knowledge"]["rows_by_origin"] == {"raft": 6, "row": 1}
    closed, _ = _shaped(proj, f, real_tokenizer_dir, raft=False, rewordings=2)  # no documents: rewordings only
    assert len(closed.train) == 7 + 12 and closed.eval is None
    assert closed.report["knowledge"]["rows_per_fact"]["median"] == 3.0


def test_swap_figures_changes_shared_figures_only_and_keeps_their_shape():
    import random

    from backend.data.counterfactual import swap_figures

    msgs = [{"role": "system", "content": "Answer from the context."},
            {"role": "user", "content": "Context:\nFault E4 at 08:30. The adult fare is EUR 7.40, a car EUR 1,250. "
                                        "Opened in 2019.\n\nQuestion: What does a car cost?"},
            {"role": "assistant", "content": "A car costs EUR 1,250 (since 2019); the adult fare is 7.40."}]
    out = swap_figures(msgs, random.Random(3))
    assert out is not None and out[0] == msgs[0]
    answer, prompt = out[2]["content"], out[1]["content"]
    assert "1,250" not in answer and "7.40" not in answer and "2019" not in answer
    import re

    car = re.search(r"EUR (\d{1,3}(?:,\d{3})*|\d+) \(", answer).group(1)
    fare = re.search(r"fare is (\d+\.\d\d)\.", answer).group(1)
    year = re.search(r"since (\d{4})", answer).group(1)
    assert f"car EUR {car}." in prompt and f"fare is EUR {fare}," in prompt and f"Opened in {year}." in prompt
    assert 1900 < int(year) < 2100 and len(fare.split(".")[1]) == 2
    assert "E4" in prompt and "08:30" in prompt  # codes and times are not figures
    assert swap_figures(msgs, random.Random(3)) == out  # deterministic
    # an answer whose figures the passages do not hold (or without figures) is left as it is
    assert swap_figures([msgs[0], {"role": "user", "content": "Context: none"}, {"role": "assistant", "content": "42"}],
                        random.Random(0)) is None
    assert swap_figures([msgs[0], msgs[1], {"role": "assistant", "content": "It means the door is open."}],
                        random.Random(0)) is None


def test_counterfactual_raft_rows_read_the_changed_figure_from_the_passage(tmp_path, tiny_embedder):
    from backend.config import RunConfig
    from backend.data import raft
    from backend.data.pipeline import read_and_normalise
    from backend.rag.index import open_index

    names = ["Alder", "Birch", "Cedar", "Damson", "Elm", "Fig"]
    kgs = [120, 245, 380, 410, 575, 690]
    corpus = {f"bin-{n.lower()}.txt": f"Storage note. Bin {n} holds {kg} kg of apples." for n, kg in zip(names, kgs)}
    proj = _project(tmp_path / "p", corpus, tiny_embedder)
    f = proj.root / "datasets" / "qa.jsonl"
    f.parent.mkdir(exist_ok=True)
    f.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"How much does bin {n} hold?"},
                                                   {"role": "assistant", "content": f"Bin {n} holds {kg} kg."}]}) + "\n"
                         for n, kg in zip(names, kgs)), encoding="utf-8")
    idx = open_index(proj, embeddings=tiny_embedder)

    def shaped(share: float):
        cfg = RunConfig.from_dict({"data": {"train_files": [str(f)], "raft": True, "raft_distractors": 0,
                                            "raft_p_without_gold": 0.0, "raft_counterfactual_share": share}})
        rows = [r.example for x in read_and_normalise(cfg.data.train_files, cfg.data, strict_files=True) for r in x.rows]
        from backend.data.closedbook import reworded_rows

        rows += [ex for _i, ex in reworded_rows(rows, 2, seed=5)]  # only rewordings change
        return rows, raft.apply_raft(rows, cfg.data, seed=5, index=idx)

    rows, stats = shaped(1.0)
    changed = [ex for ex in rows if ex.origin == "counterfactual"]
    # every row whose retrieved passages hold its figure is changed (the tiny embedder may miss some passages)
    assert stats["counterfactual"] == len(changed) >= 3
    assert all(ex.origin == "raft" for ex in rows[:6])  # the rows as written keep their own figures
    for ex in changed:
        name = next(n for n in names if f"Bin {n} holds" in ex.messages[-1]["content"])
        kg = kgs[names.index(name)]
        new = ex.messages[-1]["content"].split("holds ", 1)[1].split(" ")[0]
        assert new != str(kg) and ex.messages[-1]["content"] == f"Bin {name} holds {new} kg."
        assert f"Bin {name} holds {new} kg of apples." in ex.messages[1]["content"]  # read from the passage
        assert f"{kg} kg" not in ex.messages[1]["content"]
    again, _ = shaped(1.0)
    assert [e.messages for e in again] == [e.messages for e in rows]  # deterministic, and the cache keeps originals
    none, stats0 = shaped(0.0)
    assert stats0["counterfactual"] == 0 and not [e for e in none if e.origin == "counterfactual"]
    assert all(e.messages[-1]["content"] == f"Bin {n} holds {kg} kg." for e, n, kg in zip(none, names, kgs))
    assert all(f"Bin {n} holds {kg} kg." == e.messages[-1]["content"] for e, n, kg in zip(rows, names, kgs))
