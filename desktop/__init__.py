"""Tune Studio desktop app (PySide6 + pyqtgraph) over the Qt-free ``backend``."""
