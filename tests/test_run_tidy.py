"""Runs you can tidy and a chat you can keep: backend/runs.py rename/delete, `tune runs --delete/--rename`,
backend/transcript.py (issue 21; docs/architecture.md, "The run folder" and "The project folder")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backend import runs, transcript
from backend.config import RunConfig
from backend.errors import RunError


def _run(root: Path, rid: str, status: str = "failed", *, pid: int | None = 2**22 + 4321, final: bool = False,
         exports: int = 0, evals: int = 0, steps=(2,)) -> Path:
    run = runs.runs_dir(root) / rid
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(RunConfig(name=f"run {rid}").to_dict()))
    runs.write_status(run, status, created=float(len(rid)))
    st = runs.read_status(run)
    st["pid"] = pid
    runs.status_path(run).write_text(json.dumps(st))
    for s in steps:
        ck = runs.checkpoint_dir(run, s)
        ck.mkdir(parents=True)
        (ck / runs.TRAINER_STATE).write_text("{}" * 100)
        runs.mark_checkpoint_complete(ck, s)
    if final:
        runs.adapter_dir(run).mkdir()
        (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
    for i in range(exports):
        (runs.exports_dir(run) / f"e{i}").mkdir(parents=True)
    for i in range(evals):
        runs.eval_path(run, f"set{i}").parent.mkdir(exist_ok=True)
        runs.eval_path(run, f"set{i}").write_text("{}")
    return run


def test_rename_shows_a_display_name_and_keeps_the_folder(tmp_path):
    run = _run(tmp_path, "20261130-115150-run-a")
    assert runs.read_run(run).name == "run 20261130-115150-run-a"
    assert runs.rename_run(run, "  first try  ") == "first try"
    assert run.is_dir() and runs.read_run(run).name == "first try"
    assert runs.list_runs(tmp_path)[0].name == "first try"
    assert runs.read_config(run)["name"] == "run 20261130-115150-run-a"  # the training config is untouched
    assert runs.rename_run(run, "") == "run 20261130-115150-run-a"  # an empty name removes the label
    assert not runs.label_path(run).exists()
    with pytest.raises(RunError, match="a run name is one line"):
        runs.rename_run(run, "two\nlines")
    with pytest.raises(RunError, match="not a run folder"):
        runs.rename_run(tmp_path, "x")


def test_delete_names_what_it_removes_and_refuses_a_live_run(tmp_path):
    done = _run(tmp_path, "done", "completed", final=True, exports=2, evals=1)
    live = _run(tmp_path, "live", "running", pid=os.getpid())
    gone = _run(tmp_path, "gone", "running")  # left running by a process that is gone: interrupted
    c = runs.run_contents(done)
    assert c.has_final and c.exports == 2 and c.evaluations == 1 and c.checkpoints == 1 and c.size_bytes > 200
    assert c.describe().endswith(": the adapter, 1 checkpoint, 2 exports, 1 evaluation")
    removed = runs.delete_run(done)
    assert not done.exists() and removed.size_bytes == c.size_bytes
    with pytest.raises(RunError, match="this run is training now"):
        runs.delete_run(live)
    assert live.is_dir()
    assert runs.read_run(gone).display_status == "interrupted"
    runs.delete_run(gone)
    assert not gone.exists()
    with pytest.raises(RunError, match="not a run folder"):
        runs.delete_run(tmp_path)  # never anything that is not a run folder
    assert tmp_path.is_dir()


def test_find_run_by_id_name_or_path(tmp_path):
    a = _run(tmp_path, "a1")
    b = _run(tmp_path, "b22")
    runs.rename_run(b, "keeper")
    assert runs.find_run(tmp_path, "a1") == a and runs.find_run(tmp_path, "keeper") == b
    assert runs.find_run(tmp_path, str(b)) == b
    runs.rename_run(a, "keeper")
    with pytest.raises(RunError, match="2 runs are named 'keeper'"):
        runs.find_run(tmp_path, "keeper")
    with pytest.raises(RunError, match="no run 'nope' in this project"):
        runs.find_run(tmp_path, "nope")


def test_cli_runs_delete_and_rename(tmp_path, capsys):
    from backend.cli import main
    from backend.workspace import Project

    project = Project.create(tmp_path / "p", "p")
    a = _run(project.root, "a1")
    _run(project.root, "b22")
    assert main(["runs", str(project.root), "--rename", "a1", "baseline"]) == 0
    assert "a1 is now shown as 'baseline'" in capsys.readouterr().out
    assert main(["runs", str(project.root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"]: r["name"] for r in rows}["a1"] == "baseline"
    assert main(["runs", str(project.root)]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split()[-1] == "NAME" and any(line.startswith("a1") and line.endswith("baseline") for line in lines)
    assert main(["runs", str(project.root), "--delete", "baseline"]) == 0
    assert "deleted" in capsys.readouterr().out and not a.exists()
    assert main(["runs", str(project.root), "--delete", "a1"]) == 2
    assert "no run 'a1' in this project" in capsys.readouterr().err


class _Answer:
    def __init__(self, question, mode, answer, sources=(), seconds=1.25):
        self.d = {"question": question, "answer": answer, "mode": mode, "sources": list(sources),
                  "seconds": seconds, "stopped": False, "abstained": False}

    def to_dict(self):
        return self.d


SOURCE = {"file": "guide.md", "path": "documents/guide.md", "page": None, "chunk": 2, "text": "The tower is 500 m.",
          "score": 0.81, "bm25": 1.5, "fused": 0.03, "id": "c2"}


def test_transcript_is_appended_restored_archived_and_exported(tmp_path):
    from backend.workspace import Project

    project = Project.create(tmp_path / "p", "p")
    path = project.transcript_path
    assert path == project.root / "chat" / "transcript.jsonl" and transcript.load(path) == []
    ex1, ex2 = transcript.new_exchange_id(), transcript.new_exchange_id()
    run = project.runs_dir / "r1"
    transcript.append(path, transcript.answer_record(_Answer("How tall?", "base+rag", "**500 m**", [SOURCE]),
                                                     exchange=ex1, run_dir=run, run_name="run Nov 30 11:51"))
    transcript.append(path, transcript.answer_record(_Answer("How tall?", "tuned+rag", "500 m", [SOURCE]),
                                                     exchange=ex1, run_dir=run, run_name="run Nov 30 11:51"))
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"torn": ')  # a crash mid-line
    transcript.append(path, transcript.answer_record(_Answer("Why?", "base", "Because."), exchange=ex2))
    got = transcript.load(path)
    assert [(e.question, [a["mode"] for a in e.answers]) for e in got] == [
        ("How tall?", ["base+rag", "tuned+rag"]), ("Why?", ["base"])]
    a = got[0].answers[1]
    assert a["run"] == str(run) and a["run_name"] == "run Nov 30 11:51" and a["seconds"] == 1.25
    (src,) = transcript.sources_of(a)
    assert src.file == "guide.md" and src.chunk == 2 and src.text == "The tower is 500 m."

    md = transcript.to_markdown(got, "Chat: p")
    assert md.startswith("# Chat: p\n") and "## How tall?" in md and "### Tuned model · with documents (run Nov 30 11:51)" in md
    assert "1. guide.md, passage 3 (similarity 0.81)" in md and "*answered in 1.2 s*" in md and "**500 m**" in md
    out = transcript.export_markdown(path, tmp_path / "chat.md", "Chat: p")
    assert out.read_text(encoding="utf-8") == transcript.to_markdown(transcript.load(path), "Chat: p")

    moved = transcript.archive(path)
    assert moved is not None and moved.parent == path.parent and moved.name.startswith("transcript-")
    assert not path.exists() and len(transcript.load(moved)) == 2
    assert transcript.archive(path) is None  # nothing to move
