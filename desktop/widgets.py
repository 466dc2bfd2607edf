"""Small shared widgets: the inline message banner, page scaffold, formatting helpers."""

from __future__ import annotations

import html
import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from backend.errors import TuneError

# Colours shared by banners, plots and the label-mask preview.
COLORS = {
    "info": ("#e8f1fb", "#2f6db5", "#1d3f66"),      # background, border, text
    "success": ("#e9f6ec", "#2e8b4a", "#1c4d2b"),
    "warning": ("#fdf4e3", "#c98a12", "#5c3f06"),
    "error": ("#fbeaea", "#c0392b", "#6b1d15"),
}
ICONS = {"info": "ℹ", "success": "✓", "warning": "⚠", "error": "✕"}


def describe_error(error: BaseException) -> tuple[str, str]:
    """``(headline, details)`` for people: TuneErrors in words, others by type."""
    if isinstance(error, TuneError):
        details = []
        loc = error.location()
        if loc:
            details.append(f"In {loc}")
        if error.field:
            details.append(f"Setting: {error.field}")
        if error.hint:
            details.append(f"How to fix: {error.hint}")
        msg = error.message[:1].upper() + error.message[1:]
        return msg, "\n".join(details)
    text = str(error) or type(error).__name__
    return (f"Unexpected error: {type(error).__name__}: {text[:400]}",
            "The full traceback is in the log.")


class Banner(QFrame):
    """An inline message at the top of a page: info, success, warning or error.

    Errors stay on the page where they happened; no modal dialogs.
    """

    closed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("Banner")
        self.kind = "info"
        self._icon = QLabel()
        self._icon.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        self._icon.setFixedWidth(22)
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._actions = QHBoxLayout()
        self._actions.setSpacing(6)
        close = QToolButton()
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self._on_close_clicked)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 8, 6, 8)
        lay.setSpacing(8)
        lay.addWidget(self._icon)
        lay.addWidget(self._text, 1)
        lay.addLayout(self._actions)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def text(self) -> str:
        """The plain text shown (for tests and screen readers)."""
        doc = self._text.text()
        from PySide6.QtGui import QTextDocumentFragment
        return QTextDocumentFragment.fromHtml(doc).toPlainText()

    def show_message(self, kind: str, headline: str, details: str = "",
                     actions: list[tuple[str, object]] | None = None) -> None:
        """Show ``headline`` (bold) and ``details`` with optional ``(label, callback)`` buttons."""
        self.kind = kind
        bg, border, fg = COLORS[kind]
        self.setStyleSheet(f"#Banner {{ background: {bg}; border: 1px solid {border}; border-radius: 4px; }}"
                           f"#Banner QLabel {{ color: {fg}; background: transparent; border: none; }}")
        self._icon.setText(f"<span style='font-size: 14pt; color: {border}'>{ICONS[kind]}</span>")
        body = f"<b>{html.escape(headline)}</b>"
        if details:
            body += "<br>" + html.escape(details).replace("\n", "<br>")
        self._text.setText(body)
        while self._actions.count():
            w = self._actions.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        for label, callback in actions or []:
            b = QPushButton(label)
            b.clicked.connect(callback)
            self._actions.addWidget(b, 0, Qt.AlignmentFlag.AlignTop)
        self.show()

    def show_error(self, error: BaseException, actions=None) -> None:
        """Show an exception in words (the traceback goes to the log only)."""
        headline, details = describe_error(error)
        self.show_message("error", headline, details, actions)

    def clear(self) -> None:
        """Hide the banner."""
        self.hide()

    def _on_close_clicked(self) -> None:
        self.hide()
        self.closed.emit()


class Page(QWidget):
    """A wizard page: title, one-line explanation, banner, then the page's content.

    Subclasses fill ``self.body`` (a ``QVBoxLayout``) and override
    :meth:`validate` (why the user cannot go on, or ``None``) and
    :meth:`on_enter`.  ``completeChanged`` tells the window to refresh Next.
    """

    title = ""
    subtitle = ""
    completeChanged = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(20, 16, 20, 8)
        outer.setSpacing(10)
        head = QLabel(self.title)
        head.setObjectName("PageTitle")
        sub = QLabel(self.subtitle)
        sub.setObjectName("PageSubtitle")
        sub.setWordWrap(True)
        outer.addWidget(head)
        outer.addWidget(sub)
        self.banner = Banner()
        outer.addWidget(self.banner)
        self.body = QVBoxLayout()
        self.body.setSpacing(10)
        outer.addLayout(self.body, 1)

    def validate(self) -> str | None:
        """Why the user cannot leave forward, or ``None`` when they can."""
        return None

    def is_busy(self) -> bool:
        """A job of this page is running."""
        return False

    def on_enter(self) -> None:
        """Called when the page becomes visible."""

    def on_leave(self) -> None:
        """Called when the user moves on."""


def hline() -> QFrame:
    """A thin horizontal separator."""
    f = QFrame()
    f.setFrameShape(QFrame.Shape.HLine)
    f.setObjectName("Separator")
    return f


def muted(text: str = "") -> QLabel:
    """A grey explanatory label that wraps."""
    lab = QLabel(text)
    lab.setObjectName("Muted")
    lab.setWordWrap(True)
    return lab


def fmt_duration(seconds: float | None) -> str:
    """``3725 -> '1 h 02 min'``; ``None`` -> '–'."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m:02d} min"
    return f"{h // 24} d {h % 24} h"


def fmt_number(v: float | None, digits: int = 4) -> str:
    """Compact number for tables and labels."""
    if v is None:
        return "–"
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e9:
        return f"{int(v):,}"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.2e}"
    return f"{v:.{digits}g}"
