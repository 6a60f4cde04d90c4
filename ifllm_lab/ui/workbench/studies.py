"""The workbench's Studies tab: the study files of the data folder and the bundled
examples, each one's summary and problems, and Run study (the participant app as a child
process, so that a crash of one never takes the other down)."""
from __future__ import annotations

import html
import os
import sys
from pathlib import Path

from PySide6.QtCore import QProcess, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
    QTextBrowser,
    QSplitter, QVBoxLayout, QWidget,
)

from ...config import ConfigError, StudyConfig, load_config
from ...paths import data_file
from ...study.readiness import check_study
from .. import style
from .sessions_model import STATE_TEXT

PATH_ROLE = Qt.ItemDataRole.UserRole + 1


def example_studies() -> list[Path]:
    folder = data_file("studies")
    return sorted(folder.glob("*.toml")) if folder.is_dir() else []


def study_files(folder: str) -> list[Path]:
    """The study files (``*.toml``, ``*.json`` holding a [study] section) directly in ``folder``."""
    if not folder or not os.path.isdir(folder):
        return []
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.suffix.lower() in (".toml", ".json") and p.is_file():
            out.append(p)
    return out


def describe(config: StudyConfig) -> str:
    """A study's summary in a few lines."""
    s, c = config.study, config.calibration
    lines = [
        f"{s.name}: {s.mode}, {s.questions} questions",
        f"models: {_models_line(config)}",
        f"calibration: {c.pattern}, validation {c.validation} (pass: mean <= {c.max_mean_deg:g}°, "
        f"every point <= {c.max_point_deg:g}°), drift check {c.drift} every {c.drift_check_every} question(s) "
        f"(recalibrate at {c.drift_large_deg:g}°)",
        f"screen: {config.screen.width_mm:g} x {config.screen.height_mm:g} mm at {config.screen.viewing_distance_mm:g} mm",
        f"camera: {config.camera.source}; raw video {'kept' if s.keep_video else 'not kept'}",
        f"questionnaire: {len(s.questionnaire)} items",
        f"data folder (in the study file): {s.data_folder}",
    ]
    return "\n".join(lines)


def _models_line(config: StudyConfig) -> str:
    return ", ".join(f"{m.name} ({m.backend}{': ' + os.path.basename(m.model_path) if m.model_path else ''})"
                     for m in config.llm)


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


_MODES = {"pointwise": "one answer per question, rated", "pairwise": "two answers side by side, rated and compared",
          "mixed": "pointwise and pairwise questions mixed"}


def describe_html(config: StudyConfig, sessions: list | None = None, records_into: str = "",
                  file_folder: str | None = None) -> str:
    """The summary as a small document: what a participant goes through, the models, the
    gaze quality gates, the setup, and the sessions this study has recorded so far."""
    s, c, scr, cam = config.study, config.calibration, config.screen, config.camera
    dim = style.TEXT_DIM.name()

    def section(title: str, rows: list[tuple[str, str]]) -> str:
        body = "".join(f"<tr><td style='color:{dim}; padding-right:14px'>{_esc(k)}</td><td>{v}</td></tr>"
                       for k, v in rows)
        return f"<h3 style='margin-bottom:2px'>{_esc(title)}</h3><table cellspacing='2'>{body}</table>"

    parts = [section("Design", [
        ("mode", f"{_esc(s.mode)} &mdash; {_esc(_MODES.get(s.mode, ''))}"),
        ("questions", f"{s.questions} per participant"),
        ("instructions", _esc(s.instructions) if s.instructions else "<i>the bundled text</i>"),
        ("consent", _esc(s.consent_file) if s.consent_file else "<i>the bundled consent text</i>"),
        ("raw video", "kept (identifying: say so in the consent)" if s.keep_video else "never stored"),
    ])]
    model_rows = []
    for m in config.llm:
        where = (os.path.basename(m.model_path) if m.model_path else "bundled SmolLM2-135M-Instruct") \
            if m.backend == "llama" else f"{m.model or '?'} at {m.base_url or '?'}"
        seed = "new per answer" if m.seed is None else str(m.seed)
        model_rows.append((m.name, f"{_esc(m.backend)}: {_esc(where)}; temperature {m.temperature:g}, "
                                   f"top-p {m.top_p:g}, up to {m.max_tokens} tokens, seed {_esc(seed)}"))
    parts.append(section("Models", model_rows))
    drift = (f"{_esc(c.drift)} every {c.drift_check_every} question(s); correct above {c.drift_small_deg:g}°, "
             f"recalibrate at {c.drift_large_deg:g}°") if c.drift_check_every else "never"
    parts.append(section("Gaze", [
        ("calibration", _esc(c.pattern)),
        ("validation", f"{_esc(c.validation)}: passes at mean &le; {c.max_mean_deg:g}° and every point "
                       f"&le; {c.max_point_deg:g}°"),
        ("drift check", drift),
        ("screen", f"{scr.width_mm:g} &times; {scr.height_mm:g} mm at {scr.viewing_distance_mm:g} mm"
                   + (f", {scr.width_px} &times; {scr.height_px} px" if scr.width_px and scr.height_px else "")),
        ("camera", f"{_esc(cam.source)} ({cam.width_px} &times; {cam.height_px} at {cam.fps:g} fps)"),
    ]))
    items = "".join(f"<li>{_esc(q)}</li>" for q in s.questionnaire) or "<li><i>none</i></li>"
    parts.append(f"<h3 style='margin-bottom:2px'>Questionnaire ({len(s.questionnaire)} items)</h3>"
                 f"<ol style='margin-top:2px'>{items}</ol>")
    data_rows = [("in the study file", _esc(s.data_folder if file_folder is None else file_folder))]
    if records_into:
        data_rows.append(("Run study records into", f"{_esc(records_into)} (the workbench's data folder)"))
    if sessions is not None:
        states: dict[str, int] = {}
        for r in sessions:
            states[r.state] = states.get(r.state, 0) + 1
        people = {r.participant for r in sessions if r.participant}
        if sessions:
            last = max((r.started_utc for r in sessions if r.started_utc), default="")
            made = ", ".join(f"{n} {STATE_TEXT.get(k, k)}" for k, n in sorted(states.items()))
            data_rows.append(("sessions so far", f"{len(sessions)} ({made}) from {len(people)} participant(s)"
                                                 + (f"; last started {_esc(last)} UTC" if last else "")))
        else:
            data_rows.append(("sessions so far", "none in this data folder"))
    parts.append(section("Data", data_rows))
    return "".join(parts)


class StudiesPanel(QWidget):
    """Study files with their summary and problems; Run study starts the participant app
    on the chosen screen with the workbench's data folder. Emits ``session_started`` /
    ``session_ended(exit_code)`` for the sessions table."""

    session_started = Signal(str)
    session_ended = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("studies")
        self.data_folder = ""
        self.extra: list[Path] = []  # study files opened by hand
        self.process: QProcess | None = None
        #: the sessions of a study (by name) in the data folder, for its summary; set by the window
        self.sessions_of = None
        self.config: StudyConfig | None = None  # the shown study, as Run study would run it
        self._file_folder = ""  # its data folder as the study file says
        self.last_output = ""

        self.list = QListWidget(self)
        self.list.setObjectName("study_list")
        self.list.currentItemChanged.connect(self._show)
        open_btn = QPushButton("Open study file…", self)
        open_btn.clicked.connect(self.choose_file)
        left = QWidget(self)
        lbox = QVBoxLayout(left)
        lbox.setContentsMargins(0, 0, 0, 0)
        lbox.addWidget(self.list, 1)
        lbox.addWidget(open_btn)

        self.title = QLabel("", self)
        self.title.setObjectName("study_title")
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.3)
        f.setBold(True)
        self.title.setFont(f)
        self.path_label = QLabel("", self)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QTextBrowser(self)
        self.summary.setObjectName("study_summary")
        self.summary.setOpenLinks(False)
        self.problems = QLabel("", self)
        self.problems.setObjectName("study_problems")
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.screen_box = QComboBox(self)
        self.screen_box.setObjectName("screen_box")
        self.run_btn = QPushButton("Run study", self)
        self.run_btn.setObjectName("run_study")
        self.run_btn.clicked.connect(self.run_selected)
        self.stop_btn = QPushButton("Stop", self)
        self.stop_btn.setEnabled(False)
        self.stop_btn.clicked.connect(self.stop)
        self.run_status = QLabel("", self)
        self.run_status.setObjectName("run_status")
        self.run_status.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(QLabel("Screen:", self))
        run_row.addWidget(self.screen_box)
        run_row.addWidget(self.run_btn)
        run_row.addWidget(self.stop_btn)
        run_row.addWidget(self.run_status, 1)
        right = QWidget(self)
        rbox = QVBoxLayout(right)
        rbox.setContentsMargins(0, 0, 0, 0)
        rbox.addWidget(self.title)
        rbox.addWidget(self.path_label)
        rbox.addWidget(self.summary, 1)
        rbox.addWidget(self.problems)
        rbox.addLayout(run_row)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("studies_splitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 3)
        box = QVBoxLayout(self)
        box.addWidget(self.splitter)
        self._fill_screens()
        self.reload()

    # -- the list ---------------------------------------------------------------------------
    def _fill_screens(self) -> None:
        self.screen_box.clear()
        screens = QGuiApplication.screens()
        for i, s in enumerate(screens):
            g = s.geometry()
            self.screen_box.addItem(f"{i + 1}: {s.name() or 'screen'} ({g.width()}x{g.height()})", i)
        # the participant's screen: a second one when there is one
        self.screen_box.setCurrentIndex(1 if len(screens) > 1 else 0)

    def set_data_folder(self, folder: str) -> None:
        self.data_folder = folder
        self.reload()

    def reload(self) -> None:
        current = self.selected_path()
        self.list.clear()
        seen = set()
        groups = (("In the data folder", study_files(self.data_folder)), ("Opened", self.extra),
                  ("Examples", example_studies()))
        for title, paths in groups:
            paths = [p for p in paths if str(p) not in seen]
            if not paths:
                continue
            head = QListWidgetItem(title)
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            f = head.font()
            f.setBold(True)
            head.setFont(f)
            self.list.addItem(head)
            for p in paths:
                seen.add(str(p))
                item = QListWidgetItem(f"  {p.stem}")
                item.setData(PATH_ROLE, str(p))
                item.setToolTip(str(p))
                self.list.addItem(item)
        if not self.select(current) and self.list.count():
            for i in range(self.list.count()):
                if self.list.item(i).data(PATH_ROLE):
                    self.list.setCurrentRow(i)
                    break

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a study file", self.data_folder or os.path.expanduser("~"),
                                              "Study files (*.toml *.json)")
        if path:
            self.add_file(path)

    def add_file(self, path: str) -> None:
        p = Path(path).resolve()
        if p not in self.extra:
            self.extra.append(p)
        self.reload()
        self.select(str(p))

    def select(self, path: str | None) -> bool:
        if not path:
            return False
        for i in range(self.list.count()):
            if self.list.item(i).data(PATH_ROLE) == str(path):
                self.list.setCurrentRow(i)
                return True
        return False

    def selected_path(self) -> str | None:
        item = self.list.currentItem()
        return item.data(PATH_ROLE) if item is not None else None

    def refresh_summary(self) -> None:
        """Show the shown study's sessions again (after the data folder was read)."""
        config = self.config
        if config is not None:
            sessions = self.sessions_of(config.study.name) if self.sessions_of is not None else None
            bar = self.summary.verticalScrollBar().value()
            self.summary.setHtml(describe_html(config, sessions, self.data_folder, self._file_folder))
            self.summary.verticalScrollBar().setValue(bar)

    def _show(self, *_args) -> None:
        path = self.selected_path()
        self.config = None
        if not path:
            self.title.setText("")
            self.summary.clear()
            self.problems.clear()
            self.run_btn.setEnabled(False)
            return
        self.path_label.setText(path)
        try:
            config = load_config(path)
        except ConfigError as exc:
            self.title.setText(Path(path).stem)
            self.summary.clear()
            self._set_problems([str(exc)])
            self.run_btn.setEnabled(False)
            return
        sessions = self.sessions_of(config.study.name) if self.sessions_of is not None else None
        summary = describe_html(config, sessions, self.data_folder)
        self._file_folder = config.study.data_folder
        if self.data_folder:  # Run study records into the workbench's data folder
            config.study.data_folder = self.data_folder
        self.config = config
        self.title.setText(config.study.name)
        self.summary.setHtml(summary)
        readiness = check_study(config)
        self._set_problems([str(p) for p in readiness.problems])
        self.run_btn.setEnabled(readiness.ok and not self.running)

    def _set_problems(self, problems: list[str]) -> None:
        if problems:
            self.problems.setText("<b>This study cannot run:</b><br>" + "<br>".join(
                p.replace("&", "&amp;").replace("<", "&lt;") for p in problems))
            self.problems.setStyleSheet("color: #ef6a5e;")
        else:
            self.problems.setText("Ready to run.")
            self.problems.setStyleSheet("color: #5cc46b;")

    # -- running ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def command(self, path: str, extra: list[str] | None = None) -> list[str]:
        args = ["-m", "ifllm_lab", "app", "--study", path, "--screen", str(self.screen_box.currentData() or 0)]
        if self.data_folder:
            args += ["--data", self.data_folder]
        return [sys.executable, *args, *(extra or [])]

    def run_selected(self, extra: list[str] | None = None) -> None:
        path = self.selected_path()
        if not path or self.running:
            return
        cmd = self.command(path, extra)
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)
        self.last_output = ""
        self.process.start(cmd[0], cmd[1:])
        self.run_btn.setEnabled(False)
        self.stop_btn.setEnabled(True)
        self.run_status.setText(f"Running {Path(path).stem} on screen {self.screen_box.currentIndex() + 1}…")
        self.session_started.emit(path)

    def _read_output(self) -> None:
        if self.process is not None:
            self.last_output = (self.last_output + bytes(self.process.readAllStandardOutput()).decode(
                "utf-8", "replace"))[-4000:]

    def _finished(self, code: int, _status=None) -> None:
        last = [ln for ln in self.last_output.splitlines() if ln.strip()]
        if code == 0:
            self.run_status.setText("The study app ended.")
        else:
            self.run_status.setText(f"The study app ended with status {code}" + (f": {last[-1]}" if last else ""))
        self.stop_btn.setEnabled(False)
        self._show()
        self.session_ended.emit(int(code))

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.run_status.setText("The study app could not start.")
            self.stop_btn.setEnabled(False)
            self._show()

    def stop(self) -> None:
        if self.running:
            self.process.terminate()
            if not self.process.waitForFinished(5000):
                self.process.kill()
