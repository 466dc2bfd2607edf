"""Page 2: pick the base model; show its facts and the training memory it needs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar, QPushButton,
                               QRadioButton, QVBoxLayout, QWidget)

from backend import events as ev
from backend.config import ModelConfig, field_info
from desktop.session import Session
from desktop.style import mono_font
from desktop.tasks import ResolvedModel, resolve_and_describe
from desktop.widgets import Page, muted
from desktop.workers import Job

SOURCES = ("default", "folder", "gguf", "hub")


def _help(name: str) -> str:
    return field_info(ModelConfig, name).metadata["help"]


def source_kind(source: str) -> str:
    """Which radio button a model source belongs to."""
    if source in ("", "default", "SmolLM2-135M-Instruct"):
        return "default"
    if source.endswith(".gguf"):
        return "gguf"
    p = Path(source).expanduser()
    if p.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        return "folder"
    return "hub"


class ModelPage(Page):
    """Choose the bundled default, a local folder, a .gguf file or a hub id."""

    title = "Model"
    subtitle = ("The base model you fine-tune. The bundled SmolLM2-135M-Instruct trains on a CPU in "
                "minutes; a larger local model gives better answers but needs more memory.")

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self._job: Job | None = None
        self._job_source: str | None = None

        src_box = QGroupBox("Base model")
        self.radio = {k: QRadioButton(t) for k, t in (
            ("default", "Bundled default: SmolLM2-135M-Instruct (works offline)"),
            ("folder", "Local Hugging Face folder (config.json + *.safetensors)"),
            ("gguf", "GGUF file (converted once to safetensors)"),
            ("hub", "Hugging Face hub id (downloads; needs network)"))}
        self.group = QButtonGroup(self)
        for r in self.radio.values():
            self.group.addButton(r)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("/path/to/model-folder")
        self.gguf_edit = QLineEdit()
        self.gguf_edit.setPlaceholderText("/path/to/model.gguf")
        self.hub_edit = QLineEdit()
        self.hub_edit.setPlaceholderText("e.g. HuggingFaceTB/SmolLM2-360M-Instruct")
        folder_browse = QPushButton("Browse…")
        folder_browse.clicked.connect(self._on_folder_browse_clicked)
        gguf_browse = QPushButton("Browse…")
        gguf_browse.clicked.connect(self._on_gguf_browse_clicked)
        grid = QGridLayout(src_box)
        grid.setColumnStretch(1, 1)
        grid.addWidget(self.radio["default"], 0, 0, 1, 3)
        grid.addWidget(self.radio["folder"], 1, 0, 1, 3)
        grid.addWidget(self.folder_edit, 2, 1)
        grid.addWidget(folder_browse, 2, 2)
        grid.addWidget(self.radio["gguf"], 3, 0, 1, 3)
        grid.addWidget(self.gguf_edit, 4, 1)
        grid.addWidget(gguf_browse, 4, 2)
        grid.addWidget(self.radio["hub"], 5, 0, 1, 3)
        grid.addWidget(self.hub_edit, 6, 1, 1, 2)
        grid.setColumnMinimumWidth(0, 18)

        self.opt_hub = QCheckBox(field_info(ModelConfig, "allow_hub").metadata["label"])
        self.opt_hub.setToolTip(_help("allow_hub"))
        self.opt_remote = QCheckBox(field_info(ModelConfig, "trust_remote_code").metadata["label"])
        self.opt_remote.setToolTip(_help("trust_remote_code"))
        self.opt_pickle = QCheckBox(field_info(ModelConfig, "allow_pickle_weights").metadata["label"])
        self.opt_pickle.setToolTip(_help("allow_pickle_weights"))
        opts = QHBoxLayout()
        for cb in (self.opt_hub, self.opt_remote, self.opt_pickle):
            opts.addWidget(cb)
        opts.addStretch(1)
        grid.addLayout(opts, 7, 0, 1, 3)

        self.use_button = QPushButton("Use this model")
        self.use_button.setObjectName("Primary")
        self.use_button.clicked.connect(self._on_use_clicked)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.progress.hide()
        self.status = muted("")
        srow = QHBoxLayout()
        srow.addWidget(self.use_button)
        srow.addWidget(self.status, 1)
        grid.addLayout(srow, 8, 0, 1, 3)
        grid.addWidget(self.progress, 9, 0, 1, 3)

        facts_box = QGroupBox("Facts (from the model's config)")
        self.facts = {k: QLabel("–") for k in ("name", "architecture", "parameters", "layers", "hidden",
                                                "heads", "vocab", "context", "template", "folder")}
        self.facts["folder"].setWordWrap(True)
        self.facts["folder"].setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ff = QFormLayout(facts_box)
        ff.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        for key, label in (("name", "Model"), ("architecture", "Architecture"), ("parameters", "Parameters"),
                           ("layers", "Layers"), ("hidden", "Hidden size"), ("heads", "Attention heads"),
                           ("vocab", "Vocabulary"), ("context", "Context length"),
                           ("template", "Chat template"), ("folder", "Loaded from")):
            ff.addRow(f"{label}:", self.facts[key])

        mem_box = QGroupBox("Training memory (current settings)")
        self.mem_total = QLabel("–")
        self.mem_total.setObjectName("BigNumber")
        self.mem_parts = muted("")
        self.mem_device = muted("")
        ml = QVBoxLayout(mem_box)
        ml.addWidget(self.mem_total)
        ml.addWidget(self.mem_parts)
        ml.addWidget(self.mem_device)
        ml.addWidget(muted("Change the method, batch size or max length on the Configure page; the "
                           "estimate follows."))

        tmpl_box = QGroupBox("Chat template (how conversations become text)")
        self.template_view = QPlainTextEdit()
        self.template_view.setReadOnly(True)
        self.template_view.setObjectName("Mono")
        self.template_view.setFont(mono_font())
        self.template_view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        QVBoxLayout(tmpl_box).addWidget(self.template_view)

        left = QVBoxLayout()
        left.addWidget(src_box)
        left.addWidget(tmpl_box, 1)
        right = QVBoxLayout()
        right.addWidget(facts_box)
        right.addWidget(mem_box)
        right.addStretch(1)
        cols = QHBoxLayout()
        cols.setSpacing(14)
        cols.addLayout(left, 3)
        cols.addLayout(right, 2)
        self.body.addLayout(cols, 1)

        for r in self.radio.values():
            r.toggled.connect(self._on_radio_toggled)
        self.opt_hub.toggled.connect(self._on_radio_toggled)
        session.events.model.connect(self._on_model)
        session.events.config.connect(lambda _cfg: self._refresh_memory())
        session.events.device.connect(lambda _d: self._refresh_memory())
        self._show_source(session.config.model.name_or_path)

    # -- Page API -------------------------------------------------------------------
    def validate(self) -> str | None:
        if self.is_busy():
            return "Wait until the model is ready."
        if self.session.model_error is not None:
            return "The model could not be loaded; choose another one."
        if self.session.model_path is None:
            return "Choose a base model and press “Use this model”."
        return None

    def is_busy(self) -> bool:
        return self._job is not None and self._job.is_running()

    def on_enter(self) -> None:
        self._show_source(self.session.config.model.name_or_path)

    # -- source widgets ----------------------------------------------------------------
    def _show_source(self, source: str) -> None:
        kind = source_kind(source)
        self.radio[kind].setChecked(True)
        edit = {"folder": self.folder_edit, "gguf": self.gguf_edit, "hub": self.hub_edit}.get(kind)
        if edit is not None:
            edit.setText(source)
        m = self.session.config.model
        self.opt_hub.setChecked(m.allow_hub)
        self.opt_remote.setChecked(m.trust_remote_code)
        self.opt_pickle.setChecked(m.allow_pickle_weights)
        self._on_radio_toggled()

    def selected_source(self) -> str:
        """The model source the widgets describe."""
        if self.radio["folder"].isChecked():
            return self.folder_edit.text().strip()
        if self.radio["gguf"].isChecked():
            return self.gguf_edit.text().strip()
        if self.radio["hub"].isChecked():
            return self.hub_edit.text().strip()
        return "default"

    def _on_radio_toggled(self, *_: object) -> None:
        self.folder_edit.setEnabled(self.radio["folder"].isChecked())
        self.gguf_edit.setEnabled(self.radio["gguf"].isChecked())
        self.hub_edit.setEnabled(self.radio["hub"].isChecked())

    def _on_folder_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self.radio["folder"].setChecked(True)

    def _on_gguf_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF file", self.gguf_edit.text(),
                                              "GGUF models (*.gguf)")
        if path:
            self.gguf_edit.setText(path)
            self.radio["gguf"].setChecked(True)

    def _on_use_clicked(self) -> None:
        source = self.selected_source()
        if not source:
            self.banner.show_message("warning", "Give the model's location first.")
            return
        if self.radio["hub"].isChecked() and not self.opt_hub.isChecked():
            self.banner.show_message("warning", "Hub downloads are off.",
                                     "Tick “Allow hub downloads” to use a hub id, or download the model "
                                     "to a folder and choose the folder.")
            return
        self.session.set_model_source(source, allow_hub=self.opt_hub.isChecked(),
                                      trust_remote_code=self.opt_remote.isChecked(),
                                      allow_pickle_weights=self.opt_pickle.isChecked())
        self.session.model_error = None
        self.ensure_resolved(force=True)

    # -- resolving (worker) -------------------------------------------------------------
    def ensure_resolved(self, force: bool = False) -> None:
        """Resolve the session's model in a worker unless it is resolved or resolving."""
        m = self.session.config.model
        if self.session.model_path is not None and not force:
            return
        if self.is_busy() and self._job_source == m.name_or_path:
            return
        if self.session.model_error is not None and not force:
            return
        self.banner.clear()
        self._job_source = m.name_or_path
        self._job = Job(resolve_and_describe, m.name_or_path, allow_hub=m.allow_hub,
                        allow_pickle_weights=m.allow_pickle_weights, host=self.session.model_host,
                        name="resolve-model", parent=self)
        self._job.event.connect(self._on_job_event)
        self._job.returned.connect(self._on_job_returned)
        self._job.errored.connect(self._on_job_errored)
        self._job.finished.connect(self._on_job_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.status.setText(f"Preparing {self._pretty(m.name_or_path)}… (the bundled model is converted "
                            "once, about a minute the first time)")
        self.use_button.setEnabled(False)
        self.completeChanged.emit()
        self._job.start()

    def _on_job_event(self, e: dict) -> None:
        if e.get("type") == ev.PROGRESS:
            total = e.get("total") or 0
            if total:
                self.progress.setRange(0, int(total))
                self.progress.setValue(int(e.get("current") or 0))
            if e.get("message"):
                self.status.setText(e["message"])

    def _on_job_returned(self, resolved: ResolvedModel) -> None:
        if resolved.source != self.session.config.model.name_or_path:
            return  # the user picked another model meanwhile
        self.session.set_model_resolved(resolved.path, resolved.info, resolved.chat_template)

    def _on_job_errored(self, error: BaseException) -> None:
        if self._job_source != self.session.config.model.name_or_path:
            return
        self.session.set_model_error(error)
        self.banner.show_error(error)

    def _on_job_finished(self) -> None:
        self.progress.hide()
        self.use_button.setEnabled(True)
        if self.session.model_path is None and self._job_source != self.session.config.model.name_or_path:
            self.ensure_resolved()
        self.completeChanged.emit()

    # -- display ---------------------------------------------------------------------
    @staticmethod
    def _pretty(source: str) -> str:
        return "SmolLM2-135M-Instruct" if source in ("default", "") else Path(source).name or source

    def _on_model(self) -> None:
        s = self.session
        info = s.model_info
        if s.model_path is None:
            for lab in self.facts.values():
                lab.setText("–")
            self.template_view.setPlainText("")
            if s.model_error is None and not self.is_busy():
                self.status.setText("")
            elif s.model_error is not None:
                self.status.setText("Not loaded.")
            self._refresh_memory()
            self.completeChanged.emit()
            return
        from backend.models import human_params
        self.status.setText(f"Ready: {self._pretty(s.config.model.name_or_path)}")
        self.facts["name"].setText(self._pretty(s.config.model.name_or_path))
        self.facts["folder"].setText(s.model_path)
        if info is not None:
            self.facts["architecture"].setText(f"{info.architecture} ({info.model_type})")
            self.facts["parameters"].setText(f"{human_params(info.parameters)}  ({info.parameters:,})")
            self.facts["layers"].setText(str(info.layers))
            self.facts["hidden"].setText(f"{info.hidden_size:,} (MLP {info.intermediate_size:,})")
            self.facts["heads"].setText(f"{info.heads} query, {info.kv_heads} key/value")
            self.facts["vocab"].setText(f"{info.vocab_size:,} tokens")
            self.facts["context"].setText(f"{info.max_positions:,} tokens")
        has_template = bool(s.chat_template)
        self.facts["template"].setText("yes, the model's own" if has_template else
                                       "none: a generic ChatML template is used")
        self.template_view.setPlainText(s.chat_template or "(none: Tune Studio uses ChatML)")
        self._refresh_memory()
        self.completeChanged.emit()

    def _refresh_memory(self) -> None:
        s = self.session
        if s.model_info is None:
            self.mem_total.setText("–")
            self.mem_parts.setText("Shown once the model is ready.")
            self.mem_device.setText("")
            return
        if s.device is None:
            self.mem_total.setText("…")
            self.mem_parts.setText("Detecting the training device…")
            return
        from backend.models import estimate_memory
        est = estimate_memory(s.config, s.model_info, s.device)
        verdict = "fits" if est.fits else "likely too much"
        self.mem_total.setText(f"≈ {est.total_gb:.2f} GB  ({verdict})")
        self.mem_parts.setText(
            f"weights {est.weights_gb:.2f} GB · gradients + optimizer {est.gradients_gb + est.optimizer_gb:.2f} GB"
            f" · activations {est.activations_gb:.2f} GB\n{est.trainable_params:,} trainable parameters "
            f"({s.config.method.method})")
        where = "RAM" if s.device.kind in ("cpu", "mps") else "GPU memory"
        self.mem_device.setText(f"Available: {est.available_gb:.1f} GB {where} ({s.device.name})")
