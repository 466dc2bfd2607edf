"""Dataset formats: detection, column mapping and normalisation to :class:`Example`.

Formats (names as in ``DataConfig.format``):

``messages``           ``{"messages": [{"role": "user", "content": ...}, ...]}`` (OpenAI style)
``sharegpt``           ``{"conversations": [{"from": "human", "value": ...}, ...], "system": ...}``
``alpaca``             ``{"instruction", "input", "output", "system", "history": [[q, a], ...]}``
``prompt_completion``  ``{"prompt": str, "completion": str}`` — plain concatenation, loss on the
                       completion (as TRL); message lists in both columns make a conversation
``text``               ``{"text": str}`` — every token carries loss

A column mapping ``{"your_name": "our_name"}`` renames columns, message keys
(``{"speaker": "role"}``) and role values (``{"bot": "assistant"}``).  The
LLaMA-Factory ``dataset_info`` direction (``{"prompt": "question"}``: ours ->
yours) is accepted too, and LLaMA-Factory's own names (prompt / query /
response) are understood.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from backend.data.readers import Problem, RawRow

FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion", "text")
REQUIRED = {
    "messages": ("messages",),
    "sharegpt": ("conversations",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
OPTIONAL = {
    "messages": ("system",),
    "sharegpt": ("system", "tools"),
    "alpaca": ("input", "system", "history"),
    "prompt_completion": (),
    "text": (),
}
OUR_COLUMNS = {"instruction", "input", "output", "system", "history", "conversations", "messages",
               "prompt", "completion", "text", "role", "content"}
ROLES = ("system", "user", "assistant", "tool")
ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                "model": "assistant", "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
                "system": "system", "tool": "tool", "observation": "tool", "ipython": "tool",
                "function": "tool", "function_call": "assistant"}
# Column pairs we recognise without a mapping: (theirs) -> format with our names.
AUTO_PAIRS = (
    ({"question", "answer"}, {"question": "instruction", "answer": "output"}),
    ({"query", "response"}, {"query": "instruction", "response": "output"}),
    ({"prompt", "response"}, {"prompt": "instruction", "response": "output"}),
    ({"instruction", "response"}, {"response": "output"}),
    ({"input", "output"}, {"input": "instruction"}),
    ({"input", "target"}, {"input": "instruction", "target": "output"}),
    ({"content"}, {"content": "text"}),
)
# LLaMA-Factory dataset_info column names -> ours (its mapping goes ours -> theirs).
LLAMAFACTORY_NAMES = {"prompt": "instruction", "query": "input", "response": "output"}


@dataclass
class Example:
    """A normalised training example.

    Exactly one of ``messages`` (a conversation), ``prompt``/``completion`` or
    ``text`` is set.  ``train_from`` is the first message index whose assistant
    turns carry loss (prompt/completion given as message lists).
    """

    file: str
    line: int
    format: str
    unit: str = "line"
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    completion: str | None = None
    text: str | None = None
    train_from: int = 0
    #: what made the row: "" (the file), or the knowledge recipe's "raft", "closed_book", "reworded",
    #: "abstain", "heldout" (backend/data/raft.py); not part of :meth:`key`
    origin: str = ""

    @property
    def kind(self) -> str:
        """``chat``, ``completion`` or ``text``."""
        if self.messages is not None:
            return "chat"
        if self.prompt is not None:
            return "completion"
        return "text"

    def key(self) -> str:
        """Identity for exact-duplicate removal."""
        return json.dumps([self.messages, self.prompt, self.completion, self.text, self.train_from],
                          ensure_ascii=False, sort_keys=True)

    def roles(self) -> list[str]:
        """Roles in order (``text`` for plain text)."""
        if self.messages is not None:
            return [m["role"] for m in self.messages]
        return ["prompt", "completion"] if self.prompt is not None else ["text"]


class RowError(Exception):
    """A row cannot be normalised (becomes a :class:`Problem`)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


# ---------------------------------------------------------------------------
# detection

def detect_format(keys: set[str]) -> str | None:
    """The format a row with these (already mapped) columns is in, or ``None``."""
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    return None


def auto_mapping(keys: set[str]) -> dict[str, str]:
    """A mapping for well-known column pairs (question/answer, ...), or ``{}``."""
    if detect_format(keys):
        return {}
    for need, mapping in AUTO_PAIRS:
        if need <= keys:
            return dict(mapping)
    return {}


def suggest_mapping(keys: set[str]) -> str:
    """A hint naming a column mapping that could work for these columns."""
    lower = {k.lower(): k for k in keys}
    guess = {}
    for ours, cands in (("instruction", ("question", "query", "prompt", "input", "instruction", "q", "source", "context")),
                        ("output", ("answer", "response", "output", "completion", "target", "a", "reply", "label"))):
        for c in cands:
            if c in lower and lower[c] not in guess:
                guess[lower[c]] = ours
                break
    cols = ", ".join(sorted(keys)) or "none"
    if len(guess) == 2:
        return (f"set data.column_mapping to {json.dumps(guess)} (your columns: {cols})")
    return ("set data.column_mapping to map your columns to ours, e.g. {\"question\": \"instruction\", "
            f"\"answer\": \"output\"}} (your columns: {cols}; ours: messages | conversations | "
            "instruction+output | prompt+completion | text)")


def resolve_mapping(mapping: dict[str, str], keys: set[str]) -> dict[str, str]:
    """Turn a user mapping into ``{their column: our column}`` for rows with ``keys``.

    Accepts both directions: ``{"question": "instruction"}`` (theirs -> ours) and
    LLaMA-Factory's ``{"prompt": "question"}`` (ours -> theirs).
    """
    out: dict[str, str] = {}
    for k, v in mapping.items():
        ours_k = LLAMAFACTORY_NAMES.get(k, k)
        if k not in keys and v in keys and (k in OUR_COLUMNS or k in LLAMAFACTORY_NAMES):
            out[v] = ours_k  # ours -> theirs (LLaMA-Factory direction)
        else:
            out[k] = v
    return out


def apply_mapping(row: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """Rename the row's columns by ``mapping`` (theirs -> ours)."""
    if not mapping:
        return row
    out = {}
    for k, v in row.items():
        out[mapping.get(k, k)] = v
    return out


# ---------------------------------------------------------------------------
# normalisation

def _text(value: Any, what: str) -> str:
    """A text cell: a string, or a list of {"type": "text", "text": ...} parts."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        parts = [p.get("text") for p in value if p.get("type", "text") == "text"]
        if all(isinstance(p, str) for p in parts) and len(parts) == len(value):
            return "".join(parts)
        raise RowError(f"{what} has non-text parts (images, audio, ...)", "only text is supported; remove those parts")
    raise RowError(f"{what} must be text, got {type(value).__name__}", f"make {what} a string")


def _message(m: Any, i: int, mapping: dict[str, str]) -> dict[str, str]:
    if not isinstance(m, dict):
        raise RowError(f"message {i + 1} must be an object with role and content, got {type(m).__name__}",
                       "write messages as {\"role\": \"user\", \"content\": \"...\"}")
    if mapping:
        m = {mapping.get(k, k): v for k, v in m.items()}
    role = m.get("role", m.get("from"))
    if "content" in m:
        content = m["content"]
    elif "value" in m:
        content = m["value"]
    elif "text" in m:
        content = m["text"]
    else:
        raise RowError(f"message {i + 1} has no content (keys: {', '.join(sorted(m)) or 'none'})",
                       "each message needs 'content' (or sharegpt's 'value'); map other names with data.column_mapping")
    if role is None:
        raise RowError(f"message {i + 1} has no role (keys: {', '.join(sorted(m))})",
                       "each message needs 'role' (or sharegpt's 'from')")
    if not isinstance(role, str):
        raise RowError(f"message {i + 1}: role must be text, got {type(role).__name__}")
    r = mapping.get(role, role) if mapping else role
    norm = ROLE_ALIASES.get(r.strip().lower())
    if norm is None:
        raise RowError(f"unknown role '{role}' in message {i + 1}",
                       f"use system, user or assistant (or human/gpt), or map it: data.column_mapping "
                       f"{{\"{role}\": \"assistant\"}}")
    return {"role": norm, "content": _text(content, f"message {i + 1} content")}


def _conversation(msgs: Any, column: str, mapping: dict[str, str]) -> list[dict[str, str]]:
    if isinstance(msgs, str):
        try:
            msgs = json.loads(msgs)
        except json.JSONDecodeError:
            raise RowError(f"'{column}' must be a list of messages, got text",
                           "write it as a JSON list of {\"role\", \"content\"} objects") from None
    if not isinstance(msgs, list):
        raise RowError(f"'{column}' must be a list of messages, got {type(msgs).__name__}")
    if not msgs:
        raise RowError(f"'{column}' is empty", "add at least a user and an assistant message, or delete the row")
    return [_message(m, i, mapping) for i, m in enumerate(msgs)]


def _check_conversation(msgs: list[dict[str, str]], train_on_prompt: bool, train_from: int = 0) -> None:
    for i, m in enumerate(msgs):
        if m["role"] == "system" and i > 0 and msgs[i - 1]["role"] != "system":
            raise RowError(f"system message {i + 1} comes after the conversation started",
                           "put the system message first")
    turns = [(i, m["role"]) for i, m in enumerate(msgs) if m["role"] in ("user", "assistant")]
    if turns and turns[0][1] == "assistant" and train_from == 0:
        raise RowError(f"the conversation starts with the assistant (message {turns[0][0] + 1})",
                       "start with the user's message; a chat template would render it as the model "
                       "speaking unprompted")
    for (_, a), (j, b) in zip(turns, turns[1:]):
        if a == b:
            raise RowError(f"messages out of order: two {a} messages in a row (message {j + 1})",
                           "alternate user and assistant turns (merge the two messages, or add the "
                           "missing turn between them)")
    if not train_on_prompt:
        answers = [m for m in msgs[train_from:] if m["role"] == "assistant"]
        if not answers:
            raise RowError("no assistant message: nothing for the model to learn",
                           "add the assistant's answer, or set data.train_on_prompt to train on all tokens")
        if not any(m["content"].strip() for m in answers):
            raise RowError("every assistant message is empty", "write the answers, or delete the row")


def normalise(row: RawRow, fmt: str, *, system_prompt: str = "", train_on_prompt: bool = False,
              mapping: dict[str, str] | None = None) -> Example:
    """Turn one mapped row into an :class:`Example` of format ``fmt``.

    Raises
    ------
    RowError
        When a column is missing, has the wrong type, or a role is unknown.
    """
    d = row.data
    mapping = mapping or {}
    missing = [c for c in REQUIRED[fmt] if c not in d or d[c] is None]
    if missing:
        raise RowError(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
                       f"for the {fmt} format (found: {', '.join(sorted(d)) or 'none'})",
                       suggest_mapping(set(d)) if fmt != "text" else "add a 'text' column or map yours to it")
    ex = Example(row.file, row.line, fmt, row.unit)
    if fmt in ("messages", "sharegpt"):
        msgs = _conversation(d[REQUIRED[fmt][0]], REQUIRED[fmt][0], mapping)
        system = d.get("system")
        if system and msgs[0]["role"] != "system":
            msgs.insert(0, {"role": "system", "content": _text(system, "system")})
        ex.messages = msgs
    elif fmt == "alpaca":
        instruction = _text(d["instruction"], "instruction")
        inp = _text(d.get("input"), "input")
        if isinstance(d["output"], list):
            raise RowError("'output' is a list (ranking / preference data)",
                           "supervised fine-tuning needs one answer per row; keep the preferred one")
        output = _text(d["output"], "output")
        msgs = []
        if d.get("system"):
            msgs.append({"role": "system", "content": _text(d["system"], "system")})
        history = d.get("history") or []
        if isinstance(history, str):
            try:
                history = json.loads(history)
            except json.JSONDecodeError:
                raise RowError("'history' must be a list of [question, answer] pairs, got text") from None
        if not isinstance(history, list):
            raise RowError(f"'history' must be a list of [question, answer] pairs, got {type(history).__name__}")
        for j, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise RowError(f"history item {j + 1} must be a [question, answer] pair",
                               "write history as [[\"question\", \"answer\"], ...]")
            msgs.append({"role": "user", "content": _text(pair[0], f"history {j + 1} question")})
            msgs.append({"role": "assistant", "content": _text(pair[1], f"history {j + 1} answer")})
        if not instruction.strip() and not inp.strip():
            raise RowError("'instruction' and 'input' are both empty", "write the instruction, or delete the row")
        query = "\n".join(x for x in (instruction, inp) if x.strip())
        msgs.append({"role": "user", "content": query})
        msgs.append({"role": "assistant", "content": output})
        ex.messages = msgs
    elif fmt == "prompt_completion":
        p, c = d["prompt"], d["completion"]
        if isinstance(p, list) or isinstance(c, list):
            pm = _conversation(p, "prompt", mapping) if isinstance(p, list) else [{"role": "user", "content": _text(p, "prompt")}]
            cm = _conversation(c, "completion", mapping) if isinstance(c, list) else [{"role": "assistant", "content": _text(c, "completion")}]
            ex.messages, ex.train_from = pm + cm, len(pm)
        else:
            ex.prompt, ex.completion = _text(p, "prompt"), _text(c, "completion")
            if not ex.completion.strip() and not train_on_prompt:
                raise RowError("'completion' is empty: nothing for the model to learn", "write it, or delete the row")
    else:
        ex.text = _text(d["text"], "text")
        if not ex.text.strip():
            raise RowError("'text' is empty", "delete the row")
    if ex.messages is not None:
        if system_prompt and ex.messages[0]["role"] != "system":
            ex.messages.insert(0, {"role": "system", "content": system_prompt})
            ex.train_from += 1 if ex.train_from else 0
        _check_conversation(ex.messages, train_on_prompt, ex.train_from)
    return ex


@dataclass
class FileExamples:
    """Examples normalised from one file, with its detected format and problems."""

    path: str
    format: str | None
    examples: list[Example] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0


def normalise_file(rows: list[RawRow], path: str, fmt: str = "auto", *, column_mapping: dict[str, str] | None = None,
                   system_prompt: str = "", train_on_prompt: bool = False) -> FileExamples:
    """Detect (or check) the format of a file's rows and normalise each.

    The first usable row fixes the file's format; a later row in another
    format is a *mixed formats* problem, a row in none a *missing columns* one.
    """
    out = FileExamples(path, None if fmt == "auto" else fmt, rows_read=len(rows))
    user_map = column_mapping or {}
    file_map: dict[str, str] | None = None
    first_line: int | None = None
    for row in rows:
        keys = set(row.data)
        if file_map is None:
            file_map = resolve_mapping(user_map, keys) if user_map else auto_mapping(keys)
            out.mapping = dict(file_map)
        data = apply_mapping(row.data, file_map)
        mapped = RawRow(row.file, row.line, data, row.unit)
        row_fmt = detect_format(set(data))
        try:
            if fmt == "auto":
                if row_fmt is None:
                    if out.format:
                        raise RowError(f"missing columns: this row has {', '.join(sorted(keys)) or 'no columns'}, "
                                       f"but the file's rows are {out.format} (with {' + '.join(REQUIRED[out.format])})",
                                       "give every row the same columns")
                    raise RowError(f"unknown format: columns {', '.join(sorted(keys)) or 'none'} match no known "
                                   "format", suggest_mapping(keys))
                if out.format is None:
                    out.format, first_line = row_fmt, row.line
                elif row_fmt != out.format:
                    raise RowError(f"mixed formats: this row is {row_fmt} but the file's first row "
                                   f"({row.unit} {first_line}) is {out.format}",
                                   "keep one format per file: split the file, or convert these rows")
                use = out.format
            else:
                use = fmt
            out.examples.append(normalise(mapped, use, system_prompt=system_prompt,
                                          train_on_prompt=train_on_prompt, mapping=file_map))
        except RowError as e:
            out.problems.append(Problem(row.file, row.line, e.message, e.hint, unit=row.unit))
    return out
