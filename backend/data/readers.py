"""Reading dataset files into raw rows, each with the file and line it came from.

Supported: ``.jsonl`` (also ``.json`` files that are really JSON lines), ``.json``
(an array, or an object holding one), ``.csv`` / ``.tsv``, ``.parquet``, a folder
written by ``datasets.save_to_disk``, and ``.txt`` / ``.md`` (one plain-text row
per paragraph).  Text is decoded from UTF-8, UTF-16/32 with or without a BOM,
or a detected legacy encoding (reported as a warning).  A file that cannot be
read at all raises :class:`~backend.errors.DataError`; a bad row becomes a
:class:`Problem` so that a check can list every one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from backend import textio
from backend.errors import DataError, TuneError
from backend.filetypes import READABLE_DATASET_SUFFIXES, TEXT_SUFFIXES  # noqa: F401  (re-exported)

DATASET_SUFFIXES = READABLE_DATASET_SUFFIXES  # what read_file accepts; the one list is backend.filetypes


@dataclass
class Problem:
    """One thing wrong with the data, located as precisely as we can.

    ``unit`` says what ``line`` counts: a text ``line``, a ``row`` of a table
    (parquet, saved dataset) or a ``page`` of a document.
    """

    file: str
    line: int | None
    message: str
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"
    unit: str = "line"

    def location(self) -> str:
        """``file:line`` for text lines, ``file (row N)`` otherwise."""
        if self.line is None:
            return self.file
        if self.unit == "line":
            return f"{self.file}:{self.line}"
        return f"{self.file} ({self.unit} {self.line})"

    def text(self) -> str:
        """One line for people: location, message and hint."""
        s = f"{self.location()}: {self.message}"
        return s + (f" — {self.hint}" if self.hint else "")

    def to_dict(self) -> dict:
        """JSON-serialisable, with the ready-made ``text``."""
        return {**asdict(self), "text": self.text()}

    def to_error(self, cls: type[TuneError] = DataError, extra: str = "") -> TuneError:
        """The problem as a typed error (``extra`` is appended to the hint)."""
        msg = self.message if self.unit == "line" or self.line is None else f"{self.unit} {self.line}: {self.message}"
        hint = " ".join(x for x in (self.hint, extra) if x) or None
        return cls(msg, file=self.file, line=self.line if self.unit == "line" else None, hint=hint)


@dataclass
class RawRow:
    """A row as read from a file: a dict of columns and where it came from."""

    file: str
    line: int
    data: dict[str, Any]
    unit: str = "line"


@dataclass
class FileRead:
    """Everything read from one file: rows, encoding and row-level problems."""

    path: str
    kind: str
    rows: list[RawRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    encoding: str | None = None


# ---------------------------------------------------------------------------
# bytes -> text

_line_of = textio.line_of
read_bytes = textio.read_bytes  # one reader of bytes for datasets and documents


def decode_text(data: bytes, path: str | Path, *, error_cls: type[TuneError] = DataError
                ) -> tuple[str, str, Problem | None]:
    """Decode file bytes to text (see :func:`backend.textio.decode_text`).

    Returns
    -------
    (text, encoding, warning)
        ``warning`` is a :class:`Problem` when the encoding was guessed.

    Raises
    ------
    DataError (or ``error_cls``)
        For binary content (NUL bytes) or text in no detectable encoding.
    """
    text, enc, warn = textio.decode_text(data, path, error_cls=error_cls)
    if warn is None:
        return text, enc, None
    return text, enc, Problem(str(path), warn.line, warn.message, warn.hint, "warning")


# ---------------------------------------------------------------------------
# per-format readers

def _json_error_problem(path: str, line: int, e: json.JSONDecodeError, s: str, is_last: bool) -> Problem:
    at_end = e.pos >= len(s) - 1 or e.msg.startswith("Unterminated")
    if is_last and at_end and e.msg.startswith(("Unterminated", "Expecting")):
        return Problem(path, line, "the last line is cut off (incomplete JSON): the file may have been truncated",
                       "re-export or re-download the file, or delete this last line")
    return Problem(path, line, f"invalid JSON: {e.msg} (column {e.colno})",
                   "fix the JSON on this line (each line must be one complete JSON object) or delete the line")


def _read_jsonl(path: str, text: str, out: FileRead) -> None:
    lines = text.split("\n")
    last = len(lines)
    while last > 0 and not lines[last - 1].strip():
        last -= 1
    for i, raw in enumerate(lines[:last], start=1):
        s = raw.strip()
        if not s:
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            out.problems.append(_json_error_problem(path, i, e, s, i == last))
            continue
        except (RecursionError, ValueError):  # ValueError: an integer too long to convert
            obj = None
            what = "not valid JSON"
        else:
            what = _too_deep(obj)
        if what:
            out.problems.append(Problem(path, i, what, "write one flat object per line"))
            continue
        if not isinstance(obj, dict):
            out.problems.append(Problem(path, i, f"expected a JSON object ({{...}}) on each line, got {type(obj).__name__}",
                                        "write one object per line, e.g. {\"messages\": [...]}"))
            continue
        out.rows.append(RawRow(path, i, obj))


def _too_deep(value: Any) -> str | None:
    """``"nested more than 64 deep"`` for JSON deeper than :data:`backend.records.MAX_DEPTH`, else ``None``."""
    from backend.records import MAX_DEPTH, too_deep

    return f"nested more than {MAX_DEPTH} deep" if too_deep(value) else None


_ROW_CONTAINER_KEYS = ("data", "rows", "examples", "train", "items", "records", "dataset", "samples")
_ROW_KEYS = ("messages", "conversations", "history")  # lists that belong to a single row


def _array_items_with_lines(text: str, start: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, element)`` for the JSON array that opens at ``text[start] == '['``."""
    dec = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    pos = start + 1
    n = len(text)
    line, counted = _line_of(text, pos), pos  # count newlines incrementally: big files stay linear
    while pos < n:
        pos = ws.match(text, pos).end()
        if pos >= n or text[pos] == "]":
            return
        obj, end = dec.raw_decode(text, pos)
        line += text.count("\n", counted, pos)
        counted = pos
        yield line, obj
        pos = end


def _read_json(path: str, text: str, out: FileRead) -> None:
    stripped = text.strip()
    try:
        doc = json.loads(stripped)
        deep = _too_deep(doc)
    except (RecursionError, ValueError) as e:
        if not isinstance(e, json.JSONDecodeError):
            out.problems.append(Problem(path, 1, "not valid JSON (nested too deep, or a number too long)",
                                        "fix the JSON"))
            return

        if e.msg == "Extra data" and stripped.startswith("{"):
            out.kind = "jsonl"  # a .json file holding JSON lines (common)
            _read_jsonl(path, text, out)
            return
        offset = len(text) - len(text.lstrip())
        line = _line_of(text, e.pos + offset)
        if e.pos >= len(stripped) - 1 and e.msg.startswith(("Expecting", "Unterminated")):
            out.problems.append(Problem(path, line, "the JSON ends too early (cut off?)",
                                        "re-export or re-download the file"))
        else:
            out.problems.append(Problem(path, line, f"invalid JSON: {e.msg} (column {e.colno})",
                                        "fix the JSON syntax at this line"))
        return
    if deep:
        out.problems.append(Problem(path, 1, deep, "fix the JSON"))
        return
    if isinstance(doc, dict):
        lists = {k: v for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)}
        row_like = any(k in doc for k in _ROW_KEYS) or any(k in doc for k in ("instruction", "text", "prompt"))
        key = next((k for k in _ROW_CONTAINER_KEYS if k in lists), None)
        if key is None and len(lists) == 1 and not row_like:
            key = next(iter(lists))
        if key is None:
            if row_like:
                out.rows.append(RawRow(path, 1, doc))
                return
            out.problems.append(Problem(path, 1, "the JSON object holds no list of rows",
                                        "use a JSON array of objects, an object like {\"data\": [...]}, or JSON lines"))
            return
        m = re.search(r'"%s"\s*:\s*\[' % re.escape(key), text)
        items = list(_array_items_with_lines(text, m.end() - 1)) if m else [(None, x) for x in doc[key]]
    elif isinstance(doc, list):
        items = list(_array_items_with_lines(text, text.index("[")))
    else:
        out.problems.append(Problem(path, 1, f"expected a JSON array of rows, got {type(doc).__name__}",
                                    "use a JSON array of objects, or JSON lines"))
        return
    for n, (line, obj) in enumerate(items, start=1):
        unit = "line" if line is not None else "row"
        where = line if line is not None else n
        if not isinstance(obj, dict):
            out.problems.append(Problem(path, where, f"row {n}: expected an object ({{...}}), got {type(obj).__name__}",
                                        "every element of the array must be an object", unit=unit))
            continue
        out.rows.append(RawRow(path, where, obj, unit))


_JSON_CELLS = ("messages", "conversations", "history")


def _read_csv(path: str, text: str, out: FileRead, delimiter: str) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        out.problems.append(Problem(path, 1, f"cannot parse the header ({e})", "check the file is valid CSV"))
        return
    header = [h.strip() for h in header]
    if not any(header):
        out.problems.append(Problem(path, 1, "the first line (the header) is empty",
                                    "the first line must name the columns, e.g. instruction,output"))
        return
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        out.problems.append(Problem(path, 1, f"duplicate column names: {', '.join(dupes)}", "rename them in the header"))
        return
    line = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            out.problems.append(Problem(path, line, f"cannot parse this CSV row ({e})",
                                        "check quoting: a field with a comma or newline must be in double quotes"))
            break
        start, line = line, reader.line_num + 1
        if not values or not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            out.problems.append(Problem(path, start, f"{len(values)} fields, but the header has {len(header)}",
                                        "check for an unquoted separator or a missing field on this line"))
            continue
        row: dict[str, Any] = {}
        for k, v in zip(header, values):
            if k in _JSON_CELLS and v.strip().startswith(("[", "{")):
                try:
                    v = json.loads(v)
                except json.JSONDecodeError:
                    pass
            row[k] = v
        out.rows.append(RawRow(path, start, row))


def _read_txt(path: str, text: str, out: FileRead) -> None:
    """One plain-text row per paragraph (blocks separated by blank lines)."""
    para: list[str] = []
    start = 1
    for i, raw in enumerate(text.splitlines() + [""], start=1):
        if raw.strip():
            if not para:
                start = i
            para.append(raw.rstrip())
        elif para:
            out.rows.append(RawRow(path, start, {"text": "\n".join(para)}))
            para = []


def _records_from_table(path: str, records: list[dict], out: FileRead) -> None:
    for n, rec in enumerate(records, start=1):
        out.rows.append(RawRow(path, n, {k: _plain(v) for k, v in rec.items()}, "row"))


def _plain(v: Any) -> Any:
    """numpy / arrow values to plain Python."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _read_parquet(p: Path, out: FileRead) -> None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # ArrowInvalid, OSError, ...
        raise DataError(f"cannot read the parquet file ({type(e).__name__}: {e})", file=p,
                        hint="check that it is a complete .parquet file (re-export or re-download it)") from None
    _records_from_table(str(p), table.to_pylist(), out)


def _read_saved_dataset(p: Path, out: FileRead, split: str | None = None) -> None:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as e:
        raise DataError(f"cannot load this folder as a saved dataset ({type(e).__name__}: {e})", file=p,
                        hint="give a folder written by datasets.save_to_disk, or the data files themselves") from None
    if isinstance(ds, datasets.DatasetDict):
        name = split or ("train" if "train" in ds else next(iter(ds)))
        out.problems.append(Problem(str(p), None, f"using the '{name}' split of {sorted(ds)}", None, "warning"))
        ds = ds[name]
    _records_from_table(str(p), ds.to_list(), out)


def is_saved_dataset(p: Path) -> bool:
    """Whether ``p`` is a folder written by ``datasets.save_to_disk``."""
    return p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()
                           or (p / "state.json").exists())


def read_file(path: str | Path) -> FileRead:
    """Read one dataset file (or saved-dataset folder) into raw rows.

    Parameters
    ----------
    path
        A file with a supported suffix, or a ``datasets.save_to_disk`` folder.

    Returns
    -------
    FileRead
        Rows with their line numbers, row-level problems and the decoded encoding.

    Raises
    ------
    DataError
        Missing / unreadable / binary / empty file, unsupported suffix.
    """
    p = Path(path).expanduser()
    sp = str(path)
    if p.is_dir():
        if not is_saved_dataset(p):
            raise DataError("this folder is not a saved dataset (no dataset_info.json or dataset_dict.json)", file=sp,
                            hint="give the data files inside it, or a folder written by datasets.save_to_disk")
        out = FileRead(sp, "saved_dataset")
        _read_saved_dataset(p, out)
        return out
    suffix = p.suffix.lower()
    if suffix not in DATASET_SUFFIXES:
        if not p.exists():
            read_bytes(p)  # raises "file not found"
        raise DataError(f"unsupported file type '{suffix or p.name}'", file=sp,
                        hint="use .jsonl, .json, .csv, .tsv, .parquet or .txt (documents such as .pdf or .docx "
                             "go through Documents)")
    if suffix == ".parquet":
        read_bytes(p)  # existence / permission check with a good message
        out = FileRead(sp, "parquet")
        _read_parquet(p, out)
        return out
    data = read_bytes(p)
    if not data.strip():
        raise DataError("the file is empty", file=sp, hint="add rows to it, or remove it from the list")
    text, enc, warn = decode_text(data, sp)
    kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}.get(suffix, "text")
    out = FileRead(sp, kind, encoding=enc)
    if warn:
        out.problems.append(warn)
    if kind == "jsonl":
        _read_jsonl(sp, text, out)
    elif kind == "json":
        _read_json(sp, text, out)
    elif kind == "csv":
        _read_csv(sp, text, out, ",")
    elif kind == "tsv":
        _read_csv(sp, text, out, "\t")
    else:
        _read_txt(sp, text, out)
    return out
