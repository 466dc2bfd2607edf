"""The Export… dialog: choices, a background export with progress and Stop, the parity result in words."""

import json
from pathlib import Path

import pytest

pytest.importorskip("PySide6")


@pytest.fixture(scope="module")
def dialog_run(tmp_path_factory, tiny_model_dir):
    from backend.config import RunConfig
    from backend.training import train

    tmp = tmp_path_factory.mktemp("dialog-run")
    rows = [{"messages": [{"role": "user", "content": f"Name {i}?"}, {"role": "assistant", "content": f"It is {i}."}]}
            for i in range(10)]
    (tmp / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = RunConfig().with_overrides({
        "model.name_or_path": str(tiny_model_dir), "data.train_files": [str(tmp / "chat.jsonl")],
        "output_dir": str(tmp / "run"), "data.max_length": 48, "data.validation_split": 0.2,
        "training.batch_size": 2, "training.max_steps": 1, "training.eval_steps": 0, "method.lora_r": 2})
    res = train(cfg)
    assert res.status == "completed"
    return Path(res.run_dir)


def test_dialog_choices_and_k_quant_note(qtbot, tmp_path):
    from desktop.export_dialog import ExportDialog

    d = ExportDialog(tmp_path / "runs" / "r1")
    qtbot.addWidget(d)  # not shown: the offscreen platform warns about top-level size hints
    assert d.kind() == "gguf" and d.target().name == "r1-q8_0.gguf"
    assert not d.kquant_note.isHidden() and "llama-quantize" in d.kquant_note.text()
    d.set_quant("q4_0")
    assert d.target().name == "r1-q4_0.gguf" and "4-bit" in d.quant_help.text()
    d.set_kind("merged")
    assert d.quant.isHidden() and d.kquant_note.isHidden() and d.target().name == "r1-merged"


def test_dialog_exports_gguf_with_parity_and_stops(qtbot, dialog_run, tmp_path):
    from desktop.export_dialog import ExportDialog

    d = ExportDialog(dialog_run)
    qtbot.addWidget(d)
    d.set_kind("gguf")
    d.set_quant("q8_0")
    d.path_edit.setText(str(tmp_path / "stopped.gguf"))
    d.questions.setValue(1)
    assert d.start()
    d.stop_button.click()
    qtbot.waitUntil(lambda: d.job.done, timeout=600_000)
    assert "stopped" in d.status.text() and not (tmp_path / "stopped.gguf").exists()

    d.path_edit.setText(str(tmp_path / "m.gguf"))
    with qtbot.waitSignal(d.exported, timeout=600_000) as sig:
        assert d.start()
        assert not d.export_button.isEnabled() and d.stop_button.isEnabled()
    qtbot.waitUntil(lambda: d.job.done, timeout=60_000)
    rec = sig.args[0]
    assert (tmp_path / "m.gguf").is_file() and rec.kind == "gguf" and rec.quant == "q8_0"
    text = d.result.text()
    assert text.startswith("Parity: ") and ("1/1 answers identical" in text or "changed 1/1 answers" in text)
    assert d.export_button.isEnabled() and not d.stop_button.isEnabled()


def test_cli_and_dialog_offer_the_export_kinds_of_one_table(qtbot, tmp_path):
    """`tune export`'s flags and the dialog's choices come from backend.export_types.KINDS (docs/architecture.md, "Export")."""
    import subprocess
    import sys

    from backend.cli import build_parser
    from backend.export_types import EXPORT_KINDS, KINDS, dialog_kinds
    from desktop.export_dialog import ExportDialog

    export = build_parser()._subparsers._group_actions[0].choices["export"]
    flags = {a.dest: a for a in export._actions}
    for k in KINDS.values():
        assert flags[k.key].metavar == k.metavar and flags[k.key].help == k.flag_help
    d = ExportDialog(tmp_path / "runs" / "r1")
    qtbot.addWidget(d)
    assert list(d.kind_buttons) == [k.key for k in dialog_kinds()] and set(d.kind_buttons) == set(EXPORT_KINDS)
    for k in KINDS.values():
        d.set_kind(k.key)
        assert d.quant.isHidden() is not k.needs_quant and d.kquant_note.isHidden() is not k.needs_quant
        assert d.target().name == k.default_target("r1", "q8_0")
    res = subprocess.run([sys.executable, "-m", "backend", "export", str(tmp_path)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert res.returncode == 2
    assert "give --gguf OUT.gguf, --ollama DIR, --merged DIR or --adapter DIR (or --check" in res.stderr
