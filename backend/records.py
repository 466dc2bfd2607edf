"""Reading a project's own files as untrusted input: a bad record is skipped and named.

A project travels (zipped, copied between machines), so any file in it may hold
anything: a torn line, a hand edit, text where a number belongs, a list nested
ten thousand deep, a line of a gigabyte, bytes that are not UTF-8.  Every reader
of a project file (docs/architecture.md, "Readers") goes through this module:

* :func:`parse` turns one record's bytes into JSON or raises :class:`BadRecord`
  (a ``ValueError``) saying in words what is wrong with it — never a
  ``RecursionError`` or ``UnicodeDecodeError``;
* :func:`read_jsonl` yields the good lines of a JSON-lines file and appends a
  :class:`Skipped` (file, line, what was wrong) for every other one, so the
  caller loads the rest and can show the list;
* :func:`read_json` reads a one-object file (``status.json``, ``project.json``…)
  with the same checks;
* :func:`number`, :func:`integer`, :func:`text` and :func:`field_problem` take a
  value out of a record only when it has the type the reader needs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MAX_LINE_BYTES = 4 << 20
"""A JSON-lines record longer than this is skipped unread (a transcript answer is a few KB)."""
MAX_FILE_BYTES = 64 << 20
"""A one-object JSON file longer than this is refused unread."""
MAX_DEPTH = 64
"""JSON nested deeper than this is refused (deeper structures crash recursive code further on)."""


class BadRecord(ValueError):
    """One record (a line, or a whole one-object file) that is not usable JSON; the message says why."""


@dataclass(frozen=True)
class Skipped:
    """A record a reader left out, and why.

    Attributes
    ----------
    file
        The file it is in.
    line
        Its 1-based line (``None`` for a one-object file, or a part of one such as a table entry).
    what
        What was wrong, in words (``"'time' should be a number, not text"``).
    """

    file: str
    line: int | None
    what: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.what}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for ``--json`` output and events."""
        return {"file": self.file, "line": self.line, "what": self.what, "text": str(self)}


def summary(skipped: list[Skipped], limit: int = 3) -> str:
    """A few skipped records in one paragraph (``""`` when none): what a page's banner shows."""
    if not skipped:
        return ""
    head = "; ".join(str(s) for s in skipped[:limit])
    more = len(skipped) - limit
    return head + (f"; and {more} more" if more > 0 else "")


def _kind(value: Any) -> str:
    """What a JSON value is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects in ``value`` nest deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return False


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


def parse(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """One JSON value from a record's bytes.

    Parameters
    ----------
    data
        The record (a line without its newline, or a whole file).
    max_depth
        Deepest nesting of lists and objects accepted.

    Returns
    -------
    Any
        The value (``NaN`` and ``Infinity`` are accepted, as ``json`` writes them).

    Raises
    ------
    BadRecord
        Not UTF-8, not JSON, or nested deeper than ``max_depth``.
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadRecord(f"not UTF-8 text (byte {e.start + 1})") from None
    if data.startswith("\ufeff"):
        data = data[1:]
    try:
        value = json.loads(data)
    except RecursionError:
        raise BadRecord(f"nested more than {max_depth} deep") from None
    except ValueError as e:  # JSONDecodeError, or an integer too long to convert
        msg = getattr(e, "msg", None) or str(e)
        raise BadRecord(f"not valid JSON ({msg})") from None
    # "\ud800" alone decodes to a lone surrogate, which no file or widget can take: refused here, once
    if ("\\ud" in data or "\\uD" in data) and _has_lone_surrogate(value):
        raise BadRecord("holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    # the count of brackets bounds the depth: walk only when it could be too deep
    if isinstance(value, (dict, list)) and data.count("[") + data.count("{") > max_depth \
            and too_deep(value, max_depth):
        raise BadRecord(f"nested more than {max_depth} deep")
    return value


def read_json(path: str | Path, default: Any = None, *, max_bytes: int = MAX_FILE_BYTES) -> Any:
    """A one-object JSON file, checked like a record (``default`` when the file does not exist).

    Raises
    ------
    BadRecord
        Larger than ``max_bytes``, not UTF-8, not JSON, or nested too deep.
    OSError
        The file exists but cannot be read (a folder in its place, no permission).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        return default
    if len(data) > max_bytes:
        raise BadRecord(f"larger than {max_bytes >> 20} MB")
    return parse(data)


def read_jsonl(path: str | Path, skipped: list[Skipped], *, max_line_bytes: int = MAX_LINE_BYTES,
               max_lines: int | None = None, name: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON-object lines of a file, with their 1-based line numbers; every other line is skipped and named.

    A missing file yields nothing.  Blank lines are passed over silently.  A
    line that is not UTF-8, not JSON, not an object, nested too deep or longer
    than ``max_line_bytes`` (read no further than that) is appended to
    ``skipped``; so is a torn last line (no newline: the writer was cut off).

    Parameters
    ----------
    path
        The file.
    skipped
        Receives a :class:`Skipped` for every line left out.
    max_line_bytes
        Longest line read.
    max_lines
        Stop after this many lines (a note says how many were not read).
    name
        How to name the file in the notes (default: its path).

    Raises
    ------
    OSError
        The file exists but cannot be read.
    """
    path = Path(path)
    label = name or str(path)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return
    with fh:
        n = 0
        while True:
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                return
            n += 1
            if max_lines is not None and n > max_lines:
                rest = 1 + sum(1 for _ in fh)
                skipped.append(Skipped(label, n, f"{rest} more line(s) not read (at most {max_lines})"))
                return
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # the rest of this line, in bounded pieces
                    raw = fh.readline(max_line_bytes)
                skipped.append(Skipped(label, n, f"longer than {max_line_bytes >> 20} MB; not read"))
                continue
            torn = not raw.endswith(b"\n")
            raw = raw.strip()
            if not raw:
                continue
            try:
                rec = parse(raw)
            except BadRecord as e:
                what = "cut off (the writer stopped mid-line)" if torn else str(e)
                skipped.append(Skipped(label, n, what))
                continue
            if not isinstance(rec, dict):
                skipped.append(Skipped(label, n, f"{_kind(rec)}, not a JSON object"))
                continue
            yield n, rec


# -- values of the right type -----------------------------------------------------------------
def number(value: Any, default: float | None = None) -> float | None:
    """``value`` as a float when it is a JSON number (not true/false, within float range), else ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    try:
        return float(value)
    except OverflowError:
        return default


def finite(value: Any, default: float | None = None) -> float | None:
    """Like :func:`number`, and ``default`` for NaN and infinities too."""
    v = number(value)
    return v if v is not None and math.isfinite(v) else default


def integer(value: Any, default: int | None = None) -> int | None:
    """``value`` when it is a whole JSON number (``3`` or ``3.0``) within 64 bits, else ``default``."""
    if isinstance(value, bool):
        return default
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and -(1 << 63) <= value < (1 << 63):
        return value
    return default


def text(value: Any, default: str = "") -> str:
    """``value`` when it is a string, else ``default``."""
    return value if isinstance(value, str) else default


_TYPES = {"number": (int, float), "integer": (int, float), "text": (str,), "list": (list,), "object": (dict,),
          "true/false": (bool,)}


def field_problem(rec: dict[str, Any], spec: dict[str, str], *, optional: bool = True) -> str | None:
    """What is wrong with a record's fields, in words, or ``None``.

    Parameters
    ----------
    rec
        The record.
    spec
        ``{field: type}`` with type one of ``number``, ``integer``, ``text``,
        ``list``, ``object``, ``true/false``; ``"?"`` appended (``"number?"``)
        also accepts ``null``.
    optional
        A missing field is fine (``False``: it must be there).
    """
    for key, want in spec.items():
        nullable = want.endswith("?")
        want = want.rstrip("?")
        if key not in rec:
            if optional:
                continue
            return f"no '{key}'"
        v = rec[key]
        if v is None and nullable:
            continue
        ok = isinstance(v, _TYPES[want]) and not (isinstance(v, bool) and want != "true/false")
        if ok and want == "number":
            ok = number(v) is not None
        if ok and want == "integer":
            ok = integer(v) is not None
        if not ok:
            return f"'{key}' should be {_NAMES[want]}, not {_kind(v)}"
    return None


class Mismatch(ValueError):
    """A value that does not have the shape :func:`conform` asked for."""


def conform(value: Any, shape: Any, where: str, notes: list[str]) -> Any:
    """``value`` checked against ``shape``, with the bad parts left out; :class:`Mismatch` when it cannot be used.

    Shapes: a type name as in :func:`field_problem` (``"number?"``…); ``"any"``;
    ``[item]`` a list whose bad items are left out; ``{"*": value}`` an object
    with any keys whose bad entries are left out; ``{"key": shape, "key!": shape}``
    an object whose bad optional fields are left out, while a missing or bad
    required field (``!``) makes the whole object bad.  Each part left out adds
    ``"<where>: <what was wrong>"`` to ``notes``.
    """
    if shape == "any":
        return value
    if isinstance(shape, str):
        problem = field_problem({"v": value}, {"v": shape})
        if problem:
            raise Mismatch(problem.replace("'v' ", "", 1))
        return value
    if isinstance(shape, list):
        if not isinstance(value, list):
            raise Mismatch(f"should be a list, not {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(conform(item, shape[0], f"{where}[{i}]", notes))
            except Mismatch as e:
                notes.append(f"{where}[{i}] {e}; left out")
        return out
    if not isinstance(value, dict):
        raise Mismatch(f"should be an object, not {_kind(value)}")
    if "*" in shape:
        out = {}
        for k, v in value.items():
            try:
                out[k] = conform(v, shape["*"], f"{where}.{k[:40]}", notes)
            except Mismatch as e:
                notes.append(f"{where}.{k[:40]} {e}; left out")
        return out
    out = dict(value)
    for key, sub in shape.items():
        name = key.rstrip("!")
        required = key.endswith("!")
        if name not in value:
            if required:
                raise Mismatch(f"has no '{name}'")
            continue
        try:
            out[name] = conform(value[name], sub, f"{where}.{name}", notes)
        except Mismatch as e:
            if required:
                raise Mismatch(f"'{name}' {e}") from None
            notes.append(f"{where}.{name} {e}; left out")
            out.pop(name)
    return out


_NAMES = {"number": "a number", "integer": "a whole number", "text": "text", "list": "a list", "object": "an object",
          "true/false": "true or false"}


__all__ = ["BadRecord", "MAX_DEPTH", "MAX_FILE_BYTES", "MAX_LINE_BYTES", "Mismatch", "Skipped", "conform",
           "field_problem", "finite", "integer", "number", "parse", "read_json", "read_jsonl", "summary", "text", "too_deep"]
