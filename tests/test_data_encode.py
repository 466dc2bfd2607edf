"""The loss mask: the marked-render fast path agrees with the prefix-render path on several templates."""

from __future__ import annotations

import copy

import pytest

from backend.data import IGNORE_INDEX, Renderer
from backend.data.formats import Example

LLAMA3 = ("{{ bos_token }}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '<|im_end|>\n\n' + "
          "m['content'] | trim + '<|endoftext|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant<|im_end|>\n\n' }}{% endif %}")
GEMMA_LIKE = ("{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
              "{{ '<|im_start|>' + role + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>model\n' }}{% endif %}")

CONVS = [
    [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
     {"role": "assistant", "content": " 6 \n"}],
]


@pytest.fixture(scope="module")
def tok(real_tokenizer_dir):
    from backend.models import load_tokenizer

    return load_tokenizer(str(real_tokenizer_dir))


@pytest.mark.parametrize("template", [None, LLAMA3, GEMMA_LIKE])
def test_fast_and_prefix_paths_agree(tok, template):
    t = copy.copy(tok)
    if template:
        t.chat_template = template
    r = Renderer(t)
    exs = [Example("f", i + 1, "messages", messages=c) for i, c in enumerate(CONVS)]
    fast = r.render_chats(exs)
    slow = r._render_by_prefixes(exs, [x.text for x in fast])
    for a, b, ex in zip(fast, slow, exs):
        assert a.text == b.text
        ea, eb = r.encode([a])[0], r.encode([b])[0]
        assert ea.labels == eb.labels, (template, a.spans, b.spans)
        answers = [m["content"].strip() for m in ex.messages if m["role"] == "assistant"]
        trained = t.decode([i for i, lab in zip(ea.input_ids, ea.labels) if lab != IGNORE_INDEX])
        for ans in answers:
            assert ans in trained


def test_slow_tokenizer_path_matches(tok, monkeypatch):
    r = Renderer(tok)
    exs = [Example("f", 1, "messages", messages=CONVS[1])]
    rendered = r.render_chats(exs)
    fast = r.encode(rendered)[0]
    monkeypatch.setattr(Renderer, "_backend", lambda self: None)
    slow = r.encode(rendered)[0]
    assert fast.input_ids == slow.input_ids and fast.labels == slow.labels


def test_user_text_with_mark_characters_uses_the_prefix_path(tok):
    r = Renderer(tok)
    ex = Example("f", 1, "messages", messages=[{"role": "user", "content": "odd \ue000 char"},
                                               {"role": "assistant", "content": "fine"}])
    (out,) = r.render_chats([ex])
    e = r.encode([out])[0]
    assert tok.decode([i for i, lab in zip(e.input_ids, e.labels) if lab != IGNORE_INDEX]) == "fine<|im_end|>"
