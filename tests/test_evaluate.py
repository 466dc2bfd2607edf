"""Evaluation (docs/architecture.md, "Evaluation"): evalsets, the four-mode scorecard, reports, CLI.

Real parts: the session's tiny random Llama with the real tokenizer and a real
LoRA adapter, a real Chroma index embedded by the tiny random BERT embedder,
the real pipeline split for validation rows.  The teacher of drafted questions
is a deterministic function of the prompt (a random tiny model writes no
parseable pairs).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from conftest import build_tiny_embedder

from backend.errors import DataError, RunError

DOCS = {
    "rivers.txt": "The Orvanne river rises in the Kestrel hills and flows north for 412 kilometres. "
                  "Its delta is famous for salt marshes where herons nest in spring.",
    "volcanoes.md": "# Mount Teskar\n\nMount Teskar is a shield volcano. Its last eruption, in 1921, sent basalt "
                    "lava flows into the eastern valley.",
    "bread.txt": "Sourdough bread needs a starter of flour and water fermented by wild yeast. Bakers fold the dough "
                 "every half hour and bake it in a hot oven at 250 degrees.",
}
QUESTIONS = [
    {"id": "a", "question": "Where does the Orvanne river rise?", "answer": "Kestrel hills", "source": "rivers.txt",
     "kind": "documents"},
    {"id": "b", "question": "When did Mount Teskar last erupt?", "keywords": ["1921"], "source": "volcanoes.md"},
    {"id": "c", "question": "What is the population of the Orvanne delta?", "answerable": False},
]


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory):
    from backend.rag.embeddings import load_embeddings

    return load_embeddings(build_tiny_embedder(tmp_path_factory.mktemp("emb") / "tiny-embedder"))


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_embedder):
    from backend.rag.index import ingest
    from backend.workspace import Project

    proj = Project.create(tmp_path_factory.mktemp("proj") / "p")
    for name, text in DOCS.items():
        (proj.documents_dir / name).write_text(text, encoding="utf-8")
    ingest(proj, [proj.documents_dir], embeddings=tiny_embedder)
    (proj.root / "evalsets").mkdir()
    (proj.root / "evalsets" / "geo.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS),
                                                      encoding="utf-8")
    return proj


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir):
    """A run folder as training writes it: config (with a validation split), a real LoRA adapter, metrics."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from backend.config import RunConfig

    root = tmp_path_factory.mktemp("runs")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"How many herons nest in marsh {i}?"},
        {"role": "assistant", "content": f"{i * 3} herons nest in marsh {i}."}]}) + "\n" for i in range(12)),
        encoding="utf-8")
    rd = root / "run-1"
    rd.mkdir()
    cfg = RunConfig.from_dict({"model": {"name_or_path": str(tiny_model_dir)},
                               "data": {"train_files": [str(data)], "validation_split": 0.25, "max_length": 128}})
    (rd / "config.json").write_text(cfg.to_json())
    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=8, lora_alpha=32, init_lora_weights=False,
                                           target_modules=["q_proj", "v_proj", "o_proj", "down_proj"]))
    peft_model.save_pretrained(rd / "adapter")
    (rd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"type": "train", "time": 0, "step": 1, "loss": 10.5, "learning_rate": 5e-4},
        {"type": "train", "time": 1, "step": 2, "loss": 9.9, "learning_rate": 4e-4},
        {"type": "eval", "time": 2, "step": 2, "eval_loss": 9.5, "perplexity": 13359.7}]))
    return rd


@pytest.fixture(scope="module")
def chat(run):
    from backend.rag.chat_model import load_chat_model
    from backend.rag.settings import GenerationSettings

    return load_chat_model(run, settings=GenerationSettings(max_new_tokens=5))


# ---------------------------------------------------------------------------
# evalsets


def test_evalset_files_read_write_and_name_bad_rows(tmp_path):
    from backend.evalsets import EvalRow, evalset_path, list_evalsets, read_evalset, write_evalset

    f = tmp_path / "q.jsonl"
    f.write_text('{"question": "ok?", "answer": "yes"}\n\n{"question": "gone?", "answerable": false}\n',
                 encoding="utf-8")
    rows = read_evalset(f)
    assert [(r.id, r.line, r.answerable, r.kind) for r in rows] == [("q1", 1, True, "file"),
                                                                    ("q3", 3, False, "unanswerable")]
    bad = {'{"question": "no expectation"}': r"q.jsonl:2: \[answer\] no expected 'answer' or 'keywords'",
           '{"answer": "x"}': r"q.jsonl:2: \[question\] no 'question'",
           "{not json": r"q.jsonl:2: not valid JSON",
           '{"question": "a?", "answer": "b", "kind": "weird"}': r"q.jsonl:2: \[kind\] unknown kind 'weird'",
           '{"id": "q1", "question": "again?", "answer": "b"}': r"q.jsonl:2: \[id\] id 'q1' is used twice"}
    for line, msg in bad.items():
        f.write_text('{"id": "q1", "question": "ok?", "answer": "yes"}\n' + line + "\n", encoding="utf-8")
        with pytest.raises(DataError, match=msg):
            read_evalset(f)
    f.write_text('{"question": "ok?", "answer": "yes"}\n{"answer": 1}\n{"question": "no expectation"}\n',
                 encoding="utf-8")
    with pytest.raises(DataError, match=r"q.jsonl:2: \[question\] no 'question' \(1 more bad row in the file\)") as ei:
        read_evalset(f)
    assert [(e.line, e.field) for e in ei.value.problems] == [(2, "question"), (3, "answer")]
    c = tmp_path / "q.csv"
    c.write_text("question,answer,keywords,source,answerable\nWhen?,,1921;eruption,volcanoes.md,\n"
                 "\"Multi\nline?\",yes,,,true\nUnknown?,,,,maybe\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.csv:5: \[answerable\] 'answerable' must be true or false"):
        read_evalset(c)
    c.write_text("question,answer,keywords,source\nWhen?,,1921;eruption,volcanoes.md\nWhere?,,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"q.csv:3: \[answer\] no expected"):
        read_evalset(c)
    c.write_text("question,answer,keywords,source\nWhen?,,1921;eruption,volcanoes.md\n", encoding="utf-8")
    (row,) = read_evalset(c)
    assert row.keywords == ["1921", "eruption"] and row.source == "volcanoes.md" and row.line == 2
    # written and listed as a project's evalset, lineage and status kept
    out = write_evalset(evalset_path(tmp_path, "mine"), [EvalRow("d1", "Why?", "Because.", kind="distilled",
                                                                  lineage={"chunk": 3}, status="draft")])
    assert out == tmp_path / "evalsets" / "mine.jsonl" and list_evalsets(tmp_path) == ["mine"]
    (back,) = read_evalset(out)
    assert back.lineage == {"chunk": 3} and back.status == "draft" and back.kind == "distilled"
    with pytest.raises(DataError, match="not a usable evalset name"):
        evalset_path(tmp_path, "../escape")


def test_from_validation_gives_held_out_pairs_and_overlap_is_reported(run):
    from backend.config import RunConfig
    from backend.data import prepare
    from backend.evalsets import EvalRow, from_validation, training_overlap
    from backend.models import load_tokenizer

    rows = from_validation(run)
    assert len(rows) == 3 and all(r.kind == "validation" for r in rows)  # 25% of 12
    assert all(re.fullmatch(r"How many herons nest in marsh \d+\?", r.question) for r in rows)
    for r in rows:
        i = int(r.question.split()[-1].rstrip("?"))
        assert r.answer == f"{i * 3} herons nest in marsh {i}." and r.lineage["line"] == i + 1
    # the same split as training: as many validation rows as prepare() makes, none of them trained on
    cfg = RunConfig.load(run / "config.json")
    prepared = prepare(cfg, load_tokenizer(cfg.model.name_or_path))
    assert len(prepared.eval) == len(rows)
    assert len(from_validation(run, limit=2)) == 2
    # a test question that is a training question is reported (exact and near duplicates), others are not
    held = {int(r.question.split()[-1].rstrip("?")) for r in rows}
    k = min(set(range(12)) - held)  # a row the run trained on
    found = training_overlap(rows + [EvalRow("x", f"how many herons nest in marsh {k}"),
                                     EvalRow("y", f"How many herons nest in marshes {k}?"),
                                     EvalRow("z", "Where does the river rise?", "hills")], run)
    by_id = {o["id"]: o for o in found}
    # the validation rows themselves were never trained on: not reported
    assert set(by_id) == {"x", "y"} and by_id["x"]["match"] == "exact" and by_id["y"]["match"] == "near"
    assert by_id["x"]["file"] == "train.jsonl" and by_id["x"]["line"] == k + 1


def test_draft_from_documents_keeps_lineage(project):
    from backend.evalsets import draft_from_documents

    def teacher(prompts):
        out = []
        for p in prompts:
            first = p.split('"""\n')[1].split(".")[0].strip("# \n")
            out.append(f"Question: What does the text on {first.split()[0]} say?\nAnswer: {first}."
                       if "Teskar" not in p else "no usable pair")
        return out

    events = []
    rows = draft_from_documents(project, n=2, generate_fn=teacher, on_event=events.append)
    assert len(rows) == 2 and all(r.status == "draft" and r.kind == "distilled" for r in rows)
    # the chunk without a usable pair is skipped
    assert {r.source for r in rows} == {"bread.txt", "rivers.txt"}
    for r in rows:
        assert r.lineage["teacher"] == "default" and r.lineage["chunk"] == 0
        assert Path(r.lineage["document"]).name == r.source and r.answer.rstrip(".") in r.lineage["passage"]
    assert any(e["type"] == "progress" and e["stage"] == "distill" for e in events)


# ---------------------------------------------------------------------------
# evaluation


def test_evaluate_writes_scorecard_intervals_verdicts_and_reopens(project, run, chat, tiny_embedder, tmp_path):
    from backend.rag.evaluate import (METRICS, bootstrap, compare_runs, is_correct, list_reports, load_report,
                                      token_f1, verdict_tags)

    probe = tmp_path / "probe.jsonl"
    probe.write_text('{"question": "What is 2 + 2?", "keywords": ["4|four"]}\n'
                     '{"question": "Capital of France?", "keywords": ["paris"]}\n', encoding="utf-8")
    events = []
    rep = evaluate_geo(project, run, chat, tiny_embedder, forgetting=True, probe=probe, on_event=events.append)
    path = run / "eval" / "geo.json"
    assert Path(rep.json_path) == path and (run / "eval" / "geo.md").exists()
    data = json.loads(path.read_text())
    assert data["modes"] == ["tuned+rag", "tuned", "base+rag", "base"] and not data["cancelled"]
    for mode in data["modes"]:
        card = data["scorecard"][mode]
        assert set(card) == set(METRICS)
        for m in ("accuracy", "f1", "similarity", "false_abstention"):
            f = card[m]
            assert f["n"] == 2 and f["low"] <= f["value"] <= f["high"]
        assert card["abstention"]["n"] == 1
    assert data["scorecard"]["tuned+rag"]["retrieval_hit_rate"]["n"] == 2
    assert data["scorecard"]["tuned"]["retrieval_hit_rate"]["value"] is None
    qa = data["questions"][0]
    assert set(qa["modes"]) == set(data["modes"]) and qa["retrieved"] and qa["retrieval_hit"] is not None
    assert set(qa["modes"]["tuned+rag"]) >= {"answer", "correct", "f1", "similarity", "abstained", "seconds",
                                              "sources", "evidence"}
    assert qa["modes"]["tuned+rag"]["sources"][0]["text"] and qa["modes"]["tuned"]["sources"] == []
    assert all(q["verdict"] in {"improved", "regressed", "rag_fixed", "rag_broke", "still_wrong", "right"}
               for q in data["questions"])
    assert data["questions"][2]["modes"]["base"]["f1"] is None  # unanswerable: only abstention counts
    loss = data["loss"]
    assert loss["rows"] == 3 and loss["base"]["eval_loss"] != loss["tuned"]["eval_loss"]
    assert loss["trainer_eval_loss"] == 9.5
    md = (run / "eval" / "geo.md").read_text()
    assert "before tuning" in md and all(f"| {m} |" in md for m in data["modes"])
    fg = data["forgetting"]
    assert fg["base"]["n"] == fg["tuned"]["n"] == 2 and len(fg["questions"]) == 2
    assert re.search(r"\d → \d of 2", fg["message"])
    assert {e["stage"] for e in events if e["type"] == "progress"} >= {"eval", "forgetting", "similarity"}
    # reopened without a model, listed, compared
    again = load_report(run, "geo")
    assert again.to_dict() == {**rep.to_dict()} and again.verdict_counts == rep.verdict_counts
    assert list_reports(run) == ["geo"] and load_report(run, "nope") is None
    (cmp,) = compare_runs([run], "geo")
    assert cmp["scorecard"] == rep.scorecard and set(cmp["correct"]) == set(rep.modes)
    assert compare_runs([tmp_path], "geo")[0]["scorecard"] is None
    # the metrics themselves
    from backend.evalsets import EvalRow

    q = EvalRow("k", "When?", keywords=["1921", "erupt|eruption"])
    assert is_correct("An eruption in 1921.", q) and not is_correct("It erupted long ago.", q)
    assert is_correct("Your documents don't say.", EvalRow("u", "?", answerable=False))
    assert token_f1("the Kestrel Hills!", "Kestrel hills") == 1.0
    b = bootstrap([1, 0, 1, 1, 0, 1, 0, 1, 1, 1])
    assert b["value"] == 0.7 and 0.3 <= b["low"] < 0.7 < b["high"] <= 1.0 and bootstrap([1, 0] * 5) == bootstrap([1, 0] * 5)
    assert verdict_tags({"base": {"correct": False}, "tuned": {"correct": True},
                         "base+rag": {"correct": True}, "tuned+rag": {"correct": True}}) == ["improved", "rag_fixed"]
    assert verdict_tags({m: {"correct": False} for m in ("base", "tuned")}) == ["still_wrong"]


def evaluate_geo(project, run, chat, emb, **kw):
    from backend.rag.evaluate import evaluate

    return evaluate(project, "geo", run, chat_model=chat, embeddings=emb, **kw)


def test_scorecard_uses_and_names_the_projects_answer_settings(project, run, chat, tiny_embedder, tmp_path):
    """The Chat page's settings (saved in project.json) are what the scorecard answers with, and it says so."""
    from backend.rag.evaluate import evaluate, load_report
    from backend.rag.settings import AnswerSettings
    from backend.report import write_report
    from desktop.eval_adapter import EvalEngine

    saved = AnswerSettings().with_overrides({"retrieval.k": 1, "retrieval.grounding": "off",
                                             "generation.max_new_tokens": 4, "generation.temperature": 0.7})
    project.set_answer_settings(saved)
    try:
        rep = evaluate(project.root, "geo", run, chat_model=chat, embeddings=tiny_embedder, name="saved",
                       modes=["tuned+rag"], with_loss=False)  # default: the project's saved settings
        assert rep.settings["retrieval"]["k"] == 1 and rep.settings["retrieval"]["grounding"] == "off"
        assert rep.settings["generation"]["temperature"] == 0.0  # always greedy
        assert all(len(q["retrieved"]) == 1 for q in rep.questions)
        assert AnswerSettings.from_dict(load_report(run, "saved").settings).retrieval.k == 1
        assert "Answered with settings: defaults except retrieval.k = 1" in rep.markdown()
        html = write_report(run, tmp_path / "r.html", "saved").read_text(encoding="utf-8")
        assert "retrieval.k = 1" in html and "retrieval.grounding = off" in html
        # explicit settings (the GUI's, tune eval --set) win over the saved ones
        mine = saved.with_overrides({"retrieval.k": 2, "generation.max_new_tokens": 3})
        rep = evaluate(project, "geo", run, chat_model=chat, embeddings=tiny_embedder, name="mine",
                       modes=["tuned+rag"], with_loss=False, settings=mine)
        assert rep.settings["retrieval"]["k"] == 2 and rep.settings["generation"]["max_new_tokens"] == 3
        assert all(len(q["retrieved"]) == 2 for q in rep.questions)
        # the Evaluate page's engine passes them on (it used to pass none: the scorecard used the defaults):
        # the proxy sends them to the model host as one dict, and the host's evaluate request answers with them
        from backend.host import Models, op_evaluate

        sent = []

        class Recorder:  # the model host's request interface, recording what the proxy sends
            def request(self, op, params, **kw):
                sent.append((op, params))
                return {}

        EvalEngine(Recorder()).evaluate(project, "geo", run, max_new_tokens=3, settings=mine.with_overrides({"k": 3}))
        (op, params), = sent
        assert op == "evaluate" and params["settings"]["retrieval"]["k"] == 3 and params["max_new_tokens"] == 3
        models = Models()
        models.embeddings, models.chat, models.chat_key = tiny_embedder, chat, (str(run), None)
        d = op_evaluate(models, params, lambda e: None, lambda: False)
        assert d["settings"]["retrieval"]["k"] == 3 and d["settings"]["generation"]["max_new_tokens"] == 3
        assert all(len(q["retrieved"]) == 3 for q in d["questions"])
    finally:
        project.set_answer_settings(AnswerSettings())


def test_stopped_evaluation_writes_what_it_measured(project, run, chat, tiny_embedder):
    from backend.rag.evaluate import load_report

    events = []
    rep = evaluate_geo(project, run, chat, tiny_embedder, name="stopped", on_event=events.append,
                       should_stop=lambda: sum(e["type"] == "progress" and e["stage"] == "eval" for e in events) > 5)
    saved = load_report(run, "stopped")
    assert rep.cancelled and saved.cancelled and 1 <= len(saved.questions) < 3
    assert saved.loss == {"note": "not measured"}


def test_evaluate_rejects_bad_input(project, run, chat, tiny_embedder):
    from backend.evalsets import EvalRow
    from backend.rag.evaluate import evaluate

    with pytest.raises(DataError, match="no evalset or questions file 'missing' — the project has: geo"):
        evaluate(project, "missing", run, chat_model=chat, embeddings=tiny_embedder)
    with pytest.raises(DataError, match=r"unknown mode 'tuned\+docs'"):
        evaluate(project, "geo", run, chat_model=chat, embeddings=tiny_embedder, modes=["tuned+docs"])
    with pytest.raises(DataError, match="every question of the evalset is rejected"):
        evaluate(project, [EvalRow("r", "x?", "y", status="rejected")], run, chat_model=chat,
                 embeddings=tiny_embedder)


# ---------------------------------------------------------------------------
# report and CLI


def test_report_is_self_contained_offline_html(project, run, chat, tiny_embedder, tmp_path):
    from backend.report import write_report

    evaluate_geo(project, run, chat, tiny_embedder, name="forreport", with_loss=False)
    exp = run / "exports" / "gguf"
    exp.mkdir(parents=True)
    (exp / "model.gguf").write_bytes(b"GGUF" + bytes(60))
    (exp / "parity.json").write_text(json.dumps({"max_abs_logit_diff": 0.01, "same_greedy_tokens": True}))
    out = write_report(run, tmp_path / "r.html", "forreport")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "</html>" in text
    assert not re.search(r"https?:", text, re.I), "the report must load nothing from the network"
    assert not re.search(r"<(script|link|img|iframe)\b", text, re.I)
    assert "<polyline" in text and "training loss" in text  # curves from metrics.jsonl
    assert "Where does the Orvanne river rise?" in text and "forreport" in text
    import hashlib

    assert hashlib.sha256((run.parent / "train.jsonl").read_bytes()).hexdigest() in text
    assert hashlib.sha256((exp / "model.gguf").read_bytes()).hexdigest() in text and "same_greedy_tokens" in text
    with pytest.raises(RunError, match="no evaluation named 'nope'"):
        write_report(run, tmp_path / "x.html", "nope")


def test_cli_eval_report_distill_questions(project, run, tmp_path, capsys, monkeypatch):
    from backend.cli import main
    from backend.rag import cli

    parser = argparse.ArgumentParser(prog="tune")
    cli.register(parser.add_subparsers(dest="command"))

    def call(*argv):
        args = parser.parse_args([str(a) for a in argv])
        rc = args.func(args)
        return rc, capsys.readouterr().out

    # the index was built by the tiny embedder: the CLI loads the same folder (recorded with the index)
    rc, out = call("eval", project.root, "--evalset", "geo", "--run", run, "--json", "--no-loss",
                   "--max-new-tokens", "3", "--modes", "tuned,base", "--name", "cli",
                   "--set", "retrieval.section_weight=0.25", "--set", "grounding=quote")
    data = json.loads(out)
    assert rc == 0 and data["modes"] == ["tuned", "base"] and (run / "eval" / "cli.json").exists()
    assert data["settings"]["retrieval"]["section_weight"] == 0.25 and data["settings"]["retrieval"]["grounding"] == "quote"
    assert data["settings"]["generation"]["max_new_tokens"] == 3
    rc, out = call("eval", project.root, "--from-validation", "--run", run, "--no-loss", "--max-new-tokens", "3",
                   "--modes", "tuned,base")
    assert rc == 0 and "| tuned |" in out and (run / "eval" / "validation.json").exists()
    # the first form still works: a questions file as the second argument
    rc, out = call("eval", project.root, project.root / "evalsets" / "geo.jsonl", "--run", run, "--no-loss",
                   "--max-new-tokens", "3", "--modes", "base", "--out", tmp_path / "ev")
    assert rc == 0 and (tmp_path / "ev" / "geo.json").exists()
    rc, out = call("report", run, "--evalset", "cli", "-o", tmp_path / "rep.html")
    assert rc == 0 and (tmp_path / "rep.html").exists()
    # user mistakes: exit code 2 with the message
    assert main(["eval", str(project.root), "--evalset", "missing", "--run", str(run)]) == 2
    assert "no evalset or questions file 'missing'" in capsys.readouterr().err
    assert main(["eval", str(project.root), "--run", str(run)]) == 2
    assert "no questions to evaluate" in capsys.readouterr().err
    assert main(["eval", str(project.root), "geo", "--run", str(run), "--set", "retrieval.section_wieght=1"]) == 2
    assert "unknown key 'retrieval.section_wieght' — did you mean 'retrieval.section_weight'" in capsys.readouterr().err
    assert main(["eval", str(project.root), "geo", "--run", str(run), "--set", "retrieval.k=0"]) == 2
    assert "[retrieval.k] 0 is below the minimum 1" in capsys.readouterr().err
    assert main(["report", str(run), "--evalset", "nope"]) == 2
    assert main(["distill-questions", str(project.root), "--name", "../bad"]) == 2
    assert "not a usable evalset name" in capsys.readouterr().err


# ---------------------------------------------------------------------------
# end to end: the default model on the sample project


@pytest.mark.e2e
def test_e2e_sample_project_short_run_evaluated_on_its_evalset(tmp_path):
    import shutil

    from backend.evalsets import evalset_path, read_evalset, training_overlap
    from backend.rag.evaluate import MODES, evaluate, load_report
    from backend.rag.index import ingest
    from backend.rag.settings import GenerationSettings
    from backend.report import write_report
    from backend.training import train
    from backend.planning import resolve_run_config
    from backend.workspace import Project

    src = Path(__file__).resolve().parents[1] / "resources" / "sample_project"
    shutil.copytree(src, tmp_path / "brisa", ignore=shutil.ignore_patterns("runs", "index"))
    proj = Project.open(tmp_path / "brisa")
    rows = read_evalset(evalset_path(proj, "brisa"))
    kinds = {k: [r for r in rows if r.kind == k] for k in ("trained", "documents", "unanswerable")}
    assert len(rows) >= 24 and min(len(v) for v in kinds.values()) >= 5
    assert training_overlap(rows, proj) == []  # no test question is a training question
    ingest(proj, [proj.documents_dir])
    # two steps of the Quick CPU test preset: the path, not the quality (no timed assertions either way)
    cfg = resolve_run_config(proj, preset="quick", overrides={"training.max_steps": 2, "training.eval_steps": 0,
                                                               "training.save_steps": 2,
                                                               "output_dir": str(tmp_path / "run")})
    res = train(cfg)
    assert res.status == "completed", res.reason
    picked = kinds["trained"][:2] + kinds["documents"][:2] + kinds["unanswerable"][:1]
    rep = evaluate(proj, picked, res.run_dir, name="brisa-e2e", generation=GenerationSettings(max_new_tokens=40))
    assert rep.modes == list(MODES) and not rep.cancelled
    assert rep.scorecard["tuned+rag"]["retrieval_hit_rate"]["n"] == 4
    assert rep.scorecard["base"]["abstention"]["n"] == 1
    assert all(len(q["modes"]) == 4 and q["modes"]["tuned+rag"]["answer"] for q in rep.questions)
    assert rep.loss.get("base") and rep.loss.get("tuned")
    assert load_report(res.run_dir, "brisa-e2e").to_dict() == rep.to_dict()
    html = write_report(res.run_dir, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "brisa-e2e" in html and "<polyline" in html and not re.search(r"https?:", html)
