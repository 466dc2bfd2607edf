"""Live training plots: ``RunMetrics`` (plain data) and its view ``QtRunMetrics`` (pyqtgraph); the Data page's
token-length histogram ``QtTokenHistogram`` (here, so the Data page itself loads no pyqtgraph).

Events only append to ``RunMetrics`` (numpy columns grown by doubling, so adding a
point is O(1) and a redraw never converts Python lists); a ~20 Hz ``QTimer``
pushes new points to curves created once (``setData``), so a fast run never
floods the GUI.  What is drawn is decimated (:func:`decimate`: the min and max of
each bucket, in step order, so spikes stay visible) to at most
``QtRunMetrics.MAX_POINTS`` per curve over the visible step range, so a redraw
costs about the same with 100 points or 1,000,000.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QWidget

from backend import events as ev

_TRAIN_KEYS = ("loss", "learning_rate", "grad_norm", "tokens_per_s", "memory_mb")


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f if math.isfinite(f) else math.nan


def decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of the curve ``(x, y)`` that keep its shape.

    The points are cut into ``max_points // 2`` buckets of consecutive points; each
    bucket gives its minimum and its maximum (NaNs ignored), in their original
    order, so the envelope and every spike survive.  A bucket without any finite
    value gives one NaN point twice (a gap with ``connect="finite"``).  Fewer
    points than ``max_points`` are returned unchanged.
    """
    n = len(x)
    if n <= max_points or max_points < 2:
        return x, y
    size = -(-n // (max_points // 2))          # points per bucket (ceil)
    nb = -(-n // size)                         # buckets
    pad = nb * size - n
    yy = np.asarray(y, dtype=float)
    if pad:
        yy = np.concatenate([yy, np.full(pad, np.nan)])
    yy = yy.reshape(nb, size)
    finite = np.isfinite(yy)
    lo = np.where(finite, yy, np.inf).argmin(axis=1)
    hi = np.where(finite, yy, -np.inf).argmax(axis=1)
    base = np.arange(nb) * size
    idx = np.empty(2 * nb, dtype=np.intp)
    idx[0::2] = base + np.minimum(lo, hi)      # an all-NaN bucket points at its own first point
    idx[1::2] = base + np.maximum(lo, hi)
    return x[idx], y[idx]


class RunMetrics:
    """The points of one run, by series.  No Qt.

    Train points live in one float array (row 0: steps, then one row per series),
    grown by doubling.  ``version`` grows with every change, so views redraw only
    when needed.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Forget every point."""
        self._data = np.empty((1 + len(_TRAIN_KEYS), 256))
        self._n = 0
        self.eval_steps: list[float] = []
        self.eval_loss: list[float] = []
        self.checkpoints: list[int] = []
        self.last_train: dict | None = None
        self.last_eval: dict | None = None
        self.version = 0

    # -- read ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def x(self) -> np.ndarray:
        """The train steps (a read-only view, increasing)."""
        v = self._data[0, : self._n]
        v.flags.writeable = False
        return v

    def y(self, key: str) -> np.ndarray:
        """One train series (a read-only view, NaN where the event had no value)."""
        v = self._data[1 + _TRAIN_KEYS.index(key), : self._n]
        v.flags.writeable = False
        return v

    @property
    def steps(self) -> list[float]:
        """The train steps as a list."""
        return self.x().tolist()

    # -- write -----------------------------------------------------------------------------
    def add(self, e: dict) -> None:
        """Take one event (``train``, ``eval`` or ``checkpoint``; others are ignored)."""
        t = e.get("type")
        if t == ev.TRAIN and e.get("step") is not None:
            step = float(e["step"])
            if self._n and step <= self._data[0, self._n - 1]:
                self._drop_from(step)  # a resumed run replays steps after its checkpoint
            if self._n == self._data.shape[1]:
                grown = np.empty((self._data.shape[0], 2 * self._data.shape[1]))
                grown[:, : self._n] = self._data[:, : self._n]
                self._data = grown
            col = self._data[:, self._n]
            col[0] = step
            for i, k in enumerate(_TRAIN_KEYS, 1):
                col[i] = _num(e.get(k))
            self._n += 1
            self.last_train = e
            self.version += 1
        elif t == ev.EVAL and e.get("step") is not None:
            step = float(e["step"])
            while self.eval_steps and self.eval_steps[-1] >= step:
                self.eval_steps.pop()
                self.eval_loss.pop()
            self.eval_steps.append(step)
            self.eval_loss.append(_num(e.get("eval_loss")))
            self.last_eval = e
            self.version += 1
        elif t == ev.CHECKPOINT and e.get("step") is not None:
            self.checkpoints.append(int(e["step"]))

    def _drop_from(self, step: float) -> None:
        self._n = int(np.searchsorted(self._data[0, : self._n], step, side="left"))

    def load(self, events: list[dict]) -> None:
        """Replace the points with a run's recorded events."""
        self.clear()
        for e in events:
            self.add(e)
        self.version += 1

    def points(self, key: str) -> int:
        """Finite points in a series (``eval_loss`` included)."""
        if key == "eval_loss":
            return sum(1 for v in self.eval_loss if math.isfinite(v))
        return int(np.isfinite(self.y(key)).sum())


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
    MAX_POINTS = 4000  # per curve at most: the min and max of one bucket per pixel column, up to 2,000 columns
    MAX_SYMBOLS = 300  # eval points drawn with markers up to this many
    SHORT_CURVE = 40   # train curves this short get a marker on each point (a one-point curve is a dot)
    GRID_PEN = "#e4e8ee"  # opaque: alpha-blended grid lines cost most of a repaint

    def __init__(self, metrics: RunMetrics, parent: QWidget | None = None):
        super().__init__(parent, show=False)
        self.setBackground("w")
        self.metrics = metrics
        self._drawn: tuple | None = None
        self.plots: dict[str, pg.PlotItem] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._pens: dict[str, tuple] = {}
        self._thin = False
        positions = {"loss": (0, 0, 2, 1), "learning_rate": (0, 1, 1, 1), "grad_norm": (0, 2, 1, 1),
                     "tokens_per_s": (1, 1, 1, 1), "memory_mb": (1, 2, 1, 1)}
        for key, title, ylabel, color in PLOTS:
            row, col, rs, cs = positions[key]
            p = self.addPlot(row=row, col=col, rowspan=rs, colspan=cs)
            # The loss plot's key is in its title, outside the data: a legend box inside the plot
            # covered the curve's end (issue 21).
            key_html = ("&nbsp;&nbsp;<span style='color:#2f6db5'>━ train</span>&nbsp;&nbsp;"
                        "<span style='color:#d35400'>●━ eval</span>") if key == "loss" else ""
            p.setTitle(f"<span style='color:#1f2a37;font-size:10pt'><b>{title}</b>{key_html}</span>")
            p.setLabel("bottom", "optimizer step", color="#3a4450")
            p.setLabel("left", ylabel, color="#3a4450")
            p.showGrid(x=True, y=True)
            p.setMenuEnabled(False)
            for ax in ("left", "bottom"):
                axis = p.getAxis(ax)
                axis.setTextPen("#3a4450")
                axis.setPen("#9aa3af")
                # grid: major lines in an opaque light pen, behind the curves
                axis.setTickPen(pg.mkPen(self.GRID_PEN))
                axis.setStyle(tickAlpha=255, maxTickLevel=0)
                axis.setZValue(-200)
                axis.enableAutoSIPrefix(False)
            self.plots[key] = p
            # decimated by refresh() (not by pyqtgraph, whose 'peak' mode loses a bucket with a NaN)
            # wide pen while every point is drawn; a thin one once decimated (dense: 2 points a pixel,
            # and Qt strokes wide lines several times slower)
            self._pens[key] = (pg.mkPen(color, width=2), pg.mkPen(color, width=1))
            self.curves[key] = p.plot([], [], pen=self._pens[key][0], name=title, skipFiniteCheck=True)
        loss = self.plots["loss"]
        self._short: dict[str, bool] = {k: False for k in _TRAIN_KEYS}
        self._eval_symbol = dict(symbol="o", symbolSize=7, symbolBrush="#d35400", symbolPen="w")
        self.curves["eval_loss"] = loss.plot([], [], pen=pg.mkPen("#d35400", width=2),
                                             name="eval", **self._eval_symbol)
        self._eval_marked = True
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
        # zooming or panning re-decimates the visible steps (coalesced: one redraw per burst)
        self._range_timer = QTimer(self)
        self._range_timer.setSingleShot(True)
        self._range_timer.setInterval(30)
        self._range_timer.timeout.connect(self.refresh)
        loss.getViewBox().sigXRangeChanged.connect(lambda *_: self._range_timer.start())

    def start_live(self) -> None:
        """Redraw new points at ~20 Hz."""
        self.timer.start()

    def stop_live(self) -> None:
        """Stop the timer and draw what there is."""
        self.timer.stop()
        self.refresh()

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(ev)
        if hasattr(self, "_range_timer"):  # pyqtgraph calls this during __init__
            self._range_timer.start()  # the number of pixel columns changed

    def max_points(self) -> int:
        """Points per curve: two per pixel column of the widest plot (bounded)."""
        cols = max((int(p.getViewBox().width()) for p in self.plots.values()), default=0)
        return int(min(self.MAX_POINTS, max(400, 2 * cols)))

    def _visible(self, x: np.ndarray) -> tuple[int, int]:
        """Index range of the train points in the shared step range (plus one each side)."""
        vb = self.plots["loss"].getViewBox()
        n = len(x)
        if n == 0 or vb.autoRangeEnabled()[0]:
            return 0, n
        left, right = vb.viewRange()[0]
        i0 = int(np.searchsorted(x, left, side="left")) - 1
        i1 = int(np.searchsorted(x, right, side="right")) + 1
        return max(0, i0), min(n, max(i1, i0 + 1))

    def close(self) -> bool:
        """pyqtgraph deletes the plot items on close: stop the timers that would draw on them."""
        self.timer.stop()
        self._range_timer.stop()
        return super().close()

    def refresh(self) -> None:
        """Push the (decimated, visible) points to the curves if anything changed."""
        if self.closed:  # the scene and its plots are gone (a timer event already queued)
            return
        m = self.metrics
        x = m.x()
        i0, i1 = self._visible(x)
        cap = self.max_points()
        key = (m.version, i0, i1, cap)
        if key == self._drawn:
            return
        self._drawn = key
        xs = x[i0:i1]
        thin = len(xs) > cap
        if thin != self._thin:
            self._thin = thin
            for k in _TRAIN_KEYS:
                self.curves[k].setPen(self._pens[k][int(thin)])
        for k in _TRAIN_KEYS:
            dx, dy = decimate(xs, m.y(k)[i0:i1], cap)
            if dx.base is not None:  # a view of the metrics' buffer: give the curve its own copy
                dx, dy = dx.copy(), dy.copy()
            short = len(dx) <= self.SHORT_CURVE
            if short != self._short[k]:
                self._short[k] = short
                color = self._pens[k][0].color()
                if short:
                    self.curves[k].setSymbol("o")
                    self.curves[k].setSymbolSize(5)
                    self.curves[k].setSymbolBrush(color)
                    self.curves[k].setSymbolPen(color)
                else:
                    self.curves[k].setSymbol(None)
            self.curves[k].setData(dx, dy, connect="finite")
        ex, ey = decimate(np.asarray(m.eval_steps, dtype=float), np.asarray(m.eval_loss, dtype=float), cap)
        marked = len(ex) <= self.MAX_SYMBOLS
        if marked != self._eval_marked:
            self._eval_marked = marked
            self.curves["eval_loss"].setSymbol(self._eval_symbol["symbol"] if marked else None)
        self.curves["eval_loss"].setData(ex, ey, connect="finite")
        self.empty_hint.setVisible(not len(m))
        if not len(m):
            for p in self.plots.values():
                p.enableAutoRange()

    def curve_points(self, key: str) -> int:
        """Points a curve currently holds (after decimation; for tests)."""
        x, _ = self.curves[key].getData()
        return 0 if x is None else len(x)


class QtTokenHistogram(pg.PlotWidget):
    """Token lengths of the rows as bars, with the max-length cut-off."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, background="w")
        self.setMinimumHeight(200)
        pi = self.getPlotItem()
        pi.setLabel("bottom", "tokens per row")
        pi.setLabel("left", "rows")
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setMenuEnabled(False)
        pi.getViewBox().setMouseEnabled(x=True, y=False)
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=pg.mkBrush("#5b8fd1"),
                                    pen=pg.mkPen("#2f6db5"))
        self.addItem(self.bars)
        self.cutoff = pg.InfiniteLine(angle=90, pen=pg.mkPen("#c0392b", width=2, style=Qt.PenStyle.DashLine),
                                      label="max length",
                                      labelOpts={"position": 0.9, "color": "#c0392b", "anchors": [(1, 0), (1, 0)]})
        self.addItem(self.cutoff)
        self.cutoff.hide()

    def set_histogram(self, hist: dict | None) -> None:
        """Show ``backend.data.histogram`` output (``edges``, ``counts``, ``max_length``)."""
        edges = (hist or {}).get("edges") or []
        counts = (hist or {}).get("counts") or []
        if not counts:
            self.bars.setOpts(x0=[], x1=[], height=[])
            self.cutoff.hide()
            return
        self.bars.setOpts(x0=edges[:-1], x1=edges[1:], height=counts)
        ml = hist.get("max_length")
        if ml:
            self.cutoff.show()  # the label only refreshes while visible
            self.cutoff.setValue(ml)
            self.cutoff.label.setFormat(f"max length {ml:,}")
        hi = max(edges[-1], (ml or 0) * 1.05 if ml and ml < edges[-1] * 3 else edges[-1])
        self.setXRange(0, hi, padding=0.02)
        self.setYRange(0, max(counts) * 1.1, padding=0)

    def bar_count(self) -> int:
        """Number of bars shown (tests)."""
        h = self.bars.opts.get("height")
        return 0 if h is None else len(h)
