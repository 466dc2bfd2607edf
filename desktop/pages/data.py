"""Page 3: datasets and documents — add, check, preview with the label mask, token lengths."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView,
                               QMessageBox, QProgressBar, QPushButton, QSplitter, QStyledItemDelegate,
                               QStyleOptionViewItem, QTableWidget, QTableWidgetItem, QTabWidget, QTextBrowser,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from backend import events as ev
from backend.filetypes import DATASET_SUFFIXES, DOCUMENT_SUFFIXES, classify, dialog_pattern
from desktop.chat_adapter import index_summary
from desktop.data_adapter import DataReport, check_project_data, copy_into
from desktop.session import ROLES, Session
from desktop.widgets import Page, muted
from desktop.workers import Job

ROLE_LABELS = {"train": "Training", "validation": "Validation", "off": "Not used"}
DATA_KEYS = ("format", "column_mapping", "system_prompt", "validation_split", "max_length", "overlong",
             "train_on_prompt", "dedupe", "raft", "raft_distractors", "raft_p_without_gold", "raft_project",
             "raft_closed_book", "raft_abstain_share", "rewordings", "heldout_rewordings")
MASKED_STYLE = "background:#eceff3;color:#6b7480;"
TRAINED_STYLE = "background:#dff3e4;color:#10391f;"


def _exposures(knowledge: dict) -> str:
    """The summary's line about facts: how often each is trained per epoch ('' when there are none)."""
    rpf = knowledge.get("rows_per_fact") or {}
    if not knowledge.get("facts") or not rpf:
        return ""
    line = (f"\n{knowledge['facts']:,} facts (answers), each trained ≈{rpf['median']:g}× per epoch "
            f"(fewest {rpf['min']}, most {rpf['max']})")
    made = {o: n for o, n in (knowledge.get("rows_by_origin") or {}).items() if o not in ("row", "raft")}
    names = {"closed_book": "without passages", "reworded": "reworded", "abstain": "teaching to abstain"}
    if made:
        line += " · rows added: " + ", ".join(f"{n:,} {names.get(o, o)}" for o, n in sorted(made.items()))
    return line


def _item(text: str, tip: str = "", align_right: bool = False) -> QTableWidgetItem:
    it = QTableWidgetItem(text)
    it.setFlags(it.flags() & ~Qt.ItemFlag.ItemIsEditable)
    if tip:
        it.setToolTip(tip)
    if align_right:
        it.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return it


class _WrapDelegate(QStyledItemDelegate):
    """Row heights from the text wrapped at its column's width (QTreeView alone keeps one line)."""

    def sizeHint(self, option, index):  # noqa: N802 (Qt override)
        opt = QStyleOptionViewItem(option)
        view = self.parent()
        # The style wraps only inside a valid rectangle: the column's width, any height (a copy in PySide).
        rect = opt.rect
        rect.setWidth(max(40, view.header().sectionSize(index.column()) - 8))
        rect.setHeight(max(rect.height(), 10_000))
        opt.rect = rect
        opt.features |= QStyleOptionViewItem.ViewItemFeature.WrapText
        return super().sizeHint(opt, index)


class DataPage(Page):
    """Datasets (training) and documents (chat) of the project, checked with the model's tokenizer."""

    title = "Data"
    subtitle = ("Datasets teach the model (question–answer pairs, chats, plain text); documents are what "
                "the chat looks answers up in. Drop files anywhere on this page, or use the buttons.")

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self._job: Job | None = None
        self._pending = False
        self._last_data_cfg: dict | None = None
        self.setAcceptDrops(True)

        buttons = QHBoxLayout()
        self.add_data_button = QPushButton("Add dataset files…")
        self.add_data_button.clicked.connect(self._on_add_data_clicked)
        self.add_docs_button = QPushButton("Add documents…")
        self.add_docs_button.clicked.connect(self._on_add_docs_clicked)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Remove the selected files from the project (the originals are kept)")
        self.remove_button.clicked.connect(self._on_remove_clicked)
        self.check_button = QPushButton("Check again")
        self.check_button.clicked.connect(self._on_check_clicked)
        for b in (self.add_data_button, self.add_docs_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.check_button)
        self.body.addLayout(buttons)

        # datasets table
        ds_box = QGroupBox("Datasets (what the model learns from)")
        self.datasets_table = QTableWidget(0, 6)
        self.datasets_table.setHorizontalHeaderLabels(["File", "Use as", "Format", "Rows", "Usable", "Problems"])
        self._setup_table(self.datasets_table)
        dl = QVBoxLayout(ds_box)
        dl.addWidget(self.datasets_table)
        self.summary_label = muted("")
        dl.addWidget(self.summary_label)
        self.progress = QProgressBar()
        self.progress.setMaximumHeight(10)
        self.progress.setTextVisible(False)
        self.progress.hide()
        dl.addWidget(self.progress)

        # documents table
        doc_box = QGroupBox("Documents (what the chat answers from)")
        self.documents_table = QTableWidget(0, 4)
        self.documents_table.setHorizontalHeaderLabels(["File", "Size", "Index", "Train on"])
        self.documents_table.horizontalHeaderItem(3).setToolTip(
            "Also cut the document into plain-text training rows (domain adaptation)")
        self._setup_table(self.documents_table)
        self.documents_table.itemChanged.connect(self._on_document_item_changed)
        QVBoxLayout(doc_box).addWidget(self.documents_table)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(ds_box)
        top.addWidget(doc_box)
        top.setStretchFactor(0, 1)
        top.setStretchFactor(1, 1)
        top.setChildrenCollapsible(False)

        # problems / preview / histogram
        self.tabs = QTabWidget()
        self.problems_tree = QTreeWidget()
        self.problems_tree.setHeaderLabels(["Where", "Problem", "How to fix"])
        self.problems_tree.setRootIsDecorated(False)
        self.problems_tree.setAlternatingRowColors(True)
        self.problems_tree.setWordWrap(True)
        self.problems_tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        # "Problem" and "How to fix" share the width and wrap (a fixed 180 px hint column cut the
        # advice off, issue 21); rows grow to fit once the columns change width.
        header = self.problems_tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.problems_tree.setItemDelegate(_WrapDelegate(self.problems_tree))
        header.sectionResized.connect(lambda *_: self.problems_tree.scheduleDelayedItemsLayout())
        self.preview_view = QTextBrowser()
        self.preview_view.setOpenLinks(False)
        # The plot (pyqtgraph) is made when its tab is first shown, so building this page stays cheap:
        # the window builds it as soon as the model is ready, to check the data (see the histogram property).
        self._hist_tab = QWidget()
        self._hist_layout = QVBoxLayout(self._hist_tab)
        self._histogram = None
        self._hist_data: dict | None = None
        self.hist_stats = muted("")
        self._hist_layout.addWidget(self.hist_stats)
        self.tabs.addTab(self.preview_view, "Preview")
        self.tabs.addTab(self._hist_tab, "Token lengths")
        self.tabs.addTab(self.problems_tree, "Problems")
        self.tabs.currentChanged.connect(self._on_tab_changed)

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([270, 430])
        split.setChildrenCollapsible(False)
        split.setChildrenCollapsible(False)
        self.body.addWidget(split, 1)

        self._recheck_timer = QTimer(self)
        self._recheck_timer.setSingleShot(True)
        self._recheck_timer.setInterval(600)
        self._recheck_timer.timeout.connect(self.start_check)

        session.events.data.connect(self._on_data)
        session.events.project.connect(lambda _p: self._refresh_tables())
        session.events.model.connect(self._on_model)
        session.events.config.connect(self._on_config)
        self._refresh_tables()
        self._show_report(None)

    @property
    def histogram(self):
        """The token-length plot (``desktop.plots.QtTokenHistogram``), made on first use with the last check's data."""
        if self._histogram is None:
            from desktop.plots import QtTokenHistogram

            self._histogram = QtTokenHistogram()
            self._hist_layout.insertWidget(0, self._histogram, 1)
            self._histogram.set_histogram(self._hist_data)
        return self._histogram

    def _set_histogram(self, hist: dict | None) -> None:
        self._hist_data = hist
        if self._histogram is not None:
            self._histogram.set_histogram(hist)

    def _on_tab_changed(self, index: int) -> None:
        if self.tabs.widget(index) is self._hist_tab:
            self.histogram  # noqa: B018 (made now: its tab is shown)

    @staticmethod
    def _setup_table(t: QTableWidget) -> None:
        t.verticalHeader().hide()
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setAlternatingRowColors(True)
        t.setShowGrid(False)
        h = t.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, t.columnCount()):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        h.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    # -- Page API -------------------------------------------------------------------
    def validate(self) -> str | None:
        s = self.session
        train = s.files_with_role("train")
        if not train:
            if s.training_documents():
                return None  # domain adaptation on documents alone
            return "Add a dataset (or tick “Train on text” for documents) to train on."
        if self.is_busy() and s.data_report is None:
            return "Checking the data…"
        r: DataReport | None = s.data_report
        if r is None:
            return "The data has not been checked yet." if s.model_path else "Choose a model first (Model page)."
        unreadable = r.errors_in([str(p) for p in s.training_documents()])
        if unreadable:
            return (f"The document {Path(unreadable[0].file).name} is marked “Train on text” but can't be read "
                    "(see Problems): replace it or untick “Train on text”.")
        used = [str(p) for p in train + s.files_with_role("validation")]
        errs = r.errors_in(used)
        if errs:
            return f"{len(errs)} problem(s) in the data must be fixed first (see Problems), or set the file to " \
                   "“Not used”."
        if r.train_rows <= 0:
            return "No usable training rows."
        return None

    def is_busy(self) -> bool:
        return self._job is not None and self._job.is_running()

    def on_enter(self) -> None:
        self._refresh_tables()
        if self.session.data_report is None and not self.is_busy():
            self.start_check()

    # -- drag and drop ------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt override)
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        self.add_files(paths)
        event.acceptProposedAction()

    # -- adding and removing -------------------------------------------------------------
    def add_files(self, paths: list[Path], kind: str | None = None) -> list[Path]:
        """Copy files into the project (datasets/ or documents/ by extension, or ``kind``)."""
        p = self.session.project
        if p is None:
            return []
        datasets, documents, refused = [], [], []
        for path in paths:
            k = kind or classify(path)
            if path.is_dir() or not path.exists() or k is None:
                refused.append(path.name)
            elif k == "dataset":
                datasets.append(path)
            else:
                documents.append(path)
        try:
            added = copy_into(p.datasets_dir, datasets) + copy_into(p.documents_dir, documents)
        except OSError as e:
            self.banner.show_message("error", f"Could not copy the file into the project: {e.strerror}",
                                     str(e.filename or ""))
            return []
        if refused:
            self.banner.show_message(
                "warning", f"Not added: {', '.join(refused)}",
                "Datasets: " + ", ".join(DATASET_SUFFIXES) + ". Documents: " + ", ".join(DOCUMENT_SUFFIXES) + ".")
        elif added:
            self.banner.clear()
        if added:
            self.session.data_changed()
            self.start_check()
        return added

    def _on_add_data_clicked(self) -> None:
        pattern = dialog_pattern(DATASET_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Add dataset files", "", f"Datasets ({pattern})")
        if files:
            self.add_files([Path(f) for f in files], "dataset")

    def _on_add_docs_clicked(self) -> None:
        pattern = dialog_pattern(DOCUMENT_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(self, "Add documents", "", f"Documents ({pattern})")
        if files:
            self.add_files([Path(f) for f in files], "document")

    def selected_paths(self) -> list[Path]:
        """Files selected in either table."""
        out = []
        for table in (self.datasets_table, self.documents_table):
            for idx in table.selectionModel().selectedRows():
                out.append(Path(table.item(idx.row(), 0).data(Qt.ItemDataRole.UserRole)))
        return out

    def confirm_remove(self, names: list[str]) -> bool:
        """Ask before deleting project copies (tests replace this)."""
        return QMessageBox.question(
            self, "Remove files", "Remove these files from the project?\n\n" + "\n".join(names) +
            "\n\nOnly the project's copies are deleted.") == QMessageBox.StandardButton.Yes

    def _on_remove_clicked(self) -> None:
        paths = self.selected_paths()
        if not paths:
            self.banner.show_message("info", "Select files in the tables first.")
            return
        if not self.confirm_remove([p.name for p in paths]):
            return
        for p in paths:
            try:
                p.unlink()
            except OSError as e:
                self.banner.show_message("error", f"Could not remove {p.name}: {e.strerror}")
        self.session.data_changed()
        self.start_check()

    def _on_check_clicked(self) -> None:
        self.start_check()

    # -- checking (worker) -----------------------------------------------------------------
    def start_check(self) -> None:
        """Check every dataset file with the model's tokenizer, in a worker."""
        s = self.session
        if self.is_busy():
            self._pending = True
            self._job.stop()
            return
        files = [str(p) for p in s.dataset_files()]
        if not files or s.model_path is None:
            self._show_report(s.data_report)
            return
        cfg = s.run_config()  # with the project's files, so RAFT finds the project's index
        self._last_data_cfg = {k: getattr(cfg.data, k) for k in DATA_KEYS}
        self._job = Job(check_project_data, files, [str(p) for p in s.files_with_role("train")],
                        [str(p) for p in s.files_with_role("validation")], s.model_path, cfg,
                        documents=[str(p) for p in s.document_files()], host=s.model_host, name="check-data",
                        parent=self)
        self._job.event.connect(self._on_job_event)
        self._job.returned.connect(self._on_job_returned)
        self._job.errored.connect(self._on_job_errored)
        self._job.finished.connect(self._on_job_finished)
        self.progress.setRange(0, 0)
        self.progress.show()
        self.summary_label.setText("Checking with the model's tokenizer…")
        self.check_button.setEnabled(False)
        self.completeChanged.emit()
        self._job.start()

    def _on_job_event(self, e: dict) -> None:
        if e.get("type") == ev.PROGRESS:
            if e.get("total"):
                self.progress.setRange(0, int(e["total"]))
                self.progress.setValue(int(e.get("current") or 0))
            if e.get("message"):
                self.summary_label.setText(e["message"])

    def _on_job_returned(self, report: DataReport) -> None:
        if self._pending:
            return
        self.session.set_data_report(report)

    def _on_job_errored(self, error: BaseException) -> None:
        from backend.errors import DataCancelled
        if isinstance(error, DataCancelled) or self._pending:
            return
        self.banner.show_error(error)
        self.summary_label.setText("The check failed; see above.")

    def _on_job_finished(self) -> None:
        self.progress.hide()
        self.check_button.setEnabled(True)
        if self._pending:
            self._pending = False
            self.start_check()
        self.completeChanged.emit()

    # -- session changes ---------------------------------------------------------------------
    def _on_data(self) -> None:
        self._refresh_tables()
        self._show_report(self.session.data_report)
        self.completeChanged.emit()

    def _on_model(self) -> None:
        if self.session.model_path is not None and self.session.dataset_files():
            self.start_check()

    def check_if_ready(self) -> None:
        """Check the data now if the model is ready: what a model change does (for a page built after it)."""
        self._on_model()

    def _on_config(self, cfg) -> None:
        now = {k: getattr(cfg.data, k) for k in DATA_KEYS}
        if self._last_data_cfg is not None and now != self._last_data_cfg and self.session.model_path:
            self._recheck_timer.start()

    def _on_document_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 3:
            return
        path = Path(self.documents_table.item(item.row(), 0).data(Qt.ItemDataRole.UserRole))
        on = item.checkState() == Qt.CheckState.Checked
        # The session change rebuilds this table: not from inside the item's own signal.
        QTimer.singleShot(0, lambda: self.session.set_document_training(path, on))

    def _on_role_changed(self, path: Path, combo: QComboBox) -> None:
        self.session.set_dataset_role(path, combo.currentData())
        self.start_check()

    # -- display --------------------------------------------------------------------------------
    def _refresh_tables(self) -> None:
        s = self.session
        report: DataReport | None = s.data_report
        t = self.datasets_table
        files = s.dataset_files()
        t.setRowCount(0)  # drops the old role combo boxes
        t.setRowCount(len(files))
        for row, path in enumerate(files):
            name = _item(path.name, str(path))
            name.setData(Qt.ItemDataRole.UserRole, str(path))
            t.setItem(row, 0, name)
            combo = QComboBox()
            for r in ROLES:
                combo.addItem(ROLE_LABELS[r], r)
            combo.setCurrentIndex(ROLES.index(s.dataset_role(path)))
            combo.currentIndexChanged.connect(lambda _i, p=path, c=combo: self._on_role_changed(p, c))
            t.setCellWidget(row, 1, combo)
            info = report.files.get(str(path)) if report else None
            if info:
                problems = report.problems_for(path)
                n_err = sum(p.severity == "error" for p in problems)
                n_warn = len(problems) - n_err
                fmt = info.get("format") or info.get("kind") or "?"
                t.setItem(row, 2, _item(fmt, f"encoding {info.get('encoding') or '?'}"))
                t.setItem(row, 3, _item(f"{info.get('rows_read', 0):,}", align_right=True))
                t.setItem(row, 4, _item(f"{info.get('rows_usable', 0):,}", align_right=True))
                text = "none" if not problems else ", ".join(
                    x for x in (f"{n_err} error(s)" if n_err else "", f"{n_warn} warning(s)" if n_warn else "") if x)
                it = _item(("✕ " if n_err else "⚠ " if n_warn else "✓ ") + text,
                           "\n".join(p.text() for p in problems[:10]))
                it.setForeground(QColor("#c0392b" if n_err else "#8a5a00" if n_warn else "#2e8b4a"))
                t.setItem(row, 5, it)
            else:
                for c in range(2, 6):
                    t.setItem(row, c, _item("…" if self.is_busy() else "–"))
        docs = s.document_files()
        indexed = index_summary(s.project.root).get("sources", {}) if s.project else {}
        changed = self._changed_documents(docs) if indexed else set()
        d = self.documents_table
        d.blockSignals(True)
        d.setRowCount(len(docs))
        for row, path in enumerate(docs):
            name = _item(str(path.relative_to(s.project.documents_dir)), str(path))
            name.setData(Qt.ItemDataRole.UserRole, str(path))
            d.setItem(row, 0, name)
            d.setItem(row, 1, _item(_size(path), align_right=True))
            key = path.resolve().relative_to(s.project.root.resolve()).as_posix()
            rec = indexed.get(key)
            bad = s.data_report.problems_for(path) if s.data_report is not None else []
            if bad:
                it = _item("can't be read", bad[0].text())
                it.setForeground(QColor("#c0392b"))
                d.setItem(row, 2, it)
            elif rec is None:
                d.setItem(row, 2, _item("not indexed yet", "Indexed when you open the Chat page"))
            elif path in changed:
                d.setItem(row, 2, _item("changed", "Indexed again when you open the Chat page"))
            else:
                d.setItem(row, 2, _item(f"{rec.get('chunks', 0)} passages", "In the document index"))
            train = QTableWidgetItem("")
            train.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
            train.setCheckState(Qt.CheckState.Checked if s.trains_on_document(path) else Qt.CheckState.Unchecked)
            train.setToolTip("Train on this document's text too (chunks of "
                             f"{s.config.data.document_chunk_size:,} characters)")
            d.setItem(row, 3, train)
        d.blockSignals(False)

    def _changed_documents(self, docs: list[Path]) -> set[Path]:
        """Documents whose bytes differ from what the index holds (the rule `tune ingest` uses)."""
        from backend.rag.freshness import stale_documents

        try:
            return set(stale_documents(self.session.project, docs))
        except Exception:  # a broken index record must not break the page; the Chat page rebuilds it
            return set()

    def _show_report(self, report: DataReport | None) -> None:
        self.problems_tree.clear()
        if report is None:
            if not self.is_busy():
                self.summary_label.setText("Not checked yet." if self.session.dataset_files() else
                                           "No datasets yet: add a JSONL/CSV/Parquet file of examples.")
            self.preview_view.setHtml("<p style='color:#5b6675'>A preview appears after the check.</p>")
            self._set_histogram(None)
            self.hist_stats.setText("")
            self.tabs.setTabText(2, "Problems")
            return
        s = report.check.summary
        used = sum(1 for p in self.session.dataset_files() if self.session.dataset_role(p) != "off")
        self.summary_label.setText(
            f"{s.get('rows_read', 0):,} rows read, {s.get('rows_kept', 0):,} usable in {used} file(s) used · "
            f"a run trains on ≈{report.train_rows:,} rows and evaluates on ≈{report.eval_rows:,} · "
            f"{s.get('truncated', 0)} truncated, {s.get('dropped_overlong', 0)} dropped, "
            f"{s.get('duplicates', 0)} duplicates" + _exposures(report.knowledge))
        for p in report.problems:
            loc = f"{Path(p.file).name}:{p.line}" if p.line and p.unit == "line" else (
                f"{Path(p.file).name} ({p.unit} {p.line})" if p.line else Path(p.file).name)
            it = QTreeWidgetItem([loc, p.message, p.hint or ""])
            it.setToolTip(0, p.file)
            it.setToolTip(1, p.message)
            it.setToolTip(2, p.hint or "")
            it.setForeground(1, QColor("#c0392b" if p.severity == "error" else "#8a5a00"))
            self.problems_tree.addTopLevelItem(it)
        n = len(report.problems)
        self.tabs.setTabText(2, f"Problems ({n})" if n else "Problems")
        errors = [p for p in report.problems if p.severity == "error"]
        if errors:
            first = errors[0]
            self.banner.show_message("error", f"{len(errors)} problem(s) in the data",
                                     f"First: {first.text()}")
        elif self.banner.kind == "error":
            self.banner.clear()
        self.preview_view.setHtml(self._preview_html(report))
        self._set_histogram(report.check.histogram)
        tk = s.get("tokens") or {}
        if tk:
            self.hist_stats.setText(
                f"Tokens per row: min {tk['min']}, median {tk['median']:g}, 95th percentile {tk['p95']:g}, "
                f"max {tk['max']} · max length {s.get('max_length')} ({s.get('over_max_length', 0)} rows over, "
                f"handled by “{s.get('overlong')}”) · {s.get('trained_tokens', 0):,} tokens carry loss")

    @staticmethod
    def _preview_html(report: DataReport) -> str:
        if not report.preview:
            return "<p style='color:#5b6675'>No usable training rows to preview.</p>"
        parts = [
            "<p style='margin:0 0 6px 0'>Rows exactly as the model sees them. "
            f"<span style='{MASKED_STYLE}'>&nbsp;grey: context, no loss&nbsp;</span> "
            f"<span style='{TRAINED_STYLE}'>&nbsp;green: trained on (the answers)&nbsp;</span></p>"]
        for row in report.preview:
            head = (f"{html.escape(Path(row.file).name)}:{row.line} · {row.format} · {row.tokens} tokens, "
                    f"{row.trained_tokens} trained" + (f" · {row.status}" if row.status != "kept" else ""))
            body = "".join(
                f"<span style='{TRAINED_STYLE if trained else MASKED_STYLE}'>{html.escape(text)}</span>"
                for text, trained in row.segments)
            parts.append(f"<p style='margin:10px 0 2px 0;color:#5b6675'><b>{head}</b></p>"
                         f"<pre style='white-space:pre-wrap;margin:0;font-family:\"DejaVu Sans Mono\";"
                         f"font-size:9pt'>{body}</pre>")
        return "".join(parts)


def _size(p: Path) -> str:
    try:
        n = p.stat().st_size
    except OSError:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


__all__ = ["DataPage", "QtTokenHistogram"]
