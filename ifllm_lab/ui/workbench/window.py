"""The researcher's main window: the sessions of a data folder, the studies, replays in
tabs, the IFLLM import, and one status line for every job. Study participants never see
it (they get the study app, which Run study starts as a child process)."""
from __future__ import annotations

import math
import os

from PySide6.QtCore import QByteArray, QFileSystemWatcher, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton, QSizePolicy, QTabWidget,
    QWidget,
)

from ... import __version__
from ...jobs import Job
from ..jobs import JobRunner
from .dpo import DpoPanel
from .reward import RewardPanel
from .sessions import SessionsPanel
from .studies import StudiesPanel

RECENT_KEPT = 8
FIXED_TABS = 4  # Sessions, Studies, Reward models, DPO jobs: the replays' tabs come after them


def default_data_folder() -> str:
    from platformdirs import user_data_dir

    return os.path.join(user_data_dir("ifllm-lab", appauthor=False), "sessions")


def versions() -> dict[str, str]:
    """Versions of the app and of the parts that matter for a lab report."""
    from importlib.metadata import PackageNotFoundError, version

    import PySide6
    from PySide6.QtCore import qVersion

    out = {"IFLLM Lab": __version__, "Qt": qVersion(), "PySide6": PySide6.__version__}
    for name, distribution in (("MediaPipe", "mediapipe"), ("llama.cpp (llama-cpp-python)", "llama-cpp-python"),
                               ("h5py", "h5py"), ("NumPy", "numpy")):
        try:
            out[name] = version(distribution)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


class Workbench(QMainWindow):
    """``folder``: the data folder to open (default: the last one, else the user's data
    folder). ``settings``: where window state and recent folders are kept (tests pass their
    own); ``cache_dir``: the session catalog's cache (default: the user's cache folder)."""

    def __init__(self, folder: str | None = None, *, settings: QSettings | None = None,
                 cache_dir: str | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("IFLLM Lab")
        self.settings = settings or QSettings("IFLLM Lab", "workbench")
        self.runners: list[tuple[JobRunner, bool]] = []  # (runner, shown in the status line)
        self.last_import = None

        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("tabs")
        self.tabs.setDocumentMode(True)
        self.tabs.setTabsClosable(True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.sessions = SessionsPanel(self.run_job, cache_dir=cache_dir, parent=self)
        self.studies = StudiesPanel(self)
        self.reward = RewardPanel(self.run_job, self.sessions, tabs=self.tabs, cache_dir=cache_dir, parent=self)
        self.dpo = DpoPanel(self.run_job, self.sessions, cache_dir=cache_dir, parent=self)
        self.tabs.addTab(self.sessions, "Sessions")
        self.tabs.addTab(self.studies, "Studies")
        self.tabs.addTab(self.reward, "Reward models")
        self.tabs.addTab(self.dpo, "DPO jobs")
        self.reward.trained.connect(lambda _path: self.dpo.refresh_models())
        for i in range(FIXED_TABS):  # the panels stay
            self.tabs.tabBar().setTabButton(i, self.tabs.tabBar().ButtonPosition.RightSide, None)
        self.setCentralWidget(self.tabs)
        self.sessions.open_replay.connect(self.open_replay)
        self.sessions.folder_changed.connect(self._folder_changed)
        self.studies.session_started.connect(lambda _p: self._watch_soon())
        self.studies.session_ended.connect(lambda _c: self.sessions.refresh())
        self.studies.sessions_of = lambda name: [r for r in self.sessions.model.rows() if r.study == name]
        self.sessions.scanned.connect(self.studies.refresh_summary)

        # -- the status line: one job at a time is shown, its progress and a cancel
        self.job_label = QLabel("", self)
        self.job_label.setObjectName("job_label")
        # a long message (a folder path) is cut, it does not widen the window
        self.job_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.job_bar = QProgressBar(self)
        self.job_bar.setObjectName("job_bar")
        self.job_bar.setMaximumWidth(220)
        self.job_bar.setTextVisible(False)
        self.cancel_btn = QPushButton("Cancel", self)
        self.cancel_btn.setObjectName("job_cancel")
        self.cancel_btn.clicked.connect(self.cancel_job)
        sb = self.statusBar()
        sb.addWidget(self.job_label, 1)
        sb.addPermanentWidget(self.job_bar)
        sb.addPermanentWidget(self.cancel_btn)
        # the line keeps its height when a job's bar and button come and go: the window
        # above it is not laid out (and every table row repainted) at each job's start and end
        sb.setMinimumHeight(max(self.cancel_btn.sizeHint().height(), self.job_bar.sizeHint().height()) + 6)
        self._job_idle()

        # -- the data folder is watched: a session file that appears or closes updates the table
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(lambda _d: self._rescan_timer.start())
        self._rescan_timer = QTimer(self)
        self._rescan_timer.setSingleShot(True)
        self._rescan_timer.setInterval(700)
        self._rescan_timer.timeout.connect(self.sessions.refresh)

        self._build_menus()
        self._restore()
        self.sessions.set_folder(folder or self.settings.value("data_folder", "") or default_data_folder())

    # -- menus --------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, slot, key in (("Open data folder…", self.sessions.choose_folder, QKeySequence.StandardKey.Open),
                                ("Open session…", self.choose_session, "Ctrl+Shift+O"),
                                ("Import IFLLM release…", self.choose_import, "Ctrl+Shift+I")):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(key))
            act.triggered.connect(slot)
            file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("Recent folders")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        quit_act = QAction("Quit", self)
        quit_act.setShortcut(QKeySequence.StandardKey.Quit)
        quit_act.triggered.connect(self.close)
        file_menu.addAction(quit_act)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("About IFLLM Lab", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for folder in self.recent_folders():
            act = self.recent_menu.addAction(folder)
            act.triggered.connect(lambda _=False, f=folder: self.sessions.set_folder(f))
        if not self.recent_menu.actions():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def recent_folders(self) -> list[str]:
        value = self.settings.value("recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def about_text(self) -> str:
        rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in versions().items())
        return ("<h3>IFLLM Lab</h3><p>Lab studies of implicit feedback (gaze, mouse) on LLM answers.</p>"
                f"<table>{rows}</table>")

    def show_about(self) -> None:
        QMessageBox.about(self, "About IFLLM Lab", self.about_text())

    # -- the data folder ----------------------------------------------------------------------
    def _folder_changed(self, folder: str) -> None:
        self.settings.setValue("data_folder", folder)
        recent = [folder] + [f for f in self.recent_folders() if f != folder]
        self.settings.setValue("recent_folders", recent[:RECENT_KEPT])
        self.studies.set_data_folder(folder)
        self.setWindowTitle(f"IFLLM Lab — {folder}")
        self._watch_soon()

    def _watch_soon(self) -> None:
        """Watch the data folder and its study folders (new ones appear with a first session)."""
        folder = self.sessions.folder
        if not folder or not os.path.isdir(folder):
            return
        want = {folder}
        try:
            want |= {e.path for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")}
        except OSError:
            pass
        have = set(self.watcher.directories())
        if have - want:
            self.watcher.removePaths(sorted(have - want))
        if want - have:
            self.watcher.addPaths(sorted(want - have))

    # -- jobs ---------------------------------------------------------------------------------
    def run_job(self, job: Job, what: str, *, on_done=None, on_partial=None, on_failed=None,
                quiet: bool = False) -> JobRunner:
        """Run ``job`` in a worker thread; its progress shows in the status line (unless
        ``quiet``), Cancel stops it. Callbacks run on the GUI thread."""
        runner = JobRunner(job, parent=self)
        self.runners.append((runner, not quiet))
        if on_partial is not None:
            runner.partial.connect(on_partial)
        if on_done is not None:
            runner.succeeded.connect(on_done)

        def failed(message: str) -> None:
            self.statusBar().showMessage(f"{what}: {message}", 15000)
            if on_failed is not None:
                on_failed(message)

        runner.failed.connect(failed)
        if not quiet:
            runner.progress.connect(lambda f, m, r=runner, w=what: self._job_progress(r, w, f, m))
        runner.ended.connect(lambda _state, r=runner: self._job_ended(r))
        if not quiet:
            self._job_progress(runner, what, math.nan, "")
        return runner.start()

    def shown_runner(self) -> JobRunner | None:
        for runner, shown in reversed(self.runners):
            if shown and runner.running:
                return runner
        return None

    def _job_progress(self, runner: JobRunner, what: str, fraction: float, message: str) -> None:
        if runner is not self.shown_runner():
            return
        self.job_label.setText(f"{what}: {message}" if message else what)
        # a progress bar repaints at once when its value changes, and with it everything
        # else waiting to be painted (the table, as rows arrive): here it waits its turn
        self.job_bar.setUpdatesEnabled(False)
        if math.isnan(fraction):
            self.job_bar.setRange(0, 0)
        else:
            self.job_bar.setRange(0, 1000)
            self.job_bar.setValue(int(round(1000 * fraction)))
        self.job_bar.setUpdatesEnabled(True)
        self.job_bar.show()
        self.cancel_btn.show()

    def _job_ended(self, runner: JobRunner) -> None:
        shown = any(s for r, s in self.runners if r is runner)
        self.runners = [(r, s) for r, s in self.runners if r is not runner]
        runner.deleteLater()
        if shown and self.shown_runner() is None:
            msg = runner.job.message or ""
            self._job_idle(f"{msg}" if runner.state == "done" else f"{runner.job.name}: {runner.state}"
                           + (f" ({runner.job.error})" if runner.job.error else ""))

    def _job_idle(self, message: str = "") -> None:
        self.job_label.setText(message)
        self.job_bar.hide()
        self.cancel_btn.hide()

    def cancel_job(self) -> None:
        runner = self.shown_runner()
        if runner is not None:
            runner.cancel()
            self.job_label.setText(self.job_label.text() + " — cancelling…")

    # -- import -------------------------------------------------------------------------------
    def choose_import(self) -> None:
        src, _ = QFileDialog.getOpenFileName(self, "Import the IFLLM release (its .tar.xz; Cancel to pick its folder)",
                                             os.path.expanduser("~"), "IFLLM release (*.tar.xz *.tar *.tgz *.tar.gz)")
        if not src:
            src = QFileDialog.getExistingDirectory(self, "Import the IFLLM release from its folder",
                                                   os.path.expanduser("~"))
        if src:
            self.import_release(src)

    def import_release(self, src: str, out: str | None = None) -> JobRunner:
        """Import the IFLLM release ``src`` into ``out`` (default: the data folder's
        ``ifllm-release`` folder); the table shows the sessions as they are imported."""
        from ...importers.ifllm.job import import_job

        out = out or os.path.join(self.sessions.folder, "ifllm-release")
        os.makedirs(self.sessions.folder, exist_ok=True)
        seen = [0]

        def partial(report) -> None:  # the job hands over the report at the end only
            self.last_import = report

        def progress(fraction: float, _message: str) -> None:  # refresh the table now and then
            if not math.isnan(fraction) and fraction - seen[0] >= 0.25:
                seen[0] = fraction
                self.sessions.refresh()

        runner = self.run_job(Job(import_job, src, out, name="import"), "Importing the IFLLM release",
                              on_done=self._import_done, on_partial=partial)
        runner.progress.connect(progress)
        runner.cancelled.connect(lambda report: self._import_done(report, cancelled=True))
        return runner

    def _import_done(self, report, cancelled: bool = False) -> None:
        self.last_import = report
        self.sessions.refresh()
        if report is None:
            return
        text = (f"{len(report.sessions)} sessions imported into {report.out_dir}; {len(report.skipped)} kept from "
                f"before; {len(report.not_imported)} not imported.")
        if cancelled:
            text = "The import was cancelled. " + text + " Import again to finish it."
        elif report.stopped:
            text += f" The import stopped: {report.stopped}. Import again to finish it."
        problems = report.all_problems()
        detail = "\n".join(f"{os.path.basename(n.path)}: {n.reason}" for n in report.not_imported)
        detail += ("\n" if detail else "") + f"{len(problems)} rows with problems" + "".join(
            f"\n{p.file}:{p.line}: {p.reason}" for p in problems[:200])
        self.import_message = text
        self.statusBar().showMessage(text, 30000)
        self.import_box = QMessageBox(
            QMessageBox.Icon.Information if not report.not_imported else QMessageBox.Icon.Warning,
            "IFLLM import", text, parent=self)
        self.import_box.setDetailedText(detail)
        self.import_box.open()  # not modal to the app: the table stays usable

    # -- sessions and replays -----------------------------------------------------------------
    def choose_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a session", self.sessions.folder or os.path.expanduser("~"),
                                              "Session files (*.h5)")
        if path:
            self.open_replay(path)

    def open_replay(self, path: str) -> QWidget | None:
        """A replay of ``path`` in its own tab (the tab of an open one is shown again)."""
        path = os.path.abspath(path)
        for i in range(FIXED_TABS, self.tabs.count()):
            if self.tabs.widget(i).property("session_path") == path:
                self.tabs.setCurrentIndex(i)
                return self.tabs.widget(i)
        from ...analysis.replay import ReplayData
        from ...session import SessionFileError
        from ..replay.window import ReplayWindow

        try:
            data = ReplayData(path)
        except SessionFileError as exc:
            self.statusBar().showMessage(str(exc), 15000)
            return None
        view = ReplayWindow(data)
        view.setWindowFlags(Qt.WindowType.Widget)
        view.setProperty("session_path", path)
        i = self.tabs.addTab(view, os.path.basename(path))
        self.tabs.setTabToolTip(i, path)
        self.tabs.setCurrentIndex(i)
        return view

    def close_tab(self, i: int) -> None:
        if i < FIXED_TABS:
            return
        w = self.tabs.widget(i)
        self.tabs.removeTab(i)
        w.close()
        w.deleteLater()

    # -- window state --------------------------------------------------------------------------
    def _restore(self) -> None:
        geo = self.settings.value("geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            self.resize(1400, 900)
        for key, splitter in (("sessions_splitter", self.sessions.splitter),
                              ("studies_splitter", self.studies.splitter), ("dpo_splitter", self.dpo.splitter)):
            state = self.settings.value(key)
            if isinstance(state, QByteArray) and not state.isEmpty():
                splitter.restoreState(state)
        header = self.settings.value("sessions_header")
        if isinstance(header, QByteArray) and not header.isEmpty():
            self.sessions.table.horizontalHeader().restoreState(header)
            self.sessions.table.horizontalHeader().setStretchLastSection(False)  # the file names take the room

    def save_state(self) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("sessions_splitter", self.sessions.splitter.saveState())
        self.settings.setValue("studies_splitter", self.studies.splitter.saveState())
        self.settings.setValue("dpo_splitter", self.dpo.splitter.saveState())
        self.settings.setValue("sessions_header", self.sessions.table.horizontalHeader().saveState())
        self.settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.save_state()
        for runner, _shown in list(self.runners):
            runner.cancel()
        for i in range(self.tabs.count() - 1, FIXED_TABS - 1, -1):
            self.close_tab(i)
        super().closeEvent(event)


def run_workbench(folder: str | None = None, *, size: tuple[int, int] | None = None,
                  screenshot: str | None = None, argv: list[str] | None = None) -> int:
    """Open the workbench and run Qt's event loop. With ``screenshot`` it waits for the
    folder's table, saves the window as a PNG and exits (no display needed)."""
    from ..style import application, apply_dark_palette

    app = application(argv)
    app.setOrganizationName("IFLLM Lab")

    apply_dark_palette(app)
    win = Workbench(folder)
    if size:
        win.resize(*size)
    win.show()
    if screenshot:
        import time

        end = time.monotonic() + 60
        while win.sessions.scans == 0 and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        app.processEvents()
        win.grab().save(screenshot)
        win.close()
        return 0
    return app.exec()
