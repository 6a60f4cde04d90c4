"""The Sessions tab's Participant dialog: a participant's access or erasure request from
the code they were given. The code finds their pseudonym with the data folder's key; the
dialog lists their files with sizes, what was built from their data (to rebuild), what
may hold it, and exports or deletes everything (after a confirmation). Finding, exporting
and deleting run as jobs (:mod:`ifllm_lab.study.rights`), never on the GUI thread."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QTreeWidget, QTreeWidgetItem,
    QVBoxLayout,
)

from ...jobs import Job
from .. import style
from .forms import message_label, push_button, show_message

__all__ = ["ParticipantDialog"]


def _find_job(ctx, folder: str, code: str, cache_dirs):
    from ...study.rights import find_participant

    ctx.progress(None, "looking through the data folder")
    res = find_participant(folder, code, cache_dirs=cache_dirs, progress=lambda m: ctx.progress(None, m),
                           cancel=lambda: ctx.cancelled)
    ctx.progress(1.0, f"{len(res.files)} files of the participant found" if res.found else "nothing found")
    return res


def _export_job(ctx, findings, out: str):
    from ...study.rights import export_participant

    return export_participant(findings, out, progress=ctx.progress, cancel=lambda: ctx.cancelled)


def _delete_job(ctx, folder: str, code: str, cache_dirs):
    """Find again (the folder may have changed since the list was shown), then delete."""
    from ...study.rights import delete_participant, find_participant

    ctx.progress(None, "looking through the data folder")
    findings = find_participant(folder, code, cache_dirs=cache_dirs)
    return delete_participant(findings, progress=ctx.progress)


def _user_cache_dir() -> str:
    from ...session.catalog import default_cache_dir

    return default_cache_dir()


class ParticipantDialog(QDialog):
    """``run_job(job, what, on_done=, on_failed=)`` from the window; ``deleted`` is emitted
    after a deletion (the Sessions tab reads its folder again)."""

    deleted = Signal()

    def __init__(self, folder: str, run_job, *, cache_dir: str | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("participant_dialog")
        self.setWindowTitle("Participant's data")
        self.folder = folder
        self._run_job = run_job
        # the window's cache folder and the user's (the commands' default): both may hold rows of their sessions
        self.cache_dirs = list(dict.fromkeys([cache_dir, _user_cache_dir()])) if cache_dir else None
        self.findings = None
        self._code = ""
        self.runner = None
        self.confirm: QMessageBox | None = None

        intro = QLabel("Find, export or delete everything of one participant (an access or erasure request). "
                       "Type the code they were given; it is turned into their pseudonym with this data folder's "
                       "key and not kept.", self)
        intro.setWordWrap(True)
        intro.setStyleSheet(f"color: {style.TEXT_DIM.name()};")
        self.code = QLineEdit(self)
        self.code.setObjectName("participant_code")
        self.code.setPlaceholderText("Participant code")
        self.code.returnPressed.connect(self.find)
        self.code.textChanged.connect(lambda _t: self._update_buttons())
        self.find_btn = push_button(self, "Find", "participant_find", self.find, default=True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Code:", self))
        row.addWidget(self.code, 1)
        row.addWidget(self.find_btn)

        self.message = message_label(self, "participant_message")
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("participant_results")
        self.tree.setHeaderLabels(["What", "File or folder", "Size"])
        self.tree.setRootIsDecorated(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)

        self.export_btn = push_button(self, "Export…", "participant_export", self.choose_export)
        self.delete_btn = push_button(self, "Delete…", "participant_delete", self.ask_delete)
        self.delete_btn.setToolTip("Deletes their files for good, marks what was built from them stale and writes "
                                   "a deletion record (names and SHA-256 of the files, no data) to the data folder")
        close_btn = push_button(self, "Close", "participant_close", self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_btn)
        buttons.addWidget(self.delete_btn)
        buttons.addStretch(1)
        buttons.addWidget(close_btn)

        box = QVBoxLayout(self)
        box.addWidget(intro)
        box.addLayout(row)
        box.addWidget(self.message)
        box.addWidget(self.tree, 1)
        box.addLayout(buttons)
        self.resize(880, 560)
        self._update_buttons()

    # -- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner is not None and self.runner.running

    def _update_buttons(self) -> None:
        found = self.findings is not None and self.findings.found
        self.find_btn.setEnabled(bool(self.code.text().strip()) and not self.busy)
        self.export_btn.setEnabled(found and bool(self.findings.files) and not self.busy)
        self.delete_btn.setEnabled(found and not self.busy)

    def _failed(self, message: str) -> None:
        self.runner = None
        show_message(self.message, message, bad=True)
        self._update_buttons()

    # -- find ----------------------------------------------------------------------------------
    def find(self) -> None:
        code = self.code.text().strip()
        if not code or self.busy:
            return
        self._code = code
        self.findings = None
        self.tree.clear()
        show_message(self.message, "Looking through the data folder…")
        self.runner = self._run_job(Job(_find_job, self.folder, code, self.cache_dirs, name="participant-find"),
                                    "Finding a participant's data", on_done=self._found, on_failed=self._failed)
        self._update_buttons()

    def _found(self, findings) -> None:
        from ...study.rights import CONTAINS, human_size

        self.runner = None
        self.findings = findings
        self.tree.clear()
        if not findings.found:
            show_message(self.message, "Nothing found for this code in this data folder. Check the code "
                                       "(letters and digits as given to the participant).")
            self._update_buttons()
            return
        n = len(findings.files)
        text = (f"Participant {findings.pseudonym}: {n} file{'s' if n != 1 else ''} "
                f"({human_size(findings.size)}).")
        if findings.pending is not None:
            text += " An interrupted deletion is pending: Delete finishes it."
        show_message(self.message, text)
        rel = findings.relative

        def group(title: str, colour: QColor | None = None) -> QTreeWidgetItem:
            item = QTreeWidgetItem(self.tree, [title, "", ""])
            f = item.font(0)
            f.setBold(True)
            item.setFont(0, f)
            if colour is not None:
                item.setForeground(0, colour)
            item.setFirstColumnSpanned(True)
            item.setExpanded(True)
            return item

        if findings.files:
            g = group(f"Their files ({n}, {human_size(findings.size)}): exported, and removed by a deletion")
            for f in findings.files:
                QTreeWidgetItem(g, [f.kind, rel(f.path), human_size(f.size)]).setToolTip(1, f.path)
        must = [d for d in findings.derived if d.holds == CONTAINS]
        may = [d for d in findings.derived if d.holds != CONTAINS]
        for items, title in ((must, "Built from their data with others': must be rebuilt (marked stale by a "
                                    "deletion)"),
                             (may, "May contain their data (they do not record whose data they hold; marked "
                                   "stale by a deletion)")):
            if not items:
                continue
            g = group(f"{title} ({len(items)})", style.WARN)
            for d in items:
                it = QTreeWidgetItem(g, [d.kind, rel(d.path) + ("  [stale]" if d.stale else ""), human_size(d.size)])
                it.setToolTip(1, f"{d.path}\n{d.why}")
        if findings.caches:
            g = group(f"Cache entries of their sessions ({len(findings.caches)}): removed by a deletion")
            for c in findings.caches:
                QTreeWidgetItem(g, ["cache", c, ""])
        self._update_buttons()

    # -- export --------------------------------------------------------------------------------
    def choose_export(self) -> None:
        out = QFileDialog.getExistingDirectory(self, "Export the participant's data into an empty folder…",
                                               os.path.expanduser("~"))
        if out:
            self.export_to(out)

    def export_to(self, out: str):
        if self.findings is None or self.busy:
            return None
        show_message(self.message, f"Exporting into {out}…")
        self.runner = self._run_job(Job(_export_job, self.findings, out, name="participant-export"),
                                    "Exporting a participant's data",
                                    on_done=lambda files: self._exported(out, files), on_failed=self._failed)
        self._update_buttons()
        return self.runner

    def _exported(self, out: str, files: list[str]) -> None:
        self.runner = None
        show_message(self.message, f"Exported {len(files)} files into {out}; summary.txt there says in plain "
                                   "language what was recorded, when and in which studies.", good=True)
        self._update_buttons()

    # -- delete --------------------------------------------------------------------------------
    def ask_delete(self) -> QMessageBox | None:
        """The confirmation (a window-modal box; Delete goes on, Cancel changes nothing)."""
        from ...study.rights import CONTAINS

        f = self.findings
        if f is None or not f.found or self.busy:
            return None
        must = len([d for d in f.derived if d.holds == CONTAINS])
        may = len(f.derived) - must
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete the participant's data",
                          f"Delete {len(f.files)} files of participant {f.pseudonym} for good?", parent=self)
        box.setObjectName("participant_confirm")
        box.setInformativeText(
            f"{must} artefact(s) built from their data and {may} that may hold it will be marked stale (rebuild "
            "them without this participant). A deletion record with the file names and SHA-256 hashes, no "
            "data, is added to the data folder's participant-deletions.jsonl. This cannot be undone.")
        self.confirm_delete_btn = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda b: b is self.confirm_delete_btn and self.delete())
        box.setWindowModality(Qt.WindowModality.WindowModal)
        self.confirm = box
        box.open()
        return box

    def delete(self):
        """Delete now (the confirmation has been given)."""
        if self.findings is None or self.busy:
            return None
        show_message(self.message, "Deleting…")
        self.runner = self._run_job(Job(_delete_job, self.folder, self._code, self.cache_dirs,
                                        name="participant-delete"),
                                    "Deleting a participant's data", on_done=self._deleted, on_failed=self._failed)
        self._update_buttons()
        return self.runner

    def _deleted(self, report) -> None:
        self.runner = None
        self.findings = None
        self.tree.clear()
        for line in report.summary().splitlines():
            QTreeWidgetItem(self.tree, [line.strip(), "", ""]).setFirstColumnSpanned(True)
        show_message(self.message, f"Deleted {report.files} files of participant {report.record['pseudonym']}; "
                                   f"the record is in {os.path.basename(report.log_path)}.", good=True)
        self._update_buttons()
        self.deleted.emit()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.code.clear()  # the code is not kept
        super().closeEvent(event)
