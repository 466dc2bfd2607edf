"""The project lock: one writer at a time across processes, named in the second writer's message."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from backend.lock import ProjectBusy, ProjectLock, holder


def _hold_in_child(root, seconds: float) -> subprocess.Popen:
    code = textwrap.dedent(f"""
        import sys, time
        from backend.lock import ProjectLock
        with ProjectLock({str(root)!r}, "tune ingest"):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_second_writer_is_refused_with_the_holder_named(tmp_path):
    child = _hold_in_child(tmp_path, 30)
    try:
        with pytest.raises(ProjectBusy, match=r"being changed by tune ingest \(pid \d+ on .*wait for it"):
            ProjectLock(tmp_path, "tune train").acquire()
        assert holder(tmp_path)["pid"] == child.pid
    finally:
        child.kill()
        child.wait()


def test_a_killed_holder_frees_the_lock(tmp_path):
    child = _hold_in_child(tmp_path, 30)
    child.kill()            # SIGKILL: no clean-up code runs; the kernel drops the lock
    child.wait()
    with ProjectLock(tmp_path, "tune ingest"):
        assert holder(tmp_path)["purpose"] == "tune ingest"


def test_waiting_writer_gets_the_lock_when_the_holder_ends(tmp_path):
    child = _hold_in_child(tmp_path, 1.0)
    said = []
    with ProjectLock(tmp_path, "tune train", wait=60, on_wait=said.append):
        assert said and "Waiting for tune ingest" in said[0]
    child.wait()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with ProjectLock(tmp_path, "outer"):
        with ProjectLock(tmp_path, "inner"):
            pass
        # still held by the outer block: another process can't take it
        code = f"from backend.lock import ProjectLock; ProjectLock({str(tmp_path)!r}, 'x').acquire()"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0 and "ProjectBusy" in out.stderr


def test_another_thread_waits_like_another_process(tmp_path):
    import threading

    order = []
    with ProjectLock(tmp_path, "gui: index update"):
        def other():
            with ProjectLock(tmp_path, "gui: start training", wait=30):
                order.append("other")
        t = threading.Thread(target=other)
        t.start()
        t.join(0.5)
        order.append("first")
    t.join(30)
    assert order == ["first", "other"]
    with pytest.raises(ProjectBusy):
        def refuse():
            ProjectLock(tmp_path, "x").acquire()
        with ProjectLock(tmp_path, "held"):
            errors = []
            th = threading.Thread(target=lambda: errors.append(_catch(refuse)))
            th.start()
            th.join(30)
            raise errors[0]


def _catch(fn):
    try:
        fn()
    except ProjectBusy as e:
        return e
    return AssertionError("the second thread got the lock")


def test_two_concurrent_document_imports_keep_both(tmp_path):
    """Two `tune docs add` at once on one project: the manifest keeps both files (was: last writer won)."""
    from backend.documents import read_manifest
    from backend.workspace import Project

    proj = Project.create(tmp_path / "p")
    procs = []
    for i in range(2):
        docs = []
        for j in range(6):
            d = tmp_path / f"doc-{i}-{j}.md"
            d.write_text(f"# Doc {i} {j}\n\n" + "Some sentence about the thermostat. " * 200)
            docs.append(str(d))
        procs.append(subprocess.Popen([sys.executable, "-m", "backend", "docs", "add", str(proj.root), *docs],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert len(read_manifest(proj)["documents"]) == 12
