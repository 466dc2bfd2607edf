"""Page 4: the run configuration, generated from ``RunConfig``, with presets and a live estimate."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QFrame, QGroupBox, QHBoxLayout, QLabel, QProgressBar,
                               QPushButton, QScrollArea, QVBoxLayout, QWidget)

from backend.errors import ConfigError
from backend.estimate import STARTUP_SECONDS, RunEstimate, estimate_run
from backend.presets import PRESETS, apply_preset, matching_preset, preset, preset_keys, recommended_preset
from desktop.form import QtRunConfigForm
from desktop.session import Session
from desktop.widgets import Page, fmt_duration, muted


class ConfigurePage(Page):
    """Presets, the generated form and the memory/time estimate."""

    title = "Configure"
    subtitle = ("How to train. Start from a preset; hover over any setting for what it does. The "
                "estimate on the right follows every change.")

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.estimate: RunEstimate | None = None
        self._error: ConfigError | None = None

        # presets
        preset_row = QHBoxLayout()
        preset_row.addWidget(QLabel("Preset:"))
        self.preset_buttons: dict[str, QPushButton] = {}
        self.preset_group = QButtonGroup(self)
        self.preset_group.setExclusive(True)
        for p in PRESETS:
            b = QPushButton(p.label)
            b.setCheckable(True)
            b.setToolTip(p.description)
            b.clicked.connect(lambda _=False, k=p.key: self.apply_preset(k))
            self.preset_group.addButton(b)
            self.preset_buttons[p.key] = b
            preset_row.addWidget(b)
        self.preset_note = muted("")
        preset_row.addWidget(self.preset_note, 1)
        self.body.addLayout(preset_row)

        # the form, two columns in a scroll area
        self.form = QtRunConfigForm()
        g = self.form.groups
        col1 = QVBoxLayout()
        col1.addWidget(g[""])
        col1.addWidget(g["method"])
        col1.addWidget(g["data"])
        col1.addStretch(1)
        col2 = QVBoxLayout()
        col2.addWidget(g["training"])
        col2.addWidget(g["model"])
        col2.addStretch(1)
        inner = QWidget()
        cols = QHBoxLayout(inner)
        cols.setContentsMargins(0, 0, 6, 0)
        cols.setSpacing(12)
        cols.addLayout(col1, 1)
        cols.addLayout(col2, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(inner)

        # the estimate panel
        panel = QVBoxLayout()
        est_box = QGroupBox("Estimate")
        el = QVBoxLayout(est_box)
        self.mem_label = QLabel("–")
        self.mem_label.setObjectName("BigNumber")
        self.mem_bar = QProgressBar()
        self.mem_bar.setRange(0, 1000)
        self.mem_bar.setTextVisible(False)
        self.mem_bar.setMaximumHeight(12)
        self.mem_detail = muted("")
        self.time_label = QLabel("–")
        self.time_label.setObjectName("BigNumber")
        self.time_detail = muted("")
        el.addWidget(QLabel("Peak memory"))
        el.addWidget(self.mem_label)
        el.addWidget(self.mem_bar)
        el.addWidget(self.mem_detail)
        el.addSpacing(8)
        el.addWidget(QLabel("Training time"))
        el.addWidget(self.time_label)
        el.addWidget(self.time_detail)
        self.warn_label = QLabel("")
        self.warn_label.setWordWrap(True)
        self.warn_label.setStyleSheet("color: #8a5a00;")
        el.addSpacing(6)
        el.addWidget(self.warn_label)
        help_box = QGroupBox("About this setting")
        hl = QVBoxLayout(help_box)
        self.help_title = QLabel("Hover over or click a setting.")
        self.help_title.setObjectName("SectionTitle")
        self.help_title.setWordWrap(True)
        self.help_text = muted("")
        self.help_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        hl.addWidget(self.help_title)
        hl.addWidget(self.help_text)
        hl.addStretch(1)
        panel.addWidget(est_box)
        panel.addWidget(help_box, 1)
        side = QWidget()
        side.setLayout(panel)
        side.setFixedWidth(300)
        panel.setContentsMargins(0, 0, 0, 0)

        row = QHBoxLayout()
        row.setSpacing(14)
        row.addWidget(scroll, 1)
        row.addWidget(side)
        self.body.addLayout(row, 1)

        self.form.configChanged.connect(self._on_form_config_changed)
        self.form.configInvalid.connect(self._on_form_config_invalid)
        self.form.fieldFocused.connect(self._on_form_field_focused)
        session.events.config.connect(self._on_session_config)
        session.events.model.connect(self.refresh_estimate)
        session.events.device.connect(lambda _d: self.refresh_estimate())
        session.events.data.connect(self.refresh_estimate)
        session.events.data.connect(self._on_data_report)
        self._on_session_config(session.config)

    # -- Page API -----------------------------------------------------------------
    def validate(self) -> str | None:
        if self._error is not None:
            return f"Fix the setting “{self._error.field or '?'}” first."
        return None

    def on_enter(self) -> None:
        self.refresh_estimate()

    def on_leave(self) -> None:
        self.form.flush()
        if self._error is None:
            self.session.save_project()

    # -- presets -------------------------------------------------------------------
    def _fact_set(self):
        """The checked training rows as the configuration shapes them (a ``FactSet``), or ``None``."""
        report = self.session.data_report
        if report is None or not report.facts.rows:
            return None
        return report.facts

    def apply_preset(self, key: str) -> None:
        """Apply a preset over the current configuration (a derived one is re-fitted as the rows change)."""
        self.form.flush()
        try:
            cfg = apply_preset(self.session.config, key, facts=self._fact_set())
        except ConfigError as e:
            self.banner.show_error(e)
            self._show_preset(self.session.config)
            return
        self.session.active_preset = key
        self.session.set_config(cfg)
        self.session.save_project()

    def _on_data_report(self) -> None:
        """Fit the chosen derived preset to the rows just checked; a project never configured starts from one.

        Ticking "Train the model to answer from your documents" (or any option that changes the
        rows) makes the Data page check again; the preset is then fitted to the rows so shaped,
        as ``tune train --preset facts --set data.raft=true`` fits it
        (:func:`backend.planning.resolve_run_config`).
        """
        facts = self._fact_set()
        project = self.session.project
        active = self.session.active_preset
        if facts is not None and active and preset(active).derived:
            cfg = apply_preset(self.session.config, active, facts=facts)
            if cfg.to_dict() != self.session.config.to_dict():
                self.session.set_config(cfg)
                self.session.save_project()
            else:
                self._show_preset(self.session.config)
            return
        key = recommended_preset(facts.written or facts.rows) if facts is not None else None
        if key and project is not None and "run_config" not in (project.settings or {}):
            self.apply_preset(key)
        else:
            self._show_preset(self.session.config)

    def _show_preset(self, cfg) -> None:
        """Check the button of the preset ``cfg`` matches and describe it (or say the settings are custom)."""
        facts = self._fact_set()
        key = matching_preset(cfg, facts=facts)
        if key is None and self.session.active_preset and preset(self.session.active_preset).derived:
            key = self.session.active_preset  # fitted again when the Data page's check comes back
        for k, b in self.preset_buttons.items():
            b.setChecked(k == key)
        note = preset(key).description if key else "Custom settings."
        rec = recommended_preset(facts.written or facts.rows) if facts is not None else None
        if rec and rec != key:
            note += f" Recommended for your {facts.written or facts.rows:,} training rows: {preset(rec).label}."
        self.preset_note.setText(note)

    # -- form <-> session ---------------------------------------------------------------
    def _on_session_config(self, cfg) -> None:
        self.form.set_config(cfg)
        self._error = None
        self._show_preset(cfg)
        self.refresh_estimate()
        self.completeChanged.emit()

    def _on_form_config_changed(self, cfg) -> None:
        if self._error is not None:
            self.banner.clear()
        self._error = None
        active = self.session.active_preset
        if active:  # a value the preset sets, changed by hand: the settings are the user's now
            old, new = self.session.config.to_dict(), cfg.to_dict()
            changed = {f"{sec}.{k}" for sec in new if isinstance(new[sec], dict)
                       for k in new[sec] if new[sec][k] != (old.get(sec) or {}).get(k)}
            if changed & preset_keys(active, cfg):
                self.session.active_preset = None
        self.session.events.config.disconnect(self._on_session_config)
        try:
            self.session.set_config(cfg)
        finally:
            self.session.events.config.connect(self._on_session_config)
        self._show_preset(cfg)
        self.refresh_estimate()
        self.completeChanged.emit()

    def _on_form_config_invalid(self, error: ConfigError) -> None:
        self._error = error
        self.banner.show_error(error)
        self.completeChanged.emit()

    def _on_form_field_focused(self, key: str) -> None:
        meta = self.form.meta.get(key, {})
        self.help_title.setText(meta.get("label", key))
        text = meta.get("help", "")
        if "min" in meta and "max" in meta:
            text += f"\n\nRange: {meta['min']:g} to {meta['max']:g}."
        self.help_text.setText(f"{text}\n\nConfig key: {key}")

    # -- estimate -----------------------------------------------------------------------
    def refresh_estimate(self, *_: object) -> None:
        """Recompute the memory and time estimate from the current settings."""
        s = self.session
        if s.model_info is None or s.device is None:
            self.estimate = None
            self.mem_label.setText("–")
            self.mem_detail.setText("Waiting for the model and the device…")
            self.time_label.setText("–")
            self.time_detail.setText("")
            self.warn_label.setText("")
            return
        report = s.data_report
        rows = report.rows_for(s.config) if report is not None else None
        est = estimate_run(s.config, s.model_info, s.device, rows, getattr(report, "mean_tokens", None))
        self.estimate = est
        m = est.memory
        self.mem_label.setText(f"≈ {m.total_gb:.2f} GB of {m.available_gb:.1f} GB")
        frac = min(1.0, m.total_gb / max(m.available_gb, 1e-9))
        self.mem_bar.setValue(int(frac * 1000))
        color = "#2e8b4a" if frac < 0.6 else ("#c98a12" if m.fits else "#c0392b")
        self.mem_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {color}; }}")
        self.mem_detail.setText(
            f"weights {m.weights_gb:.2f} · grads+optimizer {m.gradients_gb + m.optimizer_gb:.2f} · "
            f"activations {m.activations_gb:.2f} GB\n{m.trainable_params:,} trainable parameters on "
            f"{s.device.kind.upper()}")
        if est.steps:
            self.time_label.setText(f"≈ {fmt_duration(est.total_seconds)}")
            basis = "max steps" if s.config.training.max_steps > 0 else \
                f"{rows:,} training rows × {s.config.training.epochs:g} epochs"
            self.time_detail.setText(f"{est.steps:,} optimizer steps ({basis}), about "
                                     f"{fmt_duration(est.step_seconds)} each, plus about {fmt_duration(STARTUP_SECONDS)} "
                                     "to start (rough)")
        else:
            self.time_label.setText("–")
            self.time_detail.setText("Known once the data has been checked (Data page).")
        self.warn_label.setText("\n\n".join(f"⚠ {w}" for w in est.warnings))


__all__ = ["ConfigurePage"]
