"""`tune train --project P --preset K` trains what the GUI would (docs/architecture.md, "The project folder")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from backend.cli import build_parser, main, train_config
from backend.presets import apply_preset
from desktop.session import Session

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "sample_project"


@pytest.fixture()
def sample(tmp_path) -> Path:
    dst = tmp_path / "sample"
    shutil.copytree(SAMPLE, dst)
    return dst


def _gui_config(root: Path, preset: str | None) -> dict:
    """What the Train page's Start runs after the user picks ``preset`` on the Configure page."""
    s = Session()
    s.open_project(root)
    if preset:
        s.set_config(apply_preset(s.config, preset))  # what the Configure page's preset buttons do
    return s.run_config().to_dict()


def _cli_config(*argv: str) -> dict:
    cfg, _notices = train_config(build_parser().parse_args(["train", *argv]))
    return cfg.to_dict()


def test_gui_and_cli_resolve_the_same_config_for_the_sample_project():
    gui = _gui_config(SAMPLE, "quick")
    cli = _cli_config("--project", str(SAMPLE), "--preset", "quick")
    assert gui == cli
    assert [Path(f).name for f in cli["data"]["train_files"]] == ["brisa_support.jsonl"]
    assert cli["training"]["max_steps"] == 30 and cli["output_dir"] == ""


@pytest.mark.parametrize("preset", [None, "balanced", "quality"])
def test_gui_and_cli_agree_with_roles_documents_and_saved_settings(sample, preset):
    s = Session()
    s.open_project(sample)
    s.set_document_training(s.project.documents_dir / "troubleshooting.md", True)
    extra = s.project.datasets_dir / "held_out.jsonl"
    shutil.copy(s.project.datasets_dir / "brisa_support.jsonl", extra)
    s.set_dataset_role(extra, "validation")
    s.set_config(s.config.with_overrides({"training.learning_rate": 3e-4, "data.system_prompt": "Be brief."}))
    s.save_project()  # the Train page saves before it starts

    gui = _gui_config(sample, preset)
    cli = _cli_config("--project", str(sample), *(["--preset", preset] if preset else []))
    assert gui == cli
    assert [Path(f).name for f in cli["data"]["validation_files"]] == ["held_out.jsonl"]
    assert [Path(f).name for f in cli["data"]["document_files"]] == ["troubleshooting.md"]
    if preset is None:
        assert cli["training"]["learning_rate"] == 3e-4 and cli["data"]["system_prompt"] == "Be brief."


def test_cli_flags_go_over_the_project(sample):
    cli = _cli_config("--project", str(sample), "--preset", "quick", "--max-steps", "3",
                      "--set", "method.lora_r=4", "--data", str(sample / "datasets" / "brisa_support.jsonl"))
    assert cli["training"]["max_steps"] == 3 and cli["method"]["lora_r"] == 4
    assert cli["data"]["train_files"] == [str(sample / "datasets" / "brisa_support.jsonl")]


def test_cli_refuses_a_folder_that_is_not_a_project(tmp_path, capsys):
    assert main(["train", "--project", str(tmp_path), "--preset", "quick"]) == 2
    assert "not a Tune Studio project" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: not one of the choices
        main(["train", "--preset", "fast"])
    assert exit_info.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err


def test_cli_trust_comes_from_flags_not_from_the_project(sample, capsys):
    raw = json.loads((sample / "project.json").read_text())
    raw["settings"]["run_config"]["model"] = {"trust_remote_code": True}
    (sample / "project.json").write_text(json.dumps(raw))
    args = build_parser().parse_args(["train", "--project", str(sample)])
    cfg, notices = train_config(args)
    assert not cfg.model.trust_remote_code
    assert len(notices) == 1 and "asks for trust_remote_code" in notices[0] and "--trust-remote-code" in notices[0]
    args = build_parser().parse_args(["train", "--project", str(sample), "--trust-remote-code"])
    cfg, notices = train_config(args)
    assert cfg.model.trust_remote_code and notices == []


def test_start_warnings_are_the_train_pages(tiny_model_dir):
    from backend.config import RunConfig
    from backend.estimate import estimate_run, start_warnings
    from backend.models import model_info
    from backend.runtime import detect_device

    cfg = RunConfig().with_overrides({"model.name_or_path": str(tiny_model_dir), "data.max_length": 4096})
    warnings = start_warnings(cfg)
    assert any("longer than the model's context" in w for w in warnings)
    assert warnings == estimate_run(cfg, model_info(str(tiny_model_dir)), detect_device("auto")).warnings


def test_cli_trains_the_project(sample, tiny_model_dir, capsys):
    raw = json.loads((sample / "project.json").read_text())
    raw["settings"]["run_config"]["model"] = {"allow_pickle_weights": True}
    (sample / "project.json").write_text(json.dumps(raw))
    rc = main(["train", "--project", str(sample), "--preset", "quick", "--model", str(tiny_model_dir),
               "--max-steps", "1", "--set", "data.max_length=64", "--set", "training.eval_steps=0"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "warning: This project asks for allow_pickle_weights" in err
    (run_config,) = (sample / "runs").glob("*/config.json")
    saved = json.loads(run_config.read_text())
    assert [Path(f).name for f in saved["data"]["train_files"]] == ["brisa_support.jsonl"]
    assert saved["method"]["lora_r"] == 8 and saved["model"]["allow_pickle_weights"] is False

    # tune runs lists it: status, resumable, best eval loss
    assert main(["runs", str(sample), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["status"] == "completed" and row["resumable"] is False and row["method"] == "lora"
    assert isinstance(row["best_eval_loss"], float) and row["run_dir"] == str(run_config.parent)
    assert main(["runs", str(sample)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["RUN", "STATUS", "METHOD"] and "completed" in lines[1]


def test_the_window_says_what_the_project_asked_for(qtbot, sample, tmp_path, monkeypatch):
    """issue 20: the GUI drops the trust flags too, and says how to allow them."""
    from desktop.appstate import AppSettings
    from desktop.main_window import MainWindow

    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    raw = json.loads((sample / "project.json").read_text())
    raw["settings"]["run_config"]["model"] = {"trust_remote_code": True}
    (sample / "project.json").write_text(json.dumps(raw))
    w = MainWindow(Session(), AppSettings())
    qtbot.addWidget(w)
    assert w.open_project(sample, resolve=False)
    assert not w.session.config.model.trust_remote_code and not w.session.run_config().model.trust_remote_code
    assert not w.notice.isHidden() and "Trust remote code" in w.notice.text() and "Model page" in w.notice.text()
    w.session.save_project()
    assert "trust_remote_code" not in json.loads((sample / "project.json").read_text())["settings"]["run_config"]["model"]


def _gui_facts_config(s: Session, tiny_model_dir) -> dict:
    """What the GUI starts after "Learn the facts" is chosen: the Configure page fits it to the Data page's check.

    The button applies the preset to the check it has; the preset's row options make the Data
    page check again, and the Configure page fits the preset to that check (ConfigurePage._on_data_report).
    """
    from desktop.data_adapter import check_project_data

    files = [str(p) for p in s.files_with_role("train")]
    report = check_project_data(files, files, [], str(tiny_model_dir), s.run_config())
    s.set_config(apply_preset(s.config, "facts", facts=report.facts))
    for _ in range(3):  # until the check no longer changes (max_length follows the longest row once)
        report = check_project_data(files, files, [], str(tiny_model_dir), s.run_config())
        cfg = apply_preset(s.config, "facts", facts=report.facts)
        if cfg.to_dict() == s.config.to_dict():
            break
        s.set_config(cfg)
    assert report.rows_for(s.config) == report.facts.rows  # "Learn the facts" trains every row
    return s.run_config().to_dict()


def test_the_facts_preset_counts_the_rows_the_same_way_in_the_gui_and_the_cli(sample, tiny_model_dir):
    # the GUI fits it to the Data page's check; the CLI counts the training files itself
    from desktop.data_adapter import check_project_data

    s = Session()
    s.open_project(sample, model_override=str(tiny_model_dir))
    s.save_project()
    files = [str(p) for p in s.files_with_role("train")]
    report = check_project_data(files, files, [], str(tiny_model_dir), s.run_config())  # as the Data page does
    assert report.facts.written == 130  # the rows as written; the recipe adds rewordings, abstention rows …
    assert report.facts.rows > 4 * 130 and report.knowledge["facts"] == 65
    gui = _gui_facts_config(s, tiny_model_dir)
    cli = _cli_config("--project", str(sample), "--model", str(tiny_model_dir), "--preset", "facts")
    assert gui == cli
    assert cli["data"]["validation_split"] == 0.0 and cli["training"]["epochs"] >= 1
    assert cli["training"]["keep_best"] and cli["data"]["heldout_rewordings"] > 0


def test_the_facts_preset_is_fitted_after_the_options_that_lengthen_the_rows(sample, tiny_model_dir):
    # issue 25: `--preset facts --set data.raft=true` stopped with "no usable rows left (26 no_loss)":
    # the preset's max_length was fitted to rows without passages
    from backend.training import train

    p = json.loads((sample / "project.json").read_text())
    p["settings"]["run_config"]["data"]["raft"] = False
    (sample / "project.json").write_text(json.dumps(p))
    s = Session()
    s.open_project(sample, model_override=str(tiny_model_dir))
    assert not s.config.data.raft
    s.set_config(s.config.with_overrides({"data.raft": True}))  # the box ticked on the Configure page
    gui = _gui_facts_config(s, tiny_model_dir)
    cli = _cli_config("--project", str(sample), "--model", str(tiny_model_dir), "--preset", "facts",
                      "--set", "data.raft=true")
    assert gui == cli and cli["data"]["raft"] and cli["data"]["raft_closed_book"]
    off = _cli_config("--project", str(sample), "--model", str(tiny_model_dir), "--preset", "facts")
    assert not off["data"]["raft"] and off["data"]["max_length"] < cli["data"]["max_length"]
    assert off["training"]["epochs"] > cli["training"]["epochs"]  # shorter rows: more passes in the same time
    from backend.config import RunConfig
    from backend.data import check_files
    from backend.models import load_tokenizer

    cfg = RunConfig.from_dict(cli)
    rep = check_files(cfg.data.train_files, load_tokenizer(str(tiny_model_dir)), cfg)
    assert rep.usable and rep.summary["dropped_no_loss"] == 0 and rep.summary["truncated"] == 0
    result = train(cfg.with_overrides({"training.max_steps": 2, "training.eval_steps": 1,
                                       "output_dir": str(sample / "runs" / "r")}), project_dir=sample)
    assert result.status == "completed"
    assert result.metrics.get("best_checkpoint", "").startswith("checkpoint-")  # kept by held-out loss


def test_the_time_estimate_counts_the_start_and_every_step(tiny_model_dir):
    # issue 19: the estimate is compared with Start → adapter, which includes process start and model load
    from backend.config import RunConfig
    from backend.estimate import STARTUP_SECONDS, estimate_run
    from backend.models import model_info
    from backend.runtime import detect_device

    cfg = RunConfig().with_overrides({"training.max_steps": 10})
    est = estimate_run(cfg, model_info(str(tiny_model_dir)), detect_device("cpu"))
    assert est.steps == 10 and est.total_seconds == pytest.approx(STARTUP_SECONDS + 10 * est.step_seconds)
