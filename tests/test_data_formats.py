"""Every dataset file type and format loads, is detected, and trains the right tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.config import RunConfig
from backend.data import IGNORE_INDEX, check_files, prepare, read_file
from backend.data.formats import RowError, normalise
from backend.data.readers import RawRow
from backend.errors import DataError


@pytest.fixture(scope="module")
def tok(real_tokenizer_dir):
    from backend.models import load_tokenizer

    return load_tokenizer(str(real_tokenizer_dir))


def cfg_for(*files, **data) -> RunConfig:
    return RunConfig.from_dict({"data": {"train_files": [str(f) for f in files], "validation_split": 0.0, **data}})


def trained(tok, row) -> str:
    return tok.decode([i for i, lab in zip(row["input_ids"], row["labels"]) if lab != IGNORE_INDEX])


ALPACA = [  # as in LLaMA-Factory's alpaca_en_demo.json, plus system and history
    {"instruction": "Translate to French", "input": "cat", "output": "chat"},
    {"instruction": "Add", "input": "", "output": "2", "system": "You do maths.",
     "history": [["What is 1?", "One."]]},
]
SHAREGPT = [  # as in LLaMA-Factory's glaive / sharegpt demos
    {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there"},
                       {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye"}],
     "system": "Be kind."},
]


def test_alpaca_json_array(tok, tmp_path):
    f = tmp_path / "alpaca.json"
    f.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    data = prepare(cfg_for(f), tok)
    assert data.report["format"] == "alpaca"
    assert trained(tok, data.train[0]) == "chat<|im_end|>"
    second = tok.decode(data.train[1]["input_ids"])
    assert "You do maths." in second and "What is 1?" in second
    assert trained(tok, data.train[1]) == "One.<|im_end|>2<|im_end|>"
    assert "Translate to French\ncat" in tok.decode(data.train[0]["input_ids"])


def test_json_rows_have_real_line_numbers(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    rows = read_file(f).rows
    assert [r.line for r in rows] == [2, 7]


def test_json_object_holding_rows_and_json_lines_named_json(tok, tmp_path):
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"version": 2, "data": ALPACA}), encoding="utf-8")
    lines = tmp_path / "lines.json"
    lines.write_text("".join(json.dumps(r) + "\n" for r in ALPACA), encoding="utf-8")
    data = prepare(cfg_for(obj, lines, dedupe=False), tok)
    assert len(data.train) == 4
    assert read_file(lines).kind == "jsonl"


def test_sharegpt(tok, tmp_path):
    f = tmp_path / "sg.json"
    f.write_text(json.dumps(SHAREGPT), encoding="utf-8")
    data = prepare(cfg_for(f), tok)
    assert data.report["format"] == "sharegpt"
    assert trained(tok, data.train[0]) == "Hello there<|im_end|>Goodbye<|im_end|>"
    assert "Be kind." in tok.decode(data.train[0]["input_ids"])


def test_prompt_completion_plain_and_conversational(tok, tmp_path):
    f = tmp_path / "pc.jsonl"
    f.write_text(json.dumps({"prompt": "The capital of France is", "completion": " Paris."}) + "\n"
                 + json.dumps({"prompt": [{"role": "user", "content": "2+2?"}],
                               "completion": [{"role": "assistant", "content": "4"}]}) + "\n", encoding="utf-8")
    data = prepare(cfg_for(f), tok)
    assert trained(tok, data.train[0]) == " Paris.<|im_end|>"
    assert tok.decode(data.train[0]["input_ids"]).startswith("The capital of France is Paris.")
    assert trained(tok, data.train[1]) == "4<|im_end|>"


def test_csv_tsv_parquet_and_saved_dataset(tok, tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text('instruction,output\n"Say ""hi"", please",hi\n"Multi\nline?",yes\n',
                                    encoding="utf-8")
    (tmp_path / "b.tsv").write_text("prompt\tcompletion\nOne\t two\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([{"messages": [{"role": "user", "content": "p"},
                                                       {"role": "assistant", "content": "parquet"}]}]),
                   tmp_path / "c.parquet")
    datasets.Dataset.from_list([{"text": "saved to disk"}]).save_to_disk(str(tmp_path / "saved"))
    files = [tmp_path / "a.csv", tmp_path / "b.tsv", tmp_path / "c.parquet", tmp_path / "saved"]
    report = check_files([str(f) for f in files], tok)
    assert report.usable, report.text()
    fmts = {Path(f["path"]).name: f["format"] for f in report.summary["files"]}
    assert fmts == {"a.csv": "alpaca", "b.tsv": "prompt_completion", "c.parquet": "messages", "saved": "text"}
    data = prepare(cfg_for(*files), tok)
    assert len(data.train) == 5
    assert 'Say "hi", please' in tok.decode(data.train[0]["input_ids"])


def test_csv_quoted_multiline_keeps_line_numbers(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text('text\n"first\nrow"\nsecond\n', encoding="utf-8")
    rows = read_file(f).rows
    assert [(r.line, r.data["text"]) for r in rows] == [(2, "first\nrow"), (4, "second")]


def test_column_mapping_both_directions_and_auto_pairs(tok, tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text(json.dumps({"q": "Why?", "a": "Because."}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r'unknown format.*"q": "instruction", "a": "output"'):
        prepare(cfg_for(f), tok)
    ours = prepare(cfg_for(f, column_mapping={"q": "instruction", "a": "output"}), tok)
    llamafactory = prepare(cfg_for(f, column_mapping={"prompt": "q", "response": "a"}), tok)
    assert ours.train == llamafactory.train
    assert trained(tok, ours.train[0]) == "Because.<|im_end|>"
    g = tmp_path / "qa2.jsonl"
    g.write_text(json.dumps({"question": "Why?", "answer": "Because."}) + "\n", encoding="utf-8")
    assert prepare(cfg_for(g), tok).train == ours.train


def test_role_and_key_mapping_for_messages(tok, tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps({"chat": [{"speaker": "customer", "says": "Help"},
                                      {"speaker": "agent", "says": "Sure"}]}) + "\n", encoding="utf-8")
    mapping = {"chat": "messages", "speaker": "role", "says": "content", "customer": "user", "agent": "assistant"}
    data = prepare(cfg_for(f, column_mapping=mapping), tok)
    assert trained(tok, data.train[0]) == "Sure<|im_end|>"


def test_format_override_requires_its_columns(tok, tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"text": "hello"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl:1: missing column 'messages' for the messages format"):
        prepare(cfg_for(f, format="messages"), tok)
    assert prepare(cfg_for(f, format="text"), tok).report["format"] == "text"


def test_content_parts_and_messages_with_from_value(tok, tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"messages": [{"from": "human", "value": "hi"},
                                          {"role": "assistant", "content": [{"type": "text", "text": "par"},
                                                                            {"type": "text", "text": "ts"}]}]})
                 + "\n", encoding="utf-8")
    assert trained(tok, prepare(cfg_for(f), tok).train[0]) == "parts<|im_end|>"


def test_normalise_rejects_bad_rows():
    row = lambda d: RawRow("f.jsonl", 3, d)  # noqa: E731
    with pytest.raises(RowError, match="no assistant message"):
        normalise(row({"messages": [{"role": "user", "content": "x"}]}), "messages")
    with pytest.raises(RowError, match="must be a list of messages"):
        normalise(row({"messages": 5}), "messages")
    with pytest.raises(RowError, match="ranking"):
        normalise(row({"instruction": "i", "output": ["a", "b"]}), "alpaca")
    with pytest.raises(RowError, match="history item 1"):
        normalise(row({"instruction": "i", "output": "o", "history": [["only one"]]}), "alpaca")
    with pytest.raises(RowError, match="system message 3 comes after"):
        normalise(row({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                    {"role": "system", "content": "c"}]}), "messages")
    ok = normalise(row({"messages": [{"role": "user", "content": "x"}]}), "messages", train_on_prompt=True)
    assert ok.kind == "chat"


def test_fallback_template_for_models_without_one(tmp_path, real_tokenizer_dir):
    """A tokenizer without a chat template gets load_tokenizer's ChatML fallback."""
    import shutil

    from backend.models import load_tokenizer

    d = tmp_path / "tok"
    shutil.copytree(real_tokenizer_dir, d)
    cfg_json = d / "tokenizer_config.json"
    c = json.loads(cfg_json.read_text())
    c.pop("chat_template", None)
    cfg_json.write_text(json.dumps(c))
    (d / "chat_template.jinja").unlink(missing_ok=True)
    tok = load_tokenizer(str(d))
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "u"},
                                          {"role": "assistant", "content": "a"}]}) + "\n", encoding="utf-8")
    row = prepare(cfg_for(f), tok).train[0]
    assert tok.decode(row["input_ids"]) == "<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n"
    assert trained(tok, row) == "a<|im_end|>"


def test_template_that_rewrites_history_falls_back_to_search(tok, tmp_path):
    """Prefix rendering does not line up (a template that drops earlier turns' content): search instead."""
    import copy

    t = copy.copy(tok)
    t.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}"
                       "{% if m['role'] == 'assistant' and not loop.last %}(earlier){% else %}{{ m['content'] }}{% endif %}"
                       "{{ '<|im_end|>\n' }}{% endfor %}"
                       "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                                          {"role": "user", "content": "q2"},
                                          {"role": "assistant", "content": "final answer"}]}) + "\n",
                 encoding="utf-8")
    row = prepare(cfg_for(f), t).train[0]
    assert trained(t, row).endswith("final answer<|im_end|>")


def test_every_format_trains_through_the_engine(tiny_model_dir, tmp_path):
    """alpaca, sharegpt, messages, prompt/completion, text and a document in one short LoRA run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backend.training import train

    (tmp_path / "alpaca.json").write_text(json.dumps(ALPACA), encoding="utf-8")
    (tmp_path / "sharegpt.json").write_text(json.dumps(SHAREGPT), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([{"messages": [{"role": "user", "content": "p"},
                                                       {"role": "assistant", "content": "q"}]}]),
                   tmp_path / "m.parquet")
    (tmp_path / "pc.csv").write_text("prompt,completion\nOne,\" two\"\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("Plain text for domain adaptation.\n", encoding="utf-8")
    (tmp_path / "doc.md").write_text("# Manual\n\nThe pump must be primed first.\n", encoding="utf-8")
    files = ["alpaca.json", "sharegpt.json", "m.parquet", "pc.csv", "t.txt"]
    cfg = RunConfig().with_overrides({
        "model.name_or_path": str(tiny_model_dir), "output_dir": str(tmp_path / "run"),
        "data.train_files": [str(tmp_path / f) for f in files], "data.document_files": [str(tmp_path / "doc.md")],
        "data.max_length": 96, "data.validation_split": 0.0, "training.max_steps": 2, "training.batch_size": 4,
        "training.gradient_accumulation": 1, "training.save_steps": 2, "training.eval_steps": 0,
        "method.lora_r": 2})
    res = train(cfg)
    assert res.status == "completed"
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert sorted(report["formats"]) == ["alpaca", "messages", "prompt_completion", "sharegpt", "text"]
    assert report["rows_kept"] == 7
