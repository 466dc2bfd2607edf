"""Bad dataset input: each case names the file, the line and what to do (files written here)."""

from __future__ import annotations

import json
import os
import sys

import pytest

from backend.config import RunConfig
from backend.data import check_files, prepare
from backend.data.readers import decode_text
from backend.errors import DataError


@pytest.fixture(scope="module")
def tok(real_tokenizer_dir):
    from backend.models import load_tokenizer

    return load_tokenizer(str(real_tokenizer_dir))


def cfg_for(*files, **data) -> RunConfig:
    return RunConfig.from_dict({"data": {"train_files": [str(f) for f in files], "validation_split": 0.0, **data}})


CHAT = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})


def only_error(report):
    assert not report.usable
    assert len(report.errors) == 1, report.text()
    return report.errors[0]


def test_truncated_jsonl_line(tok, tmp_path):
    f = tmp_path / "cut.jsonl"
    f.write_text(CHAT + "\n" + CHAT[:25], encoding="utf-8")
    with pytest.raises(DataError, match=r"cut\.jsonl:2: the last line is cut off.*re-export") as ei:
        prepare(cfg_for(f), tok)
    assert ei.value.line == 2
    p = only_error(check_files([str(f)], tok))
    assert (p.file, p.line) == (str(f), 2)


def test_invalid_json_in_the_middle(tok, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(CHAT + "\n{'single': 'quotes'}\n" + CHAT + "\n" + "[1, 2]\n", encoding="utf-8")
    r = check_files([str(f)], tok)
    assert [(p.line, p.message.split(":")[0]) for p in r.errors] == [
        (2, "invalid JSON"), (4, "expected a JSON object ({...}) on each line, got list")]
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON.*1 more problem.*tune data check"):
        prepare(cfg_for(f), tok)


def test_invalid_json_array_file(tok, tmp_path):
    f = tmp_path / "arr.json"
    f.write_text('[\n  {"text": "a"},\n  {"text": "b",}\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"arr\.json:3: invalid JSON"):
        prepare(cfg_for(f), tok)


def test_wrong_and_missing_columns(tok, tmp_path):
    f = tmp_path / "cols.jsonl"
    f.write_text(json.dumps({"question": "q", "reply": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r'cols\.jsonl:1: unknown format.*column_mapping to \{"question": '
                                        r'"instruction", "reply": "output"\}'):
        prepare(cfg_for(f), tok)
    g = tmp_path / "missing.jsonl"
    g.write_text(json.dumps({"instruction": "i", "output": "o"}) + "\n" + json.dumps({"instruction": "only"}) + "\n",
                 encoding="utf-8")
    p = only_error(check_files([str(g)], tok))
    assert p.line == 2 and "missing columns" in p.message


def test_mixed_formats_in_one_file(tok, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text(CHAT + "\n" + json.dumps({"text": "plain"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: mixed formats: this row is text but the file's first "
                                        r"row \(line 1\) is messages"):
        prepare(cfg_for(f), tok)


def test_empty_file_and_whitespace_only(tok, tmp_path):
    for name, content in (("empty.jsonl", ""), ("blank.csv", "\n  \n")):
        f = tmp_path / name
        f.write_text(content, encoding="utf-8")
        with pytest.raises(DataError, match=rf"{name}: the file is empty — add rows"):
            prepare(cfg_for(f), tok)
    h = tmp_path / "header_only.csv"
    h.write_text("instruction,output\n", encoding="utf-8")
    p = only_error(check_files([str(h)], tok))
    assert "no rows" in p.message


def test_unknown_role(tok, tmp_path):
    f = tmp_path / "roles.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]})
                 + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"roles\.jsonl:1: unknown role 'robot' in message 2 — .*"
                                        r'column_mapping \{"robot": "assistant"\}'):
        prepare(cfg_for(f), tok)
    ok = prepare(cfg_for(f, column_mapping={"robot": "assistant"}), tok)
    assert len(ok.train) == 1


@pytest.mark.parametrize("roles, message", [
    (["assistant", "user", "assistant"], r"starts with the assistant \(message 1\)"),
    (["user", "user", "assistant"], r"two user messages in a row \(message 2\)"),
    (["system", "user", "assistant", "assistant"], r"two assistant messages in a row \(message 4\)"),
])
def test_roles_out_of_order(tok, tmp_path, roles, message):
    f = tmp_path / "order.jsonl"
    f.write_text(json.dumps({"messages": [{"role": r, "content": f"m{i}"} for i, r in enumerate(roles)]}) + "\n",
                 encoding="utf-8")
    with pytest.raises(DataError, match=r"order\.jsonl:1: .*" + message + r".* — "):
        prepare(cfg_for(f), tok)


def test_row_far_over_max_length_and_file_left_empty(tok, tmp_path):
    f = tmp_path / "long.jsonl"
    f.write_text(CHAT + "\n" + json.dumps({"messages": [{"role": "user", "content": "tell me " * 400},
                                                        {"role": "assistant", "content": "ok"}]}) + "\n",
                 encoding="utf-8")
    r = check_files([str(f)], tok, cfg_for(f, max_length=64))
    assert r.usable and r.summary["over_max_length"] == 1
    warn = r.warnings[0]
    assert warn.line == 2 and "no answer token is left" in warn.message  # truncation cut the answer off
    dropped = check_files([str(f)], tok, cfg_for(f, max_length=64, overlong="drop"))
    assert dropped.summary["dropped_overlong"] == 1 and "over max_length 64: row dropped" in dropped.warnings[0].text()
    g = tmp_path / "all_long.jsonl"
    g.write_text(json.dumps({"text": "word " * 500}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"all_long\.jsonl: no usable rows left \(1 overlong\) — raise "
                                        r"data\.max_length"):
        prepare(cfg_for(g, max_length=64, overlong="drop"), tok)


def test_utf16_with_and_without_bom(tok, tmp_path):
    text = json.dumps({"text": "naïve café"}, ensure_ascii=False) + "\n"
    a = tmp_path / "bom.jsonl"
    a.write_bytes(text.encode("utf-16"))
    b = tmp_path / "nobom.jsonl"
    b.write_bytes(text.encode("utf-16-le"))
    r = check_files([str(a), str(b)], tok)
    assert r.usable and [f["encoding"] for f in r.summary["files"]] == ["utf-16", "utf-16-le"]
    assert any("UTF-16-LE text without a byte-order mark" in p.message for p in r.warnings)
    data = prepare(cfg_for(a), tok)
    assert "naïve café" in tok.decode(data.train[0]["input_ids"])


def test_latin1_is_detected_and_decoded_with_a_warning(tok, tmp_path):
    f = tmp_path / "latin.csv"
    f.write_bytes("instruction,output\nCrème brûlée?,Très bon dessert français\n".encode("latin-1"))
    r = check_files([str(f)], tok)
    assert r.usable
    assert "not UTF-8; decoded it as cp1252" in r.warnings[0].text() and r.warnings[0].line == 2
    row = prepare(cfg_for(f), tok).train[0]
    assert "Très bon dessert français" in tok.decode(row["input_ids"])


def test_undecodable_text_says_so():
    text, enc, warn = decode_text("Привет, как дела? Хорошо, спасибо.".encode("cp1251"), "ru.txt")
    assert text.startswith("Привет") and warn is not None


def test_nul_binary_content(tok, tmp_path):
    f = tmp_path / "data.jsonl"
    f.write_bytes(b"SQLite format 3\x00\x10\x00\x01\x01\x00@  \x00\x00\x00\x02" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match=r"data\.jsonl:1: NUL byte at byte 15: this looks like a binary file"):
        prepare(cfg_for(f), tok)


def test_missing_unsupported_and_unreadable_files(tok, tmp_path):
    with pytest.raises(DataError, match=r"nope\.jsonl: file not found — check the path"):
        prepare(cfg_for(tmp_path / "nope.jsonl"), tok)
    x = tmp_path / "data.xlsx"
    x.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'"):
        prepare(cfg_for(x), tok)
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not a saved dataset"):
        prepare(cfg_for(tmp_path / "folder"), tok)
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="cannot read the parquet file"):
        prepare(cfg_for(bad_parquet), tok)


def test_unreadable_file(tok, tmp_path, monkeypatch):
    from pathlib import Path

    locked = tmp_path / "locked.jsonl"
    locked.write_text(CHAT + "\n", encoding="utf-8")
    if sys.platform != "win32" and os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads anything: simulate the OS refusing
        real = Path.read_bytes

        def refuse(self):
            if self.name == "locked.jsonl":
                raise PermissionError(13, "Permission denied")
            return real(self)
        monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(DataError, match=r"locked\.jsonl: permission denied.*chmod"):
        prepare(cfg_for(locked), tok)


def test_check_lists_every_problem_across_files(tok, tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text(CHAT + "\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n" + CHAT + "\n", encoding="utf-8")
    r = check_files([str(good), str(bad), str(tmp_path / "gone.jsonl")], tok)
    assert not r.usable
    locations = [p.location() for p in r.errors]
    assert locations == [f"{bad}:1", str(tmp_path / "gone.jsonl")]
    assert r.summary["rows_kept"] == 1 and r.summary["duplicates"] == 1
    json.dumps(r.to_dict())
