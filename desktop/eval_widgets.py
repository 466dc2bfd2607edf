"""The Evaluate page's views of a report dict: scorecard table, grouped bars, per-question table.

Each view takes the report's plain dicts (see ``desktop.eval_adapter``) and draws;
none of them loads a model.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from desktop.eval_adapter import (BAR_METRICS, METRICS, MODE_COLORS, MODE_SHORT, MODES, STATE_ABSTAINED,
                                  STATE_MISSING, STATE_RIGHT, STATE_WRONG, cell_state, fmt_interval, fmt_value)

# background, text of a per-question cell
STATE_STYLE = {STATE_RIGHT: ("#dff3e4", "#1c4d2b", "✓ right"), STATE_WRONG: ("#fbe3e1", "#6b1d15", "✕ wrong"),
               STATE_ABSTAINED: ("#fdf0d5", "#5c3f06", "– abstained"),
               STATE_MISSING: ("#f3f5f8", "#8a94a3", "not run")}


def _item(text: str, tip: str = "", align=Qt.AlignmentFlag.AlignCenter) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    it.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    if tip:
        it.setToolTip(tip)
    return it


class QtScorecard(QTableWidget):
    """Metrics (rows) by mode (columns), each figure with its 95% interval."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(len(METRICS), len(MODES), parent)
        self.setHorizontalHeaderLabels([MODE_SHORT[m] for m in MODES])
        self.setVerticalHeaderLabels([label for _k, label, _kind, _h in METRICS])
        for r, (_k, label, _kind, help_text) in enumerate(METRICS):
            self.verticalHeaderItem(r).setToolTip(help_text)
        for c, m in enumerate(MODES):
            tuned, rag = m.startswith("tuned"), m.endswith("+rag")
            self.horizontalHeaderItem(c).setToolTip(
                f"{'Tuned' if tuned else 'Base'} model, {'with' if rag else 'without'} the documents")
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.verticalHeader().setDefaultSectionSize(40)
        self.verticalHeader().setMinimumWidth(170)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + 40 * len(METRICS) + 2 * self.frameWidth())
        self.setAlternatingRowColors(True)
        self.clear_card()

    def clear_card(self) -> None:
        """Dashes everywhere (no report)."""
        for r in range(self.rowCount()):
            for c in range(self.columnCount()):
                self.setItem(r, c, _item("–"))

    def show_scorecard(self, scorecard: dict) -> None:
        """Fill the table from a report's ``scorecard``."""
        for r, (key, label, kind, _h) in enumerate(METRICS):
            values = [(scorecard.get(m) or {}).get(key) for m in MODES]
            finite = [e["value"] for e in values if e and e.get("value") is not None]
            best = (min if key == "false_abstention" else max)(finite) if len(finite) > 1 else None
            for c, e in enumerate(values):
                n = (e or {}).get("n")
                tip = f"{label}, {MODE_SHORT[MODES[c]]}: 95% interval in brackets" + (f", over {n} questions"
                                                                                      if n else "")
                it = _item(fmt_interval(e, kind), tip if e and e.get("value") is not None else
                           "Not measured in this mode (or no question of that kind in the set)")
                if best is not None and e and e.get("value") == best and len(set(finite)) > 1:
                    f = it.font()
                    f.setBold(True)
                    it.setFont(f)
                self.setItem(r, c, it)

    def cell_text(self, metric: str, mode: str) -> str:
        """The text of one cell (for tests)."""
        r = next(i for i, m in enumerate(METRICS) if m[0] == metric)
        return self.item(r, MODES.index(mode)).text()


class QtScoreBars(QWidget):
    """Grouped bars: one group per metric, one bar per mode, with 95% interval whiskers; legend below."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        p = self.plot.getPlotItem()
        p.setTitle("<span style='color:#1f2a37;font-size:10pt'><b>Per mode, with 95% intervals</b></span>")
        p.showGrid(y=True, alpha=0.25)
        for ax in ("left", "bottom"):
            axis = p.getAxis(ax)
            axis.setTextPen("#3a4450")
            axis.setPen("#9aa3af")
        p.getAxis("left").setLabel("score (1 = best)", color="#3a4450")
        # the legend is a Qt label under the plot: inside it would cover bars that reach 1.0
        self.legend = QLabel("&nbsp;&nbsp;&nbsp;".join(
            f"<span style='color:{MODE_COLORS[m]};font-size:13pt'>■</span>&nbsp;{MODE_SHORT[m]}" for m in MODES))
        self.legend.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.legend.setStyleSheet("QLabel { background: #ffffff; color: #1f2a37; padding: 2px; }")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.legend)
        self._items: list = []
        self.bars: dict[str, pg.BarGraphItem] = {}
        self.setMinimumHeight(260)

    def clear_bars(self) -> None:
        """Remove every bar."""
        p = self.plot.getPlotItem()
        for it in self._items:
            p.removeItem(it)
        self._items.clear()
        self.bars.clear()

    def show_scorecard(self, scorecard: dict) -> None:
        """Draw the bar metrics of a report's ``scorecard`` (metrics no mode measured are left out)."""
        self.clear_bars()
        p = self.plot.getPlotItem()
        keys = [k for k in BAR_METRICS
                if any(((scorecard.get(m) or {}).get(k) or {}).get("value") is not None for m in MODES)]
        width = 0.8 / len(MODES)
        for j, mode in enumerate(MODES):
            xs, ys, lo, hi = [], [], [], []
            for i, k in enumerate(keys):
                e = (scorecard.get(mode) or {}).get(k) or {}
                if e.get("value") is None:
                    continue
                x = i + (j - (len(MODES) - 1) / 2) * width
                v = float(e["value"])
                xs.append(x)
                ys.append(v)
                lo.append(v - float(e["low"]) if e.get("low") is not None else 0.0)
                hi.append(float(e["high"]) - v if e.get("high") is not None else 0.0)
            if not xs:
                continue
            bar = pg.BarGraphItem(x=xs, height=ys, width=width * 0.92, brush=MODE_COLORS[mode], pen=pg.mkPen("w"))
            p.addItem(bar)
            err = pg.ErrorBarItem(x=np.array(xs), y=np.array(ys), top=np.array(hi), bottom=np.array(lo),
                                  beam=width * 0.35, pen=pg.mkPen("#1f2a37", width=1.2))
            p.addItem(err)
            self._items += [bar, err]
            self.bars[mode] = bar
        labels = {"accuracy": "Accuracy", "f1": "Token F1", "similarity": "Similarity",
                  "retrieval_hit_rate": "Retrieval hits"}
        p.getAxis("bottom").setTicks([[(i, labels[k]) for i, k in enumerate(keys)]])
        p.getAxis("left").setTicks([[(v / 5, f"{v / 5:.1f}") for v in range(6)]])
        p.setXRange(-0.6, max(len(keys), 1) - 0.4, padding=0)
        p.setYRange(0, 1.04, padding=0)

    def bar_count(self) -> int:
        """Bars drawn (for tests)."""
        return sum(len(b.opts["x"]) for b in self.bars.values())


class QtQuestionTable(QTableWidget):
    """One row per question; the four modes as coloured cells; rows hidden by the filter."""

    questionSelected = Signal(int)   # index into the report's questions

    COLUMNS = ["Question", *[MODE_SHORT[m] for m in MODES], "Kind"]

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(self.COLUMNS), parent)
        self.setHorizontalHeaderLabels(self.COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(26)
        h = self.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(self.COLUMNS)):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.Fixed)
            self.setColumnWidth(c, 112)
        self.questions: list[dict] = []
        self.itemSelectionChanged.connect(self._on_selection_changed)

    def show_questions(self, questions: list[dict]) -> None:
        """One row per question (all shown)."""
        self.questions = list(questions)
        self.setRowCount(len(questions))
        for r, q in enumerate(questions):
            text = str(q.get("question") or "")
            it = _item(text, text, Qt.AlignmentFlag.AlignLeft)
            it.setData(Qt.ItemDataRole.UserRole, r)
            self.setItem(r, 0, it)
            for c, mode in enumerate(MODES, 1):
                res = (q.get("modes") or {}).get(mode)
                state = cell_state(res)
                bg, fg, word = STATE_STYLE[state]
                tip = ""
                if res:
                    tip = f"{MODE_SHORT[mode]}: {word[2:]}"
                    if res.get("f1") is not None:
                        tip += f" · F1 {fmt_value(res.get('f1'), 'score')}"
                    if res.get("similarity") is not None:
                        tip += f" · similarity {fmt_value(res.get('similarity'), 'score')}"
                    if res.get("quoted"):  # an evidence sentence was shown, not the model's words
                        own = {True: "right", False: "wrong"}.get(res.get("own_correct"), "not graded")
                        tip += f"\nQuoted from your documents — not the model's words (its own words: {own})"
                        word += " · quoted"
                cell = _item(word, tip)
                cell.setBackground(QBrush(QColor(bg)))
                cell.setForeground(QBrush(QColor(fg)))
                cell.setData(Qt.ItemDataRole.UserRole + 1, state)
                self.setItem(r, c, cell)
            kind = str(q.get("kind") or "")
            if q.get("answerable") is False and kind != "unanswerable":
                kind = f"{kind} (unanswerable)" if kind else "unanswerable"
            self.setItem(r, len(self.COLUMNS) - 1, _item(kind))

    def apply_filter(self, keep: list[int]) -> None:
        """Show only the rows of ``keep``."""
        wanted = set(keep)
        for r in range(self.rowCount()):
            self.setRowHidden(r, r not in wanted)

    def visible_rows(self) -> list[int]:
        """The question indices shown."""
        return [r for r in range(self.rowCount()) if not self.isRowHidden(r)]

    def state(self, row: int, mode: str) -> str:
        """The state shown in one cell (for tests)."""
        return self.item(row, 1 + MODES.index(mode)).data(Qt.ItemDataRole.UserRole + 1)

    def _on_selection_changed(self) -> None:
        rows = {i.row() for i in self.selectedIndexes()}
        if rows:
            self.questionSelected.emit(min(rows))
