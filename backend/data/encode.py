"""Render examples to text and token ids with a loss mask.

Chat examples go through the tokenizer's chat template (``load_tokenizer``
installs a ChatML fallback when the model has none).  Templates without
``{% generation %}`` markers (SmolLM2's, most others) do not say which
characters are the assistant's, so:

1. the conversation is rendered twice, plainly and with every trained answer
   wrapped in private-use marks; when the marked render minus the marks equals
   the plain one, the marks give the answer spans exactly, and each span is
   extended over the end-of-turn text the template writes after an answer
   (``<|im_end|>``), learned once per tokenizer;
2. otherwise (a template that looks inside the content), the text between
   ``render(messages[:i], add_generation_prompt=True)`` and
   ``render(messages[:i+1])`` is answer ``i``;
3. when even prefixes do not line up (a template that rewrites earlier turns),
   the answer's content is searched for in the rendered text.

The text is then tokenised once, in batches, by the fast tokenizer; a token
carries loss when its first character lies inside an answer span.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from backend.data.formats import Example

IGNORE_INDEX = -100


@dataclass
class Rendered:
    """An example as text with the character spans that carry loss."""

    text: str
    spans: list[tuple[int, int]]
    add_bos: bool = False
    add_eos: bool = False


@dataclass
class Encoded:
    """Token ids and labels (``-100`` where no loss), before truncation."""

    input_ids: list[int]
    labels: list[int]
    offsets: list[tuple[int, int]] | None = None
    trained: int = 0  # tokens that carry loss

    def truncate(self, n: int) -> None:
        """Keep the first ``n`` tokens."""
        if len(self.input_ids) <= n:
            return
        self.input_ids, self.labels = self.input_ids[:n], self.labels[:n]
        if self.offsets is not None:
            self.offsets = self.offsets[:n]
        self.trained = int(np.count_nonzero(np.asarray(self.labels, dtype=np.int64) != IGNORE_INDEX))

    def __len__(self) -> int:
        return len(self.input_ids)


# Private-use characters that wrap the trained answers in a second, marked render.
_MARK_A, _MARK_B = "\ue000", "\ue001"
_MARK_RE = re.compile(f"([{_MARK_A}{_MARK_B}])")


def _has_marks(ex: Example) -> bool:
    return any(_MARK_A in m["content"] or _MARK_B in m["content"] for m in ex.messages)


def _marked(ex: Example) -> list[dict]:
    """The conversation with every trained assistant content wrapped in the marks."""
    return [{**m, "content": _MARK_A + m["content"] + _MARK_B} if m["role"] == "assistant" and i >= ex.train_from
            else m for i, m in enumerate(ex.messages)]


class TemplateError(Exception):
    """The chat template failed on a conversation."""


def _special_ids(tokenizer) -> tuple[list[int], list[int]]:
    """Token ids the tokenizer adds before / after a plain text (e.g. BOS)."""
    with_sp = tokenizer("x", add_special_tokens=True)["input_ids"]
    without = tokenizer("x", add_special_tokens=False)["input_ids"]
    if not without:
        return [], []
    try:
        i = with_sp.index(without[0])
    except ValueError:
        return [], []
    return list(with_sp[:i]), list(with_sp[i + len(without):])


class Renderer:
    """Renders :class:`Example` objects for one tokenizer.

    Parameters
    ----------
    tokenizer
        A (fast) Hugging Face tokenizer with a chat template.
    train_on_prompt
        Put loss on every token, not only the assistant's.
    """

    def __init__(self, tokenizer, *, train_on_prompt: bool = False):
        self.tok = tokenizer
        self.train_on_prompt = train_on_prompt
        self.bos, _ = _special_ids(tokenizer)
        self.eos_id = tokenizer.eos_token_id
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        specials |= {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
                     if getattr(t, "special", False)}
        self._specials = sorted((s for s in specials if s), key=len, reverse=True)
        self._suffix: str | None = None

    # -- chat ---------------------------------------------------------------
    def _render_batch(self, convs: list[list[dict]], gen: bool) -> list[str]:
        if not convs:
            return []
        try:
            return self.tok.apply_chat_template(convs, tokenize=False, add_generation_prompt=gen)
        except Exception:
            # find the conversation that fails, one by one (rare path)
            out = []
            for c in convs:
                try:
                    out.append(self.tok.apply_chat_template(c, tokenize=False, add_generation_prompt=gen))
                except Exception as e:
                    raise TemplateError(f"the chat template failed: {type(e).__name__}: {e}") from e
            return out

    def render_chats(self, examples: Sequence[Example]) -> list[Rendered | TemplateError]:
        """Render chat examples (batched); a failing conversation gives a ``TemplateError``."""
        fulls: list[str | TemplateError]
        try:
            fulls = list(self._render_batch([ex.messages for ex in examples], False))
        except TemplateError:
            fulls = []
            for ex in examples:
                try:
                    fulls.append(self._render_batch([ex.messages], False)[0])
                except TemplateError as e:
                    fulls.append(e)
        if self.train_on_prompt:
            return [f if isinstance(f, TemplateError) else Rendered(f, [(0, len(f))]) for f in fulls]
        out: list[Rendered | TemplateError | None] = [f if isinstance(f, TemplateError) else None for f in fulls]
        # Fast path: one more render with the trained answers wrapped in private-use marks.
        marked_idx = [k for k, ex in enumerate(examples) if out[k] is None and not _has_marks(ex)]
        try:
            marked = self._render_batch([_marked(examples[k]) for k in marked_idx], False)
        except TemplateError:
            marked = [None] * len(marked_idx)
        for k, m in zip(marked_idx, marked):
            spans = self._spans_from_marked(m, fulls[k], examples[k]) if m is not None else None
            if spans is not None:
                out[k] = Rendered(fulls[k], spans)
        rest = [k for k in range(len(examples)) if out[k] is None]
        for k, r in zip(rest, self._render_by_prefixes([examples[k] for k in rest], [fulls[k] for k in rest])):
            out[k] = r
        return out  # type: ignore[return-value]

    def _end_of_turn(self, full: str, b: int) -> int:
        """Extend an answer's end over the end-of-turn token the template writes after it."""
        if self._suffix is None:
            self._suffix = self._learn_suffix()
        if self._suffix and full.startswith(self._suffix, b):
            return b + len(self._suffix)
        rest = full[b:]
        stripped = rest.lstrip()
        for sp in self._specials:
            if stripped.startswith(sp):
                return b + (len(rest) - len(stripped)) + len(sp)
        return b

    def _learn_suffix(self) -> str:
        """What the template writes after an assistant's content (e.g. ``<|im_end|>``)."""
        probe = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": _MARK_A + "pong" + _MARK_B}]
        try:
            text = self._render_batch([probe], False)[0]
        except TemplateError:
            return ""
        if _MARK_B not in text:
            return ""
        return text.split(_MARK_B, 1)[1].rstrip()

    def _spans_from_marked(self, marked: str, full: str, ex: Example) -> list[tuple[int, int]] | None:
        """Answer spans from a marked render, or ``None`` when it does not match the plain render."""
        clean: list[str] = []
        spans: list[tuple[int, int]] = []
        pos, start = 0, None
        for piece in _MARK_RE.split(marked):
            if piece == _MARK_A:
                if start is not None:
                    return None
                start = pos
            elif piece == _MARK_B:
                if start is None:
                    return None
                spans.append((start, pos))
                start = None
            elif piece:
                clean.append(piece)
                pos += len(piece)
        expected = sum(1 for i, m in enumerate(ex.messages) if m["role"] == "assistant" and i >= ex.train_from)
        if start is not None or len(spans) != expected or "".join(clean) != full:
            return None
        return [(a, self._end_of_turn(full, b)) for a, b in spans]

    def _render_by_prefixes(self, examples: Sequence[Example], fulls: Sequence[str]) -> list[Rendered]:
        """Slow path: each answer is the text between two prefix renders (or found by search)."""
        jobs: list[tuple[int, int]] = []
        for k, ex in enumerate(examples):
            for i, m in enumerate(ex.messages):
                if m["role"] == "assistant" and i >= ex.train_from and i > 0:
                    jobs.append((k, i))
        try:
            heads = self._render_batch([examples[k].messages[:i] for k, i in jobs], True)
            upto = self._render_batch([examples[k].messages[:i + 1] for k, i in jobs], False)
        except TemplateError:
            heads = upto = [None] * len(jobs)
        per_ex: dict[int, dict[int, tuple[str | None, str | None]]] = {}
        for (k, i), h, u in zip(jobs, heads, upto):
            per_ex.setdefault(k, {})[i] = (h, u)
        out: list[Rendered] = []
        for k, ex in enumerate(examples):
            full = fulls[k]
            spans = []
            cursor = 0
            for i, m in enumerate(ex.messages):
                if m["role"] != "assistant" or i < ex.train_from:
                    continue
                h, u = per_ex.get(k, {}).get(i, (None, None))
                if h is not None and u is not None and u.startswith(h) and full.startswith(u) and len(u) > len(h):
                    a, b = len(h), len(u)
                    while b > a and full[b - 1].isspace():
                        b -= 1
                    span = (a, b)
                else:
                    span = self._locate(full, m["content"], cursor)
                if span and span[1] > span[0]:
                    spans.append(span)
                    cursor = span[1]
            out.append(Rendered(full, spans))
        return out

    def _locate(self, full: str, content: str, cursor: int) -> tuple[int, int] | None:
        """Find an assistant's content in the rendered text, plus the end-of-turn token after it."""
        c = content.strip()
        if not c:
            return None
        a = full.find(c, cursor)
        if a < 0:
            return None
        b = a + len(c)
        rest = full[b:]
        stripped = rest.lstrip()
        for s in self._specials:
            if stripped.startswith(s):
                b += (len(rest) - len(stripped)) + len(s)
                break
        return a, b

    # -- plain text / completion ---------------------------------------------
    def render(self, examples: Sequence[Example]) -> list[Rendered | TemplateError]:
        """Render any mix of examples, keeping their order."""
        out: list[Rendered | TemplateError | None] = [None] * len(examples)
        chat_idx = [i for i, ex in enumerate(examples) if ex.kind == "chat"]
        if chat_idx:
            for i, r in zip(chat_idx, self.render_chats([examples[i] for i in chat_idx])):
                out[i] = r
        for i, ex in enumerate(examples):
            if ex.kind == "text":
                out[i] = Rendered(ex.text, [(0, len(ex.text))], add_bos=True, add_eos=True)
            elif ex.kind == "completion":
                full = ex.prompt + ex.completion
                start = 0 if self.train_on_prompt else len(ex.prompt)
                out[i] = Rendered(full, [(start, len(full))], add_bos=True, add_eos=True)
        return out  # type: ignore[return-value]

    # -- tokens ------------------------------------------------------------
    def _backend(self):
        """The Rust tokenizer, when it can be used directly (no padding / truncation set on it)."""
        bt = getattr(self.tok, "backend_tokenizer", None) if getattr(self.tok, "is_fast", False) else None
        if bt is None or bt.truncation is not None or bt.padding is not None:
            return None
        return bt

    def encode(self, rendered: Sequence[Rendered], *, keep_offsets: bool = False, batch_size: int = 512,
               on_batch: Callable[[int], Any] | None = None) -> list[Encoded]:
        """Tokenise rendered texts in batches and build labels from the spans.

        A token carries loss when its first character lies inside a span.  Fast
        tokenizers map span ends to tokens with ``char_to_token`` (a few calls
        per row, not one per token); slow tokenizers encode the pieces between
        span boundaries separately.
        """
        out: list[Encoded] = []
        bt = self._backend()
        for start in range(0, len(rendered), batch_size):
            chunk = rendered[start:start + batch_size]
            if bt is not None:
                encs = bt.encode_batch([r.text for r in chunk], add_special_tokens=False)
                for r, e in zip(chunk, encs):
                    out.append(self._finish(r, *self._labels_from_encoding(r, e, keep_offsets), keep_offsets))
            else:
                for r in chunk:
                    out.append(self._finish(r, *self._encode_pieces(r), keep_offsets))
            if on_batch:
                on_batch(min(start + batch_size, len(rendered)))
        return out

    @staticmethod
    def _labels_from_encoding(r: Rendered, e, keep_offsets: bool
                              ) -> tuple[list[int], list[int], list[tuple[int, int]] | None]:
        ids = e.ids
        n = len(ids)
        labels = [IGNORE_INDEX] * n
        for a, b in r.spans:
            if b <= a:
                continue
            t0 = None
            for c in range(a, b):  # first character that belongs to a token
                t0 = e.char_to_token(c)
                if t0 is not None:
                    break
            if t0 is None:
                continue
            if e.token_to_chars(t0)[0] < a:  # the token straddles the span start: it belongs to the prompt
                t0 += 1
            t1 = None
            for c in range(b - 1, a - 1, -1):
                t1 = e.char_to_token(c)
                if t1 is not None:
                    break
            if t1 is None or t1 < t0:
                continue
            labels[t0:t1 + 1] = ids[t0:t1 + 1]
        return list(ids), labels, (e.offsets if keep_offsets else None)

    def _encode_pieces(self, r: Rendered) -> tuple[list[int], list[int], list[tuple[int, int]]]:
        """Slow-tokenizer path: encode the text between span boundaries piece by piece."""
        cuts = sorted({0, len(r.text), *(x for span in r.spans for x in span)})
        ids: list[int] = []
        labels: list[int] = []
        offsets: list[tuple[int, int]] = []
        for a, b in zip(cuts, cuts[1:]):
            if b <= a:
                continue
            piece = self.tok(r.text[a:b], add_special_tokens=False)["input_ids"]
            trained = any(sa <= a and b <= sb for sa, sb in r.spans)
            ids += piece
            labels += piece if trained else [IGNORE_INDEX] * len(piece)
            offsets += [(a, b)] * len(piece)  # coarse: the piece's range (previews decode instead)
        return ids, labels, offsets

    def _finish(self, r: Rendered, ids: list[int], labels: list[int], offsets, keep_offsets: bool) -> Encoded:
        """Add BOS / EOS for plain text and count the trained tokens."""
        offs = [tuple(o) for o in offsets] if keep_offsets and offsets is not None else None
        if r.add_bos and self.bos:
            ids = self.bos + ids
            labels = [IGNORE_INDEX] * len(self.bos) + labels
            if offs is not None:
                offs = [(0, 0)] * len(self.bos) + offs
        eos = self.eos_id
        if r.add_eos and eos is not None and (not ids or ids[-1] != eos):
            ids.append(eos)
            labels.append(eos)
            if offs is not None:
                offs.append((len(r.text), len(r.text)))
        trained = len(labels) - labels.count(IGNORE_INDEX)
        return Encoded(ids, labels, offs, trained)


def segments(rendered: Rendered, encoded: Encoded, tokenizer, limit: int | None = None) -> list[tuple[str, bool]]:
    """Split a row into ``(text, trained)`` runs of tokens, up to ``limit`` tokens.

    With character offsets the text is cut from the rendered source (faithful,
    whitespace included); tokens without offsets (an added BOS / EOS) and rows
    without offsets are decoded.
    """
    n = len(encoded.input_ids) if limit is None else min(limit, len(encoded.input_ids))
    ids, labels, offs = encoded.input_ids, encoded.labels, encoded.offsets
    pieces: list[str] = []
    if offs is None:
        pieces = [tokenizer.decode([t]) for t in ids[:n]]
    else:
        real = [t for t in range(n) if offs[t][1] > offs[t][0]]
        nxt = {t: real[k + 1] for k, t in enumerate(real[:-1])}
        for t in range(n):
            a, b = offs[t]
            if b <= a:
                pieces.append(tokenizer.decode([ids[t]]))
            elif t in nxt:
                pieces.append(rendered.text[a:offs[nxt[t]][0]])
            else:
                pieces.append(rendered.text[a:b])
    out: list[tuple[str, bool]] = []
    for t in range(n):
        flag = labels[t] != IGNORE_INDEX
        if out and out[-1][1] == flag:
            out[-1] = (out[-1][0] + pieces[t], flag)
        else:
            out.append((pieces[t], flag))
    return out
