"""Ollama: a Modelfile for an exported GGUF, and a renderer for the Go templates it holds.

Ollama formats a conversation with a Go ``text/template`` (the ``TEMPLATE`` of a
Modelfile), not with the model's Jinja chat template.  Translating Jinja to Go
in general is not possible, so :func:`chat_template_parts` reads the *shape* of
the model's template instead: it renders conversations whose contents are
marker words and cuts the result at the markers, which gives, for each role,
the text before and after a message's content, the generation prompt, and any
default system block the template inserts when a conversation has none.
:func:`go_template` writes those parts as a Go template.

:func:`render_go_template` executes the small subset of Go's template language
that :func:`go_template` emits (and common hand-written Modelfiles use):
``range`` with ``$i, $_ :=``, ``if``/``else if``/``else``, variables, ``eq``,
``ne``, ``and``, ``or``, ``not``, ``len``, ``slice``, ``index`` and ``{{-``/``-}}``
trimming.  The export parity check uses it to prove that the Modelfile renders
the same prompt string as the Hugging Face chat template.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.export_types import ExportError

_MARK = {"system": "QZSYSTEMQZ", "user": "QZUSERQZ", "assistant": "QZASSISTANTQZ"}


@dataclass
class TemplateParts:
    """The literal text around each message that a chat template writes."""

    start: str            # once, before everything (a BOS text the template writes)
    default_system: str   # inserted before the first message when it is not a system message
    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str
    generation: str       # after the last user message, where the answer starts

    def to_dict(self) -> dict:
        """JSON-serialisable."""
        return asdict(self)


def _render(tok, messages: list[dict], gen: bool) -> str:
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def _between(text: str, marks: list[str]) -> list[str]:
    """The pieces of ``text`` around ``marks`` (in order); ExportError if one is missing."""
    out, pos = [], 0
    for m in marks:
        i = text.find(m, pos)
        if i < 0:
            raise ExportError("the chat template changes message contents, so it cannot be written as an Ollama "
                              "template", hint="use the GGUF file with llama.cpp, which reads the chat template itself")
        out.append(text[pos:i])
        pos = i + len(m)
    out.append(text[pos:])
    return out


def _cut_suffix(text: str, suffix: str, what: str) -> str:
    if not text.endswith(suffix):
        raise ExportError(f"the chat template writes {what} differently in different places, so it cannot be "
                          "written as an Ollama template",
                          hint="use the GGUF file with llama.cpp, which reads the chat template itself")
    return text[:len(text) - len(suffix)] if suffix else text


def _cut_prefix(text: str, prefix: str, what: str) -> str:
    if not text.startswith(prefix):
        raise ExportError(f"the chat template writes {what} differently in different places, so it cannot be "
                          "written as an Ollama template",
                          hint="use the GGUF file with llama.cpp, which reads the chat template itself")
    return text[len(prefix):]


def chat_template_parts(tok) -> TemplateParts:
    """Read the per-role structure of a tokenizer's chat template.

    Raises
    ------
    ExportError
        When the template does not keep message contents verbatim or writes a
        role differently from turn to turn (it cannot be a Go template then).
    """
    S, U, A = _MARK["system"], _MARK["user"], _MARK["assistant"]
    U2, A2, U3 = U + "2", A + "2", U + "3"
    conv = [{"role": "system", "content": S}, {"role": "user", "content": U}, {"role": "assistant", "content": A},
            {"role": "user", "content": U2}, {"role": "assistant", "content": A2}, {"role": "user", "content": U3}]
    p = _between(_render(tok, conv, True), [S, U, A, U2, A2, U3])
    user_suffix = _between(_render(tok, conv, False), [S, U, A, U2, A2, U3])[-1]
    asst_suffix = _between(_render(tok, conv[1:3], False), [U, A])[-1]
    generation = _cut_prefix(p[6], user_suffix, "the end of a user message")
    assistant_prefix = _cut_prefix(p[2], user_suffix, "the end of a user message")
    user_prefix = _cut_prefix(p[3], asst_suffix, "the end of an assistant message")
    if p[4] != p[2] or p[5] != p[3]:
        _cut_suffix(p[4], assistant_prefix, "the start of an assistant message")
        raise ExportError("the chat template writes the second turn differently from the first, so it cannot be "
                          "written as an Ollama template",
                          hint="use the GGUF file with llama.cpp, which reads the chat template itself")
    system_suffix = _cut_suffix(p[1], user_prefix, "the start of a user message")
    q = _between(_render(tok, conv[1:2], False), [U])
    bos = getattr(tok, "bos_token", None) or ""
    # a BOS text written once at the start, not the opening of every role's markup (ChatML's <|im_start|>)
    start = bos if bos and p[0].startswith(bos) and q[0].startswith(bos) and not user_prefix.startswith(bos) else ""
    system_prefix = p[0][len(start):]
    default_system = _cut_suffix(q[0][len(start):], user_prefix, "the start of a user message")
    return TemplateParts(start, default_system, system_prefix, system_suffix, user_prefix, user_suffix,
                         assistant_prefix, asst_suffix, generation)


def _lit(text: str) -> str:
    """Literal text inside a Go template (``{{`` would start an action)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(parts: TemplateParts, *, drop_start: bool = False) -> str:
    """A Go template (Ollama ``TEMPLATE``) writing the same prompt as the chat template.

    ``drop_start``: leave out the BOS text the template starts with, because the
    runtime (llama.cpp) adds the BOS token itself.
    """
    p = parts
    out = [] if drop_start or not p.start else [_lit(p.start)]
    out.append("{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}")
    if p.default_system:
        out.append(f'{{{{ if and (eq $i 0) (ne .Role "system") }}}}{_lit(p.default_system)}{{{{ end }}}}')
    out.append(f'{{{{ if eq .Role "system" }}}}{_lit(p.system_prefix)}{{{{ .Content }}}}{_lit(p.system_suffix)}')
    out.append(f'{{{{ else if eq .Role "user" }}}}{_lit(p.user_prefix)}{{{{ .Content }}}}{_lit(p.user_suffix)}'
               f'{{{{ if $last }}}}{_lit(p.generation)}{{{{ end }}}}')
    out.append(f'{{{{ else if eq .Role "assistant" }}}}{_lit(p.assistant_prefix)}{{{{ .Content }}}}'
               f'{_lit(p.assistant_suffix)}{{{{ end }}}}{{{{ end }}}}')
    return "".join(out)


def stop_strings(parts: TemplateParts, eos_token: str | None) -> list[str]:
    """Texts that end an answer: the end-of-turn text and the EOS token."""
    out = []
    for s in (parts.assistant_suffix.strip(), eos_token or "", parts.user_prefix.strip()):
        if s and s not in out:
            out.append(s)
    return out


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('a Modelfile value cannot contain three double quotes (""")',
                          hint="change the system prompt")
    return f'"""{text}"""'


def modelfile_text(gguf_name: str, template: str, *, system: str, temperature: float, top_p: float,
                   repeat_penalty: float, num_predict: int, stop: list[str], num_ctx: int | None = None) -> str:
    """The Modelfile: merged weights (``FROM`` the GGUF file, no ``ADAPTER``), template, system, parameters."""
    lines = [f"FROM ./{gguf_name}", "", f"TEMPLATE {_quote(template)}", "", f"SYSTEM {_quote(system)}", "",
             f"PARAMETER temperature {temperature:g}", f"PARAMETER top_p {top_p:g}",
             f"PARAMETER repeat_penalty {repeat_penalty:g}", f"PARAMETER num_predict {int(num_predict)}"]
    if num_ctx:
        lines.append(f"PARAMETER num_ctx {int(num_ctx)}")
    for s in stop:
        plain = not any(c.isspace() or c == '"' for c in s)
        lines.append(f"PARAMETER stop {s if plain else _quote(s)}")
    return "\n".join(lines) + "\n"


def read_modelfile(path: str | Path) -> dict[str, Any]:
    """``{"from", "template", "system", "parameters": {name: [values]}}`` of a Modelfile we wrote."""
    text = Path(path).read_text(encoding="utf-8")
    out: dict[str, Any] = {"from": None, "template": None, "system": None, "parameters": {}}
    pos = 0
    pat = re.compile(r'(FROM|TEMPLATE|SYSTEM|PARAMETER)\s+(?:(\w+)\s+)?("""(.*?)"""|[^\n]*)', re.S)
    while (m := pat.search(text, pos)) is not None:
        kind, pname, raw, quoted = m.groups()
        value = quoted if quoted is not None else raw.strip()
        if kind == "PARAMETER":
            out["parameters"].setdefault(pname, []).append(value)
        else:
            if kind == "TEMPLATE" or kind == "SYSTEM" or kind == "FROM":
                out[kind.lower()] = value if kind != "FROM" else (pname or "") + value
        pos = m.end()
    return out


# ---------------------------------------------------------------------------
# a Go text/template subset


class GoTemplateError(ValueError):
    """A template outside the supported subset, or an error while executing it."""


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _tokens(src: str) -> list[tuple[str, str]]:
    """``[("text", s) | ("action", s)]`` with ``{{-`` / ``-}}`` trimming applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        body = m.group(2).strip()
        if not body.startswith("/*"):
            out.append(("action", body))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    if trim_next:
        text = text.lstrip()
    if text:
        out.append(("text", text))
    return out


_TERM = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\$?[\w.]*\.?[\w.]*|:=|,)')


def _lex(expr: str) -> list[str]:
    out, pos = [], 0
    while pos < len(expr):
        if expr[pos].isspace():
            pos += 1
            continue
        m = _TERM.match(expr, pos)
        if not m or m.end() == pos or not m.group(1):
            raise GoTemplateError(f"cannot read {expr[pos:]!r}")
        out.append(m.group(1))
        pos = m.end()
    return out


def _parse(tokens: list[tuple[str, str]], i: int = 0, stop: tuple[str, ...] = ()) -> tuple[list, int, str | None]:
    """Nodes until an action in ``stop`` (``end``, ``else``…); returns (nodes, next index, that action)."""
    nodes: list = []
    while i < len(tokens):
        kind, s = tokens[i]
        if kind == "text":
            nodes.append(("text", s))
            i += 1
            continue
        word = s.split(None, 1)[0] if s else ""
        if word in ("end", "else") and word in stop:
            return nodes, i, s
        if word == "if":
            branches, i = _parse_if(tokens, i)
            nodes.append(("if", branches))
        elif word == "range":
            head = s[len("range"):].strip()
            names: list[str] = []
            if ":=" in head:
                left, head = head.split(":=", 1)
                names = [n.strip() for n in left.split(",")]
            body, i, end = _parse(tokens, i + 1, ("end", "else"))
            if end != "end":
                raise GoTemplateError("range with else is not supported")
            nodes.append(("range", names, head.strip(), body))
            i += 1
        elif word in ("end", "else"):
            raise GoTemplateError(f"unexpected {{{{ {s} }}}}")
        else:
            nodes.append(("action", s))
            i += 1
    if stop:
        raise GoTemplateError("missing {{ end }}")
    return nodes, i, None


def _parse_if(tokens, i):
    cond = tokens[i][1][len("if"):].strip()
    branches: list[tuple[str | None, list]] = []
    while True:
        body, i, s = _parse(tokens, i + 1, ("end", "else"))
        branches.append((cond, body))
        if s == "end":
            return branches, i + 1
        rest = s[len("else"):].strip()
        if rest.startswith("if"):
            cond = rest[2:].strip()
        else:
            body, i, s = _parse(tokens, i + 1, ("end",))
            branches.append((None, body))
            return branches, i + 1


def _truth(v: Any) -> bool:
    return bool(v)


class _Scope:
    def __init__(self, root: Any):
        self.root = root
        self.vars: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for d in reversed(self.vars):
            if name in d:
                return d[name]
        raise GoTemplateError(f"undefined variable {name}")

    def set(self, name: str, value: Any) -> None:
        self.vars[-1][name] = value


def _field(obj: Any, path: list[str]) -> Any:
    for p in path:
        if not p:
            continue
        if isinstance(obj, dict):
            obj = obj.get(p, obj.get(p[:1].lower() + p[1:]))
        else:
            obj = getattr(obj, p, None)
    return obj


_FUNCS = {
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not _truth(a),
    "len": lambda a: len(a),
    "slice": lambda a, i=0, j=None: a[i:j],
    "index": lambda a, *ix: _index(a, ix),
}


def _index(a, ix):
    for i in ix:
        a = a[i]
    return a


def _eval_terms(terms: list[str], dot: Any, scope: _Scope) -> Any:
    vals: list[Any] = []
    i = 0
    while i < len(terms):
        t = terms[i]
        if t == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(terms[j], 0)
                j += 1
            v = _eval_terms(terms[i + 1:j - 1], dot, scope)
            if j < len(terms) and terms[j].startswith(".") and terms[j] != ".":  # (index .Messages 0).Content
                v = _field(v, terms[j][1:].split("."))
                j += 1
            vals.append(("value", v))
            i = j
            continue
        vals.append(("term", t))
        i += 1
    if not vals:
        return None

    def value(kind_t):
        kind, t = kind_t
        if kind == "value":
            return t
        if t.startswith('"'):
            return bytes(t[1:-1], "utf-8").decode("unicode_escape")
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        if t in ("true", "false"):
            return t == "true"
        if t == ".":
            return dot
        if t.startswith("$"):
            name, _, rest = t.partition(".")
            return _field(scope.get(name), rest.split(".") if rest else [])
        if t.startswith("."):
            return _field(dot, t[1:].split("."))
        raise GoTemplateError(f"unknown value {t}")

    head = vals[0]
    if head[0] == "term" and head[1] in ("and", "or"):
        args = vals[1:]
        if head[1] == "and":
            v: Any = True
            for a in args:
                v = value(a)
                if not _truth(v):
                    return v
            return v
        v = False
        for a in args:
            v = value(a)
            if _truth(v):
                return v
        return v
    if head[0] == "term" and head[1] in _FUNCS:
        return _FUNCS[head[1]](*[value(a) for a in vals[1:]])
    if len(vals) != 1:
        raise GoTemplateError(f"unsupported expression {' '.join(terms)}")
    return value(head)


def _exec(nodes: list, dot: Any, scope: _Scope, out: list[str]) -> None:
    for n in nodes:
        kind = n[0]
        if kind == "text":
            out.append(n[1])
        elif kind == "action":
            s = n[1]
            m = re.match(r"(\$\w+)\s*:?=\s*(.*)", s, re.S)
            if m:
                scope.set(m.group(1), _eval_terms(_lex(m.group(2)), dot, scope))
            else:
                v = _eval_terms(_lex(s), dot, scope)
                out.append("" if v is None else str(v))
        elif kind == "if":
            for cond, body in n[1]:
                if cond is None or _truth(_eval_terms(_lex(cond), dot, scope)):
                    scope.vars.append({})
                    _exec(body, dot, scope, out)
                    scope.vars.pop()
                    break
        elif kind == "range":
            _, names, expr, body = n
            seq = _eval_terms(_lex(expr), dot, scope) or []
            for i, item in enumerate(seq):
                scope.vars.append({})
                if len(names) == 2:
                    scope.set(names[0], i)
                    scope.set(names[1], item)
                elif len(names) == 1:
                    scope.set(names[0], item)
                _exec(body, item, scope, out)
                scope.vars.pop()


def render_go_template(template: str, data: dict[str, Any]) -> str:
    """Execute a Go template of the supported subset on ``data`` (e.g. ``{"Messages": [...]}``).

    Messages are dicts with ``role``/``content`` (read as ``.Role``/``.Content``).

    Raises
    ------
    GoTemplateError
        A construct outside the subset.
    """
    nodes, _, _ = _parse(_tokens(template))
    out: list[str] = []
    _exec(nodes, data, _Scope(data), out)
    return "".join(out)


def ollama_messages(messages: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    """The messages Ollama hands its template: the Modelfile's SYSTEM first when the chat has none."""
    msgs = [{"Role": m["role"], "Content": m["content"]} for m in messages]
    if system and (not msgs or msgs[0]["Role"] != "system"):
        msgs.insert(0, {"Role": "system", "Content": system})
    return msgs
