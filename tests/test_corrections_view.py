"""Corrections in the desktop app: what an answer card saves, and the Corrections view (docs/architecture.md, "Corrections")."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from backend import corrections
from backend.workspace import Project

pytestmark = pytest.mark.usefixtures("qapp")


@pytest.fixture()
def project(tmp_path):
    return Project.create(tmp_path / "p", "p")


def _source(text="E4: the Wi-Fi password was rejected."):
    from backend.rag.index import Source

    return Source(file="troubleshooting.md", path="documents/troubleshooting.md", page=None, chunk=2,
                  text=text, score=0.81)


def test_the_chat_page_keeps_the_whole_correction(qtbot, project):
    """Wrong? Correct it: the model's answer, the mode, the run and the passages are kept with the right answer."""
    from backend.rag.chain import Answer
    from desktop.pages.chat import ChatPage, QtAnswer
    from desktop.session import Session

    s = Session()
    s.open_project(project.root)
    page = ChatPage(s)
    qtbot.addWidget(page)
    card = QtAnswer("What does error E4 mean?", "tuned+rag")
    qtbot.addWidget(card)
    card.run = "20261207-2100-run"
    card.correctionSaved.connect(page.save_correction)
    card.finish(Answer("What does error E4 mean?", "E4 means the battery is low.", "tuned+rag",
                       sources=[_source()]))
    card.feedback_button.click()
    assert not card.editor_box.isHidden() and card.editor.toPlainText() == "E4 means the battery is low."
    card.editor.setPlainText("E4 means the Wi-Fi password was rejected.")
    card.test_check.setChecked(True)
    card.save_button.click()
    assert page.banner.isHidden(), page.banner.text()
    c, = corrections.load(project)
    assert (c.question, c.rejected, c.chosen) == ("What does error E4 mean?", "E4 means the battery is low.",
                                                 "E4 means the Wi-Fi password was rejected.")
    assert c.mode == "tuned+rag" and c.run == "20261207-2100-run" and c.test and c.time
    assert c.passages == [{"file": "troubleshooting.md", "path": "documents/troubleshooting.md", "page": None,
                           "chunk": 2, "text": "E4: the Wi-Fi password was rejected."}]
    assert corrections.test_set_path(project).exists()
    # grounding withheld the model's words: those are what the correction rejects, not the quoted sentence
    card2 = QtAnswer("What does E5 mean?", "tuned+rag")
    qtbot.addWidget(card2)
    card2.correctionSaved.connect(page.save_correction)
    card2.finish(Answer("What does E5 mean?", "E5: the sensor is blocked.", "tuned+rag", quoted=True,
                        withheld="E5 means the fan is broken.", unsupported=["fan"]))
    card2.feedback_button.click()
    card2.editor.setPlainText("E5 means the sensor is blocked.")
    card2.save_button.click()
    assert corrections.load(project)[1].rejected == "E5 means the fan is broken."
    assert corrections.load(project)[1].run is None


def test_the_corrections_view_lists_edits_deletes_and_marks(qtbot, project, tmp_path):
    from desktop.corrections_view import COLUMNS, TEST_COLUMN, QtCorrections

    path = corrections.corrections_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "How long is the warranty?"},
                                             {"role": "assistant", "content": "Two years."}]}) + "\n"
                    + "not a correction\n")
    a = corrections.add(project, "What does error E4 mean?", "E4 means the Wi-Fi password was rejected.",
                        rejected="E4 means the battery is low.", mode="tuned+rag", run="20261207-2100-run",
                        passages=[_source()])
    dlg = QtCorrections(project)
    qtbot.addWidget(dlg)
    changes = []
    dlg.changed.connect(lambda: changes.append(1))
    t = dlg.table
    assert t.rowCount() == 2 and t.columnCount() == len(COLUMNS)
    assert t.item(0, 1).text() == "(not kept)" and t.item(1, 1).text() == "E4 means the battery is low."
    assert t.item(1, 3).text() == "tuned + documents" and t.item(1, 4).text() == "20261207-2100-run"
    assert "2</b> correction(s)" in dlg.summary.text() and "<b>1</b> keep the model's wrong answer" in dlg.summary.text()
    # the line that is not a correction is named, and left in the file
    assert not dlg.banner.isHidden() and "feedback.jsonl:2" in dlg.banner.text()

    # the editor shows the selected one with its passages
    t.selectRow(1)
    assert dlg.chosen_edit.toPlainText() == "E4 means the Wi-Fi password was rejected."
    assert "troubleshooting.md" in dlg.passages_view.toPlainText() and "E4:" in dlg.passages_view.toPlainText()
    assert "Tested as:" in dlg.test_label.text()
    dlg.chosen_edit.setPlainText("E4: the Wi-Fi password was rejected; type it again.")
    assert dlg.save_selected() and changes
    assert corrections.find(project, a.id).chosen == "E4: the Wi-Fi password was rejected; type it again."

    # an empty answer is refused in the view's banner, the file unchanged
    dlg.table.selectRow(1)
    dlg.chosen_edit.setPlainText(" ")
    assert not dlg.save_selected()
    assert "cannot be empty" in dlg.banner.text()

    # the test-set tick in the table writes the reworded question to evalsets/corrections.jsonl
    dlg.table.item(1, TEST_COLUMN).setCheckState(Qt.CheckState.Checked)
    assert corrections.find(project, a.id).test
    row = json.loads(corrections.test_set_path(project).read_text())
    assert row["answer"].startswith("E4: the Wi-Fi") and row["question"] != "What does error E4 mean?"

    # delete the old row: the other correction and the unreadable line stay
    dlg.table.selectRow(0)
    assert dlg.delete_selected(confirm=False)
    assert [c.id for c in corrections.load(project, [])] == [a.id]
    assert "not a correction" in path.read_text()
    assert dlg.table.rowCount() == 1

    dlg.resize(1000, 640)
    shot = tmp_path / "corrections.png"
    assert dlg.grab().save(str(shot)) and shot.stat().st_size > 0
