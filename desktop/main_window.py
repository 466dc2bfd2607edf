"""The main window: the step list, the wizard pages, Back/Next and the status bar."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QFrame, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMainWindow, QMessageBox, QPushButton, QStackedWidget,
                               QSystemTrayIcon, QVBoxLayout, QWidget)

from backend.errors import TuneError
from desktop.appstate import AppSettings, install_sample_project, resources_dir
from desktop.pages.configure import ConfigurePage
from desktop.pages.model import ModelPage
from desktop.pages.project import ProjectPage
from backend.runs import list_runs
from desktop.session import Session
from desktop.widgets import Banner, Page, muted
from desktop.workers import Job, running_jobs

log = logging.getLogger(__name__)

# Which earlier pages must be valid before a page can be opened.
PREREQUISITES = {0: (), 1: (0,), 2: (0, 1), 3: (0, 1, 2), 4: (0, 1, 2, 3), 5: (0, 1), 6: (0, 1)}


# Pages built when first shown or first needed (docs/architecture.md, "How to add a page"): index -> name.
LAZY_PAGES = {2: "data", 4: "train", 5: "chat", 6: "evaluate"}


class _PendingPage(Page):
    """Stands in for a page not built yet: it is built when first shown or when something needs it."""

    def __init__(self, title: str, subtitle: str):
        self.title, self.subtitle = title, subtitle
        super().__init__()
        self.body.addWidget(muted("Loading…"))
        self.body.addStretch(1)

    def validate(self) -> str | None:
        return "Loading…"

    def is_busy(self) -> bool:
        return False


class MainWindow(QMainWindow):
    """Tune Studio's window.

    Parameters
    ----------
    session
        The wizard state shared by every page.
    settings
        App settings (recent projects, dismissed resume offers).
    """

    pageChanged = Signal(int)

    def __init__(self, session: Session | None = None, settings: AppSettings | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session or Session()
        self.settings = settings or AppSettings()
        self._closing = False
        self.setWindowTitle("Tune Studio")
        icon = QIcon(str(resources_dir() / "icons" / "tune-studio.svg"))
        if not icon.isNull():
            self.setWindowIcon(icon)
        self._tray: QSystemTrayIcon | None = None
        self.setMinimumSize(QSize(1100, 720))
        self.resize(1320, 860)

        # Project, Model and Configure are built now: the first is shown, the Model page resolves the model
        # in the background and the Configure page fits the preset to the data check (both gate the steps).
        # The others are built when first shown, or when needed (the Data page once the model is ready:
        # it checks the data then); see page().
        self.project_page = ProjectPage(self.session, self.settings)
        self.model_page = ModelPage(self.session)
        self.configure_page = ConfigurePage(self.session)
        self.pages: list[Page] = [
            self.project_page, self.model_page, _PendingPage("Data", "Datasets and documents."),
            self.configure_page, _PendingPage("Train", "Training runs."), _PendingPage("Chat", "Chat."),
            _PendingPage("Evaluate", "Score a run on a test set.")]

        self.steps = QListWidget()
        self.steps.setObjectName("Steps")
        self.steps.setFixedWidth(190)
        self.steps.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for i, page in enumerate(self.pages):
            item = QListWidgetItem(f"{i + 1}   {page.title}")
            item.setToolTip(page.subtitle)
            self.steps.addItem(item)
        self.steps.currentRowChanged.connect(self._on_step_selected)

        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)
            page.completeChanged.connect(self._refresh_nav)

        self.notice = Banner()  # app-wide: resume offers, "training finished"
        self.back_button = QPushButton("‹  Back")
        self.back_button.clicked.connect(self.back)
        self.next_button = QPushButton("Next  ›")
        self.next_button.setObjectName("Primary")
        self.next_button.setDefault(True)
        self.next_button.clicked.connect(self.next)
        self.nav_hint = muted()
        self.nav_hint.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        nav = QFrame()
        nav.setObjectName("NavBar")
        nav_lay = QHBoxLayout(nav)
        nav_lay.setContentsMargins(20, 8, 20, 8)
        nav_lay.addWidget(self.back_button)
        nav_lay.addWidget(self.nav_hint, 1)
        nav_lay.addWidget(self.next_button)

        right = QWidget()
        right_lay = QVBoxLayout(right)
        right_lay.setContentsMargins(0, 0, 0, 0)
        right_lay.setSpacing(0)
        notice_box = QWidget()
        nb = QVBoxLayout(notice_box)
        nb.setContentsMargins(20, 10, 20, 0)
        nb.addWidget(self.notice)
        right_lay.addWidget(notice_box)
        right_lay.addWidget(self.stack, 1)
        right_lay.addWidget(nav)

        central = QWidget()
        lay = QHBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.steps)
        lay.addWidget(right, 1)
        self.setCentralWidget(central)

        self.device_label = QLabel("Detecting device…")
        self.project_label = QLabel("")
        self.statusBar().addWidget(self.project_label, 1)
        self.statusBar().addPermanentWidget(self.device_label)
        self._build_menu()

        self.session.events.project.connect(self._on_project)
        self.session.events.device.connect(self._on_device)
        self.session.events.model.connect(self._on_model)  # before _refresh_nav: it may need the Data page
        self.session.events.model.connect(self._refresh_nav)
        self.session.events.data.connect(self._refresh_nav)
        self.session.events.config.connect(lambda _cfg: self._refresh_nav())
        self.project_page.openRequested.connect(self.open_project)
        self._device_job: Job | None = None
        self.steps.setCurrentRow(0)
        self._refresh_nav()

    # -- menu -----------------------------------------------------------------
    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        act = QAction("&Open project…", self)
        act.setShortcut(QKeySequence.StandardKey.Open)
        act.triggered.connect(self._on_open_project_triggered)
        file_menu.addAction(act)
        act = QAction("Open the &sample project", self)
        act.triggered.connect(self._on_open_sample_triggered)
        file_menu.addAction(act)
        file_menu.addSeparator()
        act = QAction("&Quit", self)
        act.setShortcut(QKeySequence.StandardKey.Quit)
        act.triggered.connect(self.close)
        file_menu.addAction(act)
        help_menu = self.menuBar().addMenu("&Help")
        act = QAction("&About Tune Studio", self)
        act.triggered.connect(self._on_about_triggered)
        help_menu.addAction(act)

    def _on_open_project_triggered(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder")
        if folder:
            self.open_project(Path(folder))

    def _on_open_sample_triggered(self) -> None:
        sample = install_sample_project()
        if sample is not None:
            self.open_project(sample)

    def _on_about_triggered(self) -> None:
        from backend import __version__
        QMessageBox.about(self, "About Tune Studio",
                          f"<b>Tune Studio {__version__}</b><p>Point-and-click LoRA fine-tuning of small "
                          "language models, and an offline chat over your own documents.</p>")

    # -- pages, built on demand -------------------------------------------------
    def page(self, index: int) -> Page:
        """Page ``index``, built now if it was not yet (its module imported, its widgets made)."""
        page = self.pages[index]
        if isinstance(page, _PendingPage):
            page = self._build_page(index)
        return page

    def built(self, index: int) -> bool:
        """Whether page ``index`` exists (not only its stand-in)."""
        return not isinstance(self.pages[index], _PendingPage)

    def built_pages(self) -> list[str]:
        """Titles of the pages built so far, in wizard order (tests, the start-up benchmark)."""
        return [p.title for p in self.pages if not isinstance(p, _PendingPage)]

    @property
    def data_page(self):
        """The Data page (built on first use)."""
        return self.page(2)

    @property
    def train_page(self):
        """The Train page (built on first use)."""
        return self.page(4)

    @property
    def chat_page(self):
        """The Chat page (built on first use)."""
        return self.page(5)

    @property
    def evaluate_page(self):
        """The Evaluate page (built on first use)."""
        return self.page(6)

    def ensure_pages(self) -> None:
        """Build every page not built yet (the screenshot renderer; normally pages build when first shown)."""
        for index in LAZY_PAGES:
            self.page(index)

    def _build_page(self, index: int) -> Page:
        name = LAZY_PAGES[index]
        if name == "data":
            from desktop.pages.data import DataPage as cls
        elif name == "train":
            from desktop.pages.train import TrainPage as cls
        elif name == "chat":
            from desktop.pages.chat import ChatPage as cls
        else:
            from desktop.pages.evaluate import EvaluatePage as cls
        page = cls(self.session)
        old = self.pages[index]
        current = self.stack.currentIndex()
        self.stack.insertWidget(index, page)
        self.stack.removeWidget(old)
        old.deleteLater()
        self.pages[index] = page
        self.stack.setCurrentIndex(current)
        page.completeChanged.connect(self._refresh_nav)
        if name == "train":
            page.trainingFinished.connect(self._on_training_finished)
            page.runSelected.connect(self._on_run_selected)
            page.run_in_use = self._run_in_use
        log.debug("built the %s page", name)
        return page

    def _on_model(self) -> None:
        """The model is ready: the Data page checks the data with its tokenizer now, so it must exist."""
        if self.session.model_path is not None and not self.built(2):
            self.page(2).check_if_ready()  # built during this change: it missed it

    def _run_in_use(self, run_dir: Path) -> str | None:
        """Why the Train page may not delete a run now: another page is working with it (or None)."""
        run_dir = Path(run_dir)
        if self.built(5) and self.chat_page.is_busy() and self.chat_page.selected_run() == run_dir:
            return "Chat is answering with it: wait for the answer or press Stop there."
        ev_page = self.evaluate_page if self.built(6) else None
        if ev_page is not None and ev_page.is_busy() and ev_page.selected_run() == run_dir:
            return "Evaluate is scoring it: wait for the evaluation or stop it there."
        return None

    def training_busy(self) -> bool:
        """A training run is in progress."""
        return self.built(4) and self.train_page.is_busy()

    def start_background(self) -> None:
        """Detect the device (imports torch) and prepare the model, off the GUI thread."""
        from desktop.tasks import detect_device_task
        if self.session.project is not None:
            self.model_page.ensure_resolved()
        if self._device_job is None:
            self._device_job = Job(detect_device_task, self.session.model_host, name="detect-device", parent=self)
            self._device_job.returned.connect(self.session.set_device)
            self._device_job.errored.connect(self._on_device_errored)
            self._device_job.start()

    def _on_device_errored(self, error: BaseException) -> None:
        self.device_label.setText("Device: unknown (see the log)")

    def open_project(self, root: Path, model_override: str | None = None, resolve: bool = True) -> bool:
        """Open the project at ``root``; errors appear on the Project page."""
        if self.training_busy():
            self.project_page.banner.show_message(
                "warning", "Training is running", "Stop it on the Train page before opening another project.")
            self.go_to(0, force=True)
            return False
        try:
            self.session.open_project(Path(root), model_override=model_override)
        except TuneError as e:
            self.project_page.banner.show_error(e)
            self.go_to(0, force=True)
            return False
        self.settings.add_recent(self.session.project.root)
        # temp files of exports killed mid-way (their process is gone): hidden, often hundreds of MB
        from backend.export import remove_project_export_temps

        remove_project_export_temps(self.session.project.root)
        links = self.session.project.skipped_links()  # links out of the project: never read (confinement)
        if self.session.project_notices:  # trust flags a project file asked for and did not get
            self.notice.show_message("warning", "This project asks for more trust than a file can grant",
                                     "\n".join(self.session.project_notices))
        elif links:
            from backend.confine import skipped_message

            self.notice.show_message("warning", "Some files of this project are links to elsewhere",
                                     skipped_message(links, self.session.project.root))
        if resolve:
            self.model_page.ensure_resolved()
        QTimer.singleShot(0, self._offer_resume)
        return True

    def _on_project(self, project) -> None:
        self.setWindowTitle(f"Tune Studio — {project.name}" if project else "Tune Studio")
        self.project_label.setText(f"Project: {project.root}" if project else "No project open")
        self.notice.clear()
        self._refresh_nav()

    def _on_device(self, device) -> None:
        extra = ", bf16" if device.bf16 else ""
        count = f"{device.count} × " if device.count > 1 else ""
        self.device_label.setText(f"Training device: {count}{device.name} · {device.memory_gb:.0f} GB{extra}")
        self.device_label.setToolTip("Detected with PyTorch; change it under Configure › Model › Device")

    def _offer_resume(self) -> None:
        """Offer to resume the newest unfinished run that can continue from a checkpoint.

        Whatever ended it: a crash or a kill (left ``running``), the window closed or Stop
        (``cancelled``), a failure (``failed``, e.g. the training process was killed).
        A run that another process is training right now is not offered.
        """
        if self.session.project is None or self.training_busy():
            return
        for run in list_runs(self.session.project.root):
            if run.status == "completed" or (run.status in ("running", "queued") and not run.interrupted):
                continue
            if not run.resumable or self.settings.resume_dismissed(run.run_dir):
                continue
            step = f" at step {run.step}" if run.step is not None else ""
            how = {"cancelled": "was stopped", "failed": "failed"}.get(run.status, "was interrupted")
            why = f" ({run.reason})" if run.reason and run.status == "failed" else ""
            self.notice.show_message(
                "warning", f"Training run “{run.name}” {how}{step}{why}.",
                "It can continue from its latest checkpoint.",
                [("Resume", lambda _=False, r=run.run_dir: self._on_resume_accepted(r)),
                 ("Not now", lambda _=False, r=run.run_dir: self._on_resume_dismissed(r))])
            return

    def _on_resume_accepted(self, run_dir: Path) -> None:
        self.notice.clear()
        self.go_to(4, force=True)
        self.train_page.resume_run(run_dir)

    def _on_resume_dismissed(self, run_dir: Path) -> None:
        self.settings.dismiss_resume(run_dir)
        self.notice.clear()

    # -- navigation -------------------------------------------------------------
    def current_index(self) -> int:
        """The page shown."""
        return self.stack.currentIndex()

    def reachable(self, index: int) -> bool:
        """Whether every prerequisite page of ``index`` is complete."""
        # in order, stopping at the first that fails: a later one is built only when the earlier ones hold
        return all(self.page(j).validate() is None for j in PREREQUISITES[index])

    def go_to(self, index: int, force: bool = False) -> bool:
        """Show page ``index`` if its prerequisites are met (or ``force``)."""
        if not force and not self.reachable(index):
            blocker = next(j for j in PREREQUISITES[index] if self.page(j).validate() is not None)
            self._show_page(blocker)
            self.pages[blocker].banner.show_message("warning", self.pages[blocker].validate() or "")
            return False
        self._show_page(index)
        return True

    def _show_page(self, index: int) -> None:
        old = self.stack.currentIndex()
        if old != index and 0 <= old < len(self.pages):
            self.pages[old].on_leave()
        page = self.page(index)
        self.stack.setCurrentIndex(index)
        self.steps.blockSignals(True)
        self.steps.setCurrentRow(index)
        self.steps.blockSignals(False)
        page.on_enter()
        self._refresh_nav()
        self.pageChanged.emit(index)

    def next(self) -> None:
        """Validate the page and go on."""
        i = self.current_index()
        reason = self.pages[i].validate()
        if reason:
            self.pages[i].banner.show_message("warning", reason)
            return
        if i + 1 < len(self.pages):
            self.go_to(i + 1)

    def back(self) -> None:
        """Go to the previous page (always allowed)."""
        i = self.current_index()
        if i > 0:
            self._show_page(i - 1)

    def _on_step_selected(self, row: int) -> None:
        if row < 0 or row == self.current_index():
            return
        if row < self.current_index() or self.reachable(row):
            self._show_page(row)
        else:
            self.steps.blockSignals(True)
            self.steps.setCurrentRow(self.current_index())
            self.steps.blockSignals(False)
            self.go_to(row)

    def _refresh_nav(self, *_: object) -> None:
        i = self.current_index()
        if i < 0:
            return
        self.back_button.setEnabled(i > 0)
        last = i == len(self.pages) - 1
        self.next_button.setVisible(not last)
        reason = self.pages[i].validate() if not last else None
        self.nav_hint.setText(reason or "")
        self.next_button.setEnabled(reason is None)
        for j in range(len(self.pages)):
            item = self.steps.item(j)
            ok = j <= i or self.reachable(j)
            flags = item.flags()
            item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if ok else flags & ~Qt.ItemFlag.ItemIsEnabled)

    # -- training notifications ---------------------------------------------------
    def _on_training_finished(self, status: str, text: str) -> None:
        kind = {"completed": "success", "cancelled": "info"}.get(status, "error")
        actions = [("Chat with it", lambda _=False: self.go_to(5))] if status == "completed" else None
        self.notice.show_message(kind, text, "", actions)
        QApplication.alert(self)
        self.statusBar().showMessage(text, 15_000)
        if not self.isActiveWindow() and QSystemTrayIcon.isSystemTrayAvailable():
            if self._tray is None:
                self._tray = QSystemTrayIcon(self.windowIcon(), self)
                self._tray.setToolTip("Tune Studio")
                self._tray.messageClicked.connect(self._on_tray_message_clicked)
            self._tray.show()
            self._tray.showMessage("Tune Studio", text, QSystemTrayIcon.MessageIcon.Information, 10_000)
        if self._closing:
            QTimer.singleShot(0, self.close)

    def _on_tray_message_clicked(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def _on_run_selected(self, run_dir) -> None:
        from desktop.runs import read_run

        summary = read_run(Path(run_dir)) if run_dir else None  # its name as the run history shows it
        name = summary.name if summary is not None else (Path(run_dir).name if run_dir else "")
        self.statusBar().showMessage(f"Run selected for chat: {name}" if run_dir else "", 5000)

    # -- closing -------------------------------------------------------------------
    def confirm_stop_training(self) -> bool:
        """Ask whether to stop the running training and close (tests replace this)."""
        answer = QMessageBox.question(
            self, "Training is running",
            "Training is still running. Stop it and close Tune Studio?\n\n"
            "A checkpoint is saved first, so you can resume the run later.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.training_busy():
            if self._closing or not self.confirm_stop_training():
                event.ignore()
                return
            self._closing = True
            self.statusBar().showMessage("Stopping training and saving a checkpoint…")
            self.train_page.stop_training()
            event.ignore()  # closes again when the run has finished
            return
        if self.session.project is not None:
            self.session.save_project()
        for job in running_jobs():
            job.stop()  # the rest ends on its own; main() waits briefly before exiting
        self.session.close_models(wait=False)  # the model host exits and returns its memory
        event.accept()

    def job_summary(self) -> str:
        """Running jobs, for the status bar and tests."""
        return ", ".join(j.name for j in running_jobs()) or "idle"


__all__ = ["MainWindow"]
