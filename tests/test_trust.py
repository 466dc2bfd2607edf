"""A copied run folder can't switch on remote code or pickle weights (trust is this machine's answer)."""

from __future__ import annotations

import json
import shutil

import pytest

from backend import runs
from backend.config import RunConfig
from backend.trust import restrict


def _planted_run(tmp_path, tiny_model_dir):
    """A completed run whose config asks for remote code, with an adapter whose tokenizer carries auto_map."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    run = tmp_path / "runs" / "copied"
    run.mkdir(parents=True)
    cfg = RunConfig.from_dict({"model": {"name_or_path": str(tiny_model_dir), "trust_remote_code": True,
                                         "allow_pickle_weights": True}})
    runs.config_path(run).write_text(json.dumps(cfg.to_dict()))
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=2, target_modules=["q_proj"]))
    adapter = runs.adapter_dir(run)
    model.save_pretrained(adapter)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, adapter / name)
    marker = tmp_path / "EXECUTED"
    (adapter / "evil_tok.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n"
                                         "from transformers import PreTrainedTokenizerFast as EvilTokenizer\n")
    tc = json.loads((adapter / "tokenizer_config.json").read_text())
    tc["auto_map"] = {"AutoTokenizer": [None, "evil_tok.EvilTokenizer"]}
    (adapter / "tokenizer_config.json").write_text(json.dumps(tc))
    runs.write_status(run, "completed")
    return run, marker


def test_run_folder_cannot_switch_on_remote_code(tmp_path, tiny_model_dir):
    from backend.rag.chat_model import load_chat_model

    run, marker = _planted_run(tmp_path, tiny_model_dir)
    said = []
    try:
        load_chat_model(run, on_event=said.append)
    except Exception:
        pass  # refusing to load is fine too; running the file is not
    assert not marker.exists(), "the run folder's code was executed"
    warnings = [e["message"] for e in said if e.get("type") == "log" and e.get("level") == "warning"]
    assert any("asks for trust_remote_code" in w and "--trust-remote-code" in w for w in warnings)


def test_restrict_keeps_the_machine_answer():
    cfg = RunConfig.from_dict({"model": {"trust_remote_code": True, "allow_pickle_weights": True}})
    fixed, said = restrict(cfg, source="The run folder x")
    assert not fixed.model.trust_remote_code and not fixed.model.allow_pickle_weights
    assert len(said) == 2 and said[0].startswith("The run folder x asks for trust_remote_code")
    fixed, said = restrict(cfg, trust_remote_code=True)
    assert fixed.model.trust_remote_code and not fixed.model.allow_pickle_weights and len(said) == 1
    clean, said = restrict(RunConfig())
    assert said == []


def test_resume_does_not_take_trust_from_the_run_folder(tmp_path, tiny_model_dir):
    from backend.errors import TuneError
    from backend.training import resume

    run, marker = _planted_run(tmp_path, tiny_model_dir)
    runs.write_status(run, "cancelled")
    shutil.rmtree(runs.adapter_dir(run))
    said = []
    with pytest.raises(TuneError):
        resume(run, on_event=said.append)  # no data files: it fails after the trust check
    assert any("asks for trust_remote_code" in (e.get("message") or "") for e in said)


def test_completed_run_whose_adapter_was_deleted_says_so(tmp_path, tiny_model_dir):
    from backend.errors import RunError
    from backend.rag.chat_model import load_chat_model

    run, _ = _planted_run(tmp_path, tiny_model_dir)
    shutil.rmtree(runs.adapter_dir(run))
    with pytest.raises(RunError, match="the run completed, but its adapter/ .* is gone.*put the folder back"):
        load_chat_model(run)


# -- hub access is the person's choice too (issue 27 item 4) ----------------------------------------

HUB_ID = "attacker/evil-model"


def _hub_run(tmp_path):
    """A copied run folder whose config asks for hub access and names a hub id as its base model."""
    from backend.workspace import Project

    project = Project.create(tmp_path / "proj")
    run = project.runs_dir / "copied"
    adapter = runs.adapter_dir(run)
    adapter.mkdir(parents=True)
    cfg = RunConfig.from_dict({"model": {"name_or_path": HUB_ID, "allow_hub": True}})
    runs.config_path(run).write_text(json.dumps(cfg.to_dict()))
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": HUB_ID,
                                                             "peft_type": "LORA"}))
    runs.write_status(run, "completed")
    return project, run


@pytest.fixture()
def offline(monkeypatch):
    """The person allowed no hub access; the libraries are offline (what `tune` and the app start with)."""
    monkeypatch.setenv("TUNE_ALLOW_HUB", "0")  # recorded, so a test that switches it on is undone
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_tune_ask_does_not_take_hub_access_from_the_run_folder(tmp_path, capsys, offline):
    import os

    from backend.cli import main

    project, run = _hub_run(tmp_path)
    rc = main(["ask", str(project.root), "What is it?", "--run", str(run), "--no-rag"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"'{HUB_ID}' looks like a hub id, but hub access is off" in err
    assert "asks for allow_hub" in err and "--allow-hub" in err  # told no, with the flag that allows it
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set_offline was not undone


def test_load_chat_model_refuses_a_run_folder_hub_id_unless_the_person_allows(tmp_path, offline):
    from backend.errors import ModelError
    from backend.rag.chat_model import load_chat_model

    _project, run = _hub_run(tmp_path)
    said = []
    with pytest.raises(ModelError, match="hub access is off"):
        load_chat_model(run, on_event=said.append)
    assert any("asks for allow_hub" in (e.get("message") or "") for e in said)


def test_project_json_cannot_switch_on_hub_access(tmp_path, capsys, offline):
    import os

    from backend.cli import build_parser, main, train_config
    from backend.workspace import Project

    project = Project.create(tmp_path / "proj")
    d = json.loads((project.root / "project.json").read_text())
    d["base_model"] = HUB_ID
    d["settings"] = {"run_config": {"model": {"name_or_path": HUB_ID, "allow_hub": True}}}
    (project.root / "project.json").write_text(json.dumps(d))
    opened = Project.open(project.root)
    assert opened.trust_requests == ["allow_hub"]
    assert "allow_hub" not in json.dumps(opened.settings)
    cfg, notices = train_config(build_parser().parse_args(["train", "--project", str(project.root)]))
    assert cfg.model.allow_hub is False and cfg.model.name_or_path == HUB_ID
    assert any("asks for allow_hub" in n and "--allow-hub" in n for n in notices)
    cfg, notices = train_config(build_parser().parse_args(["train", "--project", str(project.root), "--allow-hub"]))
    assert cfg.model.allow_hub is True and not notices  # the person's flag
    rc = main(["train", "--project", str(project.root), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "hub access is off" in err and "asks for allow_hub" in err
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_tune_train_config_file_cannot_switch_on_trust(tmp_path, offline):
    from backend.cli import build_parser, train_config

    path = tmp_path / "config.json"  # a copied run's config.json
    path.write_text(RunConfig.from_dict({"model": {"trust_remote_code": True, "allow_pickle_weights": True,
                                                   "allow_hub": True}}).to_json())
    cfg, notices = train_config(build_parser().parse_args(["train", str(path)]))
    assert not (cfg.model.trust_remote_code or cfg.model.allow_pickle_weights or cfg.model.allow_hub)
    assert len(notices) == 3 and all(n.startswith(f"The config file {path} asks for") for n in notices)
    assert "--trust-remote-code" in notices[0] and "--allow-pickle-weights" in notices[1]
    cfg, notices = train_config(build_parser().parse_args(["train", str(path), "--trust-remote-code",
                                                           "--allow-pickle-weights", "--allow-hub"]))
    assert cfg.model.trust_remote_code and cfg.model.allow_pickle_weights and cfg.model.allow_hub
    assert notices == []
    cfg, _ = train_config(build_parser().parse_args(["train", "--trust-remote-code"]))  # no file: the flag
    assert cfg.model.trust_remote_code and not cfg.model.allow_pickle_weights


def test_tune_data_check_config_file_cannot_switch_on_trust(tmp_path, capsys, offline):
    from backend.cli import build_parser
    from backend.data.cli import _check_config

    path = tmp_path / "config.json"
    path.write_text(RunConfig.from_dict({"model": {"trust_remote_code": True, "allow_hub": True}}).to_json())
    cfg = _check_config(build_parser().parse_args(["data", "check", "--config", str(path)]))
    assert not cfg.model.trust_remote_code and not cfg.model.allow_hub
    err = capsys.readouterr().err
    assert "asks for trust_remote_code" in err and "--trust-remote-code" in err and "--allow-hub" in err
    cfg = _check_config(build_parser().parse_args(["data", "check", "--config", str(path), "--trust-remote-code"]))
    assert cfg.model.trust_remote_code


def test_gui_resume_carries_the_persons_trust_choices(qtbot, tmp_path, offline):
    from desktop.pages.train import TrainPage
    from desktop.session import Session
    from desktop.train_process import resume_request

    assert resume_request(tmp_path)["trust_remote_code"] is False
    s = Session()
    s.set_model_source("default", trust_remote_code=True, allow_pickle_weights=True)  # the Model page's ticks
    page = TrainPage(s)
    qtbot.addWidget(page)
    sent = []
    page._start_child = sent.append
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    runs.config_path(run).write_text(RunConfig().to_json())
    assert page.resume_run(run)
    assert sent[0]["action"] == "resume" and sent[0]["trust_remote_code"] is True
    assert sent[0]["allow_pickle_weights"] is True and sent[0]["allow_hub"] is False


def test_the_model_page_tick_is_the_persons_hub_choice_for_the_process(tmp_path, offline):
    import os

    from backend.trust import hub_allowed
    from backend.workspace import Project
    from desktop.session import Session

    Project.create(tmp_path / "proj")
    s = Session()
    s.open_project(tmp_path / "proj")
    assert not s.config.model.allow_hub and not s.run_config().model.allow_hub
    try:
        s.set_model_source("default", allow_hub=True)  # what the Model page's tick does
        assert hub_allowed() and os.environ.get("HF_HUB_OFFLINE") is None  # children inherit it
        assert s.run_config().model.allow_hub
        s.open_project(tmp_path / "proj")  # the choice belongs to the person, not to the project
        assert s.config.model.allow_hub
    finally:
        s.set_model_source("default", allow_hub=False)
    assert not hub_allowed() and os.environ.get("HF_HUB_OFFLINE") == "1"
