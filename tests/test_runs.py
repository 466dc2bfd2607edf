"""The run folder type (backend/runs.py) and the method registry: one owner, one rule each."""

import json
import os
import re
import typing
from pathlib import Path

import pytest

from backend import methods, runs
from backend.config import MethodConfig, RunConfig

REPO = Path(__file__).resolve().parents[1]


def _fake_run(root: Path, name: str = "r", status: str = "running", *, steps=(2,), marker: bool = True,
              final: str | None = None, method: str = "lora", pid: int = 2**22 + 12345) -> Path:
    """A run folder as training leaves it (checkpoints with or without the completion marker)."""
    run = runs.runs_dir(root) / name
    run.mkdir(parents=True)
    runs.config_path(run).write_text(json.dumps(RunConfig(name=name).with_overrides(
        {"method.method": method, "data.packing": not methods.get(method).is_prompt_learning}).to_dict()))
    runs.write_status(run, status, created=1.0)
    if pid:  # default: a pid beyond pid_max on most systems (the writer is gone)
        st = runs.read_status(run)
        st["pid"] = pid
        runs.status_path(run).write_text(json.dumps(st))
    for s in steps:
        ck = runs.checkpoint_dir(run, s)
        ck.mkdir(parents=True)
        (ck / runs.TRAINER_STATE).write_text("{}")
        if marker:
            runs.mark_checkpoint_complete(ck, s)
    if final:
        (run / final).mkdir()
    return run


def test_resumable_needs_the_completion_marker(tmp_path):
    # A checkpoint folder cut off mid-write (no marker) is not something `tune resume` continues
    # from: before, the window offered "continue from its latest checkpoint" for it and the resume
    # started at step 0.  One rule now, the one resume uses.
    torn = _fake_run(tmp_path, "torn", marker=False)
    done = _fake_run(tmp_path, "done", steps=(2, 4))
    assert runs.latest_checkpoint(torn) is None and not runs.is_resumable(torn)
    assert runs.latest_checkpoint(done) == runs.checkpoint_dir(done, 4) and runs.is_resumable(done)
    by_name = {r.name: r for r in runs.list_runs(tmp_path)}
    assert not by_name["torn"].resumable and by_name["done"].resumable
    assert {r.name for r in runs.interrupted_runs(tmp_path)} == {"done"}  # both left "running", pid gone


def test_resume_and_the_window_share_the_rule():
    from backend import training
    from desktop import runs as desktop_runs

    assert training.latest_checkpoint is runs.latest_checkpoint
    assert desktop_runs.RunSummary is runs.RunSummary and desktop_runs.interrupted_runs is runs.interrupted_runs


def test_a_newer_torn_checkpoint_falls_back_to_the_complete_one(tmp_path):
    run = _fake_run(tmp_path, steps=(2,))
    (runs.checkpoint_dir(run, 4)).mkdir()  # killed while writing checkpoint-4
    assert runs.latest_checkpoint(run) == runs.checkpoint_dir(run, 2)


def test_finished_runs_are_not_resumable_and_are_chattable(tmp_path):
    full = _fake_run(tmp_path, "full", "completed", final=runs.MODEL, method="full")
    (runs.model_dir(full) / "config.json").write_text("{}")
    lora = _fake_run(tmp_path, "lora", "completed", final=runs.ADAPTER)
    (runs.adapter_dir(lora) / "adapter_config.json").write_text("{}")
    prompt = _fake_run(tmp_path, "prompt", "failed", method="prompt_tuning")
    for r in (full, lora):
        assert runs.is_finished(r) and not runs.is_resumable(r) and runs.has_chat_model(r)
    assert runs.kind(full) == "model" and runs.kind(lora) == "adapter" and runs.kind(prompt) == "prompt"
    assert not runs.has_chat_model(prompt) and runs.is_resumable(prompt)
    rows = {r.name: r for r in runs.list_runs(tmp_path)}
    assert rows["full"].has_chat_model and rows["full"].kind == "model"
    assert rows["full"].final_dir == runs.model_dir(full)


def test_status_roundtrip_and_unknown_status(tmp_path):
    runs.write_status(tmp_path, "running", started=5.0)
    runs.write_status(tmp_path, "completed", reason="")
    st = runs.read_status(tmp_path)
    assert st["status"] == "completed" and st["started"] == 5.0 and st["pid"] == os.getpid()
    with pytest.raises(ValueError, match="unknown run status"):
        runs.write_status(tmp_path, "done")
    assert runs.read_status(tmp_path / "nowhere") == {}


def test_metrics_are_read_incrementally_from_an_offset(tmp_path):
    path = runs.metrics_path(tmp_path)
    path.write_text(json.dumps({"type": "train", "step": 1}) + "\n" + '{"type": "train", "st')
    recs, off = runs.read_metrics(tmp_path)
    assert [r["step"] for r in recs] == [1]
    again, same = runs.read_metrics(tmp_path, off)
    assert again == [] and same == off  # the torn line waits for its newline
    with open(path, "a") as fh:
        fh.write('ep": 2}\n' + json.dumps({"type": "eval", "step": 2}) + "\n")
    recs, off2 = runs.read_metrics(tmp_path, off)
    assert [(r["type"], r["step"]) for r in recs] == [("train", 2), ("eval", 2)]
    assert off2 == path.stat().st_size
    assert runs.last_record(tmp_path, "train")["step"] == 2


def test_paths_and_the_folder_object(tmp_path):
    rf = runs.RunFolder(tmp_path / "x")
    assert rf.eval_path("brisa") == tmp_path / "x" / "eval" / "brisa.json"
    assert rf.eval_path("brisa", ".md").name == "brisa.md"
    assert rf.exports_dir.name == "exports" and rf.report_path.name == "report.html"
    assert runs.final_dir_for(rf.path, "bitfit") == rf.model_dir
    assert runs.final_dir_for(rf.path, "ia3") == rf.adapter_dir
    assert runs.checkpoint_step(runs.checkpoint_dir(rf.path, 12)) == 12
    assert rf.status == "unknown" and not rf.is_resumable and rf.kind == "unknown"


def test_method_registry_is_the_configs_list():
    assert typing.get_args(typing.get_type_hints(MethodConfig)["method"]) == methods.NAMES
    assert methods.names(saves="model") == ("bitfit", "full")
    assert set(methods.names(family="prompt")) == {"prompt_tuning", "prefix_tuning"}
    with pytest.raises(KeyError, match="unknown method"):
        methods.get("qlora")


# -- no run-folder file name outside backend/runs.py ------------------------------------------

# Names only a run folder uses: never written outside backend/runs.py.
_UNIQUE = ("status.json", "metrics.jsonl", "run.log", "data_report.json", "checkpoints", "tune_complete.json",
           "report.html", "tune_studio.json", "checkpoint-")
# Names that also mean other things (a model's config.json, a "model" key): forbidden when joined
# onto a run folder path.
_JOINED = ("config.json", "adapter", "model", "eval", "exports")
_UNIQUE_RE = re.compile(r"""["'](%s)""" % "|".join(re.escape(n) for n in _UNIQUE))
_JOINED_RE = re.compile(r"""\brun\w*\)?\s*/\s*f?["'](%s)["'/]""" % "|".join(re.escape(n) for n in _JOINED))


def test_no_run_folder_file_name_outside_the_owner_module():
    offenders = []
    for top in ("backend", "desktop", "bench"):
        for path in sorted((REPO / top).rglob("*.py")):
            if path == REPO / "backend" / "runs.py":
                continue
            for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0] if not line.lstrip().startswith(("\"", "'")) else ""
                if _UNIQUE_RE.search(code) or _JOINED_RE.search(code):
                    offenders.append(f"{path.relative_to(REPO)}:{no}: {line.strip()}")
    assert not offenders, "run-folder names belong to backend/runs.py:\n" + "\n".join(offenders)


def test_full_fine_tune_runs_are_listed_for_chat_and_load(tmp_path, tiny_model_dir, real_tokenizer_dir):
    # Before, a model/ run showed up in Chat's run list, was auto-selected, and the chat model
    # refused it.  Now model/ loads as a plain model; the base is a second model, loaded on demand.
    from conftest import build_tiny_model
    from langchain_core.messages import HumanMessage

    from backend.rag.chain import ChatSession
    from backend.rag.chat_model import load_chat_model
    from backend.rag.settings import GenerationSettings

    run = _fake_run(tmp_path, "full", "completed", method="bitfit", steps=())
    cfg = RunConfig.from_dict({**json.loads(runs.config_path(run).read_text()),
                               "model": {"name_or_path": str(tiny_model_dir)}})
    runs.config_path(run).write_text(cfg.to_json())
    build_tiny_model(runs.model_dir(run), real_tokenizer_dir, seed=1)  # other weights than the base
    (row,) = [r for r in runs.list_runs(tmp_path) if r.has_chat_model]
    assert row.run_dir == run and row.kind == "model"

    chat = load_chat_model(run, settings=GenerationSettings(max_new_tokens=3))
    assert chat.is_full_model and chat.has_adapter and chat._base_model is None
    assert set(ChatSession(chat, None).modes) == {"tuned", "base"}
    tuned = chat.invoke([HumanMessage("Hello")]).content
    assert chat._base_model is None  # a tuned answer needs no second model
    base = chat.invoke([HumanMessage("Hello")], adapter=False).content
    assert chat._base_model is not None and chat.model_for(False) is not chat.model_for(True)
    assert isinstance(tuned, str) and isinstance(base, str)
    import torch
    emb = "model.embed_tokens.weight"
    assert not torch.equal(chat.model_for(True).state_dict()[emb], chat.model_for(False).state_dict()[emb])
