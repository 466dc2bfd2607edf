"""Page 1: create or open a project folder."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from backend.errors import TuneError
from backend.workspace import Project
from desktop.appstate import AppSettings, install_sample_project, projects_dir
from desktop.runs import list_runs
from desktop.session import Session
from desktop.widgets import Page, muted


class ProjectPage(Page):
    """Open the sample, a recent project, any project folder, or create a new one."""

    title = "Project"
    subtitle = ("A project folder holds your documents, datasets, the document index and every "
                "training run. Start with the sample project, or create your own.")
    openRequested = Signal(object)  # Path

    def __init__(self, session: Session, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.settings = settings

        current = QGroupBox("Current project")
        self.name_label = QLabel("–")
        self.name_label.setObjectName("BigNumber")
        self.path_label = QLabel("–")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label.setWordWrap(True)
        self.model_label = QLabel("–")
        self.counts_label = QLabel("–")
        self.about_label = QLabel("")
        self.about_label.setWordWrap(True)
        form = QFormLayout(current)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow("Name:", self.name_label)
        form.addRow("Folder:", self.path_label)
        form.addRow("Base model:", self.model_label)
        form.addRow("Contents:", self.counts_label)
        form.addRow("About:", self.about_label)
        self._about_row_label = form.labelForField(self.about_label)

        open_box = QGroupBox("Open")
        self.recent_list = QListWidget()
        self.recent_list.setMinimumHeight(140)
        self.recent_list.itemActivated.connect(self._on_recent_activated)
        self.open_recent_button = QPushButton("Open selected")
        self.open_recent_button.clicked.connect(self._on_open_recent_clicked)
        self.browse_button = QPushButton("Open folder…")
        self.browse_button.clicked.connect(self._on_browse_clicked)
        self.sample_button = QPushButton("Open the sample project")
        self.sample_button.setToolTip("A small document set about a fictional thermostat and a matching "
                                      "question-answer dataset, ready to train on a CPU.")
        self.sample_button.clicked.connect(self._on_sample_clicked)
        ol = QVBoxLayout(open_box)
        ol.addWidget(QLabel("Recent projects:"))
        ol.addWidget(self.recent_list, 1)
        row = QHBoxLayout()
        row.addWidget(self.open_recent_button)
        row.addWidget(self.browse_button)
        row.addStretch(1)
        row.addWidget(self.sample_button)
        ol.addLayout(row)

        new_box = QGroupBox("Create a new project")
        self.new_name = QLineEdit()
        self.new_name.setPlaceholderText("e.g. support-bot")
        self.new_location = QLineEdit(str(projects_dir()))
        loc_button = QPushButton("Browse…")
        loc_button.clicked.connect(self._on_location_browse_clicked)
        loc_row = QHBoxLayout()
        loc_row.addWidget(self.new_location, 1)
        loc_row.addWidget(loc_button)
        self.create_button = QPushButton("Create project")
        self.create_button.clicked.connect(self._on_create_clicked)
        nf = QFormLayout(new_box)
        nf.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        nf.addRow("Name:", self.new_name)
        nf.addRow("Location:", loc_row)
        cr = QHBoxLayout()
        cr.addWidget(muted("The project gets its own folder inside the location."), 1)
        cr.addWidget(self.create_button)
        nf.addRow(cr)

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.addWidget(current, 0, 0)
        grid.addWidget(new_box, 1, 0)
        grid.addWidget(open_box, 0, 1, 2, 1)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        self.body.addLayout(grid)
        self.body.addStretch(1)

        session.events.project.connect(self._on_project)
        session.events.data.connect(self._refresh_counts)
        session.events.config.connect(lambda _cfg: self._refresh_model())
        self._refresh_recent()

    # -- Page API -----------------------------------------------------------------
    def validate(self) -> str | None:
        return None if self.session.project is not None else "Open or create a project first."

    def on_enter(self) -> None:
        self._refresh_recent()
        self._refresh_counts()

    # -- updates -------------------------------------------------------------------
    def _on_project(self, project: Project | None) -> None:
        self.banner.clear()
        if project is None:
            return
        self.name_label.setText(project.name)
        self.path_label.setText(str(project.root))
        about = (project.settings or {}).get("description", "")
        self.about_label.setText(about)
        self.about_label.setVisible(bool(about))
        self._about_row_label.setVisible(bool(about))
        self._refresh_model()
        self._refresh_counts()
        # the window records the project as recent right after this signal: list it once it has
        QTimer.singleShot(0, self._refresh_recent)
        self.completeChanged.emit()

    def _refresh_model(self) -> None:
        src = self.session.config.model.name_or_path
        self.model_label.setText("SmolLM2-135M-Instruct (bundled default)" if src == "default" else src)

    def _refresh_counts(self) -> None:
        p = self.session.project
        if p is None:
            return
        n_runs = len(list_runs(p.root))
        self.counts_label.setText(f"{len(self.session.dataset_files())} dataset file(s), "
                                  f"{len(self.session.document_files())} document(s), {n_runs} run(s)")

    def _refresh_recent(self) -> None:
        self.recent_list.clear()
        for path in self.settings.recent_projects:
            try:
                name = Project.open(path).name
            except TuneError:
                continue
            item = QListWidgetItem(f"{name}    —    {path}")
            item.setData(Qt.ItemDataRole.UserRole, path)
            self.recent_list.addItem(item)
        self.open_recent_button.setEnabled(self.recent_list.count() > 0)

    # -- actions -------------------------------------------------------------------
    def _on_recent_activated(self, item: QListWidgetItem) -> None:
        self.openRequested.emit(Path(item.data(Qt.ItemDataRole.UserRole)))

    def _on_open_recent_clicked(self) -> None:
        item = self.recent_list.currentItem() or self.recent_list.item(0)
        if item is not None:
            self._on_recent_activated(item)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a project folder", str(projects_dir()))
        if folder:
            self.openRequested.emit(Path(folder))

    def _on_sample_clicked(self) -> None:
        sample = install_sample_project()
        if sample is None:
            self.banner.show_message("error", "The sample project is not part of this installation.",
                                     "Create a new project instead.")
            return
        self.openRequested.emit(sample)

    def _on_location_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where to create the project", self.new_location.text())
        if folder:
            self.new_location.setText(folder)

    def _on_create_clicked(self) -> None:
        name = self.new_name.text().strip()
        if not name:
            self.banner.show_message("warning", "Give the new project a name.")
            self.new_name.setFocus()
            return
        if any(c in name for c in '/\\:*?"<>|'):
            self.banner.show_message("warning", "A project name cannot contain / \\ : * ? \" < > |",
                                     "It becomes the name of the project folder.")
            return
        root = Path(self.new_location.text().strip() or projects_dir()).expanduser() / name
        try:
            Project.create(root, name=name)
        except (TuneError, OSError) as e:
            if isinstance(e, OSError):
                self.banner.show_message("error", f"Cannot create the folder {root}", e.strerror or str(e))
            else:
                self.banner.show_error(e)
            return
        self.new_name.clear()
        self.openRequested.emit(root)
