"""The sessions table: a Qt model over :class:`~ifllm_lab.session.catalog.CatalogRow`
rows, and the filter (study, participant, state, free text) in front of it."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QBrush, QStandardItem, QStandardItemModel

from ...session.catalog import CatalogRow
from .. import style

SORT_ROLE = Qt.ItemDataRole.UserRole + 1

STATE_TEXT = {
    "complete": "complete",
    "ended_early": "ended early",
    "recovered": "recovered",
    "interrupted": "interrupted",
    "unreadable": "unreadable",
}
STATE_COLOUR = {
    "complete": None,
    "ended_early": style.WARN,
    "recovered": style.TEXT_DIM,
    "interrupted": style.WARN,
    "unreadable": style.BAD,
}


def _num(v: float, fmt: str) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _duration(s: float) -> str:
    if s is None or math.isnan(s):
        return ""
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _sort_num(v: float) -> float:
    return -math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


@dataclass(frozen=True)
class Column:
    title: str
    text: Callable[[CatalogRow], str]
    key: Callable[[CatalogRow], object]
    tip: str = ""
    numeric: bool = False


COLUMNS: tuple[Column, ...] = (
    Column("File", lambda r: r.name, lambda r: r.name.lower(), "the session file"),
    Column("Participant", lambda r: r.participant, lambda r: r.participant.lower(), "pseudonym"),
    Column("Study", lambda r: r.study, lambda r: r.study.lower()),
    Column("Started (UTC)", lambda r: r.started_utc, lambda r: r.started_utc, "when the session's clock started"),
    Column("Duration", lambda r: _duration(r.duration_s), lambda r: _sort_num(r.duration_s), numeric=True),
    Column("Turns", lambda r: f"{r.turns_rated} / {r.turns}" if r.turns else "",
           lambda r: r.turns + r.turns_rated / 1e6, "rated / all questions", numeric=True),
    Column("Gaze Hz", lambda r: _num(r.gaze_rate_hz, ".1f"), lambda r: _sort_num(r.gaze_rate_hz),
           "gaze samples per second", numeric=True),
    Column("Valid", lambda r: _num(100 * r.gaze_valid, ".0f") + ("%" if not math.isnan(r.gaze_valid) else ""),
           lambda r: _sort_num(r.gaze_valid), "share of gaze samples marked valid", numeric=True),
    Column("Validation", lambda r: _num(r.validation_deg, ".2f") + ("°" if not math.isnan(r.validation_deg) else ""),
           lambda r: _sort_num(r.validation_deg), "mean accuracy of the last validation, degrees", numeric=True),
    Column("Mouse Hz", lambda r: _num(r.mouse_rate_hz, ".0f"), lambda r: _sort_num(r.mouse_rate_hz),
           "mouse rows per second", numeric=True),
    Column("State", lambda r: STATE_TEXT.get(r.state, r.state), lambda r: r.state),
)


_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_STATE_COLUMN = [c.title for c in COLUMNS].index("State")


class SessionTableModel(QStandardItemModel):
    """Rows by path: adding a row for a path already shown replaces it.

    The cells are Qt items (text, sort key, tooltip, colour), so painting the table runs no
    Python: a repaint that had to call back into Python for every cell and role waited
    for the interpreter lock behind the folder scan's thread (a 20 ms repaint took
    100-300 ms while a scan ran)."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self._rows: list[CatalogRow] = []
        self._index: dict[str, int] = {}
        for c, col in enumerate(COLUMNS):
            head = QStandardItem(col.title)
            if col.tip:
                head.setToolTip(col.tip)
            self.setHorizontalHeaderItem(c, head)

    @staticmethod
    def _fill(items: list[QStandardItem], row: CatalogRow) -> None:
        tip = row.problem or row.path
        colour = STATE_COLOUR.get(row.state)
        for c, (col, item) in enumerate(zip(COLUMNS, items)):
            item.setText(col.text(row))
            item.setData(col.key(row), SORT_ROLE)
            item.setToolTip(tip)
            if col.numeric:
                item.setTextAlignment(_RIGHT)
            if c == _STATE_COLUMN:
                if colour is None:
                    item.setData(None, Qt.ItemDataRole.ForegroundRole)
                else:
                    item.setForeground(QBrush(colour))

    # -- changes ---------------------------------------------------------------------------
    def clear_rows(self) -> None:
        self.removeRows(0, self.rowCount())
        self._rows, self._index = [], {}

    def add_rows(self, rows: list[CatalogRow]) -> None:
        for row in rows:
            i = self._index.get(row.path)
            if i is None:
                items = [QStandardItem() for _ in COLUMNS]
                for item in items:
                    item.setEditable(False)
                self._fill(items, row)
                self._index[row.path] = len(self._rows)
                self._rows.append(row)
                self.appendRow(items)
            else:
                self._rows[i] = row
                self._fill([self.item(i, c) for c in range(len(COLUMNS))], row)

    def remove_missing(self, paths: set[str]) -> None:
        """Drop the rows whose files are not in ``paths`` (after a full scan)."""
        gone = [i for i, r in enumerate(self._rows) if r.path not in paths]
        for i in reversed(gone):
            self.removeRow(i)
            del self._rows[i]
        if gone:
            self._index = {r.path: i for i, r in enumerate(self._rows)}

    # -- reading ---------------------------------------------------------------------------
    def rows(self) -> list[CatalogRow]:
        return list(self._rows)

    def row_at(self, i: int) -> CatalogRow:
        return self._rows[i]

    def row_for(self, path: str) -> CatalogRow | None:
        i = self._index.get(os.path.abspath(path))
        return None if i is None else self._rows[i]


class SessionFilter(QSortFilterProxyModel):
    """Study, participant and state (exact; "" for all) and a free text searched in the
    file name, participant, study and problem; sorted by each column's own key (numbers
    or text, compared by Qt itself: no Python call per comparison)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.study = ""
        self.participant = ""
        self.state = ""
        self.text = ""
        self.setSortRole(SORT_ROLE)

    def set_filter(self, *, study: str | None = None, participant: str | None = None, state: str | None = None,
                   text: str | None = None) -> None:
        self.beginFilterChange()
        if study is not None:
            self.study = study
        if participant is not None:
            self.participant = participant
        if state is not None:
            self.state = state
        if text is not None:
            self.text = text.strip().lower()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row, source_parent) -> bool:  # noqa: N802 - Qt name
        row = self.sourceModel().row_at(source_row)
        if self.study and row.study != self.study:
            return False
        if self.participant and row.participant != self.participant:
            return False
        if self.state and row.state != self.state:
            return False
        if self.text:
            hay = " ".join((row.name, row.participant, row.study, row.session_id, row.problem)).lower()
            return all(word in hay for word in self.text.split())
        return True
