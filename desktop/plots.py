"""Live training plots: ``RunMetrics`` (plain data) and its view ``QtRunMetrics`` (pyqtgraph).

Events only append to ``RunMetrics``; a ~20 Hz ``QTimer`` pushes new points to
curves created once (``setData``), so a fast run never floods the GUI.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QWidget

_TRAIN_KEYS = ("loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_mb")


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


class RunMetrics:
    """The points of one run, by series.  No Qt.

    ``version`` grows with every change, so views redraw only when needed.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every point."""
        self.steps: list[float] = []
        self.series: dict[str, list[float]] = {k: [] for k in _TRAIN_KEYS}
        self.eval_steps: list[float] = []
        self.eval_loss: list[float] = []
        self.checkpoints: list[int] = []
        self.last_train: dict | None = None
        self.last_eval: dict | None = None
        self.version = 0

    def add(self, e: dict) -> None:
        """Take one event (``train``, ``eval`` or ``checkpoint``; others are ignored)."""
        t = e.get("type")
        if t == "train" and e.get("step") is not None:
            step = float(e["step"])
            if self.steps and step <= self.steps[-1]:
                self._drop_from(step)  # a resumed run replays steps after its checkpoint
            self.steps.append(step)
            for k in _TRAIN_KEYS:
                self.series[k].append(_num(e.get(k)))
            self.last_train = e
            self.version += 1
        elif t == "eval" and e.get("step") is not None:
            step = float(e["step"])
            while self.eval_steps and self.eval_steps[-1] >= step:
                self.eval_steps.pop()
                self.eval_loss.pop()
            self.eval_steps.append(step)
            self.eval_loss.append(_num(e.get("eval_loss")))
            self.last_eval = e
            self.version += 1
        elif t == "checkpoint" and e.get("step") is not None:
            self.checkpoints.append(int(e["step"]))

    def _drop_from(self, step: float) -> None:
        keep = [i for i, s in enumerate(self.steps) if s < step]
        n = len(keep)
        self.steps = self.steps[:n]
        for k in _TRAIN_KEYS:
            self.series[k] = self.series[k][:n]

    def load(self, events: list[dict]) -> None:
        """Replace the points with a run's recorded events."""
        self.clear()
        for e in events:
            self.add(e)
        self.version += 1

    def points(self, key: str) -> int:
        """Finite points in a series (``eval_loss`` included)."""
        vals = self.eval_loss if key == "eval_loss" else self.series[key]
        return sum(1 for v in vals if math.isfinite(v))


# (key, title, y label, colour)
PLOTS = (
    ("loss", "Loss", "loss (nats per token)", "#2f6db5"),
    ("learning_rate", "Learning rate", "learning rate", "#2e8b4a"),
    ("grad_norm", "Gradient norm", "L2 norm", "#8e44ad"),
    ("tokens_per_s", "Throughput", "tokens per second", "#16839a"),
    ("memory_mb", "Memory", "memory (MB)", "#7f8c8d"),
)


class QtRunMetrics(pg.GraphicsLayoutWidget):
    """Five plots sharing the step axis: loss (train + eval), learning rate, gradient norm,
    tokens/s and memory."""

    REFRESH_MS = 50  # ~20 Hz at most

    def __init__(self, metrics: RunMetrics, parent: QWidget | None = None):
        super().__init__(parent, show=False)
        self.setBackground("w")
        self.metrics = metrics
        self._drawn = -1
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        positions = {"loss": (0, 0, 2, 1), "learning_rate": (0, 1, 1, 1), "grad_norm": (0, 2, 1, 1),
                     "tokens_per_s": (1, 1, 1, 1), "memory_mb": (1, 2, 1, 1)}
        for key, title, ylabel, color in PLOTS:
            row, col, rs, cs = positions[key]
            p = self.addPlot(row=row, col=col, rowspan=rs, colspan=cs)
            p.setTitle(f"<span style='color:#1f2a37;font-size:10pt'><b>{title}</b></span>")
            p.setLabel("bottom", "optimizer step", color="#3a4450")
            p.setLabel("left", ylabel, color="#3a4450")
            p.showGrid(x=True, y=True, alpha=0.15)
            p.setDownsampling(mode="peak")
            p.setClipToView(True)
            p.setMenuEnabled(False)
            for ax in ("left", "bottom"):
                p.getAxis(ax).setTextPen("#3a4450")
                p.getAxis(ax).setPen("#9aa3af")
                p.getAxis(ax).enableAutoSIPrefix(False)
            self.plots[key] = p
            self.curves[key] = p.plot([], [], pen=pg.mkPen(color, width=2), name=title)
        loss = self.plots["loss"]
        legend = loss.addLegend(offset=(-10, 10), labelTextColor="#1f2a37", brush=pg.mkBrush(255, 255, 255, 210))
        legend.addItem(self.curves["loss"], "train")
        self.curves["eval_loss"] = loss.plot([], [], pen=pg.mkPen("#d35400", width=2),
                                             symbol="o", symbolSize=7, symbolBrush="#d35400",
                                             symbolPen="w", name="eval")
        self.plots["memory_mb"].setToolTip("Process memory (RSS) on a CPU; peak allocated GPU memory on CUDA")
        for key in ("learning_rate", "grad_norm", "tokens_per_s", "memory_mb"):
            self.plots[key].setXLink(loss)
        self.empty_hint = pg.TextItem(html="<div style='color:#8a94a3;text-align:center'>No points yet.<br>"
                                           "Start a run, or pick one<br>in the list of runs.</div>",
                                      anchor=(0.5, 0.5))
        loss.addItem(self.empty_hint, ignoreBounds=True)
        self.empty_hint.setPos(0.5, 0.5)
        self.plots["grad_norm"].setToolTip("Gradient norm before clipping (clipped to training.max_grad_norm)")
        lay = self.ci.layout
        lay.setColumnStretchFactor(0, 5)
        lay.setColumnStretchFactor(1, 3)
        lay.setColumnStretchFactor(2, 3)
        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self.refresh)

    def start_live(self) -> None:
        """Redraw new points at ~20 Hz."""
        self.timer.start()

    def stop_live(self) -> None:
        """Stop the timer and draw what there is."""
        self.timer.stop()
        self.refresh()

    def refresh(self) -> None:
        """Push the points to the curves if anything changed."""
        m = self.metrics
        if m.version == self._drawn:
            return
        self._drawn = m.version
        x = np.asarray(m.steps, dtype=float)
        for key in _TRAIN_KEYS:
            y = np.asarray(m.series[key], dtype=float)
            self.curves[key].setData(x, y, connect="finite")
        self.curves["eval_loss"].setData(np.asarray(m.eval_steps, dtype=float),
                                         np.asarray(m.eval_loss, dtype=float), connect="finite")
        self.empty_hint.setVisible(not m.steps)
        if not m.steps:
            for p in self.plots.values():
                p.enableAutoRange()

    def curve_points(self, key: str) -> int:
        """Points a curve currently shows (for tests)."""
        x, _ = self.curves[key].getData()
        return 0 if x is None else len(x)
