"""The workbench's Sessions tab: every session file of the data folder as a table (filter,
sort, search), the selected file's report, and what can be done with it."""
from __future__ import annotations

import math
import os
import time

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QFont, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMenu, QPlainTextEdit,
    QPushButton, QSplitter, QTableView, QVBoxLayout, QWidget,
)

from ...jobs import Job
from ...session.catalog import CatalogRow, SessionCatalog, scan_job
from .sessions_model import STATE_TEXT, SessionFilter, SessionTableModel

ALL = ""
FEED_STEP = 8  # rows between checks of the time spent
FEED_BUDGET_S = 0.012  # work per turn of the event loop while rows go in
FEED_FIRST_S = 0.002  # ... and in the turn before the table's first paint
FEED_PAUSE_MS = 40  # then the window repaints and answers
COLUMN_WIDTHS = (230, 140, 120, 130, 70, 60, 70, 55, 80, 75, 100)


def _inspect_job(ctx, path: str) -> str:
    from ...session import SessionFileError
    from ...session.inspect import format_summary, summarize

    ctx.progress(None, f"reading {os.path.basename(path)}")
    try:
        return format_summary(summarize(path))
    except SessionFileError as exc:
        return str(exc)


def _export_job(ctx, path: str, fmt: str, out: str) -> list[str]:
    from ...session.export import export_bids, export_csv

    ctx.progress(None, f"exporting {os.path.basename(path)} as {fmt.upper()}")
    return (export_csv if fmt == "csv" else export_bids)(path, out)


def _recover_job(ctx, path: str, close: bool):
    from ...session.recovery import close_interrupted, recover

    ctx.progress(None, f"{'closing' if close else 'recovering'} {os.path.basename(path)}")
    return close_interrupted(path) if close else recover(path)


class SessionsPanel(QWidget):
    """Needs a ``run_job(job, what, on_done=None, on_partial=None)`` callable from its window
    (the status line shows every job); emits ``open_replay(path)``."""

    open_replay = Signal(str)
    folder_changed = Signal(str)
    scanned = Signal()  # a scan of the folder finished

    def __init__(self, run_job, *, cache_dir: str | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("sessions")
        self._run_job = run_job
        self.cache_dir = cache_dir
        self.folder = ""
        self.catalog: SessionCatalog | None = None
        self.scan_runner = None
        self._inspect_runner = None
        self.scans = 0  # finished scans (tests, benchmarks)
        self._incoming: list[CatalogRow] = []
        self._pending_done: SessionCatalog | None = None
        self._feed = QTimer(self)
        self._feed.setSingleShot(True)
        self._feed.timeout.connect(self._feed_rows)

        self.model = SessionTableModel(self)
        self.proxy = SessionFilter(self)
        self.proxy.setSourceModel(self.model)

        # -- top: folder and filters
        self.folder_label = QLabel("No data folder", self)
        self.folder_label.setObjectName("folder_label")
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count_label = QLabel("", self)
        self.count_label.setObjectName("count_label")
        self.count_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("00000 of 00000 sessions"))
        self.count_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        open_btn = QPushButton("Open folder…", self)
        open_btn.clicked.connect(self.choose_folder)
        self.refresh_btn = QPushButton("Refresh", self)
        self.refresh_btn.clicked.connect(self.refresh)
        self.refresh_btn.setShortcut(QKeySequence.StandardKey.Refresh)
        self.participant_btn = QPushButton("Participant…", self)
        self.participant_btn.setObjectName("participant_button")
        self.participant_btn.setToolTip("Find, export or delete everything of one participant by their code")
        self.participant_btn.clicked.connect(self.open_participant)
        self.participant_dialog = None
        top = QHBoxLayout()
        top.addWidget(self.folder_label, 1)
        top.addWidget(self.count_label)
        top.addWidget(self.participant_btn)
        top.addWidget(open_btn)
        top.addWidget(self.refresh_btn)

        self.study_box = QComboBox(self)
        self.participant_box = QComboBox(self)
        self.state_box = QComboBox(self)
        for box, what in ((self.study_box, "studies"), (self.participant_box, "participants"),
                          (self.state_box, "states")):
            box.addItem(f"All {what}", ALL)
            # a fixed width: names arriving with the rows must not lay the window out again
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(16)
            box.currentIndexChanged.connect(self._filters_changed)
        for state, text in STATE_TEXT.items():
            self.state_box.addItem(text, state)
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search file, participant, study, problem…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filters_changed)
        filters = QHBoxLayout()
        filters.addWidget(self.study_box)
        filters.addWidget(self.participant_box)
        filters.addWidget(self.state_box)
        filters.addWidget(self.search, 1)

        # -- the table
        self.table = QTableView(self)
        self.table.setObjectName("sessions_table")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for col, width in enumerate(COLUMN_WIDTHS):
            header.resizeSection(col, width)
        self.table.installEventFilter(self)  # a wider window widens the File column
        self.table.doubleClicked.connect(lambda _ix: self.open_selected())
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)

        # -- the selected file: actions and report
        self.actions: dict[str, QAction] = {}
        buttons = QHBoxLayout()
        for key, text, slot, shortcut in (
            ("replay", "Open in replay", self.open_selected, "Return"),
            ("inspect", "Inspect", self.inspect_selected, "Ctrl+I"),
            ("csv", "Export CSV…", lambda: self.export_selected("csv"), None),
            ("bids", "Export BIDS…", lambda: self.export_selected("bids"), None),
            ("recover", "Recover copy", lambda: self.recover_selected(close=False), None),
            ("close", "Close interrupted", lambda: self.recover_selected(close=True), None),
            ("reveal", "Show in folder", self.reveal_selected, None),
        ):
            act = QAction(text, self)
            act.triggered.connect(slot)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
                act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.table.addAction(act)
            self.actions[key] = act
            btn = QPushButton(text, self)
            btn.setObjectName(f"action_{key}")
            btn.clicked.connect(act.trigger)
            act.changed.connect(lambda b=btn, a=act: b.setEnabled(a.isEnabled()))
            buttons.addWidget(btn)
        buttons.addStretch(1)
        self.report = QPlainTextEdit(self)
        self.report.setObjectName("report")
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("Select a session to see its report.")
        mono = QFont("DejaVu Sans Mono")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.report.setFont(mono)
        lower = QWidget(self)
        lower_box = QVBoxLayout(lower)
        lower_box.setContentsMargins(0, 0, 0, 0)
        lower_box.addLayout(buttons)
        lower_box.addWidget(self.report, 1)

        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.setObjectName("sessions_splitter")
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(lower)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)

        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addLayout(filters)
        box.addWidget(self.splitter, 1)
        self._update_actions()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt name
        if obj is self.table and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self._fit_columns)  # once the viewport has its new size
        return False

    def _fit_columns(self) -> None:
        """Room the columns leave goes to the file names (never below their first width)."""
        header = self.table.horizontalHeader()
        others = sum(header.sectionSize(c) for c in range(1, header.count()))
        room = self.table.viewport().width() - others
        header.resizeSection(0, max(COLUMN_WIDTHS[0], room))

    # -- the folder ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a data folder", self.folder or os.path.expanduser("~"))
        if folder:
            self.set_folder(folder)

    def set_folder(self, folder: str) -> None:
        """Show ``folder``'s sessions (scanned as a job; rows appear as they come)."""
        folder = os.path.abspath(folder)
        changed = folder != self.folder
        self.folder = folder
        self.folder_label.setText(folder)
        self.folder_label.setToolTip(folder)
        if changed:
            self._incoming, self._pending_done = [], None
            self.model.clear_rows()
            self.report.clear()
            self.folder_changed.emit(folder)
        self.refresh()

    def open_participant(self):
        """The Participant dialog on this data folder (an access or erasure request)."""
        from .participant import ParticipantDialog

        if not self.folder:
            return None
        if self.participant_dialog is not None and self.participant_dialog.folder != self.folder:
            self.participant_dialog.deleteLater()
            self.participant_dialog = None
        if self.participant_dialog is None:
            self.participant_dialog = ParticipantDialog(self.folder, self._run_job, cache_dir=self.cache_dir,
                                                        parent=self)
            self.participant_dialog.deleted.connect(self.refresh)
            win = self.window()
            self.participant_dialog.resize(min(880, max(win.width() - 80, 560)), min(560, max(win.height() - 60, 400)))
        self.participant_dialog.show()
        self.participant_dialog.raise_()
        return self.participant_dialog

    def refresh(self) -> None:
        """Read the folder again (only changed files are read)."""
        if not self.folder:
            return
        if self.scan_runner is not None and self.scan_runner.running:
            self.scan_runner.cancel()
        if not os.path.isdir(self.folder):
            self.count_label.setText("the folder does not exist")
            self.model.clear_rows()
            return
        self.catalog = SessionCatalog(self.folder, cache_dir=self.cache_dir)
        catalog = self.catalog
        self.scan_runner = self._run_job(Job(scan_job, catalog, name="scan"), f"Reading {self.folder}",
                                         on_done=lambda _c, cat=catalog: self._scan_finished(cat),
                                         on_partial=self._rows_arrived,
                                         on_failed=lambda msg: self.count_label.setText(msg))

    def _rows_arrived(self, rows: list[CatalogRow]) -> None:
        """Rows go into the table in short turns (about FEED_BUDGET_S of work each) with
        FEED_PAUSE_MS between them for the window to repaint and answer: a thousand rows
        from the cache must not freeze it while the table sorts them in."""
        self._incoming.extend(rows)
        if not self._feed.isActive():
            self._feed.start(0)  # the first rows at once

    def _feed_rows(self) -> None:
        start = time.perf_counter()
        # the table's first paint of a folder costs the most (every visible cell's text
        # drawn for the first time): the turn before it adds only a few rows
        budget = FEED_FIRST_S if self.model.rowCount() == 0 else FEED_BUDGET_S
        added: list[CatalogRow] = []
        while self._incoming and time.perf_counter() - start < budget:
            rows, self._incoming = self._incoming[:FEED_STEP], self._incoming[FEED_STEP:]
            self.model.add_rows(rows)
            added.extend(rows)
        if added:
            self._update_filter_choices(added)
            self._update_count()
        if self._incoming:
            self._feed.start(FEED_PAUSE_MS)
            return
        self._feed.stop()
        if self._pending_done is not None:
            catalog, self._pending_done = self._pending_done, None
            self._scan_done(catalog)

    def _scan_finished(self, catalog: SessionCatalog) -> None:
        if self._incoming:  # the last rows are still going in
            self._pending_done = catalog
        else:
            self._scan_done(catalog)

    def _scan_done(self, catalog: SessionCatalog) -> None:
        if catalog is not self.catalog:
            return
        self.model.remove_missing(set(catalog.rows))
        self.scans += 1
        self._update_count()
        self.scanned.emit()

    def _update_count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count_label.setText(f"{total} sessions" if shown == total else f"{shown} of {total} sessions")

    def _update_filter_choices(self, rows: list[CatalogRow]) -> None:
        for box, values in ((self.study_box, {r.study for r in rows if r.study}),
                            (self.participant_box, {r.participant for r in rows if r.participant})):
            have = {box.itemData(i) for i in range(box.count())}
            for v in sorted(values - have):
                box.addItem(v, v)

    def _filters_changed(self, *_args) -> None:
        self.proxy.set_filter(study=self.study_box.currentData(), participant=self.participant_box.currentData(),
                              state=self.state_box.currentData(), text=self.search.text())
        self._update_count()

    # -- selection and actions ------------------------------------------------------------------
    def selected_rows(self) -> list[CatalogRow]:
        rows = self.table.selectionModel().selectedRows()
        return [self._row_of(ix) for ix in sorted(rows, key=lambda i: i.row())]

    def _row_of(self, proxy_index) -> CatalogRow:
        return self.model.row_at(self.proxy.mapToSource(proxy_index).row())

    def select_path(self, path: str) -> bool:
        """Select the row of ``path`` (tests, and after an action); False when not shown."""
        for r in range(self.proxy.rowCount()):
            ix = self.proxy.index(r, 0)
            if self._row_of(ix).path == os.path.abspath(path):
                self.table.selectionModel().select(
                    ix, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
                self.table.scrollTo(ix)
                return True
        return False

    def _selection_changed(self, *_args) -> None:
        self._update_actions()
        rows = self.selected_rows()
        if len(rows) == 1:
            self.inspect_selected()
        elif rows:
            self.report.setPlainText(f"{len(rows)} sessions selected.")
        else:
            self.report.clear()

    def _update_actions(self) -> None:
        rows = self.selected_rows()
        one = rows[0] if len(rows) == 1 else None
        readable = one is not None and one.state != "unreadable"
        self.actions["replay"].setEnabled(readable)
        self.actions["inspect"].setEnabled(one is not None)
        self.actions["csv"].setEnabled(readable)
        self.actions["bids"].setEnabled(readable and not math.isnan(one.gaze_rate_hz))  # BIDS needs gaze
        self.actions["recover"].setEnabled(one is not None and one.state == "interrupted")
        self.actions["close"].setEnabled(one is not None and one.state == "interrupted")
        self.actions["reveal"].setEnabled(bool(rows))

    def _context_menu(self, pos) -> None:
        if not self.selected_rows():
            return
        menu = QMenu(self)
        for key in ("replay", "inspect", None, "csv", "bids", None, "recover", "close", None, "reveal"):
            if key is None:
                menu.addSeparator()
            else:
                menu.addAction(self.actions[key])
        menu.exec(self.table.viewport().mapToGlobal(pos))

    def open_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) == 1 and rows[0].state != "unreadable":
            self.open_replay.emit(rows[0].path)

    def inspect_selected(self) -> None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return
        row = rows[0]
        if row.state == "unreadable":
            self.report.setPlainText(f"{row.path}\n\nThis file cannot be read:\n{row.problem}")
            return
        if self._inspect_runner is not None and self._inspect_runner.running:
            self._inspect_runner.cancel()
        self.report.setPlainText(f"{row.path}\n\nreading…")
        self._inspect_runner = self._run_job(
            Job(_inspect_job, row.path, name="inspect"), f"Inspecting {row.name}", quiet=True,
            on_done=lambda text, p=row.path: self._show_report(p, text))

    def _show_report(self, path: str, text: str) -> None:
        rows = self.selected_rows()
        if len(rows) == 1 and rows[0].path == path:
            self.report.setPlainText(text)

    def export_selected(self, fmt: str) -> None:
        rows = self.selected_rows()
        if len(rows) != 1:
            return
        row = rows[0]
        base = os.path.splitext(row.path)[0] + f"-{fmt}"
        out = QFileDialog.getExistingDirectory(self, f"Export {row.name} as {fmt.upper()} into…",
                                               os.path.dirname(base))
        if out:
            self.export(row.path, fmt, out)

    def export(self, path: str, fmt: str, out: str):
        return self._run_job(Job(_export_job, path, fmt, out, name=f"export-{fmt}"),
                             f"Exporting {os.path.basename(path)}",
                             on_done=lambda files: self.report.setPlainText(
                                 f"Exported {len(files)} files into {out}:\n" + "\n".join(files)))

    def recover_selected(self, close: bool) -> None:
        rows = self.selected_rows()
        if len(rows) == 1 and rows[0].state == "interrupted":
            self.recover(rows[0].path, close)

    def recover(self, path: str, close: bool):
        def done(report):
            self.report.setPlainText(report.summary)
            self.refresh()

        return self._run_job(Job(_recover_job, path, close, name="recover"),
                             f"{'Closing' if close else 'Recovering'} {os.path.basename(path)}", on_done=done)

    def reveal_selected(self) -> None:
        rows = self.selected_rows()
        if rows:
            QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(rows[0].path)))

    def shown_paths(self) -> list[str]:
        return [self._row_of(self.proxy.index(r, 0)).path for r in range(self.proxy.rowCount())]

    def index_of(self, path: str) -> QModelIndex:
        for r in range(self.proxy.rowCount()):
            ix = self.proxy.index(r, 0)
            if self._row_of(ix).path == path:
                return ix
        return QModelIndex()
