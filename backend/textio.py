"""Reading a file's bytes and decoding them to text, with errors a person can act on.

Shared by the dataset readers (:mod:`backend.data.readers`) and the document
loaders (:mod:`backend.documents`), which pass their own error class; it sits
below both so that neither imports the other (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backend.errors import DataError, TuneError


@dataclass
class DecodeWarning:
    """The encoding was guessed: where the first non-UTF-8 byte is, what was done, what to do."""

    line: int | None
    message: str
    hint: str


def line_of(data: bytes | str, pos: int) -> int:
    """1-based line of character or byte ``pos``."""
    return data.count(b"\n" if isinstance(data, bytes) else "\n", 0, pos) + 1


def _utf16_guess(data: bytes) -> str | None:
    """``utf-16-le``/``-be`` when NUL bytes sit in every other position (text without a BOM)."""
    head = data[:4096]
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    ze, zo = even.count(0) / len(even), odd.count(0) / len(odd)
    if zo > 0.3 and ze < 0.05:
        return "utf-16-le"
    if ze > 0.3 and zo < 0.05:
        return "utf-16-be"
    return None


_WESTERN_PUNCT = set("\u201c\u201d\u2018\u2019\u2013\u2014\u2026\u20ac\u00ab\u00bb\u00b0\u00a3\u00a9\u00ae\u00b7\u00bf\u00a1\u00a0")


def _western(data: bytes) -> str | None:
    """The text as Windows-1252 / Latin-1 when it reads as Western European prose, else ``None``.

    Statistical detectors confuse Latin-1 with Central European code pages on
    short texts; accented letters that are sparse among ASCII letters settle it.
    """
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    non_ascii = [c for c in text if ord(c) > 127]
    letters = sum(c.isalpha() for c in text)
    if not non_ascii or len(non_ascii) > 0.3 * max(letters, 1):
        return None
    if all((0xC0 <= ord(c) <= 0xFF and c not in "\u00d7\u00f7") or c in _WESTERN_PUNCT for c in non_ascii):
        return text
    return None


def decode_text(data: bytes, path: str | Path, *, error_cls: type[TuneError] = DataError
                ) -> tuple[str, str, DecodeWarning | None]:
    """Decode file bytes to text: a BOM, UTF-8, UTF-16 without a BOM, Western European, or detected.

    Returns
    -------
    (text, encoding, warning)
        ``warning`` says how the encoding was guessed, when it was.

    Raises
    ------
    DataError (or ``error_cls``)
        For binary content (NUL bytes) or text in no detectable encoding.
    """
    path = str(path)
    for bom, enc in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
                     (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc), enc, None
            except UnicodeDecodeError as e:
                raise error_cls(f"the file starts like {enc} text but does not decode ({e.reason})",
                                file=path, hint="save it again as UTF-8") from None
    if b"\x00" in data:
        enc = _utf16_guess(data)
        if enc:
            try:
                return data.decode(enc), enc, DecodeWarning(
                    None, f"the file is {enc.upper()} text without a byte-order mark; decoded as {enc}",
                    "save it as UTF-8 to be safe")
            except UnicodeDecodeError:
                pass
        pos = data.index(b"\x00")
        raise error_cls(f"NUL byte at byte {pos}: this looks like a binary file, not text",
                        file=path, line=line_of(data, pos),
                        hint="export the data as UTF-8 text (JSONL, CSV) — or, if this is a database or archive, "
                             "extract it first")
    try:
        return data.decode("utf-8"), "utf-8", None
    except UnicodeDecodeError as e:
        bad_line = line_of(data, e.start)
    western = _western(data)
    if western is not None:
        text, enc = western, "cp1252"
    else:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None or not best.encoding:
            raise error_cls(f"the text is not UTF-8 (first bad byte at line {bad_line}) and its encoding could not "
                            "be detected", file=path, line=bad_line, hint="save the file as UTF-8")
        enc = best.encoding
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            text = str(best)
    return text, enc, DecodeWarning(bad_line, f"the file is not UTF-8; decoded it as {enc} (detected)",
                                    "check that accented characters look right in the preview, or save the file "
                                    "as UTF-8")


def read_bytes(path: Path, *, error_cls: type[TuneError] = DataError) -> bytes:
    """Read a file, turning OS errors into a typed error with a hint."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error_cls("file not found", file=path, hint="check the path (relative paths start at the "
                        "folder you run from)") from None
    except IsADirectoryError:
        raise error_cls("this is a folder, not a file", file=path,
                        hint="give the files inside it, or a folder saved by datasets.save_to_disk") from None
    except PermissionError:
        raise error_cls("permission denied: the file cannot be read", file=path,
                        hint="check the file's permissions (chmod +r) or copy it somewhere readable") from None
    except OSError as e:
        raise error_cls(f"cannot read the file ({e.strerror or e})", file=path, hint="check the path and the disk") from None
