"""Corrections as first-class data (backend/corrections.py; docs/architecture.md, "Corrections")."""

from __future__ import annotations

import json
import os

import pytest

from backend import corrections
from backend.cli import main as tune
from backend.confine import ConfinementError
from backend.errors import DataError
from backend.evalsets import read_evalset
from backend.workspace import Project

needs_links = pytest.mark.skipif(os.name == "nt", reason="symbolic links need privileges on Windows")

PASSAGE = {"file": "troubleshooting.md", "path": "documents/troubleshooting.md", "page": None, "chunk": 2,
           "text": "E4: the Wi-Fi password was rejected."}


def _add(root, q="What does error E4 mean?", chosen="The Wi-Fi password was rejected.", **kw):
    kw.setdefault("rejected", "E4 means the battery is low.")
    kw.setdefault("mode", "tuned+rag")
    kw.setdefault("run", root / "runs" / "run-1")
    kw.setdefault("passages", [PASSAGE])
    return corrections.add(root, q, chosen, **kw)


def test_a_correction_keeps_everything_and_stays_an_sft_row(tmp_path):
    from backend.data.formats import normalise_file
    from backend.data.readers import read_file

    c = _add(tmp_path, when=1764500000.0)
    got, = corrections.load(tmp_path)
    assert got.id == c.id and got.id.startswith("c-") and got.line == 1
    assert (got.question, got.chosen, got.rejected) == ("What does error E4 mean?", "The Wi-Fi password was rejected.",
                                                       "E4 means the battery is low.")
    assert got.mode == "tuned+rag" and got.run == "run-1" and got.time == 1764500000.0 and not got.test
    assert got.passages == [PASSAGE] and got.is_pair and not got.legacy
    # the file is still a messages dataset: training reads the corrected answer as before
    fr = read_file(corrections.corrections_path(tmp_path))
    ex, = normalise_file(fr.rows, "feedback.jsonl").examples
    assert ex.messages == [{"role": "user", "content": "What does error E4 mean?"},
                           {"role": "assistant", "content": "The Wi-Fi password was rejected."}]


def test_old_feedback_rows_still_load(tmp_path):
    path = corrections.corrections_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"messages": [{"role": "system", "content": "Be brief."},
                                             {"role": "user", "content": "Q1?"},
                                             {"role": "assistant", "content": "A1."}]}) + "\n")
    _add(tmp_path)
    old, new = corrections.load(tmp_path)
    assert old.id == "line-1" and old.legacy and old.system == "Be brief." and old.chosen == "A1."
    assert not old.is_pair and old.rejected == "" and old.run is None
    assert [p["id"] for p in corrections.preference_pairs(tmp_path)] == [new.id]
    # editing an old row gives it an id of its own and keeps its system prompt
    edited = corrections.update(tmp_path, "line-1", chosen="A1, corrected.")
    assert edited.id.startswith("c-") and edited.system == "Be brief."
    assert corrections.load(tmp_path)[0].chosen == "A1, corrected."


def test_a_bad_line_is_skipped_and_named_and_kept_by_edits(tmp_path):
    path = corrections.corrections_path(tmp_path)
    a = _add(tmp_path, "Q1?", "A1.")
    bad = [b'{"messages": "nope"}', b"not json at all", b'{"messages": [{"role": "user", "content": "only"}]}',
           json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                       "correction": {"id": "x", "test": "yes"}}).encode(),
           json.dumps({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
                       "correction": {"id": a.id}}).encode(),
           b"\xff\xfe"]
    with open(path, "ab") as fh:
        fh.write(b"\n".join(bad) + b"\n")
    b = _add(tmp_path, "Q2?", "A2.")
    skipped: list = []
    got = corrections.load(tmp_path, skipped)
    assert [c.id for c in got] == [a.id, b.id]
    assert [s.line for s in skipped] == [2, 3, 4, 5, 6, 7]
    assert all(s.file == "datasets/feedback.jsonl" for s in skipped)
    assert "'test' should be true or false" in str(skipped[3]) and "used twice" in str(skipped[4])
    before = path.read_bytes().split(b"\n")
    corrections.update(tmp_path, b.id, chosen="A2, better.", test=True)
    after = path.read_bytes().split(b"\n")
    assert after[:7] == before[:7]  # every other line, the unreadable ones included, byte for byte
    corrections.delete(tmp_path, a.id)
    assert path.read_bytes().split(b"\n")[:6] == before[1:7]
    got = corrections.load(tmp_path, [])
    # the line that reused a's id is now the only one with it, so it loads
    assert [(c.id, c.chosen, c.test) for c in got] == [(a.id, "A", False), (b.id, "A2, better.", True)]


def test_edit_delete_and_bad_input_say_what_to_do(tmp_path):
    c = _add(tmp_path)
    with pytest.raises(DataError, match="right answer cannot be empty"):
        corrections.update(tmp_path, c.id, chosen="  ")
    with pytest.raises(DataError, match="no correction with id 'c-nope'.*tune corrections"):
        corrections.delete(tmp_path, "c-nope")
    with pytest.raises(DataError, match="needs the question and the right answer"):
        corrections.add(tmp_path, "Q?", "")
    assert corrections.delete(tmp_path, c.id).id == c.id
    assert corrections.load(tmp_path) == []


def test_preference_pairs_have_prompt_chosen_rejected(tmp_path):
    _add(tmp_path, "Q1?", "Right.", rejected="Wrong.")
    _add(tmp_path, "Q2?", "Same.", rejected="Same.")      # not a pair: nothing to prefer
    _add(tmp_path, "Q3?", "Right 3.", rejected="")         # not kept
    pair, = corrections.preference_pairs(tmp_path)
    assert pair["prompt"] == [{"role": "user", "content": "Q1?"}]
    assert (pair["chosen"], pair["rejected"]) == ("Right.", "Wrong.")


def test_marked_corrections_go_to_the_test_set_reworded(tmp_path):
    a = _add(tmp_path, "What does error E4 mean?", "The Wi-Fi password was rejected.", test=True)
    b = _add(tmp_path, "How long is the warranty?", "Two years.")
    path = corrections.test_set_path(tmp_path)
    row, = read_evalset(path)
    assert row.id == a.id and row.answer == "The Wi-Fi password was rejected." and row.kind == "trained"
    assert row.question != "What does error E4 mean?" and "E4" in row.question
    assert row.lineage == {"from": "correction", "correction": a.id, "asked": "What does error E4 mean?"}
    corrections.update(tmp_path, b.id, test=True)
    assert [r.id for r in read_evalset(path)] == [a.id, b.id]
    corrections.update(tmp_path, a.id, test=False)
    corrections.delete(tmp_path, b.id)
    assert not path.exists()  # nothing marked: no empty test set left behind


def test_a_test_set_the_user_made_under_that_name_is_never_overwritten_or_removed(tmp_path):
    path = corrections.test_set_path(tmp_path)
    path.parent.mkdir(parents=True)
    mine = '{"question": "Who makes the Brisa?", "answer": "Kestrel Home Systems."}\n'
    path.write_text(mine, encoding="utf-8")
    b = _add(tmp_path, "How long is the warranty?", "Two years.")  # not marked: the test set is not touched
    with pytest.raises(DataError, match="not made from corrections") as e:
        corrections.update(tmp_path, b.id, test=True)
    assert "corrections-mine.jsonl" in e.value.hint
    with pytest.raises(DataError):
        corrections.delete(tmp_path, b.id)
    assert path.read_text(encoding="utf-8") == mine
    assert [c.id for c in corrections.load(tmp_path)] == []  # the deletion itself went through


@needs_links
def test_writes_never_follow_links(tmp_path):
    project = Project.create(tmp_path / "p", "p")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's own file\n")
    path = corrections.corrections_path(project)
    path.symlink_to(victim)
    with pytest.raises(ConfinementError, match="feedback.jsonl is a symbolic link"):
        _add(project.root)
    skipped: list = []
    assert corrections.load(project, skipped) == [] and "symbolic link" in skipped[0].what
    assert victim.read_text() == "the user's own file\n"
    # a linked datasets/ folder leads out of the project: refused for adding and rewriting
    path.unlink()
    outside = tmp_path / "outside"
    outside.mkdir()
    project.datasets_dir.rmdir()
    project.datasets_dir.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfinementError, match="outside the project"):
        _add(project.root)
    assert list(outside.iterdir()) == []


def test_tune_corrections_lists_and_edits(tmp_path, capsys):
    project = Project.create(tmp_path / "p", "p")
    assert tune(["corrections", str(project.root)]) == 0
    assert "no corrections yet" in capsys.readouterr().out
    c = _add(project.root)
    _add(project.root, "Q2?", "A2.", rejected="", mode="base", run=None)
    assert tune(["corrections", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert c.id in out and "What does error E4 mean?" in out and "tuned+rag" in out and "run-1" in out
    assert "2 correction(s), 1 preference pair(s), 0 in the test set" in out
    assert tune(["corrections", str(project.root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["rejected"] == "E4 means the battery is low." and rows[0]["passages"] == [PASSAGE]
    assert tune(["corrections", str(project.root), "--test", c.id]) == 0
    assert corrections.find(project, c.id).test and corrections.test_set_path(project).exists()
    assert tune(["corrections", str(project.root), "--delete", c.id]) == 0
    assert [x.question for x in corrections.load(project)] == ["Q2?"]
    assert tune(["corrections", str(project.root), "--delete", "c-nope"]) == 2
    assert "no correction with id 'c-nope'" in capsys.readouterr().err
