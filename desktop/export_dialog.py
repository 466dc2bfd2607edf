"""The "Export…" dialog: adapter, merged safetensors, GGUF (with a quantization) or an Ollama folder.

The export and its parity check run as one background :class:`~desktop.workers.Job`
that supervises a child process (:func:`export_in_child`: :func:`backend.export.export_run`
through the job runner, ``backend.jobs``), with a progress bar and Stop; the parity
result is shown in words when it ends.  The window's process loads no model.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QDialog, QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QLineEdit, QMessageBox, QProgressBar, QPushButton, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from backend import events as ev
from backend.export_types import KINDS, dialog_kinds
from backend.gguf_export import K_QUANTS_NOTE, QUANT_HELP
from desktop.widgets import Banner, muted
from desktop.workers import Job

GGUF_QUANTS = ("q8_0", "f16", "bf16", "q5_1", "q5_0", "q4_1", "q4_0", "f32")


def export_in_child(run_dir: Path, kind: str, out: Path, *, quant: str = "q8_0", check: bool = True,
                    questions: int = 20, generation=None, system_prompt: str | None = None, force: bool = False,
                    on_event: ev.OnEvent = ev.no_event, should_stop: ev.ShouldStop = ev.never_stop):
    """:func:`backend.export.export_run` in a child process (``backend.jobs``); its ``ExportRecord`` or ``None``.

    Raises
    ------
    TuneError
        The export's own error, or ``backend.jobs.ChildDied`` when the child died (killed, out of memory).
    """
    from backend import jobs
    from backend.export_types import ExportRecord
    from backend.host import settings_dict

    request = {"action": "export", "run_dir": str(run_dir), "kind": kind, "out": str(out), "quant": quant,
               "check": bool(check), "questions": int(questions), "generation": settings_dict(generation),
               "system_prompt": system_prompt, "force": bool(force)}
    d = jobs.call(request, on_event=on_event, should_stop=should_stop, what="the export process")
    return ExportRecord(**d) if d else None


def default_target(run_dir: Path, kind: str, quant: str) -> Path:
    """Where an export goes unless the user picks another place: ``<run>/exports/…``."""
    from backend import runs

    return runs.exports_dir(run_dir) / KINDS[kind].default_target(run_dir.name, quant)


class ExportDialog(QDialog):
    """Choose what to export and where; run it with progress and Stop; show the parity result."""

    exported = Signal(object)  # backend.export_types.ExportRecord

    def __init__(self, run_dir: str | Path, parent: QWidget | None = None, *, generation=None,
                 system_prompt: str | None = None):
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.generation = generation
        self.system_prompt = system_prompt
        self.job: Job | None = None
        self.record = None
        self._path_edited = False
        self.setWindowTitle(f"Export {self.run_dir.name}")
        self.setMinimumWidth(620)
        lay = QVBoxLayout(self)
        self.banner = Banner()
        lay.addWidget(self.banner)

        lay.addWidget(QLabel("<b>What to export</b>"))
        self.kind_group = QButtonGroup(self)
        self.kind_buttons: dict[str, QRadioButton] = {}
        grid = QGridLayout()
        for row, kind in enumerate(dialog_kinds()):
            b = QRadioButton(kind.title)
            b.setToolTip(kind.help)
            self.kind_group.addButton(b)
            self.kind_buttons[kind.key] = b
            grid.addWidget(b, row, 0, Qt.AlignmentFlag.AlignTop)
            h = muted(kind.help)
            grid.addWidget(h, row, 1)
            b.toggled.connect(self._on_kind_changed)
        grid.setColumnStretch(1, 1)
        lay.addLayout(grid)

        qrow = QHBoxLayout()
        self.quant_label = QLabel("Quantization")
        self.quant = QComboBox()
        for q in GGUF_QUANTS:
            self.quant.addItem(q.upper(), q)
            self.quant.setItemData(self.quant.count() - 1, QUANT_HELP[q], Qt.ItemDataRole.ToolTipRole)
        self.quant.currentIndexChanged.connect(self._on_quant_changed)
        qrow.addWidget(self.quant_label)
        qrow.addWidget(self.quant)
        self.quant_help = muted("")
        qrow.addWidget(self.quant_help, 1)
        lay.addLayout(qrow)
        self.kquant_note = muted(K_QUANTS_NOTE)
        lay.addWidget(self.kquant_note)

        prow = QHBoxLayout()
        prow.addWidget(QLabel("Save to"))
        self.path_edit = QLineEdit()
        self.path_edit.textEdited.connect(self._on_path_edited)
        prow.addWidget(self.path_edit, 1)
        self.browse = QPushButton("Choose…")
        self.browse.clicked.connect(self._on_browse)
        prow.addWidget(self.browse)
        lay.addLayout(prow)

        crow = QHBoxLayout()
        crow.addWidget(QLabel("Parity check on"))
        self.questions = QSpinBox()
        self.questions.setRange(0, 200)
        self.questions.setValue(20)
        self.questions.setSuffix(" questions")
        self.questions.setSpecialValueText("no check")
        self.questions.setToolTip("After exporting, the export is loaded back and compared with the model you "
                                  "tested in the app: identical greedy answers, KL divergence of the next-token "
                                  "distributions on the reference answers, same chat template. Questions come "
                                  "from the project's evalset, else the run's validation rows.")
        crow.addWidget(self.questions)
        crow.addWidget(muted("from the project's evalset (else the validation rows)"), 1)
        lay.addLayout(crow)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        lay.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        self.result = QLabel("")
        self.result.setObjectName("ParityResult")
        self.result.setWordWrap(True)
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.result)

        brow = QHBoxLayout()
        brow.addStretch(1)
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("Primary")
        self.export_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self._on_stop)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        for b in (self.export_button, self.stop_button, self.close_button):
            brow.addWidget(b)
        lay.addLayout(brow)

        self.kind_buttons["gguf"].setChecked(True)
        self._on_quant_changed()
        self._set_running(False)

    # -- state ----------------------------------------------------------------
    def kind(self) -> str:
        """The selected export kind."""
        return next(k for k, b in self.kind_buttons.items() if b.isChecked())

    def set_kind(self, kind: str) -> None:
        """Select an export kind."""
        self.kind_buttons[kind].setChecked(True)

    def set_quant(self, quant: str) -> None:
        """Select a GGUF quantization."""
        self.quant.setCurrentIndex(GGUF_QUANTS.index(quant))

    def target(self) -> Path:
        """Where the export will be written."""
        return Path(self.path_edit.text().strip()).expanduser()

    def _set_running(self, running: bool) -> None:
        self.export_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.close_button.setEnabled(not running)
        for w in (*self.kind_buttons.values(), self.quant, self.path_edit, self.browse, self.questions):
            w.setEnabled(not running)
        if not running:
            self._on_kind_changed()

    def _on_kind_changed(self, *_: object) -> None:
        if not any(b.isChecked() for b in self.kind_buttons.values()):
            return
        gguf = KINDS[self.kind()].needs_quant
        for w in (self.quant_label, self.quant, self.quant_help, self.kquant_note):
            w.setVisible(gguf)
        if not self._path_edited:
            self.path_edit.setText(str(default_target(self.run_dir, self.kind(), self.quant.currentData())))

    def _on_quant_changed(self, *_: object) -> None:
        self.quant_help.setText(QUANT_HELP[self.quant.currentData()])
        self._on_kind_changed()

    def _on_path_edited(self, *_: object) -> None:
        self._path_edited = True

    def _on_browse(self) -> None:
        cur = self.target()
        if self.kind() == "gguf":
            path, _ = QFileDialog.getSaveFileName(self, "Export GGUF as…", str(cur), "GGUF files (*.gguf)")
            if path and not path.endswith(".gguf"):
                path += ".gguf"
        else:
            parent = QFileDialog.getExistingDirectory(self, "Export into…", str(cur.parent))
            path = str(Path(parent) / cur.name) if parent else ""
        if path:
            self.path_edit.setText(path)
            self._path_edited = True

    # -- the job ----------------------------------------------------------------
    def start(self) -> bool:
        """Start the export (and its parity check) in the background."""
        if self.job is not None and self.job.is_running():
            return False
        if not self.path_edit.text().strip():
            self.banner.show_message("warning", "Choose where to save the export")
            return False
        target = self.target()
        force = False
        if occupied(target):
            what = "folder" if target.is_dir() else "file"
            if not self.confirm_overwrite("Replace the earlier export?",
                                          f"{target}\n\nThis {what} exists. Replace it with the new export?\n\n"
                                          "Only an earlier export is replaced; any other file or folder is left "
                                          "alone and the export stops with a message."):
                return False
            force = True
        self.banner.hide()
        self.result.setText("")
        n = self.questions.value()
        self.job = Job(export_in_child, self.run_dir, self.kind(), target, quant=self.quant.currentData(),
                       check=n > 0, questions=max(n, 1), generation=self.generation,
                       system_prompt=self.system_prompt, force=force, name="export", parent=self)
        self.job.event.connect(self._on_event)
        self.job.returned.connect(self._on_returned)
        self.job.errored.connect(self._on_errored)
        self.job.finished.connect(lambda: self._set_running(False))
        self.progress.setRange(0, 0)
        self.status.setText("Starting…")
        self._set_running(True)
        self.job.start()
        return True

    def confirm_overwrite(self, title: str, text: str) -> bool:
        """Ask before replacing an earlier export (tests replace this)."""
        return QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                    QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _on_stop(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.status.setText("Stopping…")

    def _on_event(self, e: dict) -> None:
        if e.get("type") == ev.PROGRESS:
            total, cur = e.get("total"), e.get("current") or 0
            if total:
                self.progress.setRange(0, int(total))
                self.progress.setValue(min(int(cur), int(total)))
            else:
                self.progress.setRange(0, 0)
        if e.get("message"):
            self.status.setText(str(e["message"]))

    def _on_returned(self, rec) -> None:
        self.progress.setRange(0, 1)
        if rec is None:
            self.progress.setValue(0)
            self.status.setText("Export stopped; nothing was written.")
            return
        self.progress.setValue(1)
        self.record = rec
        self.status.setText(f"Exported to {rec.path} ({rec.size_bytes / 2**20:.1f} MiB) in {rec.seconds:.0f} s.")
        self.result.setText(parity_text(rec.parity))
        self.exported.emit(rec)

    def _on_errored(self, err: BaseException) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status.setText("")
        self.banner.show_error(err)

    def reject(self) -> None:  # Escape / Close: never while a job writes
        if self.job is not None and self.job.is_running():
            return
        super().reject()


def occupied(target: Path) -> bool:
    """Whether an export to ``target`` would replace something (a file, a link, a non-empty folder)."""
    if target.is_symlink() or target.is_file():
        return True
    try:
        return target.is_dir() and any(target.iterdir())
    except OSError:
        return True


def parity_text(parity: dict | None) -> str:
    """The parity result in words, with the first changed answers."""
    if not parity:
        return "No parity check was run."
    lines = [f"Parity: {parity['summary']}."]
    if parity.get("source"):
        lines.append(f"Compared on {parity['source']}.")
    for c in (parity.get("changed") or [])[:3]:
        lines.append(f"• {c['question']}\n    app:    {c['app'][:160]}\n    export: {c['export'][:160]}")
    if len(parity.get("changed") or []) > 3:
        lines.append(f"… and {len(parity['changed']) - 3} more (in parity.json beside the export record).")
    return "\n".join(lines)
