"""The Corrections view: every correction of the project as a set — list, edit, delete, mark for the test set.

A dialog opened from the Chat and Evaluate pages ("Corrections…").  It reads and
writes only through :mod:`backend.corrections` (docs/architecture.md,
"Corrections"); reading the file is cheap (no model), so it runs on the GUI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDialog, QFormLayout, QHBoxLayout, QHeaderView,
                               QLabel, QMessageBox, QPlainTextEdit, QPushButton, QSplitter, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from backend import corrections, records
from backend.confine import printable
from backend.errors import TuneError
from desktop.style import mono_font
from desktop.widgets import Banner, muted

COLUMNS = ("Question", "Model's answer", "Expert's answer", "Mode", "Run", "Test set", "Saved")
HEADER_TIPS = ("What was asked", "What the model answered: the rejected answer of a preference pair",
               "What it should have answered: trained on, and the chosen answer of a preference pair",
               "Which model answered, with or without the documents", "The run whose adapter answered",
               "Also test it: a reworded copy of the question goes into the test set 'corrections'",
               "When the correction was saved")
TEST_COLUMN = COLUMNS.index("Test set")
MODE_WORDS = {"tuned+rag": "tuned + documents", "tuned": "tuned", "base+rag": "base + documents", "base": "base"}


def _one_line(text: str, limit: int = 90) -> str:
    t = " ".join(text.split())
    return t if len(t) <= limit else t[: limit - 1] + "…"


def _when(t: float | None) -> str:
    return time.strftime("%b %d %H:%M", time.localtime(t)) if t else ""


class QtCorrections(QDialog):
    """The project's corrections (:class:`backend.corrections.Correction`) in a table, with an editor below."""

    changed = Signal()  # a correction was edited, deleted or (un)marked: the datasets changed

    def __init__(self, project, parent: QWidget | None = None):
        super().__init__(parent)
        self.project = project
        self.setWindowTitle(f"Corrections — {project.name}")
        self.resize(980, 640)
        self.items: list[corrections.Correction] = []
        self.skipped: list[records.Skipped] = []
        self.banner = Banner()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for i, tip in enumerate(HEADER_TIPS):
            self.table.horizontalHeaderItem(i).setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        head = self.table.horizontalHeader()
        for i in range(3):
            head.setSectionResizeMode(i, QHeaderView.ResizeMode.Stretch)
        for i in range(3, len(COLUMNS)):
            head.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.table.itemChanged.connect(self._on_item_changed)

        # -- the editor of the selected correction
        self.question_edit = QPlainTextEdit()
        self.question_edit.setMaximumHeight(52)
        self.chosen_edit = QPlainTextEdit()
        self.chosen_edit.setPlaceholderText("The answer the model should have given…")
        self.chosen_edit.setMaximumHeight(80)
        self.rejected_view = QPlainTextEdit()
        self.rejected_view.setReadOnly(True)
        self.rejected_view.setMaximumHeight(64)
        self.passages_view = QPlainTextEdit()
        self.passages_view.setReadOnly(True)
        self.passages_view.setFont(mono_font())
        self.test_check = QCheckBox("Also add to the test set (a reworded question, in the test set 'corrections')")
        self.test_label = muted("")
        self.test_label.setWordWrap(True)
        self.test_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Question:", self.question_edit)
        form.addRow("Expert's answer:", self.chosen_edit)
        form.addRow("Model's answer:", self.rejected_view)
        form.addRow("", self.test_check)
        form.addRow("", self.test_label)
        form.addRow("Passages shown:", self.passages_view)
        self.save_button = QPushButton("Save changes")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.accept)
        buttons = QHBoxLayout()
        buttons.addWidget(self.delete_button)
        buttons.addStretch(1)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.close_button)
        editor = QWidget()
        el = QVBoxLayout(editor)
        el.setContentsMargins(0, 0, 0, 0)
        el.addLayout(form)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(editor)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([330, 260])
        lay = QVBoxLayout(self)
        lay.addWidget(self.banner)
        lay.addWidget(self.summary)
        lay.addWidget(split, 1)
        lay.addLayout(buttons)
        self.reload()

    # -- reading -------------------------------------------------------------------------------
    def reload(self, select_id: str | None = None) -> None:
        """Read the corrections again; the lines that are not corrections are named in the banner."""
        self.skipped = []
        try:
            self.items = corrections.load(self.project, self.skipped)
        except OSError as e:
            self.items = []
            self.banner.show_message("error", f"The corrections could not be read: {e.strerror or e}",
                                     str(corrections.corrections_path(self.project)))
        else:
            if self.skipped:
                self.banner.show_message(
                    "warning", f"{len(self.skipped)} line(s) of datasets/{corrections.FEEDBACK_FILE} are not "
                               "corrections and are not shown (they are kept in the file)",
                    records.summary(self.skipped))
            else:
                self.banner.clear()
        pairs = sum(c.is_pair for c in self.items)
        tests = sum(c.test for c in self.items)
        self.summary.setText(
            f"<b>{len(self.items)}</b> correction(s) in datasets/{corrections.FEEDBACK_FILE}: every one trains "
            f"the next run; <b>{pairs}</b> keep the model's wrong answer (preference pairs); <b>{tests}</b> also "
            "in the test set." if self.items else
            "No corrections yet. Press “Wrong? Correct it” under an answer on the Chat or Evaluate page.")
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.items))
        for r, c in enumerate(self.items):
            cells = (_one_line(c.question), _one_line(c.rejected) if c.rejected else "(not kept)",
                     _one_line(c.chosen), MODE_WORDS.get(c.mode, c.mode), c.run or "", None, _when(c.time))
            for col, value in enumerate(cells):
                if col == TEST_COLUMN:
                    item = QTableWidgetItem("")
                    item.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
                                  | Qt.ItemFlag.ItemIsSelectable)
                    item.setCheckState(Qt.CheckState.Checked if c.test else Qt.CheckState.Unchecked)
                    item.setToolTip("Also test it: a reworded copy of the question goes into the test set")
                else:
                    item = QTableWidgetItem(printable(value))
                    if col < 3:
                        full = {0: c.question, 1: c.rejected, 2: c.chosen}[col]
                        item.setToolTip(full)
                if col == 1 and not c.rejected:
                    item.setForeground(Qt.GlobalColor.gray)
                self.table.setItem(r, col, item)
        self.table.blockSignals(False)
        row = next((i for i, c in enumerate(self.items) if c.id == select_id), 0 if self.items else -1)
        if row >= 0:
            self.table.selectRow(row)
        self._on_selection_changed()

    def selected(self) -> corrections.Correction | None:
        """The correction in the editor."""
        rows = self.table.selectionModel().selectedRows()
        r = rows[0].row() if rows else -1
        return self.items[r] if 0 <= r < len(self.items) else None

    def _on_selection_changed(self) -> None:
        c = self.selected()
        for w in (self.question_edit, self.chosen_edit, self.test_check, self.save_button, self.delete_button):
            w.setEnabled(c is not None)
        if c is None:
            for w in (self.question_edit, self.chosen_edit, self.rejected_view, self.passages_view):
                w.setPlainText("")
            self.test_check.setChecked(False)
            self.test_label.setText("")
            return
        self.question_edit.setPlainText(c.question)
        self.chosen_edit.setPlainText(c.chosen)
        self.rejected_view.setPlainText(c.rejected or "(not kept: saved before corrections kept the model's answer)")
        self.test_check.setChecked(c.test)
        self.test_label.setText(f"Tested as: “{corrections.test_question(c.question)}”")
        self.passages_view.setPlainText("\n\n".join(
            f"[{i + 1}] {p.get('file') or p.get('path')}"
            f"{' p.' + str(p['page']) if p.get('page') is not None else ''}\n{p.get('text', '')}"
            for i, p in enumerate(c.passages)) or "(none: answered without the documents, or not kept)")

    # -- writing -------------------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs) -> bool:
        try:
            fn(self.project, *args, **kwargs)
        except (OSError, TuneError) as e:  # TuneError: a link planted in the project, an empty answer
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.banner.show_message("error", f"Could not change the corrections: {why}",
                                     str(corrections.corrections_path(self.project)))
            return False
        self.changed.emit()
        return True

    def save_selected(self) -> bool:
        """Save the editor's question, answer and test mark to the selected correction."""
        c = self.selected()
        if c is None:
            return False
        if not self._apply(corrections.update, c.id, chosen=self.chosen_edit.toPlainText(),
                           question=self.question_edit.toPlainText(), test=self.test_check.isChecked()):
            return False
        # a legacy row gets an id of its own when edited: select it by its line
        fresh = corrections.load(self.project)
        new_id = next((x.id for x in fresh if x.line == c.line), c.id)
        self.reload(new_id)
        return True

    def delete_selected(self, confirm: bool = True) -> bool:
        """Delete the selected correction (after asking, unless ``confirm`` is false)."""
        c = self.selected()
        if c is None:
            return False
        if confirm and QMessageBox.question(
                self, "Delete the correction?",
                f"Delete the correction of “{_one_line(c.question, 80)}”? The next run will not train on it."
        ) != QMessageBox.StandardButton.Yes:
            return False
        if not self._apply(corrections.delete, c.id):
            return False
        self.reload()
        return True

    def set_test(self, row: int, on: bool) -> bool:
        """Mark or unmark a correction for the test set."""
        if not 0 <= row < len(self.items):
            return False
        c = self.items[row]
        ok = self._apply(corrections.update, c.id, test=on)
        fresh = corrections.load(self.project) if ok else []
        self.reload(next((x.id for x in fresh if x.line == c.line), c.id))
        return ok

    def _on_save_clicked(self) -> None:
        self.save_selected()

    def _on_delete_clicked(self) -> None:
        self.delete_selected()

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == TEST_COLUMN:
            self.set_test(item.row(), item.checkState() == Qt.CheckState.Checked)


def open_corrections(project, parent: QWidget | None = None, on_changed=None) -> QtCorrections | None:
    """Show the Corrections view of ``project`` (modal); ``on_changed`` is called after an edit."""
    if project is None:
        return None
    dlg = QtCorrections(project, parent)
    if on_changed is not None:
        dlg.changed.connect(on_changed)
    dlg.exec()
    return dlg


def corrections_count(project) -> int:
    """How many corrections the project has (0 when the file cannot be read)."""
    if project is None or not Path(corrections.corrections_path(project)).exists():
        return 0
    try:
        return len(corrections.load(project, []))
    except OSError:
        return 0
