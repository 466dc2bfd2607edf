"""Write a small multi-page text PDF by hand (no PDF library is a dependency of the app).

    python bench/projects/_make/make_pdf.py SOURCE.txt OUT.pdf

SOURCE is plain text: ``# `` / ``## `` / ``### `` headings, paragraphs, ``- `` and ``1. ``
lists, ``| a | b |`` table rows, and a line ``=== PAGE ===`` between pages; the first
``# `` heading is the footer of every page. The PDF uses the
standard Helvetica fonts (WinAnsi), so ``pypdf`` extracts its text page by page. The output
is deterministic (no dates), so regenerating it gives the same bytes.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

PAGE_W, PAGE_H, MARGIN = 612, 792, 64
WRAP = 92  # characters per 10 pt Helvetica line in the text width


def _esc(s: str) -> str:
    s.encode("ascii")  # the source is ASCII: WinAnsi needs nothing more
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _layout(block: str) -> list[tuple[str, int, str]]:
    """(font, size, text) lines of one page's source."""
    out: list[tuple[str, int, str]] = []
    para: list[str] = []

    def flush():
        if para:
            for ln in textwrap.wrap(" ".join(para), WRAP):
                out.append(("F1", 10, ln))
            out.append(("F1", 5, ""))
            para.clear()

    for raw in block.splitlines():
        line = raw.rstrip()
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            flush()
            level = len(line) - len(line.lstrip("#"))
            out.append(("F2", {1: 18, 2: 14, 3: 11}.get(level, 11), line.lstrip("#").strip()))
            out.append(("F1", 4, ""))
            continue
        if line.startswith("|"):
            flush()
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            out.append(("F1", 10, "   ".join(c.ljust(28) for c in cells).rstrip()))
            continue
        stripped = line.lstrip()
        if stripped.startswith("- ") or (stripped[:1].isdigit() and stripped[1:3] == ". "):
            flush()
            para.append(stripped)
            continue
        para.append(stripped)
    flush()
    return out


def write_pdf(source: Path, out: Path) -> int:
    """Render ``source`` to ``out``; returns the number of pages."""
    text = source.read_text(encoding="ascii")
    footer = next(ln[2:].strip() for ln in text.splitlines() if ln.startswith("# "))
    pages = [p.strip("\n") for p in text.split("=== PAGE ===")]
    objects: list[bytes] = []  # 1-based object numbers: index + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in last
    pages_obj = add(b"")
    f1 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    f2 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for n, block in enumerate(pages, 1):
        y = PAGE_H - MARGIN
        ops = []
        for font, size, text in _layout(block):
            y -= size + 4 if text else size
            if text:
                ops.append(f"BT /{font} {size} Tf 1 0 0 1 {MARGIN} {y} Tm ({_esc(text)}) Tj ET")
        if y < MARGIN:
            raise SystemExit(f"page {n} of {source} does not fit; move text to the next page")
        ops.append(f"BT /F1 8 Tf 1 0 0 1 {MARGIN} {MARGIN // 2} Tm ({_esc(f'{footer} - page {n} of {len(pages)}')}) Tj ET")
        stream = "\n".join(ops).encode("ascii")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>"
                        % (pages_obj, PAGE_W, PAGE_H, content, f1, f2)))
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_obj
    objects[pages_obj - 1] = (b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
                              + b"] /Count %d >>" % len(kids))
    buf = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(buf))
        buf += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(buf)
    buf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    buf += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    buf += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    out.write_bytes(bytes(buf))
    return len(kids)


if __name__ == "__main__":
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    print(f"{dst}: {write_pdf(src, dst)} pages")
