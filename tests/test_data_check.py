"""check_files / preview / histogram, and the `tune data check` command."""

from __future__ import annotations

import json
import shutil

import pytest

from backend.config import DataConfig
from backend.data import check_files, histogram, preview, split_rows, token_stats


@pytest.fixture(scope="module")
def tok(real_tokenizer_dir):
    from backend.models import load_tokenizer

    return load_tokenizer(str(real_tokenizer_dir))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, real_tokenizer_dir):
    """A model folder good enough for the tokenizer (no weights are loaded by `data check`)."""
    d = tmp_path_factory.mktemp("model")
    for f in real_tokenizer_dir.iterdir():
        shutil.copy(f, d / f.name)
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (d / "model.safetensors").write_bytes(b"")
    return d


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def conv(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_report_counts_stats_and_roles(tok, tmp_path):
    f = write(tmp_path / "c.jsonl", [conv(f"q{i}", "a " * (i + 1)) for i in range(20)] + [conv("q0", "a ")])
    r = check_files([str(f)], tok, DataConfig(max_length=40))
    s = r.summary
    assert r.usable and s["format"] == "messages"
    assert (s["rows_read"], s["rows_kept"], s["duplicates"]) == (21, 20, 1)
    assert s["roles"] == {"user": 21, "assistant": 21}
    t = s["tokens"]
    assert t["min"] <= t["median"] <= t["p95"] <= t["max"] and t["count"] == 20
    assert s["over_max_length"] == sum(1 for p in r.warnings if "over max_length" in p.message) > 0
    assert sum(r.histogram["counts"]) == 20 and r.histogram["max_length"] == 40
    text = r.text()
    assert "tokens per row: min" in text and "usable: yes" in text and "1 duplicates removed" in text


def test_preview_segments_mark_the_mask(tok, chat_jsonl):
    rows = preview([str(chat_jsonl)], tok, None, n=2)
    assert len(rows) == 2
    r = rows[1]
    trained = "".join(t for t, b in r.segments if b)
    assert trained == "1 plus 1 is 2.<|im_end|>"
    assert "".join(t for t, _ in r.segments).startswith("<|im_start|>system\n")
    assert "⟦<|im_start|>system" in r.marked() and "⟧1 plus 1 is 2.<|im_end|>⟦" in r.marked()
    assert r.trained_tokens == len(tok(trained, add_special_tokens=False)["input_ids"])
    assert json.loads(json.dumps(r.to_dict()))["segments"][0]["trained"] is False


def test_preview_of_text_and_truncated_rows(tok, tmp_path):
    f = write(tmp_path / "t.jsonl", [{"text": "Hello world, " * 20}])
    (row,) = preview([str(f)], tok, DataConfig(max_length=16), n=3)
    assert row.status == "truncated" and row.tokens == 16
    assert all(b for _, b in row.segments) and row.segments[0][0].startswith("Hello world,")


def test_histogram_stats_and_split_helpers():
    assert token_stats([]) == {}
    h = histogram([5, 5, 6, 100], max_length=64, bins=4)
    assert sum(h["counts"]) == 4 and len(h["edges"]) == 5
    a = split_rows(10, 0.2, seed=1)
    assert a == split_rows(10, 0.2, seed=1) and len(a[1]) == 2 and sorted(a[0] + a[1]) == list(range(10))
    assert split_rows(1, 0.5, 1) == ([0], []) and split_rows(3, 0.0, 1) == ([0, 1, 2], [])


def test_cli_data_check_usable_with_preview(model_dir, chat_jsonl, capsys):
    from backend.cli import main

    rc = main(["data", "check", str(chat_jsonl), "--model", str(model_dir), "--preview", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "format: messages" in out and "usable: yes" in out
    assert "--- row 1:" in out and "⟦<|im_start|>system" in out and "⟧0 plus 0 is 0.<|im_end|>" in out


def test_cli_data_check_json_and_exit_2(model_dir, tmp_path, capsys):
    from backend.cli import main

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "wizard", "content": "a"}]}\n{"x":',
                   encoding="utf-8")
    rc = main(["data", "check", str(bad), "--model", str(model_dir), "--json", "--max-length", "128"])
    d = json.loads(capsys.readouterr().out)
    assert rc == 2 and d["usable"] is False and d["max_length"] == 128
    assert [(p["line"], p["severity"]) for p in d["problems"]] == [(1, "error"), (2, "error")]
    assert "unknown role 'wizard'" in d["problems"][0]["text"]
    rc = main(["data", "check", str(tmp_path / "missing.jsonl"), "--model", str(model_dir)])
    out = capsys.readouterr().out
    assert rc == 2 and "missing.jsonl: file not found" in out


def test_cli_format_override_and_mapping(model_dir, tmp_path, capsys):
    from backend.cli import main

    f = write(tmp_path / "qa.jsonl", [{"q": "Why?", "a": "Because."}])
    assert main(["data", "check", str(f), "--model", str(model_dir)]) == 2
    capsys.readouterr()
    rc = main(["data", "check", str(f), "--model", str(model_dir), "--format", "alpaca",
               "--column-mapping", '{"q": "instruction", "a": "output"}'])
    assert rc == 0, capsys.readouterr().out
    rc = main(["data", "check", str(f), "--model", str(model_dir), "--column-mapping", "{nope"])
    assert rc == 2 and "--column-mapping is not JSON" in capsys.readouterr().err
