"""The one form builder: editors generated from a settings dataclass's fields.

:class:`QtSettingsForm` draws any settings dataclass built with
:mod:`backend.fields` (``to_dict`` / ``from_dict``): one group box per section,
labels, tooltips, choices and ranges from the fields' own metadata and
``Literal`` types, so a new field appears without GUI work.
:class:`QtRunConfigForm` is it for ``RunConfig`` (the Configure page); the
Chat page's settings panel is it for ``AnswerSettings``.
"""

from __future__ import annotations

import copy
import json
import math
import re
import typing
from typing import Any, Iterable, Sequence, get_origin

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel,
                               QLineEdit, QSpinBox, QWidget)

from backend import methods
from backend.config import RunConfig
from backend.errors import ConfigError
from backend.fields import field_choices, leaf_fields

# Fields set on other pages (model source, files) or per run (folder).
HIDDEN_FIELDS = {"output_dir", "model.name_or_path", "model.allow_hub", "model.trust_remote_code",
                 "model.allow_pickle_weights", "data.train_files", "data.validation_files",
                 "data.document_files"}

SECTION_TITLES = {"": "Run", "method": "Method", "training": "Training", "data": "Data",
                  "model": "Model and hardware"}
RUN_SECTIONS = tuple((key, SECTION_TITLES[key]) for key in ("", "method", "training", "data", "model"))

# Fields that only matter for some methods.
ONLY_FOR_METHODS = methods.fields_for()

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)?([eE][+-]?\d*)?$")


class FloatSpinBox(QDoubleSpinBox):
    """A float editor that shows ``2e-04`` style values and steps learning rates ×2 / ÷2."""

    def __init__(self, lo: float, hi: float, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(lo, hi)
        self.log_scale = lo > 0 and hi <= 1 and hi / lo >= 1e4
        self.setSingleStep(0.01 if hi <= 1 else (0.1 if hi <= 10 else 1.0))
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # Qt override
        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            ok = _FLOAT_RE.match(t) is not None
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid, text, pos)
        inside = self.minimum() <= v <= self.maximum() and math.isfinite(v)
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate, text, pos)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        if self.log_scale:
            self.setValue(min(self.maximum(), max(self.minimum(), self.value() * 2.0 ** steps)))
        else:
            super().stepBy(steps)


class _FocusWatcher(QObject):
    """Tells the form which field has the keyboard focus (for the help box)."""

    def __init__(self, form: "QtSettingsForm"):
        super().__init__(form)
        self._form = form

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() in (QEvent.Type.FocusIn, QEvent.Type.Enter):
            key = obj.property("configKey")
            if key:
                self._form.fieldFocused.emit(key)
        return False


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is typing.Literal:
        return "choice"
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, "str")


class QtSettingsForm(QWidget):
    """Group boxes of editors, one per section of a settings dataclass, built from its fields.

    Parameters
    ----------
    cls
        The settings dataclass (``RunConfig``, ``AnswerSettings``): fields made
        with :func:`backend.fields.setting`, ``to_dict`` and ``from_dict``.
    sections
        ``(section, title)`` pairs in display order; ``""`` is the top-level fields.
    hidden
        Dotted keys not drawn (set elsewhere); their values are kept.
    only
        When given, the dotted keys drawn (the rest keep their values).

    Signals
    -------
    configChanged(object)
        A valid settings object after an edit (debounced).
    configInvalid(ConfigError)
        The edit made the settings invalid; the field is marked.
    fieldFocused(str)
        The dotted key of the field under focus or the mouse.
    """

    configChanged = Signal(object)
    configInvalid = Signal(object)
    fieldFocused = Signal(str)

    def __init__(self, cls: type, sections: Sequence[tuple[str, str]], *, hidden: Iterable[str] = (),
                 only: Iterable[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings_class = cls
        self.editors: dict[str, QWidget] = {}
        self.kinds: dict[str, str] = {}
        self.meta: dict[str, dict] = {}
        self.groups: dict[str, QGroupBox] = {}
        self._hidden = set(hidden)
        self._only = set(only) if only is not None else None
        self._base = cls().to_dict()
        self._loading = False
        self._marked: str | None = None
        self._watcher = _FocusWatcher(self)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(120)
        self._debounce.timeout.connect(self._emit_config)
        for section, title in sections:
            self.groups[section] = self._build_section(section, title)

    # -- building ------------------------------------------------------------------
    def _build_section(self, section: str, title: str) -> QGroupBox:
        box = QGroupBox(title)
        form = QFormLayout(box)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(6)
        for key, cls, f, tp in leaf_fields(self.settings_class):
            if (key.rsplit(".", 1)[0] if "." in key else "") != section or key in self._hidden:
                continue
            if self._only is not None and key not in self._only:
                continue
            kind = _type_name(tp)
            meta = dict(f.metadata)
            editor = self._make_editor(kind, meta, cls, f.name)
            editor.setObjectName(key)
            editor.setProperty("configKey", key)
            editor.installEventFilter(self._watcher)
            tip = meta.get("help", "")
            if "min" in meta and "max" in meta:
                tip += f"\nRange: {meta['min']:g} to {meta['max']:g}."
            tip += f"\nConfig key: {key}"
            editor.setToolTip(tip)
            label = QLabel(meta.get("label", f.name) + ":")
            label.setToolTip(tip)
            label.setProperty("configKey", key)
            label.installEventFilter(self._watcher)
            form.addRow(label, editor)
            self.editors[key] = editor
            self.kinds[key] = kind
            self.meta[key] = meta
        return box

    def _make_editor(self, kind: str, meta: dict, cls: type, name: str) -> QWidget:
        if kind == "choice":
            w = QComboBox()
            for c in field_choices(cls, name) or ():
                w.addItem(str(c), c)
            w.currentIndexChanged.connect(self._on_edited)
            return w
        if kind == "bool":
            w = QCheckBox()
            w.toggled.connect(self._on_edited)
            return w
        if kind == "int":
            w = QSpinBox()
            w.setRange(int(meta.get("min", 0)), int(min(meta.get("max", 2**31 - 1), 2**31 - 1)))
            w.setKeyboardTracking(False)
            w.setGroupSeparatorShown(True)
            w.valueChanged.connect(self._on_edited)
            return w
        if kind == "float":
            w = FloatSpinBox(float(meta.get("min", -1e9)), float(meta.get("max", 1e9)))
            w.valueChanged.connect(self._on_edited)
            return w
        w = QLineEdit()
        if kind == "list":
            w.setPlaceholderText("all linear layers" if name == "target_modules" else "comma-separated")
        elif kind == "dict":
            w.setPlaceholderText('{"your_column": "our_column"}')
        w.editingFinished.connect(self._on_edited)
        return w

    # -- values ----------------------------------------------------------------------
    def set_config(self, cfg: Any) -> None:
        """Show ``cfg`` (an instance of the form's settings class) in the editors (without emitting)."""
        self._loading = True
        try:
            self._base = copy.deepcopy(cfg.to_dict())
            for key, editor in self.editors.items():
                self._set_value(editor, self.kinds[key], _get(self._base, key))
            self._clear_mark()
            self._update_enabled()
        finally:
            self._loading = False

    def _set_value(self, editor: QWidget, kind: str, value: Any) -> None:
        if kind == "choice":
            editor.setCurrentIndex(max(0, editor.findData(value)))
        elif kind == "bool":
            editor.setChecked(bool(value))
        elif kind in ("int", "float"):
            editor.setValue(value)
        elif kind == "list":
            editor.setText(", ".join(value))
        elif kind == "dict":
            editor.setText(json.dumps(value) if value else "")
        else:
            editor.setText(str(value))

    def value(self, key: str) -> Any:
        """The editor value of a dotted key, typed."""
        editor, kind = self.editors[key], self.kinds[key]
        if kind == "choice":
            return editor.currentData()
        if kind == "bool":
            return editor.isChecked()
        if kind in ("int", "float"):
            return editor.value()
        return editor.text()  # parsed by from_dict (lists, JSON)

    def config_dict(self) -> dict:
        """The base config with every editor's value, as a plain dict."""
        d = copy.deepcopy(self._base)
        for key in self.editors:
            _set(d, key, self.value(key))
        return d

    def build(self) -> Any:
        """A validated settings object from the editors.

        Raises
        ------
        ConfigError
            Naming the field at fault (also marked in the form).
        """
        return self.settings_class.from_dict(self.config_dict())

    def set_value(self, key: str, value: Any) -> None:
        """Set one editor (as a user would) — for tests and presets."""
        self._set_value(self.editors[key], self.kinds[key], value)
        self._on_edited()

    # -- editing ---------------------------------------------------------------------
    def _on_edited(self, *_: object) -> None:
        if self._loading:
            return
        self._update_enabled()
        self._debounce.start()

    def flush(self) -> None:
        """Emit a pending edit now."""
        if self._debounce.isActive():
            self._debounce.stop()
            self._emit_config()

    def _emit_config(self) -> None:
        try:
            cfg = self.build()
        except ConfigError as e:
            self._mark(e.field)
            self.configInvalid.emit(e)
            return
        self._clear_mark()
        self._base = copy.deepcopy(cfg.to_dict())
        self.configChanged.emit(cfg)

    def _update_enabled(self) -> None:
        """Enable or disable editors that depend on other values (none here; see QtRunConfigForm)."""

    def _mark(self, key: str | None) -> None:
        self._clear_mark()
        if key in self.editors:
            self.editors[key].setStyleSheet("border: 1px solid #c0392b; border-radius: 2px;")
            self._marked = key

    def _clear_mark(self) -> None:
        if self._marked in self.editors:
            self.editors[self._marked].setStyleSheet("")
        self._marked = None

    def marked_field(self) -> str | None:
        """The field currently marked invalid."""
        return self._marked


class QtRunConfigForm(QtSettingsForm):
    """The Configure page's form: :class:`QtSettingsForm` over ``RunConfig``, per-run fields hidden.

    Editors of fields that only matter for some methods are disabled for the others.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(RunConfig, RUN_SECTIONS, hidden=HIDDEN_FIELDS, parent=parent)

    def build(self) -> RunConfig:
        """A validated ``RunConfig`` from the editors (see :meth:`QtSettingsForm.build`)."""
        return super().build()

    def _update_enabled(self) -> None:
        method = self.value("method.method") if "method.method" in self.editors else "lora"
        for key, methods in ONLY_FOR_METHODS.items():
            if key in self.editors:
                ok = method in methods
                self.editors[key].setEnabled(ok)
                form = self.editors[key].parentWidget().layout()
                if isinstance(form, QFormLayout):
                    lab = form.labelForField(self.editors[key])
                    if lab is not None:
                        lab.setEnabled(ok)
        if "training.epochs" in self.editors:
            self.editors["training.epochs"].setEnabled(self.value("training.max_steps") == 0)


def _get(d: dict, key: str) -> Any:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d[p]
    return d[parts[-1]]


def _set(d: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for p in parts[:-1]:
        d = d[p]
    d[parts[-1]] = value
