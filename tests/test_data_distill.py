"""Data distillation: teacher-written Q/A pairs saved as a messages dataset."""

from __future__ import annotations

import json

import pytest

from backend.data.distill import distill, parse_pairs
from backend.errors import DataError
from backend.workspace import Project


def test_parse_pairs_variants():
    assert parse_pairs("Question: What is X?\nAnswer: X is Y.\n\nQuestion 2: Why?\nAnswer 2: Because.") == [
        ("What is X?", "X is Y."), ("Why?", "Because.")]
    assert parse_pairs("**Q1:** Who wrote it?\n**A1:** Ada.") == [("Who wrote it?", "Ada.")]
    assert parse_pairs("no structure at all") == []


def fake_teacher(prompts):
    out = []
    for p in prompts:
        fact = p.split('"""\n')[1].split("\n")[0][:40]
        out.append(f"Question: What does the text say about {fact}?\nAnswer: It says: {fact}.\n"
                   f"Question: Is this a test?\nAnswer: Yes.")
    return out


def test_distill_writes_a_reviewable_messages_dataset(tmp_path):
    proj = Project.create(tmp_path / "proj")
    doc = tmp_path / "facts.txt"
    doc.write_text("\n\n".join(f"Fact {i}: llamas hum." for i in range(5)), encoding="utf-8")
    events = []
    res = distill([doc], proj.datasets_dir, generate_fn=fake_teacher, chunk_size=100, batch_size=2,
                  questions_per_chunk=2, on_event=events.append, system_prompt="Answer briefly.")
    assert res.path.parent == proj.datasets_dir and res.path.name.startswith("distilled-")
    rows = [json.loads(line) for line in res.path.read_text(encoding="utf-8").splitlines()]
    assert res.rows == len(rows) > 0
    assert rows[0]["messages"][0] == {"role": "system", "content": "Answer briefly."}
    assert rows[0]["messages"][1]["role"] == "user" and rows[0]["source"] == str(doc)
    # "Is this a test?" repeats across chunks: kept once
    assert sum(r["messages"][1]["content"] == "Is this a test?" for r in rows) == 1
    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "distill"]
    assert progress[-1]["current"] == progress[-1]["total"] == res.chunks
    with pytest.raises(DataError, match="never overwrites"):
        distill([doc], res.path, generate_fn=fake_teacher)


def test_distill_stop_keeps_what_was_generated(tmp_path):
    doc = tmp_path / "facts.txt"
    doc.write_text("\n\n".join(f"Fact number {i} is here." for i in range(6)), encoding="utf-8")
    calls = []
    res = distill([doc], tmp_path, generate_fn=lambda p: calls.append(p) or fake_teacher(p), chunk_size=30,
                  batch_size=1, should_stop=lambda: len(calls) >= 2)
    assert res.cancelled and res.chunks == 2 and res.path.exists()


def test_distill_with_a_real_local_teacher(tmp_path, tiny_model_dir, capsys):
    """The transformers path runs end to end; a random tiny model writes no usable pairs: a clear error."""
    from backend.cli import main

    proj = Project.create(tmp_path / "proj")
    doc = tmp_path / "d.txt"
    doc.write_text("Llamas live in the Andes.", encoding="utf-8")
    rc = main(["data", "distill", str(proj.root), str(doc), "--teacher", str(tiny_model_dir),
               "--max-new-tokens", "4", "--questions", "1"])
    assert rc == 2
    assert "the teacher wrote no usable question/answer pairs for 1 chunk(s)" in capsys.readouterr().err
    assert list(proj.datasets_dir.iterdir()) == []
