"""Ordinary environment errors (read-only or full disk, a file in the way) are messages, not tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.cli import main

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample_project"


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs a private mount namespace (unshare -m)")


def test_file_in_the_way_is_a_message(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    assert main(["new", str(blocker / "project")]) == 2
    err = capsys.readouterr().err
    assert "a file is in the way" in err and "Traceback" not in err
    assert "details in" in err and (tmp_path / "home" / "logs" / "tune.log").exists()


def _in_tmpfs(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (bash) in a private mount namespace with a 2 MB tmpfs at $M holding a project copy."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    doc = tmp_path / "new.md"
    doc.write_text("# New\n\nThe Brisa T3 ships in a recycled box.\n")
    full = f"""
        set -u
        mount -t tmpfs -o size=2m tmpfs {mnt}
        cp -r {SAMPLE} {mnt}/p
        M={mnt}; DOC={doc}; TUNE="{sys.executable} -m backend"
        {script}
    """
    return subprocess.run(["unshare", "-m", "bash", "-c", full], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
                               "TUNE_STUDIO_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"})


@needs_mount
def test_read_only_project_is_a_message_and_nothing_changes(tmp_path):
    out = _in_tmpfs(tmp_path, "mount -o remount,ro $M; $TUNE docs add $M/p $DOC; echo rc=$?; ls $M/p/documents | wc -l")
    assert "rc=2" in out.stdout, out.stderr
    # the first write is the copy of the outside document into documents/ (tune docs add copies files in)
    assert "documents/new.md: the file system is read-only" in out.stderr
    assert "copy the project to a writable folder" in out.stderr and "Traceback" not in out.stderr


@needs_mount
def test_full_disk_is_a_message_and_the_manifest_is_intact(tmp_path):
    out = _in_tmpfs(tmp_path, "dd if=/dev/zero of=$M/fill bs=1k count=4000 2>/dev/null; "
                              "$TUNE docs add $M/p $DOC; echo rc=$?; "
                              "python3 -c \"import json,sys; json.load(open('$M/p/project.json')); print('json-ok')\"")
    assert "rc=2" in out.stdout, out.stderr
    assert "the disk is full" in out.stderr and "free space on the disk" in out.stderr
    assert "Traceback" not in out.stderr and "json-ok" in out.stdout


# -- a full disk while training, indexing or exporting (issue 27) ------------------------------------------
def _leave_free(kb: int) -> str:
    """Shell that fills $M until about ``kb`` KB are left."""
    return (f"dd if=/dev/zero of=$M/fill bs=1k count=$(( $(df --output=avail -k $M | tail -1) - {kb} )) "
            "2>/dev/null; ")


TINY_TRAIN = ("--max-steps 4 --save-steps 2 --set data.max_length=64 --set data.validation_split=0.2 "
              "--set training.batch_size=2 --set training.eval_steps=2 --set method.lora_r=4")


@needs_mount
def test_full_disk_while_training_is_a_message_and_nothing_is_half_written(tmp_path, tiny_model_dir, chat_jsonl):
    out = _in_tmpfs(tmp_path, _leave_free(400) +
                    f"$TUNE train --model {tiny_model_dir} --data {chat_jsonl} --output $M/run {TINY_TRAIN}; "
                    "echo rc=$?; for c in $M/run/checkpoints/*/; do [ -d \"$c\" ] && echo ck=$(ls $c | "
                    "grep -c tune_complete); done; ls -a $M/run | grep -c '\\.tmp' | sed 's/^/tmp=/'")
    assert "rc=2" in out.stdout, out.stderr
    err = out.stderr
    assert "the disk is full while training" in err and "is needed" in err and "is free" in err, err
    assert f"free space on the disk that holds {tmp_path / 'mnt' / 'run'}" in err
    assert "Traceback" not in err and "damaged" not in err and "re-train" not in err
    assert "ck=0" not in out.stdout and "tmp=0" in out.stdout  # no checkpoint without its marker, no temp


@needs_mount
def test_full_disk_while_indexing_is_a_message(tmp_path):
    from conftest import build_tiny_embedder

    emb = build_tiny_embedder(tmp_path / "emb")
    out = _in_tmpfs(tmp_path, _leave_free(120) + f"$TUNE ingest $M/p $M/p/documents --embedding-model {emb}; echo rc=$?")
    assert "rc=2" in out.stdout, out.stderr
    err = out.stderr
    assert "the disk is full while indexing" in err and "is needed" in err, err
    assert f"free space on the disk that holds {tmp_path / 'mnt' / 'p' / 'index'}" in err
    assert "Traceback" not in err


@needs_mount
def test_full_disk_while_exporting_is_a_message_and_nothing_is_half_written(tmp_path, tiny_model_dir,
                                                                           chat_jsonl):
    run = tmp_path / "run"
    assert main(["train", "--model", str(tiny_model_dir), "--data", str(chat_jsonl), "--output", str(run),
                 *TINY_TRAIN.split()]) == 0
    out = _in_tmpfs(tmp_path, _leave_free(600) + f"$TUNE export {run} --merged $M/merged --no-check; echo rc=$?; "
                              "ls -a $M | grep -c merged | sed 's/^/left=/'")
    assert "rc=2" in out.stdout, out.stderr
    err = out.stderr
    assert "the disk is full while exporting" in err and "is needed" in err, err
    assert "damaged" not in err and "re-train" not in err and "Traceback" not in err
    assert "left=0" in out.stdout  # neither the export nor its temp folder
