"""``tune ask`` from a cold process (issue 26, start-up): no work a one-off question does not need.

See docs/architecture.md, "The job runner and the model host" (the store check) and
``bench/chat.py`` (``ask_cold_s``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backend.rag import storecheck
from backend.rag.settings import GenerationSettings, IndexSettings
from conftest import build_tiny_embedder


@pytest.fixture(scope="module")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    return build_tiny_embedder(tmp_path_factory.mktemp("tiny") / "tiny-embedder")


@pytest.fixture()
def project(tmp_path, tiny_embedder_dir, tiny_model_dir):
    """A project whose index another process built, as ``tune ask`` finds it (no Chroma client here yet)."""
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p", base_model=str(tiny_model_dir))
    docs = []
    for i in range(3):
        p = proj.documents_dir / f"note-{i}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("\n\n".join(f"Note {i}.{j}: the thermostat T{j} keeps {j} degrees in room {i}." for j in range(40)),
                     encoding="utf-8")
        docs.append(str(p))
    out = subprocess.run([sys.executable, "-m", "backend", "ingest", str(proj.root), *docs, "--chunk-size", "120",
                          "--chunk-overlap", "0", "--embedding-model", str(tiny_embedder_dir),
                          "--embedding-backend", "torch"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return Project.open(proj.root)


def _probes(monkeypatch) -> list:
    """Record each time the store check starts its probe child (it still runs)."""
    calls: list = []
    real = storecheck.probe

    def counted(index_dir, *a, **k):
        calls.append(index_dir)
        return real(index_dir, *a, **k)

    monkeypatch.setattr(storecheck, "probe", counted)
    return calls


def _touch_store(index_dir: Path) -> None:
    """What another reader's Chroma client does to the files when it opens and queries the store."""
    for p in index_dir.rglob("*"):
        if p.is_file() and not p.name.endswith(".json") and p.name != storecheck.OK_FILE:
            st = p.stat()
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_an_answered_question_records_the_store_as_read_so_the_next_ask_skips_the_probe(project, monkeypatch):
    from backend.rag.chain import ask

    index_dir = project.index_dir
    _touch_store(index_dir)  # as a reader before this one left it: the recorded stamp no longer matches
    calls = _probes(monkeypatch)
    a = ask(project, "Which room keeps 7 degrees?", generation=GenerationSettings(max_new_tokens=2))
    assert a.sources and len(calls) == 1  # the store was checked in a child before it was opened
    # this process's own client read the store (and rewrote its files): recorded, so no probe next time
    assert storecheck.check(index_dir, 1) is None and len(calls) == 1
    # a change after that (another process's write, damage) is checked again
    _touch_store(index_dir)
    assert storecheck.check(index_dir, 1) is None and len(calls) == 2


def test_nothing_is_recorded_while_another_holds_the_project_lock(project, monkeypatch):
    from backend.lock import ProjectLock
    from backend.rag.chain import ask

    index_dir = project.index_dir
    _touch_store(index_dir)
    calls = _probes(monkeypatch)
    held, release = threading.Event(), threading.Event()

    def writer() -> None:  # e.g. an ingest half-way through, in another thread (it waits like another process)
        with ProjectLock(project.root, "a test writer"):
            held.set()
            release.wait(60)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert held.wait(30)
        a = ask(project, "Which room keeps 7 degrees?", generation=GenerationSettings(max_new_tokens=2))
    finally:
        release.set()
        t.join(30)
    assert a.sources and len(calls) == 1
    _touch_store(index_dir)
    assert storecheck.check(index_dir, 1) is None and len(calls) == 2  # not recorded: checked again


def test_cli_ask_embeds_its_one_question_with_torch_unless_a_backend_is_chosen(monkeypatch):
    from backend.rag.cli import _one_question_embedder
    from backend.rag.embeddings import BACKEND_ENV, default_backend

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    with _one_question_embedder():
        assert default_backend() == "torch"
    assert BACKEND_ENV not in os.environ and default_backend() == "auto"  # the process's setting is restored
    monkeypatch.setenv(BACKEND_ENV, "onnx")
    with _one_question_embedder():
        assert default_backend() == "onnx"  # the person's choice stands
    assert os.environ[BACKEND_ENV] == "onnx"
