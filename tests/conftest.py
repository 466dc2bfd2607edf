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


# -- offline means offline: any connection attempt outside this machine fails the test --------
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "", None}
_net_attempts: list[str] = []


def _is_local(address) -> bool:
    if not isinstance(address, tuple):      # AF_UNIX path
        return True
    host = address[0]
    return host in _LOCAL_HOSTS or str(host).startswith("127.")


def _install_network_guard() -> None:
    import socket

    real_connect, real_connect_ex, real_getaddrinfo = (socket.socket.connect, socket.socket.connect_ex,
                                                       socket.getaddrinfo)

    def refuse(what: str):
        _net_attempts.append(what)
        raise ConnectionRefusedError(f"network access attempted in a test: {what}")

    def connect(self, address):
        if self.family != getattr(socket, "AF_UNIX", None) and not _is_local(address):
            refuse(f"connect {address!r}")
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family != getattr(socket, "AF_UNIX", None) and not _is_local(address):
            refuse(f"connect_ex {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        h = host.decode() if isinstance(host, bytes) else host
        if not _is_local((h,)) and h != socket.gethostname():
            refuse(f"DNS lookup of {h!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo


_install_network_guard()


@pytest.fixture(autouse=True)
def _no_network_attempts():
    """Fail the test that tried to reach the network, even if the code swallowed the error."""
    before = len(_net_attempts)
    yield
    new = _net_attempts[before:]
    assert not new, f"connection attempts during this test: {new}"


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
