"""A project someone hands you is untrusted (issue 27): no file in it may delete, overwrite, read or index
anything outside it (backend/confine.py; docs/architecture.md, "Trust" — "Confinement").

Each test is one attack of the issue, made for real: links planted in the project, forged manifest and
label files, run names with terminal escapes, exports onto existing targets, temp files of killed exports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend import runs
from backend.config import RunConfig
from backend.confine import ConfinementError
from backend.errors import RunError
from backend.workspace import Project

needs_links = pytest.mark.skipif(os.name == "nt", reason="creating symbolic links needs extra rights on Windows")


def _run(root: Path, rid: str, status: str = "completed", *, adapter: bool = False) -> Path:
    run = runs.runs_dir(root) / rid
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(RunConfig(name=f"run {rid}").to_dict()))
    runs.write_status(run, status, created=1.0)
    st = runs.read_status(run)
    st["pid"] = 2**22 + 4321
    runs.status_path(run).write_text(json.dumps(st))
    if adapter:
        runs.adapter_dir(run).mkdir()
        (runs.adapter_dir(run) / "adapter_config.json").write_text("{}")
        (runs.adapter_dir(run) / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return run


def _hf_model_folder(path: Path) -> Path:
    """Something that is not a run but has a config.json, as every Hugging Face model folder does."""
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "llama"}')
    (path / "weights.bin").write_bytes(b"precious")
    return path


def _victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim.txt"
    v.write_text("the user's own file\n")
    return v


# -- 1. tune runs --delete / --rename ---------------------------------------------------------------------
def test_delete_refuses_paths_outside_the_project(tmp_path, capsys):
    from backend.cli import main

    project = Project.create(tmp_path / "p", "p")
    r1 = _run(project.root, "r1")
    outside = _hf_model_folder(tmp_path / "some" / "folder")
    for key in (str(outside), "../../some/folder", os.path.relpath(outside, project.root / "runs"), "..", "."):
        assert main(["runs", str(project.root), "--delete", key]) == 2, key
        err = capsys.readouterr().err
        assert "outside" in err or "not a run name" in err, (key, err)
    assert outside.is_dir() and (outside / "weights.bin").read_bytes() == b"precious"
    assert r1.is_dir() and (project.root / "project.json").is_file()
    # an absolute path to a run of this project is still fine
    assert runs.find_run(project.root, str(r1)) == r1.resolve()


def test_rename_refuses_dots_and_paths_and_a_forged_label_deletes_nothing_else(tmp_path, capsys):
    from backend.cli import main

    project = Project.create(tmp_path / "p", "p")
    r1 = _run(project.root, "r1")
    (project.root / "config.json").write_text("{}")  # a project that happens to hold a config.json
    for name in ("..", ".", "...", "../x", "a/b", "/abs", "a\\b"):
        assert main(["runs", str(project.root), "--rename", "r1", name]) == 2, name
        assert "a run name" in capsys.readouterr().err
    assert runs.read_label(r1) == ""
    # a label.json written by hand (a project from elsewhere) cannot turn `--delete ..` into the project
    runs.label_path(r1).write_text(json.dumps({"name": ".."}))
    assert main(["runs", str(project.root), "--delete", ".."]) == 2
    assert "not a run name" in capsys.readouterr().err
    assert r1.is_dir() and (project.root / "project.json").is_file()


def test_delete_needs_a_run_folder_of_this_project(tmp_path):
    project = Project.create(tmp_path / "p", "p")
    fake = _hf_model_folder(project.runs_dir / "hf-model")  # a config.json alone is not a run
    with pytest.raises(RunError, match="not a run folder"):
        runs.delete_run(fake, project.root)
    assert fake.is_dir()
    other = Project.create(tmp_path / "q", "q")
    theirs = _run(other.root, "theirs")
    with pytest.raises(ConfinementError, match="outside the project"):
        runs.delete_run(theirs, project.root)  # a run, but of another project
    assert theirs.is_dir()
    nested = _run(project.runs_dir / "r1" / "runs", "deeper")  # not a direct child of <project>/runs
    with pytest.raises(RunError):
        runs.delete_run(nested, project.root)
    assert nested.is_dir()


@needs_links
def test_a_linked_run_folder_is_neither_listed_nor_deleted(tmp_path, capsys):
    from backend.cli import main

    project = Project.create(tmp_path / "p", "p")
    elsewhere = _run(tmp_path / "elsewhere", "precious")
    (project.runs_dir / "link").symlink_to(elsewhere, target_is_directory=True)
    assert [r.run_dir.name for r in runs.list_runs(project.root)] == []
    assert main(["runs", str(project.root), "--delete", "link"]) == 2
    capsys.readouterr()
    with pytest.raises(ConfinementError):
        runs.delete_run(project.runs_dir / "link", project.root)
    assert elsewhere.is_dir() and runs.config_path(elsewhere).is_file()


def test_run_names_with_terminal_escapes_are_printed_escaped(tmp_path, capsys):
    from backend.cli import main

    project = Project.create(tmp_path / "p", "p")
    r1 = _run(project.root, "r1")
    runs.label_path(r1).write_text(json.dumps({"name": "evil\x1b[2J\x1b]8;;http://x\x07 run\u202e"}))
    cfg = json.loads(runs.config_path(r1).read_text())
    cfg["method"]["method"] = "lora\x1b[31m"
    runs.config_path(r1).write_text(json.dumps(cfg))
    assert main(["runs", str(project.root)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "evil\\x1b[2J" in out and "\\u202e" in out
    with pytest.raises(RunError, match="a run name"):
        runs.rename_run(r1, "bell\x07")


# -- 2. writes that never follow a link ---------------------------------------------------------------------
@needs_links
def test_a_linked_lock_file_is_refused_not_written_through(tmp_path):
    from backend.lock import LOCK_FILE, ProjectLock

    project = Project.create(tmp_path / "p", "p")
    victim = _victim(tmp_path)
    (project.root / LOCK_FILE).symlink_to(victim)
    with pytest.raises(ConfinementError, match=r"\.tune-studio\.lock is a symbolic link"):
        with ProjectLock(project.root, "test"):
            pass
    assert victim.read_text() == "the user's own file\n"


@needs_links
def test_transcript_and_feedback_are_not_appended_through_links(tmp_path):
    from backend import corrections, transcript

    project = Project.create(tmp_path / "p", "p")
    victim = _victim(tmp_path)
    project.chat_dir.mkdir()
    project.transcript_path.symlink_to(victim)
    with pytest.raises(ConfinementError, match="transcript.jsonl is a symbolic link"):
        transcript.append(project.transcript_path, {"question": "q", "answer": "a"})
    feedback = project.datasets_dir / "feedback.jsonl"
    feedback.symlink_to(victim)
    with pytest.raises(ConfinementError, match="feedback.jsonl is a symbolic link"):
        corrections.add(project, "q", "a", rejected="b")
    assert victim.read_text() == "the user's own file\n"
    # a linked folder leads out of the project just the same
    outside = tmp_path / "outside-chat"
    outside.mkdir()
    project.transcript_path.unlink()
    project.chat_dir.rmdir()
    project.chat_dir.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ConfinementError, match="outside the project"):
        transcript.append(project.transcript_path, {"question": "q", "answer": "a"}, root=project.root)
    assert list(outside.iterdir()) == []


@needs_links
def test_manifest_and_atomic_writes_do_not_write_through_links(tmp_path):
    from backend.documents import add_documents
    from backend.fsutil import atomic_write_text

    project = Project.create(tmp_path / "p", "p")
    victim = _victim(tmp_path)
    doc = project.documents_dir / "a.txt"
    doc.write_text("Alpha text.")
    project.manifest_path.symlink_to(victim)
    with pytest.raises(ConfinementError, match="manifest.json"):  # not read through the link either
        add_documents(project, [doc])
    assert victim.read_text() == "the user's own file\n"
    atomic_write_text(project.manifest_path, '{"version": 1, "documents": {}}')  # an atomic write replaces the link itself
    assert victim.read_text() == "the user's own file\n" and not project.manifest_path.is_symlink()
    add_documents(project, [doc])
    assert victim.read_text() == "the user's own file\n"
    # documents/ itself a link to a folder elsewhere: the manifest is not written there
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "b.txt").write_text("Beta.")
    other = Project.create(tmp_path / "q", "q")
    other.documents_dir.rmdir()
    other.documents_dir.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ConfinementError, match="outside the project"):
        add_documents(other, [elsewhere / "b.txt"])
    assert sorted(p.name for p in elsewhere.iterdir()) == ["b.txt"]
    with pytest.raises(ConfinementError, match="outside the project"):
        atomic_write_text(other.manifest_path, "{}", root=other.root)


# -- 5. documents from outside the project ------------------------------------------------------------------
@needs_links
def test_a_linked_document_is_skipped_and_named(tmp_path):
    project = Project.create(tmp_path / "p", "p")
    secret = tmp_path / "ssh-config.txt"
    secret.write_text("Host prod\n  IdentityFile ~/.ssh/id_rsa\n")
    (project.documents_dir / "guide.md").write_text("# Guide\n\nText.\n")
    (project.documents_dir / "config.txt").symlink_to(secret)
    (project.documents_dir / "sub").symlink_to(tmp_path, target_is_directory=True)
    inner = project.documents_dir / "inner.md"
    (project.documents_dir / "inner-link.md").symlink_to(inner)
    inner.write_text("# Inner\n\nInside.\n")
    names = [p.name for p in project.document_files()]
    assert names == ["guide.md", "inner-link.md", "inner.md"]  # a link that stays inside is fine
    assert sorted(p.name for p in project.skipped_links()) == ["config.txt", "sub"]
    (project.datasets_dir / "rows.jsonl").symlink_to(secret)
    (project.root / "evalsets").mkdir()
    (project.root / "evalsets" / "qs.jsonl").symlink_to(secret)
    assert project.dataset_files() == [] and project.evalset_files() == []
    assert {p.name for p in project.skipped_links()} == {"config.txt", "sub", "rows.jsonl", "qs.jsonl"}


def test_manifest_entries_outside_the_project_are_not_indexed(tmp_path):
    from backend.documents import project_documents, read_manifest

    project = Project.create(tmp_path / "p", "p")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the index")
    (project.documents_dir / "guide.md").write_text("# Guide\n\nText.\n")
    project.manifest_path.write_text(json.dumps({"version": 1, "documents": {
        "guide.md": {"path": "guide.md", "status": "ok"},
        str(secret): {"path": str(secret), "status": "ok"},
        "x": {"path": "../../secret2.txt", "status": "ok"}}}))
    (tmp_path / "secret2.txt").write_text("nor this")
    assert project_documents(project) == [str((project.documents_dir / "guide.md").resolve())]
    bad = [e for e in read_manifest(project)["documents"].values() if e["status"] == "error"]
    assert len(bad) == 2 and all("outside the project" in e["error"] for e in bad)


def test_docs_add_copies_an_outside_file_in(tmp_path):
    from backend.documents import add_documents, project_documents

    project = Project.create(tmp_path / "p", "p")
    a = tmp_path / "a.txt"
    a.write_text("Alpha " * 30)
    r = add_documents(project, [a])
    copy = project.documents_dir / "a.txt"
    assert r.added == [str(copy.resolve())] and copy.read_text() == a.read_text()
    assert project_documents(project) == [str(copy.resolve())]
    a.write_text("Changed")  # adding it again updates the same copy
    r = add_documents(project, [a])
    assert r.updated == [str(copy.resolve())] and copy.read_text() == "Changed"
    assert sorted(p.name for p in project.documents_dir.iterdir()) == ["a.txt", "manifest.json"]


@needs_links
def test_index_record_naming_an_outside_file_is_not_read_again(tmp_path):
    """A forged index record (index/index_meta.json) cannot make a rebuild read an outside file."""
    from backend.rag.index import _confined_sources

    project = Project.create(tmp_path / "p", "p")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the index")
    (project.documents_dir / "guide.md").write_text("Text.")
    (project.documents_dir / "evil.md").symlink_to(secret)
    keys = {"documents/guide.md": {"kind": "file"}, str(secret): {"kind": "file"},
            "documents/evil.md": {"kind": "file"}, "../secret.txt": {"kind": "file"}}
    kept, skipped = _confined_sources(keys, project.root)
    assert list(kept) == ["documents/guide.md"] and len(skipped) == 3


# -- 4. exports -------------------------------------------------------------------------------------------
def test_an_existing_gguf_file_is_not_replaced_without_force(tmp_path, capsys):
    from backend.cli import main
    from backend.export import ExportError, export_gguf

    project = Project.create(tmp_path / "p", "p")
    run = _run(project.root, "r1", adapter=True)
    target = tmp_path / "model.gguf"
    target.write_bytes(b"an earlier export")
    with pytest.raises(ExportError, match="already exists"):
        export_gguf(run, target)
    assert main(["export", str(run), "--gguf", str(target), "--no-check"]) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_bytes() == b"an earlier export"


def test_export_folders_are_replaced_only_with_force_and_only_when_they_are_exports(tmp_path):
    from backend.export import ExportError, export_adapter

    project = Project.create(tmp_path / "p", "p")
    run = _run(project.root, "r1", adapter=True)
    out = tmp_path / "out-adapter"
    export_adapter(run, out)
    assert (out / "adapter_config.json").is_file()
    with pytest.raises(ExportError, match="--force"):
        export_adapter(run, out)
    (out / "stale.txt").write_text("from the earlier export")
    export_adapter(run, out, force=True)
    assert not (out / "stale.txt").exists() and (out / "adapter_config.json").is_file()
    home = tmp_path / "my-folder"  # something that is not an export is never replaced, even with force
    home.mkdir()
    (home / "thesis.docx").write_bytes(b"years of work")
    with pytest.raises(ExportError, match="not an export"):
        export_adapter(run, home, force=True)
    assert (home / "thesis.docx").read_bytes() == b"years of work"


def test_temp_files_of_killed_exports_are_removed(tmp_path):
    from backend.export import export_adapter, remove_stale_temps

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    live = str(os.getppid())
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / f".m.gguf.part-{dead}").write_bytes(b"\0" * 1000)
    (folder / f".m.gguf.merged-{dead}").mkdir()
    (folder / f".m.gguf.merged-{dead}" / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / f".x-ollama.tmp-{dead}").mkdir()
    (folder / f".out.tmp-{live}").mkdir()  # a process that still runs: its export goes on
    (folder / "keep.gguf").write_bytes(b"a finished export")
    (folder / f".notes.txt.tmp-{dead}x").write_text("not ours")
    removed = remove_stale_temps(folder)
    assert sorted(p.name for p in removed) == sorted([f".m.gguf.part-{dead}", f".m.gguf.merged-{dead}",
                                                      f".x-ollama.tmp-{dead}"])
    assert sorted(p.name for p in folder.iterdir()) == sorted([f".out.tmp-{live}", "keep.gguf",
                                                               f".notes.txt.tmp-{dead}x"])
    # the next export into the folder cleans up as well
    (folder / f".m.gguf.part-{dead}").write_bytes(b"\0")
    project = Project.create(tmp_path / "p", "p")
    run = _run(project.root, "r1", adapter=True)
    export_adapter(run, folder / "adapter")
    assert not (folder / f".m.gguf.part-{dead}").exists()
    # and so does opening the project (the app's start): a run's exports/ folder
    stale = runs.exports_dir(run) / f".r1-q8_0.gguf.part-{dead}"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"\0")
    from backend.export import remove_project_export_temps

    assert remove_project_export_temps(project.root) == [stale]
    assert not stale.exists()


def test_export_dialog_asks_before_replacing_and_passes_force(qtbot, tmp_path):
    pytest.importorskip("PySide6")
    from desktop.export_dialog import ExportDialog

    project = Project.create(tmp_path / "p", "p")
    run = _run(project.root, "r1", adapter=True)
    out = tmp_path / "out-adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "stale.txt").write_text("from the earlier export")
    d = ExportDialog(run)
    qtbot.addWidget(d)
    d.set_kind("adapter")
    d.path_edit.setText(str(out))
    d.questions.setValue(0)
    asked = []
    d.confirm_overwrite = lambda title, text: asked.append(text) or False
    assert not d.start() and str(out) in asked[0] and (out / "stale.txt").exists()
    d.confirm_overwrite = lambda title, text: True
    with qtbot.waitSignal(d.exported, timeout=60_000):
        assert d.start()
    qtbot.waitUntil(lambda: d.job.done, timeout=60_000)
    assert not (out / "stale.txt").exists() and (out / "adapter_model.safetensors").is_file()
