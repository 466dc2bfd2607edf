"""The main window end to end on a tiny random-weight model (pytest-qt, offscreen).

Each test opens its own window on a fresh copy of the sample project in a
temporary user folder, with the session's tiny model instead of the bundled one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("qapp")

TRAIN_TIMEOUT = 120_000


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _tiny(window, **over):
    """Settings that make a run on the tiny model take seconds."""
    form = window.configure_page.form
    values = {"training.max_steps": 6, "training.batch_size": 4, "training.gradient_accumulation": 1,
              "training.eval_steps": 3, "training.save_steps": 3, "training.learning_rate": 1e-3,
              "method.lora_r": 4, "method.lora_alpha": 8, "data.max_length": 128,
              "data.raft": False, "data.validation_split": 0.1}
    values.update(over)
    for key, value in values.items():
        form.set_value(key, value)
    form.flush()


@pytest.fixture()
def window(qtbot, home, tiny_model_dir):
    from desktop.app import create_window
    from desktop.appstate import install_sample_project
    from desktop.workers import stop_all_jobs

    # The sample trains with RAFT, which indexes its documents with the bundled embedder first; these
    # tests use tiny models throughout (RAFT is tested in test_rag_quality.py and by the data check below).
    sample = install_sample_project() / "project.json"
    raw = json.loads(sample.read_text())
    raw["settings"]["run_config"]["data"]["raft"] = False
    sample.write_text(json.dumps(raw))
    w = create_window(model=str(tiny_model_dir))
    qtbot.addWidget(w)
    w.resize(1360, 880)
    w.show()
    qtbot.waitUntil(lambda: w.session.model_path is not None and w.session.device is not None, timeout=60_000)
    yield w
    stop_all_jobs(timeout_ms=60_000)


def _to_data_checked(qtbot, w):
    w.next()  # Project -> Model
    assert w.current_index() == 1
    w.next()  # Model -> Data
    assert w.current_index() == 2
    qtbot.waitUntil(lambda: w.session.data_report is not None and not w.data_page.is_busy(), timeout=60_000)


def test_full_wizard_pass_trains_and_chats(qtbot, window, tiny_model_dir):
    w = window
    assert w.project_page.validate() is None and "sample" in str(w.session.project.root)
    # the Data page was built when the model got ready (it checks the data then); the others wait to be shown
    assert w.built_pages() == ["Project", "Model", "Data", "Configure"]
    _to_data_checked(qtbot, w)
    dp = w.data_page
    report = w.session.data_report
    assert report.train_rows > 100 and not report.check.errors
    assert dp.datasets_table.item(0, 2).text() == "messages"
    assert dp.histogram.bar_count() > 0
    html = dp.preview_view.toHtml()
    assert "#dff3e4" in html and "#eceff3" in html  # trained and masked runs are both shown
    w.next()
    assert w.current_index() == 3
    cp = w.configure_page
    _tiny(w)
    assert cp.validate() is None and w.session.config.training.max_steps == 6
    assert cp.estimate is not None and cp.estimate.steps == 6
    # an invalid combination is shown at the field, and blocks Next
    cp.form.set_value("training.early_stopping_patience", 2)
    cp.form.set_value("training.eval_steps", 0)
    cp.form.flush()
    assert cp.form.marked_field() == "training.early_stopping_patience" and cp.banner.isVisible()
    assert "Early stopping needs periodic evaluation" in cp.banner.text()
    w.next()
    assert w.current_index() == 3
    cp.form.set_value("training.early_stopping_patience", 0)
    cp.form.set_value("training.eval_steps", 3)
    cp.form.flush()
    assert cp.validate() is None
    w.next()
    assert w.current_index() == 4
    tp = w.train_page
    with qtbot.waitSignal(tp.trainingFinished, timeout=TRAIN_TIMEOUT) as blocker:
        assert tp.start_training()
        assert tp.plot_view.timer.isActive()
    assert blocker.args[0] == "completed", tp.banner.text()
    assert tp.plot_view.curve_points("loss") == 6
    assert tp.plot_view.curve_points("eval_loss") >= 1
    for key in ("learning_rate", "grad_norm", "tokens_per_s", "memory_mb"):
        assert tp.metrics.points(key) > 0, key
    assert tp.progress.value() == tp.progress.maximum()
    assert w.notice.isVisible() and "finished" in w.notice.text()
    assert tp.history.rowCount() == 1 and tp.history.item(0, 1).text() == "completed"
    assert w.session.run_dir is not None and (w.session.run_dir / "adapter").is_dir()
    log = tp.log_view.toPlainText()
    assert "checkpoint saved" in log and "finished: completed" in log

    # chat: tuned + RAG answers with sources, base vs tuned side by side, feedback
    w.next()
    cp = w.chat_page
    assert w.current_index() == 5
    assert cp.selected_run() == w.session.run_dir
    cp.gen_editors["max_new_tokens"].setValue(6)
    qtbot.waitUntil(lambda: not cp.is_busy(), timeout=120_000)  # the index is built on entering
    assert not cp.index_is_stale()
    assert "8 file(s)" in cp.index_label.text()
    cp.compare_check.setChecked(True)
    assert cp.modes() == ["base+rag", "tuned+rag"]
    assert cp.ask("What does error E4 mean?")
    qtbot.waitUntil(lambda: not cp.is_busy(), timeout=120_000)
    assert not cp.banner.isVisible(), cp.banner.text()
    ex = cp.exchanges()[-1]
    for mode in ("base+rag", "tuned+rag"):
        a = ex.answers[mode]
        assert a.done and a.sources, mode
        assert a.sources[0].file == "troubleshooting.md"
    a = ex.answers["tuned+rag"]
    a.sourceClicked.emit(a.sources[0])
    assert "E4" in cp.source_view.toPlainText() and "troubleshooting.md" in cp.source_title.text()
    a.feedback_button.click()
    a.editor.setPlainText("E4 means the Wi-Fi password was rejected.")
    a.save_button.click()
    fb = w.session.project.datasets_dir / "feedback.jsonl"
    row = json.loads(fb.read_text().splitlines()[-1])
    assert row["messages"][0]["content"] == "What does error E4 mean?"
    assert row["messages"][1]["content"] == "E4 means the Wi-Fi password was rejected."
    assert fb in w.session.files_with_role("train")


def test_bad_file_on_data_page_shows_its_message(qtbot, window, tmp_path):
    w = window
    _to_data_checked(qtbot, w)
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
                   '{"messages": [{"role": "user", "content": "oops"\n', encoding="utf-8")
    # dropped onto the page, like from a file manager
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                      Qt.KeyboardModifier.NoModifier)
    w.data_page.dropEvent(drop)
    assert (w.session.project.datasets_dir / "broken.jsonl").exists() and bad.exists()
    qtbot.waitUntil(lambda: w.session.data_report is not None and not w.data_page.is_busy(), timeout=60_000)
    dp = w.data_page
    assert dp.banner.isVisible() and dp.banner.kind == "error"
    assert "broken.jsonl:2" in dp.banner.text()
    first = dp.problems_tree.topLevelItem(0)
    assert first.text(0) == "broken.jsonl:2"
    row = [r for r in range(dp.datasets_table.rowCount()) if dp.datasets_table.item(r, 0).text() == "broken.jsonl"][0]
    assert "error" in dp.datasets_table.item(row, 5).text()
    assert dp.validate() and "problem" in dp.validate()
    w.next()
    assert w.current_index() == 2  # blocked on the Data page
    # switching the file off unblocks the wizard
    combo = dp.datasets_table.cellWidget(row, 1)
    combo.setCurrentIndex(combo.findData("off"))
    qtbot.waitUntil(lambda: w.session.data_report is not None and not dp.is_busy(), timeout=60_000)
    assert dp.validate() is None
    # an unsupported file is refused with words, not copied
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    assert dp.add_files([exe]) == [] and "tool.exe" in dp.banner.text()


def test_new_project_starts_empty(qtbot, window, tmp_path, monkeypatch):
    w = window
    monkeypatch.setattr(w.model_page, "ensure_resolved", lambda force=False: None)  # no bundled-model convert
    pp = w.project_page
    pp.create_button.click()
    assert "name" in pp.banner.text()
    pp.new_name.setText("support bot")
    pp.new_location.setText(str(tmp_path / "projects"))
    pp.create_button.click()
    assert w.session.project.root == (tmp_path / "projects" / "support bot").resolve()
    assert "support bot" in w.windowTitle()
    assert w.session.config.model.name_or_path == "default"  # a new project starts from the bundled model
    w.go_to(2, force=True)
    assert "Add a dataset" in w.data_page.validate()
    assert w.data_page.datasets_table.rowCount() == 0 and w.data_page.documents_table.rowCount() == 0


def test_cancel_during_training_then_resume(qtbot, window, home):
    w = window
    _to_data_checked(qtbot, w)
    w.next()
    _tiny(w, **{"training.max_steps": 10, "training.save_steps": 1000, "training.eval_steps": 0})
    w.next()
    tp = w.train_page
    seen = []
    with qtbot.waitSignal(tp.trainingFinished, timeout=TRAIN_TIMEOUT) as blocker:
        tp.start_training()
        qtbot.waitUntil(lambda: tp.metrics.points("loss") >= 1, timeout=TRAIN_TIMEOUT)
        tp.pause_button.click()
        assert tp.pause_button.text() == "Continue"  # the pause toggle, named apart from "Resume run"
        n = tp.metrics.points("loss")
        qtbot.wait(800)
        seen.append(tp.metrics.points("loss") - n)
        tp.stop_button.click()
        assert "checkpoint" in tp.status_label.text()
    assert blocker.args[0] == "cancelled"
    assert seen[0] <= 1  # paused: at most the step in flight finished
    run = w.train_page._run_dir
    stopped_at = tp.metrics.steps[-1]
    assert stopped_at < 10
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "cancelled"
    assert list((run / "checkpoints").glob("checkpoint-*")), "stop must save a checkpoint"
    assert tp.history.item(0, 1).text() == "cancelled"
    assert "stopped" in w.notice.text()

    # the app died while this run was 'running': the next start offers to resume it
    status.update(status="running", pid=2**22 + 4321)
    (run / "status.json").write_text(json.dumps(status))
    w.notice.clear()
    w._offer_resume()
    assert w.notice.isVisible() and "interrupted" in w.notice.text()
    with qtbot.waitSignal(tp.trainingFinished, timeout=TRAIN_TIMEOUT) as blocker:
        w._on_resume_accepted(run)
        assert w.current_index() == 4 and tp.is_busy()
    assert blocker.args[0] == "completed", tp.banner.text()
    assert tp.metrics.steps == [float(i) for i in range(1, 11)]  # continuous, no step twice
    assert json.loads((run / "status.json").read_text())["status"] == "completed"


def test_closing_during_training_asks_then_stops_cleanly(qtbot, window, monkeypatch):
    w = window
    _to_data_checked(qtbot, w)
    w.next()
    _tiny(w, **{"training.max_steps": 400, "training.save_steps": 1000, "training.eval_steps": 0})
    w.next()
    tp = w.train_page
    asked = []
    monkeypatch.setattr(w, "confirm_stop_training", lambda: asked.append(1) or True)
    tp.start_training()
    qtbot.waitUntil(lambda: tp.metrics.points("loss") >= 1, timeout=TRAIN_TIMEOUT)
    run = tp._run_dir
    assert w.close() is False  # not yet: the run stops first
    assert asked == [1]
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=TRAIN_TIMEOUT)
    assert json.loads((run / "status.json").read_text())["status"] == "cancelled"
    assert not tp.is_busy()


def test_screenshot_writes_every_page(qtbot, home, tiny_model_dir, tmp_path):
    from desktop.app import main

    out = tmp_path / "shots"
    assert main(["--screenshot", str(out), "--model", str(tiny_model_dir), "--screenshot-timeout", "90"]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["01-project.png", "02-model.png", "03-data-token-lengths.png", "03-data.png",
                     "04-configure.png", "05-train.png", "06-chat.png", "07-evaluate.png"]
    from PySide6.QtGui import QImage
    img = QImage(str(out / "03-data.png"))
    assert img.width() >= 1100 and img.height() >= 700


def test_likely_oom_start_asks_first(qtbot, window, monkeypatch):
    w = window
    w.go_to(3, force=True)
    cp = w.configure_page
    cp.form.set_value("data.max_length", 131072)
    cp.form.set_value("training.batch_size", 4096)
    cp.form.flush()
    assert cp.estimate.likely_oom and "Likely to run out of memory" in cp.warn_label.text()
    asked = []
    monkeypatch.setattr(w.train_page, "confirm_oom_start", lambda msg: asked.append(msg) or False)
    w.go_to(4, force=True)
    assert w.train_page.start_training() is False
    assert asked and "GB" in asked[0] and not w.train_page.is_busy()


def test_self_test_flag_opens_no_window(monkeypatch):
    import desktop.selftest
    from desktop.app import main

    monkeypatch.setattr(desktop.selftest, "run_self_test", lambda *a, **k: 7)
    from PySide6.QtWidgets import QApplication
    before = len(QApplication.topLevelWidgets())
    assert main(["--self-test"]) == 7
    assert len(QApplication.topLevelWidgets()) == before


def test_recent_projects_list_the_project_just_opened(qtbot, window, tmp_path):
    """The first start lists the sample at once, and opening another puts it first (was one step late)."""
    from backend.workspace import Project

    w = window
    recent = w.project_page.recent_list
    qtbot.waitUntil(lambda: recent.count() >= 1, timeout=5_000)
    first = recent.item(0).text()
    assert "sample" in str(first)
    other = Project.create(tmp_path / "other-project")
    assert w.open_project(other.root, resolve=False)
    qtbot.waitUntil(lambda: "other-project" in recent.item(0).text(),
                    timeout=5_000)


def test_unreadable_document_is_named_on_the_data_page_and_blocks_training_on_it(qtbot, window):
    """A binary notes.txt shows its problem where it was added; ticked "Train on text", it blocks Next."""
    w = window
    _to_data_checked(qtbot, w)
    page = w.data_page
    notes = w.session.project.documents_dir / "notes.txt"
    notes.write_bytes(b"\x00\x01binary\x00" * 64)
    w.session.data_changed()
    page.start_check()
    qtbot.waitUntil(lambda: w.session.data_report is not None and not page.is_busy(), timeout=60_000)
    texts = [page.problems_tree.topLevelItem(i).text(0) for i in range(page.problems_tree.topLevelItemCount())]
    assert any(t.startswith("notes.txt") for t in texts), texts
    assert page.validate() is None  # not trained on: reported, but the datasets can still train
    w.session.set_document_training(notes, True)
    w.data_page.start_check()
    qtbot.waitUntil(lambda: w.session.data_report is not None and not page.is_busy(), timeout=60_000)
    msg = page.validate()
    assert msg and "notes.txt" in msg and "can't be read" in msg


def test_a_new_project_with_a_small_fact_set_starts_from_the_facts_preset(qtbot, window, tmp_path, tiny_model_dir):
    # issue 18: "a preset (and the default when the dataset is that small)"
    w = window
    pp = w.project_page
    pp.new_name.setText("facts")
    pp.new_location.setText(str(tmp_path / "projects"))
    pp.create_button.click()
    w.go_to(1, force=True)
    w.session.set_model_source(str(tiny_model_dir))  # the tiny model (no bundled-model convert)
    w.model_page.ensure_resolved(force=True)
    qtbot.waitUntil(lambda: w.session.model_path is not None, timeout=60_000)
    w.go_to(2, force=True)
    sample = Path(__file__).resolve().parents[1] / "resources" / "sample_project" / "datasets" / "brisa_support.jsonl"
    w.data_page.add_files([sample], "dataset")
    cp = w.configure_page
    # the preset's rewordings make the Data page check again; the preset is then fitted to that check
    qtbot.waitUntil(lambda: w.session.data_report is not None and not w.data_page.is_busy()
                    and w.session.data_report.facts.rows > 130 and not w.data_page._recheck_timer.isActive(),
                    timeout=120_000)
    assert cp.preset_buttons["facts"].isChecked(), cp.preset_note.text()
    cfg = w.session.config
    assert cfg.data.validation_split == 0.0 and cfg.training.epochs >= 1 and cfg.training.max_steps == 0
    assert cfg.data.rewordings == 3 and not cfg.data.raft  # no documents: no passages
    facts = w.session.data_report.facts
    assert facts.written == 130 and facts.rows == 4 * 130 and w.session.active_preset == "facts"
    assert "facts (answers), each trained" in w.data_page.summary_label.text()  # exposures per fact
    saved = json.loads((w.session.project.root / "project.json").read_text())["settings"]
    assert saved["run_config"]["training"]["epochs"] == cfg.training.epochs and saved["preset"] == "facts"
    cp.apply_preset("quick")
    assert "Recommended for your 130 training rows: Learn the facts." in cp.preset_note.text()


def test_ticking_raft_after_the_facts_preset_fits_it_to_the_rows_with_passages(qtbot, window, tiny_model_dir):
    # issue 25: the preset is fitted after every option that changes the rows, as the CLI fits it
    from backend.cli import build_parser, train_config

    w = window
    _to_data_checked(qtbot, w)
    cp = w.configure_page

    def settled():
        dp = w.data_page
        return (w.session.data_report is not None and not dp.is_busy() and not dp._recheck_timer.isActive()
                and cp._fact_set() is not None)

    cp.apply_preset("facts")
    qtbot.waitUntil(lambda: settled() and w.session.config.data.rewordings == 3, timeout=120_000)
    qtbot.wait(500)
    qtbot.waitUntil(settled, timeout=240_000)
    short = w.session.config
    w.session.set_config(short.with_overrides({"data.raft": True}))  # the box ticked
    qtbot.waitUntil(lambda: w.data_page.is_busy() or w.data_page._recheck_timer.isActive(), timeout=10_000)
    qtbot.waitUntil(lambda: settled() and w.session.config.data.raft_closed_book, timeout=240_000)
    qtbot.wait(500)
    qtbot.waitUntil(settled, timeout=240_000)
    cfg = w.session.config
    assert w.session.active_preset == "facts" and cp.preset_buttons["facts"].isChecked()
    assert cfg.data.max_length > short.data.max_length and cfg.training.keep_best
    gui = w.session.run_config().to_dict()
    cli, _ = train_config(build_parser().parse_args(
        ["train", "--project", str(w.session.project.root), "--model", str(tiny_model_dir), "--preset", "facts",
         "--set", "data.raft=true"]))
    cli = cli.to_dict()
    for key in ("name",):
        gui.pop(key), cli.pop(key)
    assert gui["data"] == cli["data"] and gui["training"] == cli["training"] and gui["method"] == cli["method"]


def test_data_page_previews_the_sample_with_passages_when_raft_is_on(qtbot, window):
    # issue 18: RAFT rows "shown in the Data page's preview"; the check finds the project's index (and
    # indexes the documents first, as a run would) although the Configure page's config names no files
    w = window
    _to_data_checked(qtbot, w)
    w.session.set_config(w.session.config.with_overrides({"data.raft": True}))
    qtbot.waitUntil(lambda: w.data_page.is_busy(), timeout=10_000)
    qtbot.waitUntil(lambda: not w.data_page.is_busy() and w.session.data_report is not None, timeout=240_000)
    report = w.session.data_report
    assert not report.problems, [p.message for p in report.problems]
    text = w.data_page.preview_view.toPlainText()
    assert "Context:" in text and "Question:" in text, text[:500]
