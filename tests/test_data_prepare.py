"""backend.data.prepare: chat masking, plain text, truncation, dedupe, split, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.config import RunConfig
from backend.data import IGNORE_INDEX, PreparedData, prepare
from backend.errors import DataError


@pytest.fixture(scope="module")
def tok(real_tokenizer_dir):
    from backend.models import load_tokenizer

    return load_tokenizer(str(real_tokenizer_dir))


def cfg_for(*files, **data) -> RunConfig:
    return RunConfig.from_dict({"data": {"train_files": [str(f) for f in files], **data}})


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def trained_text(tok, row) -> str:
    return tok.decode([i for i, lab in zip(row["input_ids"], row["labels"]) if lab != IGNORE_INDEX])


def test_chat_loss_only_on_assistant(tok, chat_jsonl):
    data = prepare(cfg_for(chat_jsonl, validation_split=0.0), tok)
    assert isinstance(data, PreparedData) and data.eval is None
    assert len(data.train) == 24
    row = data.train[3]
    assert len(row["input_ids"]) == len(row["labels"])
    assert trained_text(tok, row) == "3 plus 3 is 6.<|im_end|>"
    # labels equal input ids where trained
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(row["input_ids"], row["labels"]))
    assert data.report["format"] == "messages" and data.report["rows_kept"] == 24
    json.dumps(data.report)  # serialisable


def test_multi_turn_and_system_prompt(tok, tmp_path):
    f = write_jsonl(tmp_path / "mt.jsonl", [{"messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Name?"}, {"role": "assistant", "content": "Smol."}]}])
    data = prepare(cfg_for(f, validation_split=0.0, system_prompt="Be brief."), tok)
    row = data.train[0]
    assert trained_text(tok, row) == "Hello!<|im_end|>Smol.<|im_end|>"
    assert "Be brief." in tok.decode(row["input_ids"])
    everything = prepare(cfg_for(f, validation_split=0.0, train_on_prompt=True), tok).train[0]
    assert all(lab != IGNORE_INDEX for lab in everything["labels"])


def test_plain_text_jsonl_and_txt(tok, tmp_path):
    j = write_jsonl(tmp_path / "t.jsonl", [{"text": "The sky is blue."}, {"text": "Grass is green."}])
    t = tmp_path / "notes.txt"
    t.write_text("First paragraph\nstill first.\n\nSecond paragraph.\n", encoding="utf-8")
    data = prepare(cfg_for(j, t, validation_split=0.0), tok)
    assert len(data.train) == 4
    for row in data.train:
        assert all(lab != IGNORE_INDEX for lab in row["labels"])
        assert row["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(data.train[2]["input_ids"][:-1]) == "First paragraph\nstill first."


def test_truncate_and_drop_overlong(tok, tmp_path):
    long = "word " * 200
    f = write_jsonl(tmp_path / "l.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": long}]},
        {"messages": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "short"}]}])
    data = prepare(cfg_for(f, validation_split=0.0, max_length=64), tok)
    assert len(data.train) == 2 and max(len(r["input_ids"]) for r in data.train) == 64
    assert data.report["truncated"] == 1
    dropped = prepare(cfg_for(f, validation_split=0.0, max_length=64, overlong="drop"), tok)
    assert len(dropped.train) == 1 and dropped.report["dropped_overlong"] == 1
    assert any("over max_length 64" in p["text"] and ":2" not in p["text"] for p in dropped.report["problems"])


def test_all_rows_overlong_is_an_error(tok, tmp_path):
    f = write_jsonl(tmp_path / "l.jsonl", [{"text": "word " * 300}])
    with pytest.raises(DataError, match="no usable rows left.*max_length"):
        prepare(cfg_for(f, max_length=32, overlong="drop"), tok)


def test_dedupe_and_deterministic_split(tok, tmp_path):
    rows = [{"text": f"row {i}"} for i in range(40)] + [{"text": "row 3"}, {"text": "row 5"}]
    f = write_jsonl(tmp_path / "d.jsonl", rows)
    a = prepare(cfg_for(f, validation_split=0.25), tok)
    b = prepare(cfg_for(f, validation_split=0.25), tok)
    assert a.report["duplicates"] == 2
    assert len(a.train) == 30 and len(a.eval) == 10
    assert a.train == b.train and a.eval == b.eval
    c = prepare(RunConfig.from_dict({"data": {"train_files": [str(f)], "validation_split": 0.25},
                                     "training": {"seed": 7}}), tok)
    assert c.eval != a.eval
    kept = prepare(cfg_for(f, validation_split=0.0, dedupe=False), tok)
    assert len(kept.train) == 42


def test_validation_files(tok, tmp_path, chat_jsonl):
    v = write_jsonl(tmp_path / "val.jsonl", [{"messages": [{"role": "user", "content": "x"},
                                                          {"role": "assistant", "content": "y"}]}])
    data = prepare(cfg_for(chat_jsonl, validation_files=[str(v)]), tok)
    assert len(data.train) == 24 and len(data.eval) == 1
    assert data.report["split"] == "files"


def test_bad_json_line_names_file_and_line(tok, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "ok"}\n{"text": oops}\n{"text": "fine"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON") as ei:
        prepare(cfg_for(f), tok)
    assert ei.value.line == 2 and ei.value.file.endswith("bad.jsonl")


def test_events_and_cancel(tok, chat_jsonl):
    from backend.data import DataCancelled

    seen = []
    prepare(cfg_for(chat_jsonl), tok, on_event=seen.append)
    assert {e["type"] for e in seen} >= {"progress", "log"}
    with pytest.raises(DataCancelled):
        prepare(cfg_for(chat_jsonl), tok, should_stop=lambda: True)


def test_no_files_is_an_error(tok):
    with pytest.raises(DataError, match="no training files"):
        prepare(RunConfig(), tok)
