"""Page 6: the RetrievalQA chat — streamed answers with their sources, base vs tuned, feedback."""

from __future__ import annotations

import html
import logging
import re
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QTextOption
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFrame, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea, QSizePolicy,
                               QSplitter, QTextBrowser, QToolButton, QVBoxLayout, QWidget)

from backend import corrections
from backend import events as ev
from backend import records
from backend import runs as run_folder
from backend.errors import TuneError
from backend import transcript as chat_log
from desktop.appstate import resources_dir
from desktop.chat_adapter import ChatEngine, index_summary
from desktop.corrections_view import open_corrections
from desktop.form import QtSettingsForm
from desktop.runs import list_runs, read_run
from desktop.session import Session
from desktop.style import mono_font
from desktop.widgets import Page, muted
from desktop.workers import Job

log = logging.getLogger(__name__)

MODE_TITLES = {"tuned+rag": "Tuned model · with documents", "tuned": "Tuned model · no documents",
               "base+rag": "Base model · with documents", "base": "Base model · no documents"}
FEEDBACK_FILE = corrections.FEEDBACK_FILE

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])|(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])")
_BULLET = re.compile(r"^\s*[-*+•]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,3}[.)]\s+(.*)$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _inline_html(text: str) -> str:
    """One line: escaped text with `code`, **bold** / __bold__ and *italic* / _italic_ as HTML."""
    out = []
    pieces = _CODE.split(text)  # odd pieces are code spans: their content is left as written
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"<code style='background:#eef1f5'>{html.escape(piece)}</code>")
            continue
        t = html.escape(piece, quote=False)
        t = _BOLD.sub(lambda m: f"<b>{m.group(1) or m.group(2)}</b>", t)
        t = _ITALIC.sub(lambda m: f"<i>{m.group(1) or m.group(2)}</i>", t)
        out.append(t)
    return "".join(out)


def answer_html(text: str) -> str:
    """A model's answer as HTML: Markdown's everyday subset rendered, everything else plain text.

    Bold, italic, inline code, headings (shown bold), bullet and numbered lists
    become markup; all text is HTML-escaped first, so an answer can never inject
    markup, links or images (a model's output is content, not code).
    """
    blocks: list[str] = []
    items: list[str] = []
    kind = ""

    def close_list() -> None:
        nonlocal items, kind
        if items:
            tag = "ol" if kind == "ol" else "ul"
            blocks.append(f"<{tag} style='margin:0 0 0 -20px'>" + "".join(f"<li>{i}</li>" for i in items)
                          + f"</{tag}>")
        items, kind = [], ""

    para: list[str] = []

    def close_para() -> None:
        nonlocal para
        if para:
            blocks.append("<p style='margin:0 0 4px 0'>" + "<br>".join(para) + "</p>")
        para = []

    for line in text.split("\n"):
        bullet, numbered, heading = _BULLET.match(line), _NUMBERED.match(line), _HEADING.match(line)
        if bullet or numbered:
            close_para()
            want = "ul" if bullet else "ol"
            if kind and kind != want:
                close_list()
            kind = want
            items.append(_inline_html((bullet or numbered).group(1)))
        elif not line.strip():
            close_list()
            close_para()
        elif heading:
            close_list()
            close_para()
            blocks.append(f"<p style='margin:2px 0 2px 0'><b>{_inline_html(heading.group(1))}</b></p>")
        else:
            close_list()
            para.append(_inline_html(line))
    close_list()
    close_para()
    return "".join(blocks)


class _AutoHeightText(QTextBrowser):
    """Read-only text that wraps anywhere (model output can be one long token) and grows to fit."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(0)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        self.document().setTextWidth(self.viewport().width())
        self.setFixedHeight(max(20, int(self.document().size().height()) + 4))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._fit()


def show_passage(view: QTextBrowser, text: str, evidence: list) -> None:
    """Show a passage in ``view`` with its evidence sentences highlighted, scrolled to the best one."""
    view.setHtml(highlighted_html(text, evidence))
    if evidence:
        view.scrollToAnchor("evidence")


def highlighted_html(text: str, evidence: list) -> str:
    """``text`` as escaped HTML (line breaks kept) with the evidence sentences' spans marked.

    ``evidence`` holds ``{"start", "end", "score"}`` offsets into ``text``; the
    best sentence gets the strongest mark.  Document text is content: every
    piece is escaped, never interpreted as markup.
    """
    spans = []
    for rank, e in enumerate(evidence):
        a, b = int(e.get("start", 0)), int(e.get("end", 0))
        if 0 <= a < b <= len(text):
            spans.append((a, b, rank))
    spans.sort()
    out, pos = [], 0
    for a, b, rank in spans:
        if a < pos:  # overlapping sentences: keep the first
            continue
        out.append(html.escape(text[pos:a]))
        colour = "#ffe27a" if rank == 0 else "#fff3c4"
        anchor = "<a name='evidence'></a>" if rank == 0 else ""
        out.append(f"{anchor}<span style='background:{colour}'>{html.escape(text[a:b])}</span>")
        pos = b
    out.append(html.escape(text[pos:]))
    return "<div style='white-space:pre-wrap'>" + "".join(out) + "</div>"


class QtAnswer(QFrame):
    """One streamed answer: its text, its sources (clickable) and a way to correct it."""

    sourceClicked = Signal(object)          # backend.rag.Source
    # a correction (backend/corrections.py): {question, chosen, rejected, mode, run, passages, test}
    correctionSaved = Signal(dict)

    def __init__(self, question: str, mode: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Card")
        self.question, self.mode = question, mode
        self.run: str | None = None  # the run whose adapter answered (kept with a correction)
        self.withheld = ""
        self.sources: list = []
        self.evidence: list[dict] = []  # Answer.evidence: the sentences the answer rests on
        self.done = False
        head = QLabel(f"<b>{MODE_TITLES.get(mode, mode)}</b>")
        head.setStyleSheet("color:#2f6db5;" if mode.startswith("tuned") else "color:#5b6675;")
        self.timing = muted("")
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text = _AutoHeightText()
        self.text.setPlainText("…")
        self.sources_label = QLabel("")
        self.sources_label.setWordWrap(True)
        self.sources_label.setTextFormat(Qt.TextFormat.RichText)
        self.sources_label.linkActivated.connect(self._on_source_link_activated)
        self.sources_label.hide()
        # grounding replaced the model's words (RetrievalSettings.grounding): show them, marked
        self.withheld_label = QLabel("")
        self.withheld_label.setWordWrap(True)
        self.withheld_label.setStyleSheet("color:#8a5a00;")
        self.withheld_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.withheld_label.hide()
        # the shown text is an evidence sentence, not the model's words (Answer.quoted)
        self.quoted_label = QLabel(chat_log.QUOTED_NOTE)
        self.quoted_label.setStyleSheet("color:#8a5a00; font-style:italic;")
        self.quoted_label.setToolTip("The model's answer stated something the documents don't contain, so the "
                                     "sentence of your documents it rests on is shown instead (the model's own "
                                     "words are below). Settings: Unsupported answers.")
        self.quoted_label.hide()
        self.feedback_button = QToolButton()
        icon = QIcon(str(resources_dir() / "icons" / "thumbs-down.svg"))
        if not icon.isNull():
            self.feedback_button.setIcon(icon)
        self.feedback_button.setText("Wrong? Correct it")
        self.feedback_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.feedback_button.setAutoRaise(True)
        self.feedback_button.setToolTip("Write the right answer; it is kept with this answer and the passages "
                                        "shown as a correction (datasets/feedback.jsonl) that the next run "
                                        "trains on.")
        self.feedback_button.clicked.connect(self._on_feedback_clicked)
        self.feedback_button.setEnabled(False)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("The answer the model should have given…")
        self.editor.setMaximumHeight(90)
        self.save_button = QPushButton("Save correction")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self._on_cancel_clicked)
        self.test_check = QCheckBox("Also add to the test set")
        self.test_check.setToolTip("A reworded copy of the question goes into the test set 'corrections', "
                                   "so the Evaluate page shows whether the next run gets it right.")
        self.editor_box = QWidget()
        eb = QVBoxLayout(self.editor_box)
        eb.setContentsMargins(0, 4, 0, 0)
        eb.addWidget(self.editor)
        ebr = QHBoxLayout()
        ebr.addWidget(self.test_check)
        ebr.addStretch(1)
        ebr.addWidget(self.cancel_button)
        ebr.addWidget(self.save_button)
        eb.addLayout(ebr)
        self.editor_box.hide()
        self.saved_label = muted("")
        self.saved_label.hide()
        foot = QHBoxLayout()
        foot.addWidget(self.timing)
        foot.addStretch(1)
        foot.addWidget(self.feedback_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 6)
        lay.setSpacing(4)
        lay.addWidget(head)
        lay.addWidget(self.quoted_label)
        lay.addWidget(self.text)
        lay.addWidget(self.withheld_label)
        lay.addWidget(self.sources_label)
        lay.addLayout(foot)
        lay.addWidget(self.editor_box)
        lay.addWidget(self.saved_label)
        self._buffer = ""
        self.seconds: float | None = None  # the answer's own time (the only one shown for it)

    def append(self, piece: str) -> None:
        """Add streamed text."""
        self._buffer += piece
        self._show_text(self._buffer)

    def _show_text(self, text: str) -> None:
        """The answer with its Markdown rendered (bold, italic, code, lists); never markup of its own."""
        self.text.setHtml(answer_html(text))

    def set_sources(self, sources: list) -> None:
        """Show the retrieved passages as links."""
        self.sources = list(sources)
        if not self.sources:
            self.sources_label.hide()
            return
        links = " &nbsp;&nbsp; ".join(
            f"<a href='{i}' style='color:#2f6db5;text-decoration:none'>[{i + 1}] {html.escape(s.file)}"
            f"{' p.' + str(s.page) if s.page is not None and s.file.lower().endswith('.pdf') else ''}"
            f" <span style='color:#8a94a3'>({s.score:.2f})</span></a>"
            for i, s in enumerate(self.sources))
        self.sources_label.setText(f"<span style='color:#5b6675'>Sources:</span> {links}")
        self.sources_label.show()

    def finish(self, answer) -> None:
        """The final answer arrived."""
        self.done = True
        self._buffer = answer.answer
        self.evidence = list(getattr(answer, "evidence", None) or [])
        self._show_text(answer.answer or "(the model gave no answer)")
        self.set_withheld(getattr(answer, "withheld", ""), getattr(answer, "unsupported", []))
        self.quoted_label.setVisible(bool(getattr(answer, "quoted", False)))
        if answer.sources and not self.sources:
            self.set_sources(answer.sources)
        note = f"answered in {answer.seconds:.1f} s" + (" · stopped" if answer.stopped else "")
        self.timing.setText(note)
        self.seconds = answer.seconds
        self.feedback_button.setEnabled(True)

    def restore(self, record: dict) -> None:
        """Show an answer saved in the project's transcript (backend/transcript.py)."""
        self.done = True
        self._buffer = record.get("answer") or ""
        self.evidence = list(record.get("evidence") or [])
        self._show_text(self._buffer or "(the model gave no answer)")
        self.set_withheld(record.get("withheld") or "", record.get("unsupported") or [])
        self.quoted_label.setVisible(bool(record.get("quoted")))
        self.set_sources(chat_log.sources_of(record))
        secs = self.seconds = record.get("seconds")
        note = f"answered in {secs:.1f} s" if isinstance(secs, (int, float)) else ""
        self.timing.setText(note + (" · stopped" if record.get("stopped") else ""))
        self.feedback_button.setEnabled(True)

    def set_withheld(self, words: str, claims: list) -> None:
        """Show the model's own answer when grounding replaced it, with what the documents lack."""
        self.withheld = words or ""  # the model's own words: what a correction rejects
        if not words:
            self.withheld_label.hide()
            return
        self.withheld_label.setText(f"The model wrote: “{words}” — withheld: {chat_log.lacking(claims)}.")
        self.withheld_label.show()

    def fail(self, text: str) -> None:
        """Generation failed or was stopped before an answer."""
        self.done = True
        if not self._buffer:
            self.text.setPlainText(text)
            self.text.setStyleSheet("QTextBrowser { background: transparent; color: #8a5a00; }")
        self.timing.setText("stopped" if "stop" in text.lower() else "failed")

    def evidence_for(self, i: "int | object") -> list[dict]:
        """The evidence sentences that lie in source ``i`` (its number, or the source itself)."""
        if not isinstance(i, int):
            i = next((n for n, s in enumerate(self.sources) if s is i), -1)
        return [e for e in self.evidence if e.get("source_index") == i]

    def answer_text(self) -> str:
        """The text shown."""
        return self._buffer

    def _on_source_link_activated(self, link: str) -> None:
        i = int(link)
        if 0 <= i < len(self.sources):
            self.sourceClicked.emit(self.sources[i])

    def _on_feedback_clicked(self) -> None:
        self.editor.setPlainText(self._buffer)
        self.editor_box.show()
        self.editor.setFocus()

    def _on_cancel_clicked(self) -> None:
        self.editor_box.hide()

    def _on_save_clicked(self) -> None:
        text = self.editor.toPlainText().strip()
        if not text:
            self.editor.setPlaceholderText("Write the correct answer first.")
            return
        self.correctionSaved.emit({"question": self.question, "chosen": text,
                                   "rejected": self.withheld or self._buffer,
                                   "mode": self.mode, "run": self.run, "passages": list(self.sources),
                                   "test": self.test_check.isChecked()})
        self.editor_box.hide()
        self.saved_label.setText(f"✓ Saved as a correction (datasets/{FEEDBACK_FILE}); the next run trains on it.")
        self.saved_label.show()
        self.feedback_button.setEnabled(False)


class QtExchange(QFrame):
    """A question and its answers (one, or base and tuned side by side)."""

    def __init__(self, question: str, modes: list[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.question = question
        q = QLabel(f"<b>You:</b> {html.escape(question)}")
        q.setWordWrap(True)
        q.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.answers = {m: QtAnswer(question, m) for m in modes}
        row = QHBoxLayout()
        row.setSpacing(10)
        for a in self.answers.values():
            row.addWidget(a, 1, Qt.AlignmentFlag.AlignTop)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 6)
        lay.addWidget(q)
        lay.addLayout(row)


#: The answer settings the Chat page's panel shows (the rest keep their saved values; ``tune ask --set``).
CHAT_FIELDS = ("generation.temperature", "generation.top_p", "generation.max_new_tokens",
               "generation.repetition_penalty", "retrieval.k", "retrieval.hybrid", "retrieval.evidence",
               "retrieval.section_weight", "retrieval.copy_bias", "retrieval.grounding", "retrieval.abstain",
               "retrieval.abstain_threshold")


class ChatPage(Page):
    """Ask questions; the tuned model answers over the project's documents."""

    title = "Chat"
    subtitle = ("Ask about your documents. Answers stream in with the passages they were based on; compare "
                "the base and the tuned model side by side, and correct wrong answers for the next run.")

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.engine = ChatEngine(session.model_host)
        self._job: Job | None = None
        self._index_job: Job | None = None
        self._exchange: QtExchange | None = None
        self._queued_question: str | None = None
        # Documents the last index update could not read, with their (size, mtime) then: left out
        # of the staleness check until they change, so a bad file is reported once and does not
        # start update after update (issue 20).
        self._unreadable: dict[Path, tuple[int, int]] = {}

        # -- top bar
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(320)
        self.run_combo.setToolTip("Which training run's adapter answers as the tuned model")
        self.run_combo.currentIndexChanged.connect(self._on_run_combo_changed)
        self.tuned_check = QCheckBox("Tuned model")
        self.tuned_check.setToolTip("On: the run's adapter is applied. Off: the base model answers.")
        self.rag_check = QCheckBox("Answer from documents (RAG)")
        self.rag_check.setToolTip("Retrieve passages from the project's documents and give them to the model")
        self.compare_check = QCheckBox("Base and tuned side by side")
        self.compare_check.setToolTip("Each question is answered twice: without and with the adapter")
        for cb in (self.tuned_check, self.rag_check):
            cb.setChecked(True)
        # What the user asked for; the boxes are unticked while impossible (no run, no documents).
        self._want = {"tuned": True, "rag": True}
        self.tuned_check.clicked.connect(lambda on: (self._want.__setitem__("tuned", on),
                                                     setattr(self, "_check_chose_base", False)))
        self.rag_check.clicked.connect(lambda on: self._want.__setitem__("rag", on))
        self.compare_check.toggled.connect(self._on_compare_toggled)
        top = QHBoxLayout()
        top.addWidget(QLabel("Run:"))
        top.addWidget(self.run_combo)
        top.addSpacing(12)
        top.addWidget(self.tuned_check)
        top.addWidget(self.rag_check)
        top.addWidget(self.compare_check)
        top.addStretch(1)
        self.corrections_button = QPushButton("Corrections…")
        self.corrections_button.setToolTip("The answers you corrected (here and on the Evaluate page): "
                                           "see, edit, delete, mark for the test set")
        self.corrections_button.clicked.connect(self._on_corrections_clicked)
        top.addWidget(self.corrections_button)
        self.body.addLayout(top)
        # the check after training (backend/rag/check.py) picks the default answerer of its run
        self.check_note = QLabel("")
        self.check_note.setWordWrap(True)
        self.check_note.setStyleSheet("color:#8a5a00;")
        self.check_note.hide()
        self.body.addWidget(self.check_note)
        self._check_followed: Path | None = None  # the run whose check last set the default
        self._check_chose_base = False

        # -- transcript
        self.transcript = QWidget()
        self.transcript_layout = QVBoxLayout(self.transcript)
        self.transcript_layout.setContentsMargins(4, 4, 10, 4)
        self.transcript_layout.setSpacing(6)
        self.empty_hint = QLabel("")
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setTextFormat(Qt.TextFormat.RichText)
        self.empty_hint.linkActivated.connect(self._on_example_link_activated)
        self.empty_hint.setStyleSheet("color:#5b6675; padding: 20px;")
        self.transcript_layout.addWidget(self.empty_hint)
        self.transcript_layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setWidget(self.transcript)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._on_scroll_range_changed)

        # -- input
        self.question_edit = QLineEdit()
        self.question_edit.setPlaceholderText("Ask a question about your documents…")
        self.question_edit.returnPressed.connect(self._on_ask_clicked)
        self.ask_button = QPushButton("Ask")
        self.ask_button.setObjectName("Primary")
        self.ask_button.clicked.connect(self._on_ask_clicked)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Start a new chat (asks first; the old one is kept in the project's chat/ folder)")
        self.clear_button.clicked.connect(self._on_clear_clicked)
        self.export_chat_button = QPushButton("Export transcript…")
        self.export_chat_button.setToolTip("Save this project's chat as a Markdown file: questions, answers, "
                                           "modes, runs, sources and timings")
        self.export_chat_button.clicked.connect(self._on_export_chat_clicked)
        self._exchange_id = ""                     # the transcript key of the question being answered
        self._asked_run: Path | None = None        # the run answering it as "tuned"
        self._transcript_error_shown = False
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(8)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = muted("")
        inp = QHBoxLayout()
        inp.addWidget(self.question_edit, 1)
        inp.addWidget(self.ask_button)
        inp.addWidget(self.stop_button)
        inp.addWidget(self.clear_button)
        inp.addWidget(self.export_chat_button)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.scroll, 1)
        ll.addWidget(self.progress)
        ll.addWidget(self.status)
        ll.addLayout(inp)

        # -- right panel: source, settings, index
        src_box = QGroupBox("Source passage")
        self.source_title = QLabel("Click a source under an answer.")
        self.source_title.setWordWrap(True)
        self.source_title.setObjectName("SectionTitle")
        self.source_title.setTextFormat(Qt.TextFormat.PlainText)  # a file name is never markup
        self.source_path = muted("")
        self.source_path.setTextFormat(Qt.TextFormat.PlainText)
        self.source_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.source_view = QTextBrowser()
        self.source_view.setFont(mono_font())
        self.source_view.setMinimumHeight(90)
        sl = QVBoxLayout(src_box)
        sl.addWidget(self.source_title)
        sl.addWidget(self.source_path)
        sl.addWidget(self.source_view, 1)

        from backend.rag.settings import AnswerSettings
        # one settings object per answer, drawn by the one form builder and saved in project.json
        self.settings_form = QtSettingsForm(AnswerSettings, (("generation", "Generation"), ("retrieval", "Retrieval")),
                                            only=CHAT_FIELDS)
        self.settings_form.configChanged.connect(self._on_settings_changed)
        self.settings_form.configInvalid.connect(self.banner.show_error)
        self.ret_editors = {k.split(".", 1)[1]: w for k, w in self.settings_form.editors.items()
                            if k.startswith("retrieval.")}
        self.gen_editors = {k.split(".", 1)[1]: w for k, w in self.settings_form.editors.items()
                            if k.startswith("generation.")}
        self.gen_editors.update(self.ret_editors)
        for box in self.settings_form.groups.values():
            # never squeezed below its rows' height: the source passage above gives way on a short window
            box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.source_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Ignored)

        idx_box = QGroupBox("Document index")
        self.index_label = muted("")
        self.index_button = QPushButton("Update index")
        self.index_button.setToolTip("Embed new and changed documents (unchanged ones are skipped)")
        self.index_button.clicked.connect(self._on_index_clicked)
        il = QVBoxLayout(idx_box)
        il.addWidget(self.index_label)
        ir = QHBoxLayout()
        ir.addStretch(1)
        ir.addWidget(self.index_button)
        il.addLayout(ir)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(src_box, 1)
        for box in self.settings_form.groups.values():
            rl.addWidget(box)
        rl.addWidget(idx_box)
        right.setMinimumWidth(max(320, right.minimumSizeHint().width()))  # the settings' values stay readable

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        self.body.addWidget(split, 1)

        session.events.project.connect(self._on_project)
        session.events.run.connect(self._on_run)
        session.events.data.connect(lambda: self._refresh_index_label())
        self._refresh_runs()
        self._refresh_index_label()
        self._update_empty_hint()
        self.restore_transcript()
        self._load_settings()
        self._update_controls()

    # -- Page API ---------------------------------------------------------------------
    def is_busy(self) -> bool:
        return any(j is not None and j.is_running() for j in (self._job, self._index_job))

    def on_enter(self) -> None:
        self._refresh_runs()
        self._refresh_index_label()
        if self.rag_check.isChecked() and self.index_is_stale() and not self.is_busy():
            self.update_index()

    def shutdown(self) -> None:
        """Stop the chat's jobs (the window is closing)."""
        for job in (self._job, self._index_job):
            if job is not None and job.is_running():
                job.stop()
                job.wait(30_000)
        self.engine.release()

    # -- runs -----------------------------------------------------------------------------
    def _refresh_runs(self) -> None:
        s = self.session
        runs = [r for r in list_runs(s.project.root) if r.has_chat_model] if s.project else []
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        self.run_combo.addItem("No run: base model only", None)
        for r in runs:
            loss = r.eval_loss if r.eval_loss is not None else r.train_loss
            extra = f" · {'eval ' if r.eval_loss is not None else ''}loss {loss:.3f}" if loss is not None else ""
            self.run_combo.addItem(f"{r.name}{extra}", str(r.run_dir))
            self.run_combo.setItemData(self.run_combo.count() - 1, f"{r.when}\n{r.run_dir}",
                                       Qt.ItemDataRole.ToolTipRole)
        want = str(s.run_dir) if s.run_dir else (str(runs[0].run_dir) if runs else None)
        idx = self.run_combo.findData(want) if want else 0
        self.run_combo.setCurrentIndex(max(0, idx))
        self.run_combo.blockSignals(False)
        self._follow_check()
        self._update_controls()
        self._update_empty_hint()

    def selected_run(self) -> Path | None:
        """The run whose adapter answers as the tuned model."""
        d = self.run_combo.currentData()
        return Path(d) if d else None

    def _on_run_combo_changed(self, _i: int) -> None:
        run = self.selected_run()
        if run != self.session.run_dir:
            self.session.events.run.disconnect(self._on_run)
            try:
                self.session.select_run(run)
            finally:
                self.session.events.run.connect(self._on_run)
        self._follow_check()
        self._update_controls()
        self._update_empty_hint()

    def _follow_check(self) -> None:
        """When the selected run's check found tuning made answers worse, default to the base model + documents.

        Once per run selection: the user can tick "Tuned model" again (docs/architecture.md, "Training").
        """
        run = self.selected_run()
        if run == self._check_followed:
            return
        self._check_followed = run
        rec = run_folder.read_check(run) if run is not None else None
        if rec is not None and rec.get("status") == "done" and rec.get("verdict") == "worse":
            self._want["tuned"] = False
            self._check_chose_base = True
            self.check_note.setText(
                f"The check after training found that tuning made the answers worse ({rec.get('tuned_right')} of "
                f"{rec.get('n')} right with your documents, against {rec.get('base_right')} of {rec.get('n')} "
                "untuned), so the untuned model answers with your documents. Tick “Tuned model” to ask the "
                "tuned one; the Train page says what to change.")
            self.check_note.show()
            return
        if self._check_chose_base:  # the check chose the base model for another run, not the user
            self._want["tuned"] = True
            self._check_chose_base = False
        self.check_note.hide()

    def _on_run(self, _run) -> None:
        self._refresh_runs()

    def _on_project(self, _project) -> None:
        if self.is_busy():
            self.shutdown()
        self.engine.release()
        self.clear_transcript()
        self._refresh_runs()
        self._refresh_index_label()
        self._update_empty_hint()
        self.restore_transcript()
        self._load_settings()

    def _update_controls(self) -> None:
        has_run = self.selected_run() is not None
        self.tuned_check.setEnabled(has_run and not self.compare_check.isChecked())
        self.tuned_check.setChecked(has_run and self._want["tuned"])
        self.compare_check.setEnabled(has_run)
        if not has_run and self.compare_check.isChecked():
            self.compare_check.setChecked(False)
        has_docs = bool(self.session.document_files())
        self.rag_check.setEnabled(has_docs)
        self.rag_check.setChecked(has_docs and self._want["rag"])
        busy = self.is_busy()
        self.ask_button.setEnabled(not busy and self.session.project is not None)
        has_chat = bool(self.exchanges())
        self.clear_button.setEnabled(not busy and has_chat)
        self.export_chat_button.setEnabled(has_chat)
        self.stop_button.setEnabled(self._job is not None and self._job.is_running())
        self.index_button.setEnabled(not busy and has_docs)
        self.run_combo.setEnabled(not busy)

    def _on_compare_toggled(self, on: bool) -> None:
        self._update_controls()

    # -- documents index -----------------------------------------------------------------------
    def index_is_stale(self) -> bool:
        """Documents on disk that the index does not hold (or holds an older version of)."""
        s = self.session
        if s.project is None:
            return False
        docs = s.document_files()
        if not docs:
            return False
        from backend.rag.freshness import stale_documents  # by content, as `tune ingest` decides

        try:
            return any(not self._still_unreadable(p) for p in stale_documents(s.project, docs))
        except Exception:  # a broken index record must not break the page, nor start update after update
            log.warning("could not compare the documents with the index", exc_info=True)
            return False

    def _refresh_index_label(self) -> None:
        s = self.session
        if s.project is None:
            self.index_label.setText("")
            return
        summary = index_summary(s.project.root)
        n_docs = len(s.document_files())
        if not n_docs:
            self.index_label.setText("No documents in this project: add some on the Data page to answer "
                                     "from them.")
        elif not summary.get("exists"):
            self.index_label.setText(f"{n_docs} document(s), not indexed yet.")
        else:
            stale = " Some documents changed: update the index." if self.index_is_stale() else ""
            self.index_label.setText(f"{summary.get('files', 0)} file(s), {summary.get('chunks', 0)} passages "
                                     f"indexed with all-MiniLM-L6-v2.{stale}")
        self._update_controls()

    def _on_index_clicked(self) -> None:
        self.update_index()

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def _still_unreadable(self, path: Path) -> bool:
        """The index update failed on this file and it has not changed since."""
        p = Path(path).resolve()
        return p in self._unreadable and self._stamp(p) == self._unreadable[p]

    def _remember_unreadable(self, failed: list[tuple[Path, str]]) -> None:
        """Note the files an update could not read; name the new ones once, with the reason."""
        new = []
        for path, reason in failed:
            p = path.resolve()
            if not self._still_unreadable(p):
                new.append((p, reason))
            stamp = self._stamp(p)
            if stamp is not None:
                self._unreadable[p] = stamp
        if new:
            root = self.session.project.root.resolve() if self.session.project else None
            lines = []
            for p, reason in new:
                name = str(p.relative_to(root)) if root and p.is_relative_to(root) else str(p)
                # the reason usually starts with the file's full path (and line): show the short name
                lines.append(name + reason[len(str(p)):] if reason.startswith(str(p)) else f"{name}: {reason}")
            self.banner.show_message(
                "warning", f"{len(new)} document(s) could not be read and are left out of the index",
                "\n".join(lines) + "\nFix or remove the file on the Data page; the index picks it up once it "
                "changes.")

    def update_index(self) -> None:
        """Embed new and changed documents in a worker."""
        s = self.session
        if s.project is None or self.is_busy():
            return
        self._index_job = Job(self.engine.ingest, s.project.root, s.document_files(), name="ingest", parent=self)
        self._index_job.event.connect(self._on_progress_event)
        self._index_job.returned.connect(self._on_index_returned)
        self._index_job.errored.connect(self._on_index_errored)
        self._index_job.finished.connect(self._on_index_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText("Indexing the documents…")
        self._index_job.start()
        self._update_controls()

    def _on_index_returned(self, report) -> None:
        self.status.setText(f"Index: {report.describe()}")
        root = self.session.project.root if self.session.project else Path(".")
        self._remember_unreadable([(root / f["source"], f["error"]) for f in report.failed])

    def _on_index_errored(self, error: BaseException) -> None:
        from backend.errors import DocumentError

        if isinstance(error, DocumentError) and error.file:  # every file failed: the first one's error
            self._remember_unreadable([(Path(error.file), error.message)])
            self.status.setText("Index: not updated")
            return
        self._on_job_errored(error)

    def _on_index_finished(self) -> None:
        self.progress.hide()
        self._refresh_index_label()
        self._update_controls()
        if self._queued_question:
            q, self._queued_question = self._queued_question, None
            self.ask(q, index_checked=True)  # never a second update for the same question

    # -- asking ------------------------------------------------------------------------------------
    def modes(self) -> list[str]:
        """The modes the next question is answered in."""
        rag = self.rag_check.isChecked()
        suffix = "+rag" if rag else ""
        if self.compare_check.isChecked() and self.selected_run() is not None:
            return [f"base{suffix}", f"tuned{suffix}"]
        tuned = self.tuned_check.isChecked() and self.selected_run() is not None
        return [("tuned" if tuned else "base") + suffix]

    def answer_settings(self):
        """``AnswerSettings`` from the panel, over the project's saved ones (the fields it does not show).

        Raises
        ------
        ConfigError
            Naming the field at fault (also marked in the panel).
        """
        return self.settings_form.build()

    def generation_settings(self):
        """``GenerationSettings`` from the panel."""
        return self.answer_settings().generation

    def retrieval_settings(self):
        """``RetrievalSettings`` from the panel (hybrid search, evidence and its section-title weight, copy bias,
        grounding, abstention, k)."""
        return self.answer_settings().retrieval

    def _load_settings(self) -> None:
        """Show the project's saved answer settings (an invalid saved value: the defaults, and why)."""
        from backend.errors import ConfigError
        from backend.rag.settings import AnswerSettings

        project = self.session.project
        settings = AnswerSettings()
        if project is not None:
            try:
                settings = project.answer_settings(strict=True)
            except ConfigError as e:
                self.banner.show_error(e)
        self.settings_form.set_config(settings)

    def _on_settings_changed(self, settings) -> None:
        """Save an edit of the panel in project.json: Evaluate, ``tune ask`` and ``tune eval`` answer with it."""
        project = self.session.project
        if project is not None and settings.to_dict() != project.answer_settings().to_dict():
            try:
                project.set_answer_settings(settings)
            except OSError as e:  # a read-only project: the chat still answers with the panel's values
                log.warning("answer settings not saved: %s", e)

    def _on_ask_clicked(self) -> None:
        q = self.question_edit.text().strip()
        if q:
            self.ask(q)

    def ask(self, question: str, *, index_checked: bool = False) -> bool:
        """Ask ``question`` in the selected modes (starts a worker).

        With documents, a stale index is updated first and the question asked
        when the update ends, whatever its outcome (``index_checked``).
        """
        s = self.session
        if s.project is None or self.is_busy():
            return False
        if not index_checked:  # keep what the update just reported (a file it could not read)
            self.banner.clear()
        if self.rag_check.isChecked() and not index_checked and self.index_is_stale():
            self._queued_question = question
            self.update_index()
            return True
        modes = self.modes()
        self.question_edit.clear()
        self.empty_hint.hide()
        ex = QtExchange(question, modes)
        run = self.selected_run()
        for a in ex.answers.values():
            a.run = run.name if run is not None and a.mode.startswith("tuned") else None
            a.sourceClicked.connect(lambda src, a=a: self.show_source(src, a.evidence_for(src)))
            a.correctionSaved.connect(self.save_correction)
        self.transcript_layout.insertWidget(self.transcript_layout.count() - 1, ex)
        self._exchange = ex
        try:
            self.settings_form.flush()  # an edit not yet saved is saved now (Evaluate uses the same)
            settings = self.answer_settings()
        except Exception as e:
            self.banner.show_error(e)
            return False
        self._job = Job(self.engine.ask, s.project.root, question, modes, run_dir=self.selected_run(),
                        base_model=s.config.model.name_or_path, generation=settings.generation,
                        k=settings.retrieval.k, retrieval=settings.retrieval, name="chat",
                        parent=self)
        self._job.event.connect(self._on_chat_event)
        self._job.event.connect(self._record_answer)
        self._exchange_id = chat_log.new_exchange_id()
        self._asked_run = self.selected_run()
        self._job.errored.connect(self._on_job_errored)
        self._job.finished.connect(self._on_chat_finished)
        self.status.setText("Loading the model…" if not self.engine.loaded() else "Thinking…")
        self.progress.setRange(0, 0)
        self.progress.show()
        self._t0 = time.monotonic()
        self._job.start()
        self._update_controls()
        return True

    def _on_stop_clicked(self) -> None:
        if self._job is not None and self._job.is_running():
            self._job.stop()
            self.status.setText("Stopping…")

    def _on_progress_event(self, e: dict) -> None:
        if e.get("type") == ev.PROGRESS:
            if e.get("total"):
                self.progress.setRange(0, int(e["total"]))
                self.progress.setValue(int(e.get("current") or 0))
            if e.get("message"):
                self.status.setText(e["message"])

    def _on_chat_event(self, e: dict) -> None:
        t = e.get("type")
        ex = self._exchange
        if t == ev.PROGRESS:
            self._on_progress_event(e)
        elif ex is None:
            return
        elif t == ev.ANSWER_START:
            self.status.setText(f"Answering ({MODE_TITLES.get(e['mode'], e['mode'])})…")
            self.progress.setRange(0, 0)
        elif t == ev.SOURCES:
            ex.answers[e["mode"]].set_sources(e["sources"])
            if e["sources"]:
                self.show_source(e["sources"][0])
        elif t == ev.TOKEN:
            ex.answers[e["mode"]].append(e["text"])
        elif t == ev.ANSWER:
            view = ex.answers[e["mode"]]
            view.finish(e["answer"])
            if view.evidence and view.sources:  # show the passage the answer rests on, sentence highlighted
                i = int(view.evidence[0].get("source_index", 0))
                if 0 <= i < len(view.sources):
                    self.show_source(view.sources[i], view.evidence_for(i))

    def _on_job_errored(self, error: BaseException) -> None:
        self.banner.show_error(error)
        if self._exchange is not None:
            for a in self._exchange.answers.values():
                if not a.done:
                    a.fail("No answer: see the message above.")

    def _on_chat_finished(self) -> None:
        self.progress.hide()
        if self._exchange is not None:
            for a in self._exchange.answers.values():
                if not a.done:
                    a.fail("Stopped before an answer.")
        if self._job is not None and self._job.error is None:
            # Each answer shows its own time; the status adds only what came before them (loading).
            answered = sum(a.seconds for a in (self._exchange.answers.values() if self._exchange else ())
                           if a.seconds is not None)
            load = time.monotonic() - self._t0 - answered
            self.status.setText("Answered." + (f" Loading the model took {load:.0f} s." if load >= 2 else ""))
        self._update_controls()
        self.question_edit.setFocus()

    def _on_scroll_range_changed(self, _lo: int, hi: int) -> None:
        self.scroll.verticalScrollBar().setValue(hi)

    # -- the transcript (backend/transcript.py: <project>/chat/transcript.jsonl) -------------------------
    def _record_answer(self, e: dict) -> None:
        """Append a finished answer to the project's transcript."""
        s = self.session
        if e.get("type") != ev.ANSWER or s.project is None:
            return
        run = self._asked_run
        summary = read_run(run) if run is not None else None
        try:
            chat_log.append(s.project.transcript_path, chat_log.answer_record(
                e["answer"], exchange=self._exchange_id, run_dir=run, run_name=summary.name if summary else None),
                root=s.project.root)
        except (OSError, TuneError) as err:  # TuneError: a link planted in the project (confinement)
            if not self._transcript_error_shown:  # say it once, not after every answer
                self._transcript_error_shown = True
                why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
                self.banner.show_message("warning", f"The chat is not being saved: {why}",
                                         str(s.project.transcript_path))

    def restore_transcript(self) -> int:
        """Show the project's saved chat (after opening it); returns how many exchanges were restored."""
        s = self.session
        if s.project is None:
            return 0
        skipped: list = []
        try:
            saved = chat_log.load(s.project.transcript_path, skipped)
        except OSError as err:
            saved = []
            self.banner.show_message("warning", f"The saved chat could not be read: {err.strerror or err}",
                                     str(s.project.transcript_path))
        if skipped:  # the rest is shown; the file is left as it is (docs/architecture.md, "Readers")
            self.banner.show_message(
                "warning", f"{len(skipped)} line(s) of the saved chat could not be shown and were skipped",
                records.summary(skipped))
        for exch in saved:
            modes = list(dict.fromkeys(a.get("mode") or "base" for a in exch.answers))
            ex = QtExchange(exch.question, modes)
            for a in exch.answers:
                view = ex.answers[a.get("mode") or "base"]
                view.restore(a)
                if a.get("run") and str(a.get("mode") or "").startswith("tuned"):
                    view.run = Path(str(a["run"])).name
            for view in ex.answers.values():
                view.sourceClicked.connect(lambda src, v=view: self.show_source(src, v.evidence_for(src)))
                view.correctionSaved.connect(self.save_correction)
            self.transcript_layout.insertWidget(self.transcript_layout.count() - 1, ex)
        if saved:
            self.empty_hint.hide()
            self.status.setText(f"The chat of {s.project.name} so far ({len(saved)} question(s)); Clear starts anew.")
        self._update_controls()
        return len(saved)

    def confirm_clear(self, text: str) -> bool:
        """Ask before clearing the chat (tests replace this)."""
        return QMessageBox.question(self, "Clear the chat", text,
                                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                    QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _on_clear_clicked(self) -> None:
        self.clear_chat()

    def clear_chat(self) -> bool:
        """Clear the chat after asking; the saved transcript is moved aside with a timestamp, not deleted."""
        s = self.session
        if self.is_busy() or not self.exchanges():
            return False
        where = f" It is kept in {s.project.chat_dir}." if s.project else ""
        if not self.confirm_clear(f"Clear the {len(self.exchanges())} question(s) of this chat?{where}"):
            return False
        moved = None
        if s.project is not None:
            try:
                moved = chat_log.archive(s.project.transcript_path)
            except OSError as err:
                self.banner.show_message("error", f"Could not clear the saved chat: {err.strerror or err}",
                                         str(s.project.transcript_path))
                return False
        self.clear_transcript()
        self.status.setText(f"Cleared; the old chat is in {moved.name}." if moved else "Cleared.")
        return True

    def _on_export_chat_clicked(self) -> None:
        s = self.session
        if s.project is None:
            return
        default = str(Path.home() / f"{s.project.name} chat.md")
        out, _ = QFileDialog.getSaveFileName(self, "Export the chat as Markdown", default, "Markdown (*.md)")
        if out:
            self.export_transcript(Path(out))

    def export_transcript(self, out: Path) -> Path | None:
        """Write the project's chat as Markdown to ``out``."""
        s = self.session
        if s.project is None:
            return None
        try:
            path = chat_log.export_markdown(s.project.transcript_path, out, f"Chat: {s.project.name}")
        except OSError as err:
            self.banner.show_message("error", f"Could not write {Path(out).name}: {err.strerror or err}", str(out))
            return None
        self.status.setText(f"Chat exported to {path}.")
        return path

    def clear_transcript(self) -> None:
        """Remove every exchange from the page (the saved transcript is left alone)."""
        while self.transcript_layout.count() > 2:
            item = self.transcript_layout.takeAt(1)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._exchange = None
        self.empty_hint.show()
        self._update_controls()

    def exchanges(self) -> list[QtExchange]:
        """The exchanges shown, oldest first."""
        out = []
        for i in range(self.transcript_layout.count()):
            w = self.transcript_layout.itemAt(i).widget()
            if isinstance(w, QtExchange):
                out.append(w)
        return out

    # -- examples, sources, feedback -----------------------------------------------------------------
    def _update_empty_hint(self) -> None:
        s = self.session
        examples = (s.project.settings or {}).get("example_questions", []) if s.project else []
        docs = ("using the passages the index finds; the sources appear under each answer."
                if self.session.document_files() else "without documents (add some on the Data page to answer "
                "from them).")
        if self.selected_run() is not None:
            who = (f"<p>The tuned model answers, {docs} Tick <i>Base and tuned side by side</i> to see what the "
                   "fine-tuning changed.</p>")
        else:
            who = (f"<p>The base model answers (no training run yet), {docs} Train a run on the Train page to "
                   "compare it with the tuned model.</p>")
        text = "<p style='font-size:11pt'>Ask a question about the project's documents.</p>" + who
        if examples:
            text += "<p>Try: " + " &nbsp;·&nbsp; ".join(
                f"<a href='{html.escape(q)}' style='color:#2f6db5'>{html.escape(q)}</a>" for q in examples) + "</p>"
        self.empty_hint.setText(text)

    def _on_example_link_activated(self, question: str) -> None:
        self.question_edit.setText(question)
        self.ask(question)

    def show_source(self, source, evidence: list | None = None) -> None:
        """Show a retrieved passage with its file, page and score; ``evidence`` sentences are highlighted."""
        page = f", page {source.shown_page}" if source.shown_page is not None else ""
        self.source_title.setText(f"{source.file}{page} — passage {source.chunk + 1}")
        root = self.session.project.root if self.session.project else Path(".")
        path = Path(source.path)
        full = path if path.is_absolute() else root / path
        # the project-relative path keeps the passage's room on a short window; the full one is the tooltip
        self.source_path.setText(f"{path.as_posix()} · similarity {source.score:.3f} (1 = same meaning)")
        self.source_path.setToolTip(str(full))
        show_passage(self.source_view, source.text, evidence or [])

    def _on_corrections_clicked(self) -> None:
        open_corrections(self.session.project, self, on_changed=self.session.data_changed)

    def save_correction(self, correction: dict) -> None:
        """Keep a correction (backend/corrections.py): question, the model's answer, the expert's, mode, run, passages."""
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
        self.session.data_changed()
        self.status.setText(f"Correction saved to {path.name}; it is used for training from the next run on.")
        QTimer.singleShot(0, self._refresh_index_label)
