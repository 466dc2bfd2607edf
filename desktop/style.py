"""The app's look: Fusion with a calm light palette and a small style sheet."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#2f6db5"

STYLE_SHEET = f"""
QLabel#PageTitle {{ font-size: 16pt; font-weight: 600; color: #1f2a37; }}
QLabel#PageSubtitle, QLabel#Muted {{ color: #5b6675; }}
QLabel#SectionTitle {{ font-weight: 600; color: #1f2a37; }}
QLabel#BigNumber {{ font-size: 13pt; font-weight: 600; color: #1f2a37; }}
QListWidget#Steps {{ background: #eef1f5; border: none; border-right: 1px solid #d5dae1;
    font-size: 11pt; outline: 0; padding-top: 8px; }}
QListWidget#Steps::item {{ padding: 9px 14px; color: #2a3441; border-left: 3px solid transparent; }}
QListWidget#Steps::item:selected {{ background: #ffffff; color: {ACCENT}; font-weight: 600;
    border-left: 3px solid {ACCENT}; }}
QListWidget#Steps::item:disabled {{ color: #9aa3af; }}
QFrame#NavBar {{ border-top: 1px solid #d5dae1; background: #f7f8fa; }}
QGroupBox {{ font-weight: 600; border: 1px solid #d5dae1; border-radius: 4px; margin-top: 10px;
    padding: 10px 8px 8px 8px; background: #ffffff; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #1f2a37; }}
QPushButton#Primary {{ background: {ACCENT}; color: white; border: 1px solid #245a97;
    border-radius: 3px; padding: 5px 16px; font-weight: 600; }}
QPushButton#Primary:disabled {{ background: #9db6d6; border-color: #9db6d6; }}
QPushButton#Primary:hover {{ background: #2a62a3; }}
QPlainTextEdit#Log, QPlainTextEdit#Mono {{ font-family: "DejaVu Sans Mono", monospace; font-size: 9pt; }}
QFrame#Card {{ background: #ffffff; border: 1px solid #d5dae1; border-radius: 4px; }}
QFrame#Separator {{ color: #d5dae1; }}
"""


def apply_style(app: QApplication) -> None:
    """Fusion style, light palette, readable default font."""
    app.setStyle("Fusion")
    pal = QPalette()
    base = {
        QPalette.ColorRole.Window: "#f7f8fa",
        QPalette.ColorRole.WindowText: "#1f2a37",
        QPalette.ColorRole.Base: "#ffffff",
        QPalette.ColorRole.AlternateBase: "#f3f5f8",
        QPalette.ColorRole.ToolTipBase: "#ffffe8",
        QPalette.ColorRole.ToolTipText: "#1f2a37",
        QPalette.ColorRole.Text: "#1f2a37",
        QPalette.ColorRole.Button: "#eef1f5",
        QPalette.ColorRole.ButtonText: "#1f2a37",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: "#8a94a3",
    }
    for role, color in base.items():
        pal.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#9aa3af"))
    app.setPalette(pal)
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(STYLE_SHEET)


def mono_font() -> QFont:
    """The fixed-width font for logs and previews."""
    f = QFont("DejaVu Sans Mono")
    f.setStyleHint(QFont.StyleHint.Monospace)
    f.setPointSizeF(9)
    return f
