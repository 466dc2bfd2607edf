"""Page 7: Evaluate — build a test set, score a run in the four modes, see what tuning improved or broke.

Everything slow (drafting questions with a teacher model, reading the validation
split, answering every question in four modes, writing the report) runs as a
:class:`~desktop.workers.Job`; the page reads saved reports (``<run>/eval/<set>.json``)
directly, so a result reopens at once.  User text (questions, answers, passages)
is shown as plain text, never as markup.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QCheckBox, QComboBox, QFileDialog, QFrame,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
                               QSizePolicy, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem, QTabWidget,
                               QTextBrowser, QVBoxLayout, QWidget)

from backend import corrections
from backend import events as ev
from backend import records
from backend import runs as run_folder
from backend.errors import TuneError
from backend.rag.settings import describe_settings
from desktop.eval_adapter import (FILTERS, METRICS, MODE_SHORT, MODES, STATE_RIGHT, DraftRow, EvalEngine,
                                  cell_state, filter_counts, filter_questions, fmt_interval,
                                  forgetting_text, loss_text, overlap_notes, read_rows, report_dict, to_answer,
                                  verdict_text)
from desktop.corrections_view import open_corrections
from desktop.eval_widgets import STATE_STYLE, QtQuestionTable, QtScoreBars, QtScorecard
from desktop.pages.chat import QtAnswer, show_passage
from desktop.runs import list_runs
from desktop.session import Session
from desktop.style import mono_font
from desktop.widgets import COLORS, Page, fmt_duration, muted
from desktop.workers import Job

LONG_EVALUATION_S = 3600  # longer than this: asked first (a 200,000-question set is weeks, not a click)
REVIEW_STATES = {"accepted": ("#dff3e4", "#1c4d2b", "✓ accepted"), "rejected": ("#fbe3e1", "#6b1d15", "✕ rejected"),
                 "review": ("#fdf0d5", "#5c3f06", "? to review")}
STATE_EDGE = {"right": "#2e8b4a", "wrong": "#c0392b", "abstained": "#c98a12", "missing": "#d5dae1"}
CARD_CELLS = {"tuned+rag": (0, 0), "base+rag": (0, 1), "tuned": (1, 0), "base": (1, 1)}
ORIGINS = {"file": "file", "validation": "validation", "documents": "documents"}
ORIGIN_TIPS = {"file": "From a questions file", "validation": "Held out from the run's validation split",
               "documents": "Drafted from the documents by the teacher model"}


def _plain_label(text: str = "", *, bold: bool = False) -> QLabel:
    """A wrapping label that shows ``text`` literally (user text is never markup)."""
    lab = QLabel()
    lab.setTextFormat(Qt.TextFormat.PlainText)
    lab.setWordWrap(True)
    lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    if bold:
        f = lab.font()
        f.setBold(True)
        lab.setFont(f)
    lab.setText(text)
    return lab


class _Note(QLabel):
    """A coloured one-paragraph note (the loss and forgetting lines)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.kind = "info"
        self.show_note("info", "")

    def show_note(self, kind: str, text: str) -> None:
        bg, border, fg = COLORS[kind]
        self.kind = kind
        self.setStyleSheet(f"QLabel {{ background: {bg}; border: 1px solid {border}; border-radius: 4px; "
                           f"color: {fg}; padding: 6px 10px; }}")
        self.setText(text)


class EvaluatePage(Page):
    """Score a finished run on a test set in the four modes and explore the answers."""

    title = "Evaluate"
    subtitle = ("Is the tuned model better on your subject? Build a test set, answer every question in four modes "
                "(base and tuned, with and without your documents), and see with 95% intervals what tuning "
                "improved or broke.")

    evaluationFinished = Signal(str)   # 'completed' | 'cancelled' | 'failed'

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.engine = EvalEngine(session.model_host)
        self._job: Job | None = None
        self._job_kind = ""
        self.report: dict | None = None
        self.report_source = ""            # 'saved' | 'new'
        self.draft_rows: list[DraftRow] = []
        self.compare_cards: list[dict] = []
        self._filling_review = False
        self._file_read = Path()
        self._t0 = 0.0

        # -- top bar: run, test set, evaluate -------------------------------------------------
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(240)
        self.run_combo.setToolTip("The finished training run whose adapter is the tuned model")
        self.run_combo.currentIndexChanged.connect(self._on_selection_changed)
        self.evalset_combo = QComboBox()
        self.evalset_combo.setMinimumWidth(160)
        self.evalset_combo.setToolTip("A test set saved in the project's evalsets/ folder (build one on the "
                                      "Test set tab)")
        self.evalset_combo.currentIndexChanged.connect(self._on_selection_changed)
        self.forgetting_check = QCheckBox("Forgetting check")
        self.forgetting_check.setToolTip("Also ask ~50 general questions (shipped with Tune Studio) to base and "
                                         "tuned, and say if tuning made general answers worse")
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(8, 2048)
        self.max_tokens.setValue(128)
        self.max_tokens.setSuffix(" tokens")
        self.max_tokens.setToolTip("Longest answer. Answers are greedy (no sampling), so base and tuned differ "
                                   "only by the adapter; shorter is faster.")
        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setObjectName("Primary")
        self.evaluate_button.setToolTip("Answer every question in the four modes (one model load); saved in "
                                        "the run folder")
        self.evaluate_button.clicked.connect(self._on_evaluate_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.export_button = QPushButton("Export report…")
        self.export_button.setToolTip("One self-contained HTML file: configuration, data, curves, scorecard "
                                      "and answers; opens offline")
        self.export_button.clicked.connect(self._on_export_clicked)
        top = QHBoxLayout()
        top.addWidget(QLabel("Run:"))
        top.addWidget(self.run_combo, 3)
        top.addSpacing(10)
        top.addWidget(QLabel("Test set:"))
        top.addWidget(self.evalset_combo, 2)
        top.addSpacing(10)
        top.addWidget(self.evaluate_button)
        top.addWidget(self.stop_button)
        top.addWidget(self.export_button)
        self.body.addLayout(top)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Answers up to"))
        opts.addWidget(self.max_tokens)
        opts.addSpacing(12)
        opts.addWidget(self.forgetting_check)
        opts.addSpacing(16)
        self.corrections_button = QPushButton("Corrections…")
        self.corrections_button.setToolTip("The answers corrected on this page and on the Chat page: "
                                           "see, edit, delete, mark for the test set")
        self.corrections_button.clicked.connect(self._on_corrections_clicked)
        opts.addStretch(1)
        opts.addWidget(self.corrections_button)
        self.body.addLayout(opts)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = muted("")
        self.status.setWordWrap(False)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setMinimumWidth(50)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        opts.addWidget(self.status, 1)
        self.body.addWidget(self.progress)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_scorecard_tab(), "Scorecard")
        self.tabs.addTab(self._build_questions_tab(), "Questions")
        self.tabs.addTab(self._build_testset_tab(), "Test set")
        self.tabs.addTab(self._build_compare_tab(), "Compare runs")
        self.body.addWidget(self.tabs, 1)

        session.events.project.connect(self._on_project)
        session.events.run.connect(lambda _run: self.refresh_choices())
        self.refresh_choices()
        self._update_controls()

    # -- tabs ------------------------------------------------------------------------------------
    def _build_scorecard_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(8, 10, 8, 8)
        self.summary_label = _plain_label("")
        self.summary_label.setObjectName("SectionTitle")
        self.empty_label = muted("")
        self.scorecard = QtScorecard()
        self.bars = QtScoreBars()
        self.loss_note = _Note()
        self.forgetting_note = _Note()
        self.verdict_note = _Note()
        left = QVBoxLayout()
        left.setContentsMargins(0, 0, 0, 0)
        left.addWidget(self.scorecard)
        left.addWidget(self.verdict_note)
        left.addWidget(self.loss_note)
        left.addWidget(self.forgetting_note)
        left.addStretch(1)
        lw = QWidget()
        lw.setLayout(left)
        lw.setMinimumWidth(640)
        self.score_content = QSplitter(Qt.Orientation.Horizontal)
        self.score_content.addWidget(lw)
        self.score_content.addWidget(self.bars)
        self.score_content.setStretchFactor(0, 3)
        self.score_content.setStretchFactor(1, 2)
        self.score_content.setChildrenCollapsible(False)
        self.score_content.setSizes([660, 440])
        self.bars.setMinimumWidth(340)
        lay.addWidget(self.summary_label)
        lay.addWidget(self.empty_label)
        lay.addWidget(self.score_content, 1)
        return w

    def _build_questions_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(8, 10, 8, 8)
        frow = QHBoxLayout()
        frow.setSpacing(4)
        frow.addWidget(QLabel("Show:"))
        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        self.filter_buttons: dict[str, QPushButton] = {}
        for key, label in FILTERS:
            b = QPushButton(label)
            b.setCheckable(True)
            b.setProperty("filter", key)
            b.setToolTip({"all": "Every question",
                          "improved": "Base wrong, tuned right (with or without documents)",
                          "regressed": "Base right, tuned wrong: what tuning broke",
                          "rag_fixed": "Wrong without documents, right with them",
                          "still_wrong": "Wrong in all four modes"}[key])
            self.filter_group.addButton(b)
            self.filter_buttons[key] = b
            frow.addWidget(b)
        self.filter_buttons["all"].setChecked(True)
        self.filter_group.buttonClicked.connect(lambda _b: self._apply_filter())
        frow.addStretch(1)
        legend = QLabel(" ".join(f"<span style='background:{bg};color:{fg}'>&nbsp;{html.escape(word)}&nbsp;</span>"
                                 for bg, fg, word in (STATE_STYLE[s] for s in ("right", "wrong", "abstained"))))
        frow.addWidget(legend)
        lay.addLayout(frow)

        self.question_table = QtQuestionTable()
        self.question_table.questionSelected.connect(self.show_question)

        detail = QWidget()
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 6, 0, 0)
        self.detail_question = _plain_label("Click a question to see the four answers side by side.", bold=True)
        self.detail_expected = _plain_label("")
        self.detail_expected.setObjectName("Muted")
        self.cards_box = QWidget()
        # 2 x 2: with documents on top, without below; tuned left, base right (compare along a row)
        self.cards_layout = QGridLayout(self.cards_box)
        self.cards_layout.setContentsMargins(0, 0, 0, 0)
        self.cards_layout.setSpacing(8)
        self.cards_layout.setColumnStretch(0, 1)
        self.cards_layout.setColumnStretch(1, 1)
        self.cards: dict[str, QtAnswer] = {}
        cards_scroll = QScrollArea()
        cards_scroll.setWidgetResizable(True)
        cards_scroll.setFrameShape(QFrame.Shape.NoFrame)
        cards_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        cards_scroll.setWidget(self.cards_box)
        src_box = QGroupBox("Source passage")
        self.source_title = _plain_label("Click a source under an answer.")
        self.source_view = QTextBrowser()  # the evidence sentences highlighted, as on the Chat page
        self.source_view.setFont(mono_font())
        sl = QVBoxLayout(src_box)
        sl.addWidget(self.source_title)
        sl.addWidget(self.source_view, 1)
        src_box.setMinimumWidth(240)
        cards_scroll.setMinimumWidth(560)
        answers_split = QSplitter(Qt.Orientation.Horizontal)
        answers_split.addWidget(cards_scroll)
        answers_split.addWidget(src_box)
        answers_split.setStretchFactor(0, 3)
        answers_split.setStretchFactor(1, 1)
        answers_split.setChildrenCollapsible(False)
        answers_split.setSizes([800, 280])
        dl.addWidget(self.detail_question)
        dl.addWidget(self.detail_expected)
        dl.addWidget(answers_split, 1)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.question_table)
        split.addWidget(detail)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setChildrenCollapsible(False)
        split.setSizes([200, 400])
        lay.addWidget(split, 1)
        return w

    def _build_testset_tab(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(8, 10, 8, 8)
        intro = muted("Mix questions from three places, check them here, then save them as a test set of the "
                      "project (evalsets/<name>.jsonl). Double-click a question or answer to edit it.")
        lay.addWidget(intro)
        src = QHBoxLayout()
        self.file_button = QPushButton("From a file…")
        self.file_button.setToolTip("A JSONL or CSV file with 'question' and 'answer' and/or 'keywords' "
                                    "(optional 'source')")
        self.file_button.clicked.connect(self._on_file_clicked)
        self.validation_button = QPushButton("Held out from the run's validation rows")
        self.validation_button.setToolTip("The selected run's validation split (rows it never trained on) as "
                                          "question → reference answer")
        self.validation_button.clicked.connect(self._on_validation_clicked)
        self.validation_limit = QSpinBox()
        self.validation_limit.setRange(1, 1000)
        self.validation_limit.setValue(50)
        self.validation_limit.setPrefix("up to ")
        self.draft_button = QPushButton("Draft from the documents")
        self.draft_button.setToolTip("A local teacher model writes questions and reference answers from "
                                     "document passages; review each one before saving")
        self.draft_button.clicked.connect(self._on_draft_clicked)
        self.draft_count = QSpinBox()
        self.draft_count.setRange(1, 500)
        self.draft_count.setValue(20)
        self.draft_count.setSuffix(" questions")
        self.teacher_edit = QLineEdit()
        self.teacher_edit.setPlaceholderText("bundled model")
        self.teacher_edit.setToolTip("Any local model folder or .gguf file; empty: the bundled default model")
        self.teacher_edit.setMaximumWidth(200)
        teacher_browse = QPushButton("…")
        teacher_browse.setToolTip("Choose a local model folder as the teacher")
        teacher_browse.setFixedWidth(28)
        teacher_browse.clicked.connect(self._on_teacher_browse_clicked)
        for wd in (self.file_button, self.validation_button, self.validation_limit):
            src.addWidget(wd)
        src.addSpacing(14)
        for wd in (self.draft_button, self.draft_count, QLabel("Teacher:"), self.teacher_edit, teacher_browse):
            src.addWidget(wd)
        src.addStretch(1)
        lay.addLayout(src)

        self.review_table = QTableWidget(0, 6)
        self.review_table.setHorizontalHeaderLabels(["Review", "Question", "Reference answer", "Source",
                                                     "From", "Note"])
        self.review_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.review_table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                          | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.review_table.verticalHeader().setVisible(False)
        self.review_table.setWordWrap(False)
        h = self.review_table.horizontalHeader()
        h.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        h.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for c, width in ((0, 90), (3, 130), (4, 86), (5, 120)):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.Interactive)
            self.review_table.setColumnWidth(c, width)
        self.review_table.itemChanged.connect(self._on_review_item_changed)
        self.review_table.itemSelectionChanged.connect(self._on_review_selection_changed)

        passage_box = QGroupBox("Selected row")
        self.row_question = _plain_label("", bold=True)
        self.row_answer = _plain_label("")
        self.passage_title = _plain_label("Select a row to read it whole, with its source passage.")
        self.passage_view = QPlainTextEdit()
        self.passage_view.setReadOnly(True)
        self.passage_view.setFont(mono_font())
        pl = QVBoxLayout(passage_box)
        pl.addWidget(self.row_question)
        pl.addWidget(self.row_answer)
        pl.addWidget(self.passage_title)
        pl.addWidget(self.passage_view, 1)
        passage_box.setMinimumWidth(260)
        self.review_table.setMinimumWidth(620)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.review_table)
        split.addWidget(passage_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([780, 300])
        lay.addWidget(split, 1)

        self.overlap_note = _Note()
        self.overlap_note.hide()
        lay.addWidget(self.overlap_note)
        bottom = QHBoxLayout()
        self.accept_button = QPushButton("Accept")
        self.accept_button.setToolTip("Keep the selected rows in the test set")
        self.accept_button.clicked.connect(lambda: self.set_review_state(self._selected_review_rows(), "accepted"))
        self.reject_button = QPushButton("Reject")
        self.reject_button.setToolTip("Leave the selected rows out of the test set")
        self.reject_button.clicked.connect(lambda: self.set_review_state(self._selected_review_rows(), "rejected"))
        self.clear_rows_button = QPushButton("Clear")
        self.clear_rows_button.setToolTip("Empty the table (saved test sets are kept)")
        self.clear_rows_button.clicked.connect(self.clear_review)
        self.review_count = muted("")
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("test set name")
        self.name_edit.setMaximumWidth(220)
        self.save_button = QPushButton("Save test set")
        self.save_button.setObjectName("Primary")
        self.save_button.clicked.connect(self._on_save_clicked)
        for wd in (self.accept_button, self.reject_button, self.clear_rows_button):
            bottom.addWidget(wd)
        bottom.addWidget(self.review_count, 1)
        bottom.addWidget(QLabel("Name:"))
        bottom.addWidget(self.name_edit)
        bottom.addWidget(self.save_button)
        lay.addLayout(bottom)
        return w

    def _build_compare_tab(self) -> QWidget:
        w = QWidget()
        lay = QHBoxLayout(w)
        lay.setContentsMargins(8, 10, 8, 8)
        left = QVBoxLayout()
        left.addWidget(muted("Tick two or more runs; their saved results on the test set chosen above are put "
                             "side by side."))
        self.compare_list = QListWidget()
        self.compare_list.itemChanged.connect(lambda _i: self._update_controls())
        self.compare_button = QPushButton("Compare")
        self.compare_button.setObjectName("Primary")
        self.compare_button.clicked.connect(self.compare)
        left.addWidget(self.compare_list, 1)
        cb = QHBoxLayout()
        cb.addStretch(1)
        cb.addWidget(self.compare_button)
        left.addLayout(cb)
        lw = QWidget()
        lw.setLayout(left)
        lw.setMaximumWidth(340)
        right = QVBoxLayout()
        mrow = QHBoxLayout()
        mrow.addWidget(QLabel("Mode:"))
        self.compare_mode = QComboBox()
        for m in MODES:
            self.compare_mode.addItem(MODE_SHORT[m], m)
        self.compare_mode.currentIndexChanged.connect(lambda _i: self._fill_compare())
        mrow.addWidget(self.compare_mode)
        mrow.addStretch(1)
        right.addLayout(mrow)
        self.compare_table = QTableWidget(0, 0)
        self.compare_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.compare_table.setWordWrap(True)
        self.compare_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.compare_table.verticalHeader().setMinimumWidth(180)
        right.addWidget(self.compare_table, 1)
        self.compare_note = muted("")
        right.addWidget(self.compare_note)
        lay.addWidget(lw)
        lay.addLayout(right, 1)
        return w

    # -- Page API ----------------------------------------------------------------------------------
    def is_busy(self) -> bool:
        return self._job is not None and self._job.is_running()

    def on_enter(self) -> None:
        self.refresh_choices()
        if self.report is None:
            self.load_saved_report()
        if self.report is not None:
            return
        if self.evalset_combo.count() == 0 and self.tabs.currentIndex() == 0:
            self.tabs.setCurrentIndex(2)

    def shutdown(self) -> None:
        """Stop the page's job (the window is closing)."""
        if self.is_busy():
            self._job.stop()
            self._job.wait(30_000)
        self.engine.release()

    # -- runs and test sets ------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """Reload the finished runs and the project's test sets into the combos."""
        s = self.session
        runs = [r for r in list_runs(s.project.root) if r.has_chat_model] if s.project else []
        keep_run = self.run_combo.currentData() or (str(s.run_dir) if s.run_dir else None)
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in runs:
            self.run_combo.addItem(f"{r.name} · {r.when}", str(r.run_dir))
            self.run_combo.setItemData(self.run_combo.count() - 1, str(r.run_dir), Qt.ItemDataRole.ToolTipRole)
        if not runs:
            self.run_combo.addItem("No finished run yet: train one first", None)
        i = self.run_combo.findData(keep_run) if keep_run else -1
        self.run_combo.setCurrentIndex(max(0, i))
        self.run_combo.blockSignals(False)

        names = self._evalset_names()
        keep_set = self.evalset_combo.currentData()
        self.evalset_combo.blockSignals(True)
        self.evalset_combo.clear()
        for n in names:
            self.evalset_combo.addItem(n, n)
        i = self.evalset_combo.findData(keep_set) if keep_set else -1
        self.evalset_combo.setCurrentIndex(max(0, i) if names else -1)
        self.evalset_combo.blockSignals(False)

        checked = {self.compare_list.item(i).data(Qt.ItemDataRole.UserRole)
                   for i in range(self.compare_list.count())
                   if self.compare_list.item(i).checkState() == Qt.CheckState.Checked}
        self.compare_list.blockSignals(True)
        self.compare_list.clear()
        for r in runs:
            it = QListWidgetItem(f"{r.name}  ({r.when})")
            it.setData(Qt.ItemDataRole.UserRole, str(r.run_dir))
            it.setFlags(it.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            it.setCheckState(Qt.CheckState.Checked if str(r.run_dir) in checked else Qt.CheckState.Unchecked)
            self.compare_list.addItem(it)
        self.compare_list.blockSignals(False)
        self._update_controls()

    def _evalset_names(self) -> list[str]:
        if self.session.project is None:
            return []
        from backend.evalsets import list_evalsets
        try:
            return list(list_evalsets(self.session.project))
        except OSError:
            return []

    def selected_run(self) -> Path | None:
        """The run to evaluate."""
        d = self.run_combo.currentData()
        return Path(d) if d else None

    def selected_evalset(self) -> str | None:
        """The test set's name."""
        return self.evalset_combo.currentData() or None

    def select(self, run_dir: Path | None = None, evalset: str | None = None) -> None:
        """Choose a run and / or a test set in the combos (loads a saved result)."""
        self.refresh_choices()
        if run_dir is not None:
            self.run_combo.setCurrentIndex(max(0, self.run_combo.findData(str(run_dir))))
        if evalset is not None:
            self.evalset_combo.setCurrentIndex(max(0, self.evalset_combo.findData(evalset)))
        self.load_saved_report()

    def _on_selection_changed(self, _i: int) -> None:
        if not self.is_busy():
            self.load_saved_report()
        self._update_controls()

    def _on_project(self, _project) -> None:
        if self.is_busy():
            self.shutdown()
        self.engine.release()
        self.clear_review()
        self.compare_cards = []
        self._fill_compare()
        self.refresh_choices()
        self.load_saved_report()

    def _update_controls(self) -> None:
        busy = self.is_busy()
        has_project = self.session.project is not None
        run, evalset = self.selected_run(), self.selected_evalset()
        self.evaluate_button.setEnabled(not busy and run is not None and evalset is not None)
        if run is None:
            self.evaluate_button.setToolTip("Train a run first (Train page)")
        elif evalset is None:
            self.evaluate_button.setToolTip("Build and save a test set first (Test set tab)")
        else:
            self.evaluate_button.setToolTip("Answer every question in the four modes (one model load); saved "
                                            "in the run folder")
        self.stop_button.setEnabled(busy)
        self.export_button.setEnabled(not busy and run is not None)
        for wd in (self.run_combo, self.evalset_combo, self.forgetting_check, self.max_tokens, self.file_button,
                   self.draft_button, self.save_button):
            wd.setEnabled(not busy and has_project)
        self.validation_button.setEnabled(not busy and run is not None)
        n_checked = sum(self.compare_list.item(i).checkState() == Qt.CheckState.Checked
                        for i in range(self.compare_list.count()))
        self.compare_button.setEnabled(not busy and evalset is not None and n_checked >= 2)

    # -- saved results ---------------------------------------------------------------------------------
    def load_saved_report(self) -> bool:
        """Show the saved result of the selected run on the selected test set, if there is one."""
        run, name = self.selected_run(), self.selected_evalset()
        rep = None
        if run is not None and name:
            from backend.rag.evaluate import load_report
            try:
                loaded = load_report(run, name)
                rep = report_dict(loaded)
            except Exception as e:  # a damaged file: say so, keep the page usable
                self.banner.show_error(e)
                loaded = rep = None
            if loaded is not None and loaded.skipped:  # the rest is shown (docs/architecture.md, "Readers")
                self.banner.show_message("warning", f"{len(loaded.skipped)} part(s) of the saved result could not "
                                                    "be read and are not shown", records.summary(loaded.skipped))
        self.show_report(rep, source="saved")
        return rep is not None

    def show_report(self, report: dict | None, *, source: str = "new") -> None:
        """Fill the scorecard, chart, notes and per-question table from a report dict (``None``: empty)."""
        self.report, self.report_source = report, source
        self._clear_cards()
        self.detail_question.setText("Click a question to see the four answers side by side.")
        self.detail_expected.setText("")
        if report is None:
            self.scorecard.clear_card()
            self.bars.clear_bars()
            self.question_table.show_questions([])
            self.summary_label.setText("")
            run, name = self.selected_run(), self.selected_evalset()
            if run is None:
                self.empty_label.setText("No finished run in this project yet. Train one on the Train page, then "
                                         "come back to score it.")
            elif not name:
                self.empty_label.setText("No test set yet. Build one on the Test set tab: from a questions file, "
                                         "the run's validation rows, or questions drafted from the documents.")
            else:
                self.empty_label.setText(f"This run has not been evaluated on “{name}” yet. Click Evaluate: every "
                                         "question is answered by base and tuned, with and without the documents.")
            self.empty_label.show()
            self.score_content.hide()
            self._refresh_filter_labels()
            return
        self.empty_label.hide()
        self.score_content.show()
        questions = report.get("questions") or []
        created = report.get("created")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) if isinstance(created, (int, float)) else ""
        run_dir = Path(str(report.get("run_dir") or ""))
        summary = run_folder.read_run(run_dir) if run_dir.name else None
        run_name = summary.name if summary is not None and summary.name else run_dir.name  # as the history names it
        head = (f"{run_name} on “{report.get('evalset', '')}”: {len(questions)} questions × "
                f"{len(report.get('modes') or MODES)} modes")
        if report.get("seconds") is not None:
            head += f", evaluated in {fmt_duration(report.get('seconds'))}"
        if when:
            head += f" ({when})"
        if report.get("cancelled"):
            head += " — stopped early: partial results"
        # the scorecard names the answer settings it used (the Chat page's, saved in project.json)
        head += f".\nAnswered with {describe_settings(report.get('settings'))}, greedy decoding."
        self.summary_label.setText(head)
        card = report.get("scorecard") or {}
        self.scorecard.show_scorecard(card)
        self.bars.show_scorecard(card)
        self.verdict_note.show_note("info", verdict_text(questions))
        self.loss_note.show_note("info", loss_text(report.get("loss")))
        kind, text = forgetting_text(report.get("forgetting"))
        self.forgetting_note.show_note(kind, text)
        self.question_table.show_questions(questions)
        self._refresh_filter_labels()
        self._apply_filter()

    # -- evaluating --------------------------------------------------------------------------------------
    def _on_evaluate_clicked(self) -> None:
        self.start_evaluation()

    def start_evaluation(self) -> bool:
        """Evaluate the selected run on the selected test set (a Job); ``False`` when it can't start."""
        s = self.session
        run, name = self.selected_run(), self.selected_evalset()
        if s.project is None or run is None or not name or self.is_busy():
            return False
        self.banner.clear()
        from backend.errors import ConfigError

        try:  # the Chat page's settings, saved in project.json: the scorecard scores what the chat answers
            settings = s.project.answer_settings(strict=True)
        except ConfigError as e:
            self.banner.show_error(e)
            return False
        text, seconds = self.evaluation_plan(run, name)
        if seconds > LONG_EVALUATION_S and not self.confirm_long(f"{text}.\n\nStart it?"):
            self.status.setText("Not started. " + text + ".")
            return False
        self._start_job("evaluate", self.engine.evaluate, s.project, name, run,
                        forgetting=self.forgetting_check.isChecked(), max_new_tokens=self.max_tokens.value(),
                        settings=settings, documents=s.document_files())
        self.status.setText((f"{text}. " if text else "") + "Loading the models…")
        return True

    def evaluation_plan(self, run: Path, name: str) -> tuple[str, float]:
        """How many questions and roughly how long, from the files alone (cheap on any size)."""
        from backend.evalsets import count_questions, evalset_path
        from backend.rag.evaluate import FORGETTING_PROBE, plan

        try:
            n = count_questions(evalset_path(self.session.project, name))
            probes = count_questions(FORGETTING_PROBE) if self.forgetting_check.isChecked() else 0
        except (OSError, TuneError):
            return "", 0.0
        return plan(n, len(MODES), probes, run)

    def confirm_long(self, text: str) -> bool:
        """Ask before an evaluation that takes more than an hour (tests replace this)."""
        return QMessageBox.question(self, "A long evaluation", text,
                                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                    QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _start_job(self, kind: str, fn, *args, **kwargs) -> Job:
        self._job_kind = kind
        self._job = Job(fn, *args, name=f"evaluate-page:{kind}", parent=self, **kwargs)
        self._job.event.connect(self._on_job_event)
        self._job.returned.connect(self._on_job_returned)
        self._job.errored.connect(self._on_job_errored)
        self._job.finished.connect(self._on_job_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self._t0 = time.monotonic()
        self._job.start()
        self._update_controls()
        return self._job

    def _on_stop_clicked(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Ask the running job to stop (an evaluation keeps and saves what it answered)."""
        if self.is_busy():
            self._job.stop()
            self.status.setText("Stopping… (what is done so far is kept)")

    def _on_job_event(self, e: dict) -> None:
        if e.get("type") != ev.PROGRESS:
            return
        total = e.get("total")
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(e.get("current") or 0))
        else:
            self.progress.setRange(0, 0)
        if e.get("message"):
            self.status.setText(str(e["message"]))

    def _on_job_returned(self, result) -> None:
        kind = self._job_kind
        took = fmt_duration(time.monotonic() - self._t0)
        if kind == "evaluate":
            self.show_report(result, source="new")
            n = len((result or {}).get("questions") or [])
            stopped = (result or {}).get("cancelled")
            where = Path(str((result or {}).get("run_dir") or "")).name
            self.status.setText(f"{'Stopped: ' if stopped else ''}{n} questions evaluated in the four modes; saved "
                                f"in runs/{where}/eval/{(result or {}).get('evalset', '')}.json.")
            self.tabs.setCurrentIndex(0)
            self.evaluationFinished.emit("cancelled" if stopped else "completed")
        elif kind == "file":
            rows, overlaps = result
            path = self._file_read
            n = self.add_rows(rows, "file", overlaps)
            if not self.name_edit.text().strip():
                self.name_edit.setText(re.sub(r"[^\w.-]+", "-", path.stem).strip("-.") or "questions")
            self.status.setText(f"{n} questions read from {path.name}.")
        elif kind in ("validation", "draft"):
            rows, overlaps = result
            origin = "validation" if kind == "validation" else "documents"
            added = self.add_rows(rows, origin, overlaps)
            what = "held-out validation rows" if kind == "validation" else "questions drafted from the documents"
            self.status.setText(f"{added} {what} added in {took}." + (" Review them, then save the test set."
                                                                       if kind == "draft" else ""))
        elif kind == "report":
            self.status.setText(f"Report written: {result}")
            self.last_report_path = Path(result)
        elif kind == "compare":
            self.compare_cards = list(result or [])
            self._fill_compare()
            self.status.setText(f"{len(self.compare_cards)} runs compared.")

    def _on_job_errored(self, error: BaseException) -> None:
        self.banner.show_error(error)
        self.status.setText("")
        if self._job_kind == "evaluate":
            self.evaluationFinished.emit("failed")

    def _on_job_finished(self) -> None:
        self.progress.hide()
        self._update_controls()

    # -- questions ------------------------------------------------------------------------------------------
    def current_filter(self) -> str:
        """The filter key chosen."""
        b = self.filter_group.checkedButton()
        return b.property("filter") if b is not None else "all"

    def set_filter(self, key: str) -> None:
        """Choose a filter (as clicking its button does)."""
        self.filter_buttons[key].setChecked(True)
        self._apply_filter()

    def _refresh_filter_labels(self) -> None:
        counts = filter_counts((self.report or {}).get("questions") or [])
        for key, label in FILTERS:
            self.filter_buttons[key].setText(f"{label} ({counts.get(key, 0)})")

    def _apply_filter(self) -> None:
        questions = (self.report or {}).get("questions") or []
        self.question_table.apply_filter(filter_questions(questions, self.current_filter()))

    def _clear_cards(self) -> None:
        while self.cards_layout.count():
            item = self.cards_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.cards = {}

    def show_question(self, index: int) -> None:
        """The four answers to one question side by side, with their sources."""
        questions = (self.report or {}).get("questions") or []
        if not 0 <= index < len(questions):
            return
        q = questions[index]
        text = str(q.get("question") or "")
        self.detail_question.setText(text)
        expected = q.get("expected") or q.get("answer") or ""
        keywords = q.get("keywords") or []
        if q.get("answerable") is False:
            ref = "The documents can't answer this: the right answer is to say so."
        else:
            ref = f"Reference: {expected}" if expected else ""
            if keywords:
                ref += ("  ·  " if ref else "") + "Keywords: " + ", ".join(str(k) for k in keywords)
        if q.get("source"):
            ref += f"  ·  Expected source: {q['source']}"
        if q.get("retrieval_hit") is False:
            ref += " (not retrieved)"
        self.detail_expected.setText(ref)
        self._clear_cards()
        for mode in MODES:
            res = (q.get("modes") or {}).get(mode)
            if res is None:
                continue
            card = QtAnswer(text, mode)
            run = (self.report or {}).get("run_dir")
            card.run = Path(str(run)).name if run and mode.startswith("tuned") else None
            card.finish(to_answer(text, mode, res))
            state = cell_state(res)
            bg, fg, word = STATE_STYLE[state]
            if res.get("quoted"):  # graded as shown; the model's own words are graded apart (evaluate.own_correct)
                word += " as shown · its own words " + ("right" if res.get("own_correct") else "wrong")
            card.timing.setText(f"{word} · {card.timing.text()}")
            card.timing.setWordWrap(False)
            card.timing.setStyleSheet(f"color: {fg}; font-weight: 600;")
            card.setStyleSheet(f"QFrame#Card {{ background: #ffffff; border: 1px solid #d5dae1; "
                               f"border-top: 3px solid {STATE_EDGE[state]}; border-radius: 4px; }}")
            card.feedback_button.setEnabled(state != STATE_RIGHT)
            card.feedback_button.setText("Correct it")
            card.sourceClicked.connect(lambda src, c=card: self.show_source(src, c.evidence_for(src)))
            card.correctionSaved.connect(self.save_correction)
            row, col = CARD_CELLS[mode]
            self.cards_layout.addWidget(card, row, col, Qt.AlignmentFlag.AlignTop)
            self.cards[mode] = card
        first = next((c for c in self.cards.values() if c.sources), None)
        if first is not None:
            self.show_source(first.sources[0], first.evidence_for(0))
        else:
            self.source_title.setText("No passages: these modes answered without the documents."
                                      if self.cards else "")
            self.source_view.setPlainText("")

    def show_source(self, source, evidence: list | None = None) -> None:
        """A retrieved passage with its file, page and chunk; ``evidence`` sentences are highlighted."""
        page = f", page {source.shown_page}" if source.shown_page is not None else ""
        self.source_title.setText(f"{source.file}{page}, passage {source.chunk + 1} · similarity {source.score:.2f}")
        if not source.text:
            self.source_view.setPlainText("(the passage text is not stored in this result)")
            return
        show_passage(self.source_view, source.text, evidence or [])

    def save_correction(self, correction: dict) -> None:
        """Keep a correction (backend/corrections.py), as the Chat page does."""
        s = self.session
        if s.project is None:
            return
        path = corrections.corrections_path(s.project)
        try:
            corrections.add(s.project, **correction)
        except (OSError, TuneError) as e:  # TuneError: a link planted in the project (confinement)
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            self.banner.show_message("error", f"Could not save the correction: {why}", str(path))
            return
        s.data_changed()
        self.status.setText(f"Correction saved to datasets/{path.name}; the next run trains on it.")

    def _on_corrections_clicked(self) -> None:
        open_corrections(self.session.project, self, on_changed=self.session.data_changed)

    # -- building a test set ----------------------------------------------------------------------------------
    def _on_file_clicked(self) -> None:
        start = str(self.session.project.root) if self.session.project else ""
        path, _ = QFileDialog.getOpenFileName(self, "Questions file", start, "Questions (*.jsonl *.csv);;All (*)")
        if path:
            self.add_file(Path(path))

    def add_file(self, path: Path) -> bool:
        """Read a questions file in a Job and add its rows (accepted); a bad row is shown with its file and line.

        Reading also compares every question with the training rows, which takes a
        while on a large dataset: not on the GUI thread.
        """
        if self.session.project is None or self.is_busy():
            return False
        self.banner.clear()
        self._file_read = Path(path)
        self._start_job("file", read_rows, Path(path), self.session.project)
        self.status.setText(f"Reading {Path(path).name}…")
        return True

    def _on_validation_clicked(self) -> None:
        self.start_from_validation()

    def start_from_validation(self) -> bool:
        """Turn the selected run's validation rows into questions (a Job)."""
        run = self.selected_run()
        if run is None or self.is_busy() or self.session.project is None:
            return False
        self.banner.clear()
        self._start_job("validation", self.engine.from_validation, run,
                        limit=self.validation_limit.value())
        self.status.setText("Reading the run's validation rows…")
        return True

    def _on_draft_clicked(self) -> None:
        self.start_draft()

    def _on_teacher_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Teacher model folder")
        if folder:
            self.teacher_edit.setText(folder)

    def start_draft(self) -> bool:
        """Draft questions from the documents with the teacher model (a Job)."""
        s = self.session
        if s.project is None or self.is_busy():
            return False
        self.banner.clear()
        self._start_job("draft", self.engine.draft, s.project, self.draft_count.value(),
                        self.teacher_edit.text().strip() or None)
        self.status.setText("Loading the teacher model…")
        return True

    def add_rows(self, rows: list, origin: str, overlaps: list[dict] | None = None) -> int:
        """Append rows to the review table (drafted ones wait for review); returns how many."""
        notes = overlap_notes(rows, overlaps or [])
        start = len(self.draft_rows)
        for i, r in enumerate(rows):
            status = getattr(r, "status", "")
            state = {"rejected": "rejected", "draft": "review", "accepted": "accepted"}.get(
                status, "review" if origin == "documents" else "accepted")
            self.draft_rows.append(DraftRow(r, state=state, origin=origin, overlap=notes.get(i, "")))
        self._fill_review(start)
        return len(rows)

    def _fill_review(self, start: int = 0) -> None:
        self._filling_review = True
        t = self.review_table
        t.setRowCount(len(self.draft_rows))
        for r in range(start, len(self.draft_rows)):
            d = self.draft_rows[r]
            row = d.row
            answer = row.answer or ", ".join(row.keywords or [])
            if getattr(row, "answerable", True) is False:
                answer = answer or "(unanswerable: the model should say the documents don't say)"
            cells = [("", False), (row.question, True), (answer, True), (d.where(), False),
                     (ORIGINS.get(d.origin, d.origin), False), (d.overlap, False)]
            for c, (text, editable) in enumerate(cells):
                it = QTableWidgetItem(text)
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                if editable:
                    flags |= Qt.ItemFlag.ItemIsEditable
                it.setFlags(flags)
                it.setToolTip(ORIGIN_TIPS.get(d.origin, text) if c == 4 else text)
                t.setItem(r, c, it)
            if d.overlap:
                t.item(r, 5).setForeground(QBrush(QColor("#8a5a00")))
            self._paint_state(r)
        self._filling_review = False
        self._refresh_review_summary()

    def _paint_state(self, r: int) -> None:
        bg, fg, word = REVIEW_STATES[self.draft_rows[r].state]
        if self.draft_rows[r].edited and self.draft_rows[r].state == "accepted":
            word = "✓ edited"
        it = self.review_table.item(r, 0)
        it.setText(word)
        it.setBackground(QBrush(QColor(bg)))
        it.setForeground(QBrush(QColor(fg)))

    def _refresh_review_summary(self) -> None:
        n = len(self.draft_rows)
        counts = {k: sum(d.state == k for d in self.draft_rows) for k in REVIEW_STATES}
        overlap = sum(bool(d.overlap) and d.state != "rejected" for d in self.draft_rows)
        self.review_count.setText(f"{n} rows: {counts['accepted']} accepted, {counts['rejected']} rejected, "
                                  f"{counts['review']} to review" if n else "No rows yet.")
        if overlap:
            head = "1 question here is also a training row" if overlap == 1 else \
                f"{overlap} questions here are also training rows"
            self.overlap_note.show_note("warning", f"{head} (see Note). A model that trained on a question can "
                                        "repeat its answer from memory, so such rows overstate what it understands. "
                                        "Reject them, or keep them knowingly.")
            self.overlap_note.show()
        else:
            self.overlap_note.hide()

    def _selected_review_rows(self) -> list[int]:
        return sorted({i.row() for i in self.review_table.selectedIndexes()})

    def set_review_state(self, rows: list[int], state: str) -> None:
        """Accept or reject rows of the review table."""
        for r in rows:
            if 0 <= r < len(self.draft_rows):
                self.draft_rows[r].state = state
                self._paint_state(r)
        self._refresh_review_summary()

    def _on_review_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling_review or item.column() not in (1, 2):
            return
        r = item.row()
        d = self.draft_rows[r]
        text = item.text().strip()
        if item.column() == 1:
            if not text or text == d.row.question:
                return
            d.row = dataclasses.replace(d.row, question=text)
        else:
            if text == (d.row.answer or ", ".join(d.row.keywords or [])):
                return
            d.row = dataclasses.replace(d.row, answer=text)
        d.edited = True
        d.state = "accepted"  # editing a row is reviewing it
        self._paint_state(r)
        self._refresh_review_summary()

    def _on_review_selection_changed(self) -> None:
        rows = self._selected_review_rows()
        if not rows:
            return
        d = self.draft_rows[rows[0]]
        row = d.row
        self.row_question.setText(row.question)
        ref = row.answer or ""
        if row.keywords:
            ref += ("\n" if ref else "") + "Keywords: " + ", ".join(row.keywords)
        if row.answerable is False:
            ref = "Unanswerable from the documents: the right answer says so."
        self.row_answer.setText(ref)
        where = d.where()
        self.passage_title.setText(f"Source: {where}" if where else ORIGIN_TIPS.get(d.origin, d.origin))
        text = d.passage()
        if not text:
            text = {"validation": "A held-out row of the run's validation split (never trained on).",
                    "file": "A row of a questions file (no passage recorded)."}.get(d.origin, "(no passage recorded)")
            if d.overlap:
                text += f"\n\nNote: {d.overlap}."
        self.passage_view.setPlainText(text)

    def clear_review(self) -> None:
        """Empty the review table."""
        self.draft_rows = []
        self.review_table.setRowCount(0)
        self.passage_title.setText("Select a row to read it whole, with its source passage.")
        self.row_question.setText("")
        self.row_answer.setText("")
        self.passage_view.setPlainText("")
        self._refresh_review_summary()

    def _on_save_clicked(self) -> None:
        self.save_testset()

    def save_testset(self, name: str | None = None) -> Path | None:
        """Write the accepted rows as ``evalsets/<name>.jsonl`` and select it; ``None`` when refused."""
        s = self.session
        if s.project is None:
            return None
        from backend.errors import TuneError
        from backend.evalsets import check_name, evalset_path, write_evalset

        name = (name if name is not None else self.name_edit.text()).strip()
        rows = []
        for d in self.draft_rows:
            if d.state != "accepted":
                continue
            row = d.row
            lineage = dict(getattr(row, "lineage", None) or {})
            if d.edited:
                lineage["edited"] = True
            # a drafted row the expert kept is no longer a draft
            status = "accepted" if getattr(row, "status", "") in ("draft", "accepted") or d.origin == "documents" \
                else getattr(row, "status", "")
            rows.append(dataclasses.replace(row, lineage=lineage, status=status))
        if not rows:
            self.banner.show_message("warning", "No accepted rows to save: add questions above and accept them."
                                     if self.draft_rows else "Add questions first: from a file, the validation "
                                                             "rows or the documents.")
            return None
        if not name:
            self.banner.show_message("warning", "Give the test set a name.", "It becomes evalsets/<name>.jsonl.")
            return None
        try:
            name = check_name(name)
            path = Path(evalset_path(s.project, name))
            write_evalset(path, self._unique_ids(rows))
        except (TuneError, OSError) as e:
            self.banner.show_error(e)
            return None
        self.banner.show_message("success", f"Saved {len(rows)} questions as the test set “{name}”.",
                                 f"{path}\nChoose a run above and click Evaluate.")
        self.refresh_choices()
        self.evalset_combo.setCurrentIndex(max(0, self.evalset_combo.findData(name)))
        return path

    @staticmethod
    def _unique_ids(rows: list) -> list:
        """Rows from several sources may share ids (q01 from a file, q01 from another): make them unique."""
        seen: set[str] = set()
        out = []
        for row in rows:
            rid, k = row.id, 2
            while rid in seen:
                rid, k = f"{row.id}-{k}", k + 1
            seen.add(rid)
            out.append(row if rid == row.id else dataclasses.replace(row, id=rid))
        return out

    # -- comparing runs -------------------------------------------------------------------------------------
    def check_runs(self, run_dirs: list[Path]) -> None:
        """Tick runs in the compare list."""
        want = {str(p) for p in run_dirs}
        for i in range(self.compare_list.count()):
            it = self.compare_list.item(i)
            it.setCheckState(Qt.CheckState.Checked if it.data(Qt.ItemDataRole.UserRole) in want
                             else Qt.CheckState.Unchecked)

    def compare(self) -> bool:
        """Put the ticked runs' saved results side by side (reads files in a Job)."""
        name = self.selected_evalset()
        runs = [Path(self.compare_list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.compare_list.count())
                if self.compare_list.item(i).checkState() == Qt.CheckState.Checked]
        if not name or len(runs) < 2 or self.is_busy():
            return False
        from backend.rag.evaluate import compare_runs
        self.banner.clear()
        self._start_job("compare", compare_runs, runs, name)
        self.status.setText("Reading the runs' results…")
        return True

    def _fill_compare(self) -> None:
        cards = self.compare_cards
        mode = self.compare_mode.currentData() or MODES[0]
        t = self.compare_table
        t.clear()
        t.setColumnCount(len(cards))
        labels = [label for _k, label, _kind, _h in METRICS] + ["Right answers", "Validation loss (tuned)",
                                                                 "Forgetting check"]
        t.setRowCount(len(labels) if cards else 0)
        t.setVerticalHeaderLabels(labels)
        t.setHorizontalHeaderLabels([Path(str(c.get("run_dir") or c.get("run") or "?")).name for c in cards])
        missing = []
        for c, card in enumerate(cards):
            sc = card.get("scorecard")
            if not sc:
                missing.append(Path(str(card.get("run_dir") or "?")).name)
            for r, (key, _label, kind, _h) in enumerate(METRICS):
                e = ((sc or {}).get(mode) or {}).get(key)
                it = QTableWidgetItem(fmt_interval(e, kind) if sc else "not evaluated")
                it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                t.setItem(r, c, it)
            n = card.get("questions")
            n = len(n) if isinstance(n, list) else n
            right = (card.get("correct") or {}).get(mode)
            tuned = ((card.get("loss") or {}).get("tuned") or {}).get("eval_loss")
            extra = ["–" if right is None else f"{right} of {n}",
                     "–" if tuned is None else f"{tuned:.3f}",
                     str(card.get("forgetting") or "not run")] if sc else ["–"] * 3
            for r, text in enumerate(extra, len(METRICS)):
                it = QTableWidgetItem(text)
                it.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                it.setToolTip(ORIGIN_TIPS.get(d.origin, text) if c == 4 else text)
                t.setItem(r, c, it)
        t.resizeRowsToContents()
        for r in range(t.rowCount()):
            t.setRowHeight(r, max(30, t.rowHeight(r) + 6))
        self.compare_note.setText(
            (f"Not evaluated on this test set yet: {', '.join(missing)} — select it above and click Evaluate."
             if missing else "Figures in brackets are 95% intervals: overlapping intervals mean the difference "
                             "may be chance.") if cards else "")

    # -- report --------------------------------------------------------------------------------------------------
    def _on_export_clicked(self) -> None:
        run = self.selected_run()
        if run is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export report", str(run_folder.report_path(run)), "HTML (*.html)")
        if path:
            self.export_report(Path(path))

    def export_report(self, path: Path) -> bool:
        """Write the selected run's report (self-contained HTML) to ``path`` (a Job)."""
        run = self.selected_run()
        if run is None or self.is_busy():
            return False
        from backend.report import write_report
        self.banner.clear()
        self._start_job("report", write_report, run, Path(path), evalset=self.selected_evalset())
        self.status.setText("Writing the report…")
        return True


__all__ = ["EvaluatePage"]
