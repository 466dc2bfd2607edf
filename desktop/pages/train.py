"""Page 5: run the training in a worker thread; live plots, progress, pause/stop, log, run history."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtCore import QFile
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QFrame, QGroupBox, QHBoxLayout,
                               QHeaderView, QInputDialog, QLabel, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from backend import events as ev
from backend import records
from backend import runs as run_folder
from backend.errors import TuneError
from backend.estimate import estimate_run
from desktop.plots import QtRunMetrics, RunMetrics
from desktop.runs import RunSummary, list_runs, read_run, run_events
from desktop.session import Session
from desktop.train_process import TrainingProcessDied, resume_request, supervise, train_request
from desktop.style import mono_font
from desktop.widgets import Banner, Page, fmt_duration, fmt_number, muted
from desktop.workers import Job

LOW_PRIORITY_NICE = 10  # "Low priority": the training process's nice value (0 = normal)
STATUS_COLORS = {"completed": "#2e8b4a", "running": "#2f6db5", "queued": "#2f6db5", "cancelled": "#8a5a00",
                 "failed": "#c0392b", "interrupted": "#8a5a00"}
#: The history's filter: label -> the display statuses it shows (None: every run).
HISTORY_FILTERS = {"All runs": None, "Completed": ("completed",), "Failed": ("failed",),
                   "Cancelled": ("cancelled",), "Interrupted": ("interrupted",)}
SLOWER_FACTOR = 1.5  # the live ETA is this much over the estimate: say so (and why, if the machine is busy)


def _stat(title: str) -> tuple[QFrame, QLabel]:
    card = QFrame()
    card.setObjectName("Card")
    lay = QVBoxLayout(card)
    lay.setContentsMargins(10, 6, 10, 6)
    lay.setSpacing(0)
    t = muted(title)
    v = QLabel("–")
    v.setObjectName("BigNumber")
    lay.addWidget(t)
    lay.addWidget(v)
    return card, v


class TrainPage(Page):
    """Start, watch, pause, stop and resume training; reopen earlier runs."""

    title = "Train"
    subtitle = ("Training runs in the background; the plots update as it goes. Stop saves a checkpoint, so "
                "a run can always be resumed later.")
    trainingFinished = Signal(str, str)   # status, one line for people
    runSelected = Signal(object)          # Path | None

    def __init__(self, session: Session, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.metrics = RunMetrics()
        self._job: Job | None = None
        self._run_dir: Path | None = None
        self._paused = False
        self._final_status: str | None = None
        self._last_logged_step = -1
        self._viewing: Path | None = None

        # controls
        self.start_button = QPushButton("Start training")
        self.start_button.setObjectName("Primary")
        self.start_button.clicked.connect(self._on_start_clicked)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._on_pause_toggled)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Save a checkpoint and stop; the run can be resumed later")
        self.stop_button.clicked.connect(self._on_stop_clicked)
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)
        controls = QHBoxLayout()
        controls.addWidget(self.start_button)
        controls.addWidget(self.pause_button)
        controls.addWidget(self.stop_button)
        self.low_priority_check = QCheckBox("Low priority")
        self.low_priority_check.setToolTip(
            "Train in the background at low priority: other programs stay responsive, and training "
            "slows down while they are busy (applies to the next start or resume)")
        controls.addWidget(self.low_priority_check)
        controls.addSpacing(12)
        controls.addWidget(self.status_label, 1)
        self.body.addLayout(controls)
        self.progress = QProgressBar()
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        self.body.addWidget(self.progress)
        # the check after training (backend/rag/check.py): did tuning help the answers with documents?
        self.check_banner = Banner()
        self.check_banner.setObjectName("CheckBanner")
        self.body.addWidget(self.check_banner)
        self._checking = False

        # stat cards
        cards = QHBoxLayout()
        self.stat = {}
        for key, title in (("step", "Step"), ("loss", "Train loss"), ("eval", "Eval loss (perplexity)"),
                           ("tps", "Tokens / s"), ("elapsed", "Elapsed"), ("eta", "Time left")):
            card, value = _stat(title)
            self.stat[key] = value
            cards.addWidget(card, 1)
            if key == "eta":  # the estimate sits with the live ETA, so a slow run shows at a glance
                self.stat["estimate"] = muted("")
                self.stat["estimate"].setToolTip("What the Configure page estimated for the whole run; compare "
                                                 "it with Elapsed + Time left")
                card.layout().addWidget(self.stat["estimate"])
        self._estimate_s: float | None = None   # the Configure page's estimate for the run in progress
        self._slow_note = ""                      # said once a run is much slower than estimated
        self._cpu = _OtherCpu()
        self.body.addLayout(cards)

        # plots + log
        self.plot_view = QtRunMetrics(self.metrics)
        self.plot_view.setMinimumHeight(300)
        self.log_view = QPlainTextEdit()
        self.log_view.setObjectName("Log")
        self.log_view.setReadOnly(True)
        self.log_view.setFont(mono_font())
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("The run's log appears here.")
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.plot_view)
        left.addWidget(self.log_view)
        left.setStretchFactor(0, 4)
        left.setStretchFactor(1, 1)
        left.setChildrenCollapsible(False)

        # run history
        hist_box = QGroupBox("Runs of this project")
        self.history = QTableWidget(0, 3)
        self.history.setHorizontalHeaderLabels(["Run", "Status", "Loss"])
        self.history.verticalHeader().hide()
        self.history.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setShowGrid(False)
        self.history.setAlternatingRowColors(True)
        h = self.history.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, 3):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        h.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.history.itemSelectionChanged.connect(self._on_history_selection_changed)
        self.history_filter = QComboBox()
        self.history_filter.addItems(list(HISTORY_FILTERS))
        self.history_filter.setToolTip("Show only the runs that ended this way")
        self.history_filter.currentIndexChanged.connect(lambda _i: self.refresh_history())
        # "Resume run" (a stopped run, from its checkpoint) is not the pause toggle's "Continue".
        self.resume_button = QPushButton("Resume run")
        self.resume_button.setToolTip("Continue the selected run from its latest checkpoint")
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self._on_folder_clicked)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.setToolTip("Give the selected run a name of your own (its folder keeps its id)")
        self.rename_button.clicked.connect(self._on_rename_clicked)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Move the selected run's folder to the trash (asks first)")
        self.delete_button.clicked.connect(self._on_delete_clicked)
        #: Set by the main window: why a run may not be deleted now ("Chat is answering with it"), or None.
        self.run_in_use = lambda run_dir: None
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Export the selected run: GGUF (llama.cpp, LM Studio, Ollama) with a "
                                      "quantization, an Ollama folder, merged safetensors or the adapter; each "
                                      "followed by a parity check against the model you tested")
        self.export_button.clicked.connect(self._on_export_clicked)
        self._export_dialog = None  # desktop.export_dialog.ExportDialog, while open
        self.run_detail = muted("")
        hl = QVBoxLayout(hist_box)
        fr = QHBoxLayout()
        fr.addWidget(muted("Show:"))
        fr.addWidget(self.history_filter, 1)
        hl.addLayout(fr)
        hl.addWidget(self.history, 1)
        hl.addWidget(self.run_detail)
        br = QHBoxLayout()
        br.addWidget(self.resume_button)
        br.addWidget(self.export_button)
        br.addStretch(1)
        hl.addLayout(br)
        br2 = QHBoxLayout()
        br2.addWidget(self.rename_button)
        br2.addWidget(self.delete_button)
        br2.addWidget(self.folder_button)
        br2.addStretch(1)
        hl.addLayout(br2)

        hist_box.setMinimumWidth(330)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(hist_box)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        self.body.addWidget(split, 1)

        session.events.project.connect(self._on_project)
        self._set_running(False)

    # -- Page API ---------------------------------------------------------------------------
    def validate(self) -> str | None:
        return None

    def is_busy(self) -> bool:
        return self._job is not None and self._job.is_running()

    def on_enter(self) -> None:
        self.refresh_history()
        if not self.is_busy() and self._viewing is None:
            runs = list_runs(self.session.project.root) if self.session.project else []
            if runs:
                self.show_run(runs[0].run_dir)

    # -- start / resume ------------------------------------------------------------------------
    def confirm_oom_start(self, message: str) -> bool:
        """Ask before starting a run that will likely run out of memory (tests replace this)."""
        return QMessageBox.warning(
            self, "Likely to run out of memory", message + "\n\nStart anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _on_start_clicked(self) -> None:
        self.start_training()

    def start_training(self) -> bool:
        """Start a new run with the session's configuration (in a child process, see desktop.train_process)."""
        s = self.session
        if self.is_busy() or s.project is None:
            return False
        try:
            cfg = s.run_config()
        except TuneError as e:
            self.banner.show_error(e)
            return False
        if s.model_info is not None and s.device is not None:
            rows = s.data_report.rows_for(cfg) if s.data_report is not None else None
            est = estimate_run(cfg, s.model_info, s.device, rows, getattr(s.data_report, "mean_tokens", None))
            if est.likely_oom and not self.confirm_oom_start(est.warnings[0]):
                return False
            estimate_s = est.total_seconds
        else:
            estimate_s = None
        if not cfg.name:
            cfg = cfg.replace(name=time.strftime("run %b %d %H:%M"))
        s.save_project()
        # The folder is named here, so a child that dies before it says anything is still found.
        run_dir = Path(cfg.output_dir) if cfg.output_dir else s.project.new_run_dir(cfg.name)
        self._begin(f"Starting “{cfg.name}”…")
        self._set_estimate(estimate_s)
        self._run_dir = run_dir
        self._start_child(train_request(cfg.to_dict(), run_dir, nice=self._nice()))
        return True

    def resume_run(self, run_dir: Path) -> bool:
        """Continue ``run_dir`` from its latest checkpoint (in a child process)."""
        if self.is_busy():
            return False
        self._begin(f"Resuming {self._display_name(run_dir)}…")
        self.metrics.load(run_events(run_dir))
        self._run_dir = Path(run_dir)
        m = self.session.config.model  # the person's ticks on the Model page, never the run folder's
        self._start_child(resume_request(Path(run_dir), nice=self._nice(), trust_remote_code=m.trust_remote_code,
                                         allow_pickle_weights=m.allow_pickle_weights, allow_hub=m.allow_hub))
        return True

    def _nice(self) -> int:
        return LOW_PRIORITY_NICE if self.low_priority_check.isChecked() else 0

    def _start_child(self, request: dict) -> None:
        self._job = Job(supervise, request, name="train", parent=self)
        self._connect_job()
        self._job.start()

    def _begin(self, text: str) -> None:
        self.banner.clear()
        self.metrics.clear()
        self._viewing = None
        self._final_status = None
        self._last_logged_step = -1
        self._run_dir = None
        self.log_view.clear()
        self._checking = False
        self.show_check(None)
        for v in self.stat.values():
            v.setText("–")
        self.progress.setRange(0, 0)
        self.status_label.setText(text)
        self._set_estimate(None)
        self._cpu.start(self._training_pids())
        self._set_running(True)
        self.plot_view.start_live()

    def _connect_job(self) -> None:
        self._job.event.connect(self._on_job_event)
        self._job.errored.connect(self._on_job_errored)
        self._job.finished.connect(self._on_job_finished)

    # -- pause / stop ------------------------------------------------------------------------
    def _on_pause_toggled(self, paused: bool) -> None:
        if not self.is_busy():
            return
        self._paused = paused
        self._job.set_paused(paused)
        self.pause_button.setText("Continue" if paused else "Pause")
        self.status_label.setText("Paused after the current step." if paused else "Running…")

    def _on_stop_clicked(self) -> None:
        self.stop_training()

    def stop_training(self) -> None:
        """Ask the run to save a checkpoint and stop."""
        if not self.is_busy():
            return
        self._job.stop()
        if self._paused:
            self._job.set_paused(False)
        self.stop_button.setEnabled(False)
        self.pause_button.setEnabled(False)
        self.status_label.setText("Stopping the check: the trained model is already saved." if self._checking
                                  else "Stopping: finishing the current step and saving a checkpoint…")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        if not running:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)
            self._paused = False
        self.history.setEnabled(not running)
        self.resume_button.setEnabled(not running and self._selected_run() is not None
                                      and self._selected_run().resumable)
        self.completeChanged.emit()

    # -- events -----------------------------------------------------------------------------------
    def _log(self, text: str, color: str | None = None) -> None:
        stamp = time.strftime("%H:%M:%S")
        if color:
            import html
            self.log_view.appendHtml(f"<span style='color:{color}'>{stamp}  {html.escape(text)}</span>")
        else:
            self.log_view.appendPlainText(f"{stamp}  {text}")

    def _on_job_event(self, e: dict) -> None:
        t = e.get("type")
        self.metrics.add(e)
        if t == ev.STARTED:
            self._run_dir = Path(e["run_dir"])
            self._log(f"Run folder: {self._run_dir}")
            self.refresh_history()
        elif t == ev.PROGRESS:
            if e.get("stage") == "check" and not self._checking:
                self._checking = True
                self.pause_button.setEnabled(False)  # the model is trained and saved; only Stop (skip the check) is left
                self.stop_button.setToolTip("Skip the check: the trained model is saved")
                self.progress.setRange(0, 0)
            if e.get("message"):
                self.status_label.setText(e["message"])
                if e.get("stage") not in ("tokenize", "data"):
                    self._log(e["message"])
        elif t == ev.LOG:
            level = e.get("level", "info")
            self._log(e.get("message", ""), "#c0392b" if level in ("error", "warning") else None)
        elif t == ev.TRAIN:
            self._on_train_record(e)
        elif t == ev.EVAL:
            ppl = e.get("perplexity")
            self.stat["eval"].setText(f"{fmt_number(e.get('eval_loss'))}  ({fmt_number(ppl, 3)})")
            self._log(f"eval at step {e.get('step')}: loss {fmt_number(e.get('eval_loss'))}, "
                      f"perplexity {fmt_number(ppl, 4)}", "#d35400")
        elif t == ev.CHECKPOINT:
            self._log(f"checkpoint saved at step {e.get('step')}")
        elif t == ev.OOM_RETRY:
            self._log(e.get("message", "out of memory: retrying with a smaller micro-batch"), "#c0392b")
            self.banner.show_message("warning", "Out of memory: continuing with a smaller micro-batch",
                                     e.get("message", ""))
        elif t == ev.ANSWER_CHECK:
            self._checking = False
            self.show_check(e)
            if e.get("status") == "done":
                self._log(e.get("message", ""), "#c0392b" if e.get("verdict") == "worse" else None)
        elif t == ev.FINISHED:
            self._final_status = e.get("status")
            reason = e.get("reason") or ""
            self._log(f"finished: {e.get('status')}" + (f" — {reason}" if reason else ""),
                      STATUS_COLORS.get(e.get("status", ""), None))

    def _on_train_record(self, e: dict) -> None:
        step, total = e.get("step") or 0, e.get("max_steps") or 0
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(step))
        self.stat["step"].setText(f"{step:,} / {total:,}" if total else f"{step:,}")
        self.stat["loss"].setText(fmt_number(e.get("loss")))
        self.stat["tps"].setText(fmt_number(round(e["tokens_per_s"])) if e.get("tokens_per_s") else "–")
        self.stat["elapsed"].setText(fmt_duration(e.get("elapsed_s")))
        self.stat["eta"].setText(fmt_duration(e.get("eta_s")))
        self._check_pace(e)
        if not self._paused and not (self._job and self._job.stop_requested):
            eta = f", about {fmt_duration(e.get('eta_s'))} left" if e.get("eta_s") is not None else ""
            self.status_label.setText(f"Training: step {step:,} of {total:,}{eta}." + self._slow_note)
        every = max(1, total // 20) if total else 10
        if step - self._last_logged_step >= every or step == total:
            self._last_logged_step = step
            self._log(f"step {step}/{total}  loss {fmt_number(e.get('loss'))}  lr {fmt_number(e.get('learning_rate'))}"
                      f"  grad {fmt_number(e.get('grad_norm'), 3)}")

    def _set_estimate(self, seconds: float | None) -> None:
        self._estimate_s = seconds
        self._slow_note = ""
        self.stat["estimate"].setText(f"estimated {fmt_duration(seconds)} in all" if seconds else "")
        self.stat["estimate"].setStyleSheet("")

    def _check_pace(self, e: dict) -> None:
        """Compare elapsed + time left with the estimate; past 1.5x say so, and why if the machine is busy."""
        est, elapsed, eta = self._estimate_s, e.get("elapsed_s"), e.get("eta_s")
        if not est or elapsed is None or eta is None or (e.get("step") or 0) < 2:
            return
        projected = float(elapsed) + float(eta)
        if projected <= SLOWER_FACTOR * est:
            if self._slow_note:
                self._slow_note = ""
                self.stat["estimate"].setStyleSheet("")
            return
        first = not self._slow_note
        busy = self._cpu.describe(exclude=self._training_pids())
        why = f" The machine is busy: {busy}." if busy else ""
        self._slow_note = (f" Slower than estimated: about {fmt_duration(projected)} in all, "
                           f"{projected / est:.1f}× the estimate.{why}")
        self.stat["estimate"].setStyleSheet("color:#c0392b;")
        if first:
            self._log(self._slow_note.strip(), "#8a5a00")

    def _training_pids(self) -> set[int]:
        """This process and the training child (from the run's status.json): not 'other programs'."""
        import os
        pids = {os.getpid()}
        if self._run_dir is not None:
            pid = run_folder.read_status(self._run_dir).get("pid")
            if isinstance(pid, int):
                pids.add(pid)
        return pids

    def _on_job_errored(self, error: BaseException) -> None:
        self.banner.show_error(error)
        self._log(f"error: {error}", "#c0392b")
        if self._final_status is None:
            self._final_status = "failed"

    def _on_job_finished(self) -> None:
        job = self._job
        self.plot_view.stop_live()
        self._set_running(False)
        status = self._final_status or ("completed" if job and job.result is not None else "failed")
        result = job.result if job else None
        if result is not None:
            status = result.status
        self.progress.setRange(0, 100)
        if status == "completed":
            self.progress.setValue(100)
        name = self._display_name(self._run_dir) if self._run_dir else "the run"
        text = {"completed": f"Training finished: {name} is ready to chat with.",
                "cancelled": f"Training stopped: {name} saved a checkpoint and can be resumed.",
                }.get(status, f"Training failed: {name}. See the message on the Train page.")
        if job is not None and isinstance(job.error, TrainingProcessDied):
            # The window survived the training process: say what happened and what to do.
            resumable = self._run_dir is not None and run_folder.is_resumable(self._run_dir)
            text = (f"Training of {name} stopped unexpectedly: {job.error.message}. "
                    + ("Resume continues from its latest checkpoint." if resumable
                       else "No checkpoint was saved yet: start the run again."))
        check = run_folder.read_check(self._run_dir) if self._run_dir and status == "completed" else None
        if check and check.get("verdict") == "worse":
            text = (f"Training finished: {name}. The check found that tuning made the answers worse, so the Chat "
                    "page answers with the untuned model and your documents until you choose otherwise.")
        self.status_label.setText(text)
        self.stop_button.setToolTip("Save a checkpoint and stop; the run can be resumed later")
        if status == "completed" and result is not None and result.adapter_dir:
            self.session.select_run(result.run_dir)
            self.runSelected.emit(result.run_dir)
        self._viewing = self._run_dir
        self.refresh_history()
        self.trainingFinished.emit(status, text)

    # -- history ----------------------------------------------------------------------------------
    def _on_project(self, _project) -> None:
        self._viewing = None
        self.show_check(None)
        self.metrics.clear()
        self.plot_view.refresh()
        self.log_view.clear()
        self.status_label.setText("Ready.")
        self.refresh_history()

    def refresh_history(self) -> None:
        """Reload the run list from the project's runs/ folder."""
        s = self.session
        runs = list_runs(s.project.root) if s.project else []
        shown = HISTORY_FILTERS.get(self.history_filter.currentText())
        if shown is not None:
            runs = [r for r in runs if r.display_status in shown]
        self.history.blockSignals(True)
        self.history.setRowCount(len(runs))
        select = None
        for row, r in enumerate(runs):
            name = QTableWidgetItem(r.name)
            name.setData(Qt.ItemDataRole.UserRole, str(r.run_dir))
            name.setToolTip(f"{r.name}\nstarted {r.when}\n{r.run_dir}")
            status = r.display_status
            st = QTableWidgetItem(status)
            st.setForeground(QColor(STATUS_COLORS.get(status, "#5b6675")))
            if r.reason:
                st.setToolTip(r.reason)
            loss = QTableWidgetItem(fmt_number(r.eval_loss if r.eval_loss is not None else r.train_loss, 3))
            loss.setToolTip("eval loss" if r.eval_loss is not None else "train loss (last logged)")
            for c, it in enumerate((name, st, loss)):
                self.history.setItem(row, c, it)
            if self._viewing is not None and r.run_dir == self._viewing:
                select = row
        if select is not None:
            self.history.selectRow(select)
        self.history.blockSignals(False)
        self._update_run_detail()

    def _selected_run(self) -> RunSummary | None:
        rows = self.history.selectionModel().selectedRows() if self.history.selectionModel() else []
        if not rows:
            return None
        return read_run(Path(self.history.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole)))

    def _on_history_selection_changed(self) -> None:
        r = self._selected_run()
        if r is None or self.is_busy():
            return
        self.show_run(r.run_dir)

    def show_run(self, run_dir: Path) -> None:
        """Show a recorded run's curves and make it the chat's run if it has an adapter."""
        self._viewing = Path(run_dir)
        skipped: list = []
        self.metrics.load(run_events(run_dir, skipped))
        if skipped:  # the rest is plotted (docs/architecture.md, "Readers")
            self.banner.show_message("warning", f"{len(skipped)} record(s) of this run's metrics could not be "
                                                "read and were skipped", records.summary(skipped))
        self.plot_view.refresh()
        self.log_view.setPlainText(_tail(run_folder.log_path(run_dir)))
        self.log_view.verticalScrollBar().setValue(self.log_view.verticalScrollBar().maximum())
        r = read_run(Path(run_dir))
        if r is not None:
            lt = self.metrics.last_train or {}
            total = lt.get("max_steps")
            self.stat["step"].setText(f"{lt.get('step', 0):,} / {total:,}" if total else "–")
            self.stat["loss"].setText(fmt_number(lt.get("loss")))
            le = self.metrics.last_eval
            self.stat["eval"].setText(f"{fmt_number(le.get('eval_loss'))}  ({fmt_number(le.get('perplexity'), 3)})"
                                      if le else "–")
            self.stat["tps"].setText(fmt_number(round(lt["tokens_per_s"])) if lt.get("tokens_per_s") else "–")
            self.stat["elapsed"].setText(fmt_duration(lt.get("elapsed_s")))
            self.stat["eta"].setText("–")
            self.stat["estimate"].setText("")
            if total:
                self.progress.setRange(0, int(total))
                self.progress.setValue(int(lt.get("step") or 0))
            self.status_label.setText(f"Showing {r.name}: {self._status_words(r)}")
            self.show_check(run_folder.read_check(r.run_dir))
            if r.has_chat_model:
                self.session.select_run(r.run_dir)
                self.runSelected.emit(r.run_dir)
        self.history.blockSignals(True)
        for row in range(self.history.rowCount()):
            if self.history.item(row, 0).data(Qt.ItemDataRole.UserRole) == str(run_dir):
                self.history.selectRow(row)
        self.history.blockSignals(False)
        self._update_run_detail()

    def show_check(self, rec: dict | None) -> None:
        """Show the check after training (an ``answer_check`` event), or hide it (``None``)."""
        if not rec:
            self.check_banner.hide()
            self.check_banner.setToolTip("")
            return
        status = rec.get("status")
        if status == "done":
            verdict = rec.get("verdict")
            kind = {"helped": "success", "worse": "warning"}.get(verdict, "info")
            details = [rec["notes"]] if rec.get("notes") else []
            if rec.get("cause"):
                details.append(f"Likely cause: {rec['cause']}")
            if rec.get("advice"):
                details.append(f"What to change: {rec['advice']}")
            details.append(f"Checked after training on {rec.get('source') or 'held-out questions'}, with your "
                           f"documents, in {fmt_duration(rec.get('seconds'))}. The Evaluate page measures it in full.")
            self.check_banner.show_message(kind, rec.get("message", ""), "\n".join(details))
            self.check_banner.setToolTip(_check_tooltip(rec))
        elif status == "skipped":
            self.check_banner.show_message("info", "No check after training", f"Nothing was asked: {rec.get('reason', '')}.")
        elif status == "cancelled":
            self.check_banner.show_message("info", "The check after training was stopped",
                                           "The trained model is saved; the Evaluate page can score it.")
        else:
            self.check_banner.show_message("info", "The check after training did not finish",
                                           f"{rec.get('reason', '')}. The trained model is saved.")

    @staticmethod
    def _status_words(r: RunSummary) -> str:
        """How a run ended, in words, and what to do about it (the status line under the buttons)."""
        status = r.display_status
        if status in ("interrupted", "failed", "cancelled") and not r.resumable and not r.has_chat_model:
            # Died before its first checkpoint: nothing to resume from (issue 21 item 5).
            return f"{status} before its first checkpoint: start it again" + (f" ({r.reason})." if r.reason else ".")
        return status + (f" ({r.reason})" if r.reason else ".")

    @staticmethod
    def _display_name(run_dir: Path) -> str:
        """The run's name as the history shows it (its display name, else its configured name)."""
        r = read_run(Path(run_dir))
        return r.name if r is not None else Path(run_dir).name

    def _update_run_detail(self) -> None:
        r = self._selected_run()
        can_resume = r is not None and r.resumable and r.status != "completed" and not self.is_busy()
        self.resume_button.setEnabled(can_resume)
        if r is not None and not r.resumable and r.status != "completed" and not r.has_chat_model:
            self.resume_button.setToolTip("No checkpoint was saved before it stopped: start the run again")
        else:
            self.resume_button.setToolTip("Continue the selected run from its latest checkpoint")
        self.folder_button.setEnabled(r is not None)
        self.rename_button.setEnabled(r is not None)
        self.delete_button.setEnabled(r is not None and not (self.is_busy() and r.run_dir == self._run_dir))
        exporting = self._export_dialog is not None and self._export_dialog.isVisible()
        self.export_button.setEnabled(r is not None and r.has_chat_model and not exporting and not self.is_busy())
        if r is None:
            self.run_detail.setText("Select a run to see its curves.")
            return
        steps = f"step {r.step}" + (f" of {r.max_steps}" if r.max_steps else "") if r.step is not None else "no steps yet"
        parts = [f"{r.method} on {Path(r.model).name if r.model != 'default' else 'SmolLM2-135M'}", steps,
                 f"started {r.when}"]
        if r.has_chat_model:
            parts.append(("model" if r.kind == "model" else "adapter") + " ready (used by Chat)")
        elif r.resumable:
            parts.append("resumable from its checkpoint")
        elif r.display_status != "running":
            parts.append("no checkpoint")
        self.run_detail.setText(" · ".join(parts))

    def _on_resume_clicked(self) -> None:
        r = self._selected_run()
        if r is not None:
            self.resume_run(r.run_dir)

    def _on_export_clicked(self) -> None:
        r = self._selected_run()
        if r is not None:
            self.open_export_dialog(r.run_dir).open()

    def open_export_dialog(self, run_dir: Path):
        """The Export dialog for a run (not yet shown); it runs the export and its parity check itself."""
        from desktop.export_dialog import ExportDialog

        dlg = ExportDialog(run_dir, self)
        dlg.exported.connect(lambda rec: self.banner.show_message(
            "success", f"Exported {rec.kind}", f"{rec.path}\nParity: {(rec.parity or {}).get('summary', 'not checked')}"))
        dlg.finished.connect(lambda _: (setattr(self, "_export_dialog", None), self._update_run_detail()))
        self._export_dialog = dlg
        return dlg

    # -- tidy: rename / delete -----------------------------------------------------------------
    def ask_run_name(self, current: str) -> str | None:
        """Ask for a run's new name (``None``: cancelled; tests replace this)."""
        text, ok = QInputDialog.getText(self, "Rename run", "Name shown for this run (its folder keeps its id):",
                                        text=current)
        return text if ok else None

    def confirm_delete(self, title: str, text: str) -> bool:
        """Ask before deleting a run (tests replace this)."""
        return QMessageBox.question(self, title, text, QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                    QMessageBox.StandardButton.No) == QMessageBox.StandardButton.Yes

    def _on_rename_clicked(self) -> None:
        r = self._selected_run()
        if r is not None:
            name = self.ask_run_name(r.name)
            if name is not None:
                self.rename_run(r.run_dir, name)

    def rename_run(self, run_dir: Path, name: str) -> bool:
        """Give a run a display name (backend.runs.rename_run); the history, Chat and notices show it."""
        try:
            shown = run_folder.rename_run(run_dir, name)
        except TuneError as e:
            self.banner.show_error(e)
            return False
        self.banner.clear()
        self.refresh_history()
        if self._viewing == Path(run_dir) and not self.is_busy():
            self.status_label.setText(f"Renamed: this run is now shown as “{shown}”.")
        if self.session.run_dir == Path(run_dir):
            self.session.select_run(Path(run_dir))  # the Chat's run list shows the new name
        return True

    def _on_delete_clicked(self) -> None:
        r = self._selected_run()
        if r is not None:
            self.delete_run(r.run_dir)

    def delete_run(self, run_dir: Path) -> bool:
        """Delete a run after asking: to the system trash when there is one, else for good.

        Refused for the run being trained and for a run another page is using
        (``run_in_use``: Chat answering with it, Evaluate scoring it).
        """
        run_dir = Path(run_dir)
        name = self._display_name(run_dir)
        busy = (self.is_busy() and self._run_dir == run_dir) or run_folder.is_live(run_dir)
        why = "it is training now: stop it first" if busy else self.run_in_use(run_dir)
        if why:
            self.banner.show_message("warning", f"“{name}” cannot be deleted now", why)
            return False
        try:
            # only a run of this project, never a link or a folder a forged name points at (confinement)
            root = self.session.project.root if self.session.project is not None else None
            run_folder.require_project_run(run_dir, root)
            contents = run_folder.run_contents(run_dir)
        except TuneError as e:
            self.banner.show_error(e)
            return False
        trash = QFile.supportsMoveToTrash() if hasattr(QFile, "supportsMoveToTrash") else True
        where = "It goes to the trash, from where it can be restored." if trash else "This cannot be undone."
        text = (f"Delete the run “{name}”?\n\nFolder: {run_dir}\nIt holds {contents.describe()}.\n\n{where}")
        if not self.confirm_delete("Delete run", text):
            return False
        moved = QFile.moveToTrash(str(run_dir)) if trash else False
        moved = moved[0] if isinstance(moved, tuple) else bool(moved)
        if not moved:
            if trash and not self.confirm_delete(
                    "Delete run for good", f"The trash could not take “{name}” ({run_dir}).\n\n"
                    f"Delete it for good ({contents.describe()})? This cannot be undone."):
                return False
            try:
                run_folder.delete_run(run_dir, root)
            except (TuneError, OSError) as e:
                self.banner.show_error(e)
                return False
        if self.session.run_dir == run_dir:
            self.session.select_run(None)
        if self._viewing == run_dir:
            self._viewing = None
            self.metrics.clear()
            self.plot_view.refresh()
            self.log_view.clear()
        self.refresh_history()
        self.status_label.setText(f"Deleted “{name}” ({contents.describe()}).")
        return True

    def _on_folder_clicked(self) -> None:
        r = self._selected_run()
        if r is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(r.run_dir)))


class _OtherCpu:
    """CPU used by other programs, sampled between calls (psutil's per-process counters need two looks)."""

    MIN_CORES = 0.5  # less than half a core busy elsewhere does not explain a slow run

    def __init__(self):
        self._procs: dict[int, object] = {}
        self._last = 0.0
        self._said = ""

    def describe(self, exclude: set[int], min_gap_s: float = 5.0) -> str:
        """``"other programs use about 1.6 of 8 CPU cores (chrome, python3)"``, or ``""`` when they do not."""
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            return ""
        now = time.monotonic()
        if self._procs and now - self._last < min_gap_s:
            return self._said
        if not self._procs:  # the first look only starts the counters: look again a moment later
            self._sample(psutil, exclude)
            time.sleep(0.2)
        self._last = now
        total, names = self._sample(psutil, exclude)
        if total < self.MIN_CORES:
            self._said = ""
            return ""
        cores = psutil.cpu_count() or 1
        self._said = (f"other programs use about {total:.1f} of {cores} CPU cores ({', '.join(names[:3])})")
        return self._said

    def start(self, exclude: set[int]) -> None:
        """Start the counters (when a run starts), so the first comparison has a baseline."""
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return
        self._said = ""
        self._last = time.monotonic()
        self._sample(psutil, exclude)

    def _sample(self, psutil, exclude: set[int]) -> tuple[float, list[str]]:
        ours = set(exclude)
        for pid in list(exclude):
            try:
                ours.update(c.pid for c in psutil.Process(pid).children(recursive=True))
            except (psutil.Error, OSError):
                continue
        seen, load = {}, []
        for p in psutil.process_iter(["name"]):
            if p.pid in ours:
                continue
            proc = self._procs.get(p.pid, p)
            try:
                pct = proc.cpu_percent(None)  # 0.0 on the first look at a process
            except (psutil.Error, OSError):
                continue
            seen[p.pid] = proc
            if pct > 0:
                load.append((pct, p.info.get("name") or "?"))
        self._procs = seen
        names: list[str] = []
        for _pct, name in sorted(load, reverse=True):
            if name not in names:
                names.append(name)
        return sum(pct for pct, _ in load) / 100, names


def _check_tooltip(rec: dict) -> str:
    """Each question of the check with both answers and whether they were right (plain text)."""
    lines = []
    for q in rec.get("questions") or []:
        lines.append(q.get("question", ""))
        for key, who in (("tuned", "tuned"), ("base", "untuned")):
            a = q.get(key) or {}
            mark = "right" if a.get("correct") else "wrong"
            quoted = " (quoted from your documents, not the model's words)" if a.get("quoted") else ""
            lines.append(f"   {who}: {' '.join(str(a.get('answer', '')).split())[:120]} — {mark}{quoted}")
    if not lines:
        return ""
    import html  # questions and answers are content: shown as plain text (docs/architecture.md, "Trust")
    return "<div style='white-space:pre-wrap'>" + html.escape("\n".join(lines)) + "</div>"


def _tail(path: Path, max_bytes: int = 65536) -> str:
    """The end of a text file ('' when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text.split("\n", 1)[1] if size > max_bytes and "\n" in text else text


__all__ = ["TrainPage"]
