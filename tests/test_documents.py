"""Documents: loaders, chunk metadata, bad documents, the manifest and `tune docs add`."""

from __future__ import annotations

import json

import pytest

from backend.documents import (add_documents, export_text_dataset, load_and_chunk, load_document, read_manifest)
from backend.errors import DocumentError
from backend.workspace import Project


def make_pdf(path, pages, password=None):
    """A real PDF with one line of Helvetica text per page line, written with pypdf."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    w = PdfWriter()
    for text in pages:
        page = w.add_blank_page(612, 792)
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): w._add_object(font)})})
        stream = DecodedStreamObject()
        stream.set_data("".join(f"BT /F1 12 Tf 72 {720 - 16 * i} Td ({line}) Tj ET\n"
                                for i, line in enumerate(text.split("\n"))).encode("latin-1"))
        page[NameObject("/Contents")] = w._add_object(stream)
    if password:
        w.encrypt(password)
    with open(path, "wb") as fh:
        w.write(fh)
    return path


def make_docx(path, paragraphs, table=None):
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    if table:
        t = d.add_table(rows=len(table), cols=len(table[0]))
        for i, row in enumerate(table):
            for j, cell in enumerate(row):
                t.cell(i, j).text = cell
    d.save(str(path))
    return path


def test_every_document_type(tmp_path):
    (tmp_path / "a.txt").write_text("Plain text about llamas.", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\nSome *markdown* text.\n", encoding="utf-8")
    make_pdf(tmp_path / "c.pdf", ["Page one about alpacas", "Page two about vicunas"])
    make_docx(tmp_path / "d.docx", ["Docx paragraph."], table=[["k", "v"]])
    (tmp_path / "e.html").write_text("<html><head><title>T</title><style>x{}</style><script>var a;</script></head>"
                                     "<body><h1>Heading</h1><p>Body text.</p></body></html>", encoding="utf-8")
    (tmp_path / "f.csv").write_text("name,colour\nsky,blue\ngrass,green\n", encoding="utf-8")
    got = {p.name: load_and_chunk(p) for p in sorted(tmp_path.iterdir())}
    assert got["a.txt"][0].page_content == "Plain text about llamas."
    assert "Some *markdown* text." in got["b.md"][0].page_content
    assert [(c.page_content, c.metadata["page"], c.metadata["chunk"]) for c in got["c.pdf"]] == [
        ("Page one about alpacas", 1, 0), ("Page two about vicunas", 2, 1)]
    assert "Docx paragraph." in got["d.docx"][0].page_content and "k | v" in got["d.docx"][0].page_content
    html = got["e.html"][0]
    assert html.page_content == "T\nHeading\nBody text." or html.page_content == "Heading\nBody text."
    assert "var a" not in html.page_content and html.metadata["title"] == "T"
    assert [c.page_content for c in got["f.csv"]] == ["name: sky\ncolour: blue", "name: grass\ncolour: green"]
    assert got["f.csv"][1].metadata["row"] == 2
    for chunks in got.values():
        for c in chunks:
            assert {"source", "page", "chunk", "file_name", "start_index", "type"} <= set(c.metadata)


def test_chunking_size_overlap_and_order(tmp_path):
    words = " ".join(f"word{i}" for i in range(400))
    f = tmp_path / "long.txt"
    f.write_text(words, encoding="utf-8")
    chunks = load_and_chunk(f, chunk_size=200, chunk_overlap=50)
    assert len(chunks) > 5 and all(len(c.page_content) <= 200 for c in chunks)
    assert [c.metadata["chunk"] for c in chunks] == list(range(len(chunks)))
    assert chunks[1].page_content.split()[0] in chunks[0].page_content  # overlap
    with pytest.raises(DocumentError, match="chunk overlap 300 must be between 0 and the chunk size 200"):
        load_and_chunk(f, chunk_size=200, chunk_overlap=300)


def test_text_encodings(tmp_path):
    (tmp_path / "u16.txt").write_bytes("Grüße aus Köln".encode("utf-16"))
    (tmp_path / "latin.md").write_bytes("Crème brûlée à la française".encode("latin-1"))
    assert load_document(tmp_path / "u16.txt")[0].page_content == "Grüße aus Köln"
    assert load_document(tmp_path / "latin.md")[0].page_content == "Crème brûlée à la française"


@pytest.mark.parametrize("name,make,match", [
    ("enc.pdf", lambda p: make_pdf(p, ["secret"], password="pw"), r"enc\.pdf: the PDF is password-protected — save "
                                                                   r"an unencrypted copy"),
    ("cut.pdf", None, r"cut\.pdf: the PDF is corrupt or incomplete.*re-download"),
    ("fake.pdf", lambda p: p.write_text("hello"), r"fake\.pdf: not a PDF file"),
    ("blank.pdf", lambda p: make_pdf(p, [""]), r"blank\.pdf: no text found on any of the 1 pages.*OCR"),
    ("bad.docx", lambda p: p.write_bytes(b"PK\x03\x04 broken zip"), r"bad\.docx: not a valid \.docx"),
    ("old.docx", lambda p: p.write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 100), r"old \.doc file or a password"),
    ("bin.txt", lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00" + bytes(range(256))),
     r"bin\.txt:1: NUL byte.*binary"),
    ("empty.txt", lambda p: p.write_text(""), r"empty\.txt: the file is empty"),
    ("empty.html", lambda p: p.write_text("<html><script>x</script></html>"), "no visible text"),
    ("x.pptx", lambda p: p.write_bytes(b"PK"), r"unsupported document type '\.pptx'"),
    ("missing.pdf", lambda p: None, r"missing\.pdf: file not found"),
])
def test_bad_documents(tmp_path, name, make, match):
    p = tmp_path / name
    if name == "cut.pdf":
        good = make_pdf(tmp_path / "good.pdf", ["Some text here", "more"]).read_bytes()
        p.write_bytes(good[: len(good) // 2])
    else:
        make(p)
    with pytest.raises(DocumentError, match=match):
        load_and_chunk(p)


def test_add_documents_manifest_is_incremental(tmp_path):
    proj = Project.create(tmp_path / "proj")
    a = tmp_path / "a.txt"
    a.write_text("Alpha " * 300, encoding="utf-8")
    b = make_pdf(tmp_path / "b.pdf", ["Beta page"])
    r1 = add_documents(proj, [a, b])
    assert len(r1.added) == 2 and r1.ok
    # files from outside the project are copied into documents/ (the manifest names only the project's files)
    ca, cb, cbad = (str((proj.documents_dir / n).resolve()) for n in ("a.txt", "b.pdf", "bad.pdf"))
    m = read_manifest(proj)["documents"]
    ea = m[ca]
    assert ea["status"] == "ok" and ea["chunks"] > 1 and len(ea["sha256"]) == 64 and ea["path"] == ca
    assert ea["copied_from"] == str(a.resolve())
    r2 = add_documents(proj, [a, b])
    assert len(r2.unchanged) == 2 and not r2.added and not r2.updated
    a.write_text("Changed text", encoding="utf-8")
    r3 = add_documents(proj, [a])
    assert r3.updated == [ca] and read_manifest(proj)["documents"][ca]["chunks"] == 1
    # a broken file is recorded as an error, the others untouched, the manifest stays valid JSON
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.4\n garbage")
    r4 = add_documents(proj, [bad])
    assert not r4.ok and "corrupt" in str(r4.failed[0][1])
    m = json.loads(proj.manifest_path.read_text())["documents"]
    assert m[cbad]["status"] == "error" and m[cb]["status"] == "ok"


def test_manifest_never_partially_written(tmp_path, monkeypatch):
    proj = Project.create(tmp_path / "proj")
    a = tmp_path / "a.txt"
    a.write_text("Alpha", encoding="utf-8")
    add_documents(proj, [a])
    before = proj.manifest_path.read_bytes()
    import backend.fsutil as fsutil

    def crash(fh_data, *args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(fsutil.os, "fsync", crash)
    b = tmp_path / "b.txt"
    b.write_text("Beta", encoding="utf-8")
    with pytest.raises(OSError):
        add_documents(proj, [b])
    assert proj.manifest_path.read_bytes() == before
    # no temp file left (a.txt is the copy the first add made: files from elsewhere are copied in)
    assert sorted(p.name for p in proj.documents_dir.iterdir()) == ["a.txt", "manifest.json"]


def test_cli_docs_add_and_list(tmp_path, capsys):
    from backend.cli import main

    proj = Project.create(tmp_path / "proj")
    a = tmp_path / "notes.md"
    a.write_text("# Notes\n\nSome notes.", encoding="utf-8")
    assert main(["docs", "add", str(proj.root), str(a)]) == 0
    assert "added      notes.md (1 chunks)" in capsys.readouterr().out
    assert main(["docs", "add", str(proj.root), str(a)]) == 0
    assert "unchanged  notes.md (skipped)" in capsys.readouterr().out
    assert main(["docs", "add", str(proj.root), str(tmp_path / "nope.pdf")]) == 2
    captured = capsys.readouterr()
    assert "nope.pdf: file not found" in captured.err and "1 failed" in captured.out
    assert main(["docs", "list", str(proj.root)]) == 0
    out = capsys.readouterr().out
    assert "ok     " in out and "error  " in out
    assert main(["docs", "add", str(tmp_path / "no-project"), str(a)]) == 2
    assert "not a Tune Studio project" in capsys.readouterr().err


def test_cli_ingest_with_nothing_to_index_says_what_to_name(tmp_path, capsys):
    from backend.cli import main

    proj = Project.create(tmp_path / "proj")
    (proj.documents_dir / "guide.md").parent.mkdir(parents=True, exist_ok=True)
    (proj.documents_dir / "guide.md").write_text("# Guide\n\nText.", encoding="utf-8")  # copied in, not recorded
    assert main(["ingest", str(proj.root)]) == 2
    err = capsys.readouterr().err
    assert "no documents to index" in err and str(proj.documents_dir) in err and "tune docs add" in err
    assert not proj.index_dir.exists()  # nothing created
    proj.index_dir.mkdir()  # an index from earlier ingests: left as it is, with a note
    assert main(["ingest", str(proj.root)]) == 0
    assert "note: no documents named or recorded" in capsys.readouterr().err


def test_documents_as_training_text(tmp_path, real_tokenizer_dir):
    from backend.config import RunConfig
    from backend.data import prepare
    from backend.models import load_tokenizer

    doc = tmp_path / "manual.txt"
    doc.write_text("\n\n".join(f"Paragraph {i}. " + "Llamas are camelids. " * 10 for i in range(12)),
                   encoding="utf-8")
    pdf = make_pdf(tmp_path / "p.pdf", ["Alpacas are smaller than llamas.", "Alpacas are smaller than llamas."])
    tok = load_tokenizer(str(real_tokenizer_dir))
    cfg = RunConfig.from_dict({"data": {"document_files": [str(doc), str(pdf)], "document_chunk_size": 300,
                                        "validation_split": 0.2}})
    data = prepare(cfg, tok)
    assert data.report["duplicates"] == 1  # the PDF's two identical pages
    assert data.report["formats"] == ["text"] and len(data.train) + len(data.eval) == data.report["rows_kept"]
    assert all(lab != -100 for r in data.train for lab in r["labels"])
    # the same chunks as a dataset file in the project, never overwriting one
    proj = Project.create(tmp_path / "proj")
    out = export_text_dataset([doc], proj.datasets_dir, chunk_size=300)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert out.parent == proj.datasets_dir and rows[0]["source"] == str(doc) and "text" in rows[0]
    with pytest.raises(DocumentError, match="output file exists"):
        export_text_dataset([doc], out)


def test_manifest_paths_are_relative_to_the_project_not_the_current_folder(tmp_path, monkeypatch):
    import json as _json

    from backend.documents import project_documents, read_manifest
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    (proj.documents_dir / "guide.md").write_text("# Guide\n\nText.\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the index")
    proj.manifest_path.write_text(_json.dumps({"version": 1, "documents": {
        "guide.md": {"path": "guide.md", "status": "ok"},
        "../../secret.txt": {"path": "../../secret.txt", "status": "ok"}}}))
    monkeypatch.chdir(tmp_path)  # a cwd-relative reading would find neither file where it should
    docs = project_documents(proj)
    assert docs == [str((proj.documents_dir / "guide.md").resolve())]
    bad = [e for e in read_manifest(proj)["documents"].values() if e["status"] == "error"]
    assert len(bad) == 1 and "outside the project folder" in bad[0]["error"]
