"""GGUF / Ollama export and the export parity check, on tiny random-weight models (docs/architecture.md, "Export")."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from backend.export import export_run
from backend.export_types import ExportError, list_exports
from backend.gguf_export import check_quant, permute_qk, write_gguf

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Hello world! 12345 and 3.14", "Äpfel über Öl — naïve café 😀", "  leading spaces\n\ttabs\n\nnew lines",
         "<|im_start|>user\nspecial tokens stay whole<|im_end|>", "E4 means the Wi-Fi password was rejected."]


def _logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


@pytest.mark.parametrize("quant,atol", [("f16", 2e-3), ("q8_0", 5e-2)])
def test_gguf_loads_back_in_transformers(tiny_model_dir, tmp_path, quant, atol):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = write_gguf(tiny_model_dir, tmp_path / f"tiny-{quant}.gguf", quant=quant)
    assert res is not None and res.quant == quant and Path(res.path).stat().st_size == res.size_bytes
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=f"tiny-{quant}.gguf", dtype=torch.float32)
    ids = [1, 100, 2000, 30000, 400, 5, 49000]
    a, b = _logits(ref, ids), _logits(back, ids)
    assert (a - b).abs().max().item() < atol
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    tok_ref = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok_back = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=f"tiny-{quant}.gguf")
    for text in TEXTS:
        assert tok_back(text)["input_ids"] == tok_ref(text)["input_ids"], text
    assert tok_back.chat_template == tok_ref.chat_template
    assert (tok_back.bos_token_id, tok_back.eos_token_id) == (tok_ref.bos_token_id, tok_ref.eos_token_id)


def test_llama_qk_permutation_is_undone_exactly_by_transformers():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    rng = np.random.default_rng(0)
    proc = LlamaTensorProcessor(config={"num_attention_heads": 4, "num_key_value_heads": 2})
    q = rng.standard_normal((64, 64)).astype(np.float32)
    k = rng.standard_normal((32, 64)).astype(np.float32)
    assert not np.array_equal(permute_qk(q, 4, 4), q)
    assert np.array_equal(proc.process(permute_qk(q, 4, 4), "blk.0.attn_q.weight").weights, q)
    assert np.array_equal(proc.process(permute_qk(k, 4, 2), "blk.0.attn_k.weight").weights, k)


def _tiny_other(kind: str, out: Path, tokenizer_dir: Path) -> Path:
    import shutil

    from transformers import (MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)

    torch.manual_seed(0)
    common = dict(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  bos_token_id=1, eos_token_id=2, pad_token_id=2)
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=True))  # q/k/v biases
    elif kind == "qwen3":
        # transformers' GGUF loader does not read head_dim for qwen3, so use Qwen3's own (128)
        model = Qwen3ForCausalLM(Qwen3Config(**common, head_dim=128, tie_word_embeddings=True))
    else:
        model = MistralForCausalLM(MistralConfig(**common, tie_word_embeddings=False))
    out.mkdir(parents=True)
    model.save_pretrained(out)
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    return out


@pytest.mark.parametrize("kind", ["qwen2", "qwen3", "mistral"])
def test_other_architectures_round_trip(kind, real_tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    src = _tiny_other(kind, tmp_path / kind, real_tokenizer_dir)
    write_gguf(src, tmp_path / "out" / "m.gguf", quant="f16")
    ref = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path / "out"), gguf_file="m.gguf", dtype=torch.float32)
    ids = [1, 17, 300, 4000, 42]
    assert (_logits(ref, ids) - _logits(back, ids)).abs().max().item() < 2e-3


def test_unsupported_architecture_and_k_quants_are_named(tmp_path):
    (tmp_path / "gpt2").mkdir()
    (tmp_path / "gpt2" / "config.json").write_text(json.dumps({"model_type": "gpt2",
                                                               "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ExportError, match="does not support the GPT2LMHeadModel architecture"):
        write_gguf(tmp_path / "gpt2", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(ExportError, match="Q4_K_M is a K-quant.*llama-quantize"):
        check_quant("Q4_K_M")
    with pytest.raises(ExportError, match="unknown quantization 'q3'"):
        check_quant("q3")


def test_killed_export_leaves_no_file(tiny_model_dir, tmp_path):
    out = tmp_path / "killed.gguf"
    script = textwrap.dedent(f"""
        import sys, time
        from backend.gguf_export import write_gguf
        def on_event(e):
            if e.get("type") == "progress" and e.get("current") == 3:
                print("WRITING", flush=True)
                time.sleep(600)
        write_gguf({str(tiny_model_dir)!r}, {str(out)!r}, quant="q8_0", on_event=on_event)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        parts = list(tmp_path.glob(".killed.gguf.part-*"))
        assert parts and parts[0].stat().st_size > 0  # killed in the middle of writing tensors
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    # the next export to the same name removes the dead process's part file and completes
    assert write_gguf(tiny_model_dir, out, quant="f16") is not None
    assert out.exists() and not list(tmp_path.glob(".killed.gguf.part-*"))


def test_stop_request_writes_nothing(tiny_model_dir, tmp_path):
    n = {"events": 0}

    def stop():
        n["events"] += 1
        return n["events"] > 4

    assert write_gguf(tiny_model_dir, tmp_path / "s.gguf", should_stop=stop) is None
    assert list(tmp_path.iterdir()) == []


def test_modelfile_template_renders_the_chat_template(real_tokenizer_dir):
    from transformers import AutoTokenizer

    from backend.ollama import chat_template_parts, go_template, ollama_messages, render_go_template

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    template = go_template(chat_template_parts(tok))
    three_turns = [{"role": "user", "content": "What does E4 mean?"},
                   {"role": "assistant", "content": "The Wi-Fi password was rejected."},
                   {"role": "user", "content": "How do I fix it? {{ not a template }}"},
                   {"role": "assistant", "content": "Re-enter it on a 2.4 GHz network."},
                   {"role": "user", "content": "And E5?"}]
    for msgs in (three_turns, [{"role": "system", "content": "Be brief."}] + three_turns):
        want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        assert render_go_template(template, {"Messages": ollama_messages(msgs, None)}) == want
    # Ollama puts the Modelfile's SYSTEM first when the chat has none
    want = tok.apply_chat_template([{"role": "system", "content": "Sys."}] + three_turns, tokenize=False,
                                   add_generation_prompt=True)
    assert render_go_template(template, {"Messages": ollama_messages(three_turns, "Sys.")}) == want


LLAMA3_LIKE = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n'"
               " + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")


def test_modelfile_template_for_a_bos_template_and_hand_written_go(real_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from backend.ollama import chat_template_parts, go_template, ollama_messages, render_go_template

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    tok.chat_template = LLAMA3_LIKE
    parts = chat_template_parts(tok)
    assert parts.start == tok.bos_token and parts.assistant_suffix == "<|eot_id|>"
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"},
            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "U2"}]
    want = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert render_go_template(go_template(parts), {"Messages": ollama_messages(msgs, None)}) == want
    # without the BOS text (llama.cpp adds the BOS token itself)
    assert tok.bos_token + render_go_template(go_template(parts, drop_start=True),
                                              {"Messages": ollama_messages(msgs, None)}) == want
    # the renderer also runs Ollama's own hand-written style (trimming, else, index, or)
    hand = ('{{- range $i, $m := .Messages }}\n{{- if or (eq $m.Role "user") (eq $m.Role "system") }}[{{ $m.Role }}] '
            '{{ $m.Content }}\n{{- else }}<{{ .Content }}>\n{{- end }}\n{{- end }}|{{ (index .Messages 0).Content }}')
    assert render_go_template(hand, {"Messages": ollama_messages(msgs, None)}) == "[system] S[user] U1<A1>[user] U2|S"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_model_dir):
    from backend.config import RunConfig
    from backend.training import train

    tmp = tmp_path_factory.mktemp("export-run")
    rows = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                          {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]} for i in range(20)]
    data = tmp / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RunConfig().with_overrides({
        "model.name_or_path": str(tiny_model_dir), "data.train_files": [str(data)], "output_dir": str(tmp / "run"),
        "data.max_length": 64, "data.validation_split": 0.2, "training.batch_size": 2,
        "training.gradient_accumulation": 1, "training.max_steps": 2, "training.eval_steps": 0,
        "training.learning_rate": 1e-3, "training.warmup_ratio": 0.0, "method.lora_r": 4})
    res = train(cfg)
    assert res.status == "completed"
    return Path(res.run_dir)


def test_ollama_export_with_parity(tiny_run, tmp_path):
    from backend.ollama import read_modelfile

    rec = export_run(tiny_run, "ollama", tmp_path / "ollama", quant="q8_0", questions=3, max_new_tokens=6)
    files = sorted(p.name for p in (tmp_path / "ollama").iterdir())
    assert files == ["Modelfile", "README.md", f"{tiny_run.name}-q8_0.gguf"]
    mf = read_modelfile(tmp_path / "ollama" / "Modelfile")
    assert mf["from"] == f"./{tiny_run.name}-q8_0.gguf" and "ADAPTER" not in (tmp_path / "ollama" / "Modelfile").read_text()
    assert mf["parameters"]["temperature"] == ["0"] and mf["parameters"]["repeat_penalty"] == ["1.1"]
    assert mf["parameters"]["top_p"] == ["0.9"] and "<|im_end|>" in mf["parameters"]["stop"]
    assert "ollama create" in (tmp_path / "ollama" / "README.md").read_text()
    p = rec.parity
    assert p["questions"] == 3 and p["identical"] + len(p["changed"]) == 3
    assert p["template_same"] and p["tokenizer_same"] and p["modelfile_same"]
    assert p["max_kl"] < 0.05 and p["source"].startswith("validation rows")
    assert "answers" in p["summary"] and "Modelfile TEMPLATE matches" in p["summary"]
    saved = json.loads((tiny_run / "exports" / "ollama" / "parity.json").read_text())
    assert saved["summary"] == p["summary"]
    [listed] = [r for r in list_exports(tiny_run) if r.name == "ollama"]
    assert listed.kind == "ollama" and listed.quant == "q8_0" and len(listed.sha256) == 64
    assert listed.parity["summary"] == p["summary"]


def test_cli_merged_export_is_identical_and_k_quants_are_refused(tiny_run, tmp_path, capsys):
    from backend.cli import main

    assert main(["export", str(tiny_run), "--merged", str(tmp_path / "merged"), "--questions", "2", "--strict"]) == 0
    out = capsys.readouterr().out
    assert "merged written to" in out and "parity: 2/2 answers identical" in out
    assert main(["export", str(tiny_run), "--gguf", str(tmp_path / "m.gguf"), "--quant", "q4_k_m"]) == 2
    assert "K-quant" in capsys.readouterr().err and not (tmp_path / "m.gguf").exists()


@pytest.mark.e2e
def test_default_model_q8_0_export_parity_on_the_sample_evalset(tmp_path):
    from backend.config import RunConfig
    from backend.training import train

    sample = ROOT / "resources" / "sample_project"
    cfg = RunConfig().with_overrides({
        "data.train_files": [str(sample / "datasets" / "brisa_support.jsonl")], "output_dir": str(tmp_path / "run"),
        "data.max_length": 128, "training.batch_size": 2, "training.gradient_accumulation": 1,
        "training.max_steps": 6, "training.eval_steps": 0, "training.learning_rate": 2e-3})
    res = train(cfg)
    assert res.status == "completed"
    rec = export_run(res.run_dir, "gguf", tmp_path / "brisa-q8_0.gguf", quant="q8_0",
                     evalset=str(sample / "evalsets" / "brisa.jsonl"), questions=20)
    p = rec.parity
    assert p["questions"] == 20 and p["source"] == "evalset brisa (20 questions)"
    assert p["template_same"] and p["tokenizer_same"]
    # 8-bit weights move the next-token distributions a little. Measured on this run: mean KL 8e-4,
    # max 0.003, yet 9 of 20 greedy answers of up to 64 tokens took another word at a near tie
    # somewhere, so the distributions are the test and the changed answers are shown to the user.
    assert p["max_kl"] < 0.05 and p["mean_kl"] < 0.01, p["summary"]
    assert p["identical"] >= 1 and (p["identical"] == 20 or p["changed"]), p["summary"]
    assert json.loads((Path(res.run_dir) / "exports" / "brisa-q8_0" / "parity.json").read_text())["ok"] == p["ok"]


def test_sentencepiece_style_tokenizer_round_trips(tmp_path):
    import gguf
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    pieces = ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁he", "ll", "▁hell", "▁hello", "▁w", "or", "▁wor",
              "▁worl", "▁world", "lo", "llo", "▁hel"]
    vocab = {t: i for i, t in enumerate(tokens + pieces)}
    merges = [("▁", "h"), ("l", "l"), ("▁h", "e"), ("▁he", "ll"), ("▁hell", "o"), ("▁", "w"), ("o", "r"),
              ("▁w", "or"), ("▁wor", "l"), ("▁worl", "d"), ("l", "o"), ("l", "lo"), ("▁he", "l")]
    tok = LlamaTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"})
    tok.chat_template = ("{% for m in messages %}{{ '[' + m['role'] + '] ' + m['content'] + eos_token }}{% endfor %}"
                         "{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}")
    src = tmp_path / "spm"
    tok.save_pretrained(src)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                 num_attention_heads=4, num_key_value_heads=2, bos_token_id=1,
                                 eos_token_id=2)).save_pretrained(src)
    write_gguf(src, tmp_path / "out" / "spm.gguf", quant="f16")
    fields = gguf.GGUFReader(tmp_path / "out" / "spm.gguf").fields
    assert fields["tokenizer.ggml.model"].contents() == "llama"
    types = fields["tokenizer.ggml.token_type"].contents()
    assert types[3] == gguf.TokenType.BYTE and types[1] == gguf.TokenType.CONTROL
    back = AutoTokenizer.from_pretrained(str(tmp_path / "out"), gguf_file="spm.gguf")
    ref = AutoTokenizer.from_pretrained(src)
    for text in ["hello world", " hello  world", "héllo wörld!", "hello\nworld"]:
        assert back(text)["input_ids"] == ref(text)["input_ids"], text
    assert back.chat_template == ref.chat_template
