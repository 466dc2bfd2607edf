"""The project model: project.json read and written by backend/workspace.py only (docs/architecture.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backend.config import RunConfig
from backend.errors import ConfigError
from backend.filetypes import DATASET_SUFFIXES, DOCUMENT_SUFFIXES, classify
from backend.planning import resolve_run_config
from backend.presets import PRESET_KEYS, apply_preset, matching_preset, preset
from backend.recipes import FactSet
from backend.workspace import Project, ProjectError, portable_config


def _project(tmp_path: Path) -> Project:
    p = Project.create(tmp_path / "proj")
    for name in ("a.jsonl", "b.ndjson", "c.csv", "a.report.json", ".hidden.jsonl", "notes.pdf"):
        (p.datasets_dir / name).write_text("")
    (p.documents_dir / "sub").mkdir()
    for name in ("guide.md", "sub/faq.txt", "manifest.json", "table.xlsx"):
        (p.documents_dir / name).write_text("x")
    return p


def test_files_roles_and_documents_round_trip(tmp_path):
    p = _project(tmp_path)
    assert [f.name for f in p.dataset_files()] == ["a.jsonl", "b.ndjson", "c.csv"]
    assert [f.relative_to(p.documents_dir).as_posix() for f in p.document_files()] == ["guide.md", "sub/faq.txt"]
    p.set_dataset_role(p.datasets_dir / "b.ndjson", "validation")
    p.set_dataset_role("c.csv", "off")
    p.set_document_training(p.documents_dir / "sub" / "faq.txt", True)
    with pytest.raises(ConfigError, match="unknown dataset role 'test'"):
        p.set_dataset_role("a.jsonl", "test")

    q = Project.open(p.root)
    assert [f.name for f in q.files_with_role("train")] == ["a.jsonl"]
    assert [f.name for f in q.files_with_role("validation")] == ["b.ndjson"]
    assert [f.name for f in q.files_with_role("off")] == ["c.csv"]
    assert [f.name for f in q.training_documents()] == ["faq.txt"]
    settings = json.loads((p.root / "project.json").read_text())["settings"]
    assert settings["train_on_documents"] == ["sub/faq.txt"]
    q.set_document_training(q.documents_dir / "sub" / "faq.txt", False)
    assert Project.open(p.root).training_documents() == []


def test_one_list_of_extensions():
    assert ".ndjson" in DATASET_SUFFIXES and ".pdf" in DOCUMENT_SUFFIXES
    assert classify(Path("x.ndjson")) == "dataset" and classify(Path("x.CSV")) == "dataset"
    assert classify(Path("x.docx")) == "document" and classify(Path("x.xlsx")) is None
    from backend.data.readers import DATASET_SUFFIXES as readable
    from backend.documents import DOCUMENT_SUFFIXES as documents
    assert set(DATASET_SUFFIXES) <= set(readable) and documents == DOCUMENT_SUFFIXES


def test_saved_run_config_leaves_out_paths_and_keeps_the_base_model(tmp_path):
    p = _project(tmp_path)
    cfg = apply_preset(RunConfig(), "balanced").with_overrides(
        {"model.name_or_path": "/models/x", "output_dir": "/tmp/run", "data.train_files": ["/elsewhere.jsonl"]})
    p.set_run_config(cfg)
    raw = json.loads((p.root / "project.json").read_text())
    assert raw["base_model"] == "/models/x"
    saved = raw["settings"]["run_config"]
    assert "output_dir" not in saved and "train_files" not in saved["data"]
    q = Project.open(p.root)
    assert matching_preset(q.saved_run_config()) == "balanced"
    assert q.saved_run_config().model.name_or_path == "/models/x"


def test_a_saved_config_that_no_longer_validates_gives_the_defaults(tmp_path):
    p = _project(tmp_path)
    p.settings = {"run_config": {"training": {"no_such_field": 1}}}
    p.save()
    # the defaults of a project with documents: training rows teach answering from them (issue 25)
    assert Project.open(p.root).saved_run_config().to_dict() == RunConfig().with_overrides({"data.raft": True}).to_dict()


def test_project_json_cannot_switch_on_trust(tmp_path):
    """issue 20: trust_remote_code / allow_pickle_weights are this machine's choice, never a file's."""
    p = _project(tmp_path)
    raw = json.loads((p.root / "project.json").read_text())
    raw["settings"]["run_config"] = {"model": {"trust_remote_code": True, "allow_pickle_weights": True,
                                               "dtype": "float32"}}
    (p.root / "project.json").write_text(json.dumps(raw))

    q = Project.open(p.root)
    assert q.trust_requests == ["trust_remote_code", "allow_pickle_weights"]
    cfg = q.saved_run_config()
    assert not cfg.model.trust_remote_code and not cfg.model.allow_pickle_weights
    assert cfg.model.dtype == "float32"  # the rest of the saved config is kept
    gui, cli = q.trust_notices(), q.trust_notices(cli=True)
    assert len(gui) == 2 and "Model page" in gui[0] and "Trust remote code" in gui[0]
    assert "--trust-remote-code" in cli[0] and "--allow-pickle-weights" in cli[1]
    resolved = resolve_run_config(q)
    assert not resolved.model.trust_remote_code and not resolved.model.allow_pickle_weights
    assert resolve_run_config(q, trust_remote_code=True).model.trust_remote_code

    # saving never writes them back, even when this session allowed them
    q.set_run_config(cfg.with_overrides({"model.trust_remote_code": True}))
    saved = json.loads((p.root / "project.json").read_text())["settings"]["run_config"]["model"]
    assert "trust_remote_code" not in saved and "allow_pickle_weights" not in saved
    assert Project.open(p.root).trust_requests == []


def test_portable_config_drops_paths_and_trust():
    d = portable_config(RunConfig().with_overrides({"output_dir": "/x", "model.trust_remote_code": True}).to_dict())
    assert "output_dir" not in d and "trust_remote_code" not in d["model"]
    assert not {"train_files", "validation_files", "document_files"} & set(d["data"])


def test_resolve_run_config_fills_in_the_project_files(tmp_path):
    p = _project(tmp_path)
    p.set_dataset_role("b.ndjson", "validation")
    p.set_dataset_role("c.csv", "off")
    p.set_document_training(p.documents_dir / "guide.md", True)
    cfg = resolve_run_config(p, preset="quick", overrides={"training.max_steps": 7})
    assert [Path(f).name for f in cfg.data.train_files] == ["a.jsonl"]
    assert [Path(f).name for f in cfg.data.validation_files] == ["b.ndjson"]
    assert [Path(f).name for f in cfg.data.document_files] == ["guide.md"]
    assert cfg.output_dir == "" and cfg.training.max_steps == 7 and cfg.method.lora_r == 8
    # explicit file overrides win over the project's roles
    cfg = resolve_run_config(p, overrides={"data.train_files": [str(tmp_path / "other.jsonl")]})
    assert cfg.data.train_files == [str(tmp_path / "other.jsonl")]
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        resolve_run_config(p, preset="fast")


def test_presets_by_key():
    assert PRESET_KEYS == ("quick", "balanced", "quality", "facts")
    assert preset("quality").overrides["method.method"] == "rslora"


def test_open_refuses_what_is_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="not a Tune Studio project"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text("[1, 2]")
    with pytest.raises(ProjectError, match="must hold a JSON object"):
        Project.open(tmp_path)
    (tmp_path / "project.json").write_text("{nope")
    with pytest.raises(ProjectError, match="unreadable"):
        Project.open(tmp_path)


def test_sample_project_model():
    root = Path(__file__).resolve().parents[1] / "resources" / "sample_project"
    p = Project.open(root)
    assert [f.name for f in p.files_with_role("train")] == ["brisa_support.jsonl"]
    assert p.example_questions and p.description and p.trust_requests == []
    # issue 18: the sample starts from the preset that learns its facts, answering from its documents
    cfg = p.saved_run_config()
    # its 130 rows as the recipe shapes them, counted with the default model's tokenizer (issue 25)
    facts = FactSet(rows=670, mean_tokens=128.7, max_tokens=388, rows_per_fact=10.0, written=130)
    assert matching_preset(cfg, facts=facts) == "facts" and cfg.data.raft
