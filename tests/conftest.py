"""Shared fixtures: tiny models built in the test session (random weights), no downloads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def real_tokenizer_dir(tmp_path_factory) -> Path:
    """The default model's real tokenizer (with its chat template), saved to a folder."""
    from transformers import AutoTokenizer

    from backend.models import default_gguf_path

    out = tmp_path_factory.mktemp("tokenizer")
    gguf = default_gguf_path()
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tok.save_pretrained(out)
    return out


def build_tiny_model(out: Path, tokenizer_dir: Path, *, hidden: int = 64, layers: int = 2,
                     seed: int = 0) -> Path:
    """A random-weight Llama with the real tokenizer, saved as a normal HF folder."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok_cfg = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    cfg = LlamaConfig(vocab_size=49152, hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(cfg)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for f in tokenizer_dir.iterdir():
        if f.is_file():
            shutil.copy(f, out / f.name)
    assert tok_cfg is not None
    return out


def build_tiny_embedder(out: Path) -> Path:
    """A random-weight tiny BERT sentence-transformers folder with MiniLM's tokenizer and pooling."""
    import shutil

    import torch
    from transformers import BertConfig, BertModel

    from backend.models import embedding_model_path

    src = embedding_model_path()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("modules.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / name, out / name)
    (out / "1_Pooling").mkdir()
    pool = json.loads((src / "1_Pooling" / "config.json").read_text())
    pool["word_embedding_dimension"] = 32
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pool))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, real_tokenizer_dir) -> Path:
    """Session-wide tiny model folder (do not modify it; copy it if you must)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), real_tokenizer_dir)


@pytest.fixture()
def chat_jsonl(tmp_path) -> Path:
    """A small chat ``messages`` JSONL dataset."""
    rows = []
    for i in range(24):
        rows.append({"messages": [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
        ]})
    p = tmp_path / "chat.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p
