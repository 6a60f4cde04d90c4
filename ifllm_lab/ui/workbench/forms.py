"""What the workbench's job tabs (Reward models, DPO jobs) build their forms from: the
choice of sessions beside the Sessions tab, a combo box of a registry, buttons, message
lines, the form's scroll area and the form beside the rest of the tab."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QComboBox, QFrame, QHBoxLayout, QLabel, QPushButton, QRadioButton, QScrollArea, QSplitter,
    QVBoxLayout, QWidget,
)

from .. import style

__all__ = ["SessionChoice", "registry_combo", "push_button", "message_label", "show_message", "form_scroll", "beside"]


class SessionChoice(QWidget):
    """Which of the data folder's sessions a job uses: those selected in the Sessions tab,
    all of them or, with ``studies``, those of one study; unreadable files are left out.

    ``sources`` (the chosen sessions' paths, sorted) and the line under the options
    (``N sessions, P participants, Q rated questions``, or why there are none) follow the
    Sessions tab's folder, scans and selection; ``changed`` is emitted after each update.
    ``name`` prefixes the object names (``<name>_data_label``, ``<name>_study``);
    ``all_text``: the all-sessions option, ``{n}`` standing for their number; ``empty``:
    the line when the choice has no session (the selection's own line aside);
    ``stacked``: the options one under the other (else side by side); ``spacing``:
    between the rows."""

    changed = Signal()

    def __init__(self, sessions, *, name: str, all_text: str = "All sessions ({n})",
                 empty: str = "No sessions in the data folder.", studies: bool = False, stacked: bool = False,
                 spacing: int = 4, parent=None):
        super().__init__(parent)
        self.setObjectName(f"{name}_sessions")
        self.sessions = sessions
        self.all_text = all_text
        self.empty = empty
        self.sources: list[str] = []
        self.group = QButtonGroup(self)
        self.use_selected = QRadioButton("Selected sessions", self)
        self.use_all = QRadioButton(self)
        buttons = [self.use_selected, self.use_all]
        self.use_study = self.study_box = None
        if studies:
            self.use_study = QRadioButton("Sessions of study:", self)
            self.study_box = QComboBox(self)
            self.study_box.setObjectName(f"{name}_study")
            self.study_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            self.study_box.setMinimumContentsLength(10)
            self.study_box.currentIndexChanged.connect(lambda _i: self._study_chosen())
            buttons.append(self.use_study)
        for i, b in enumerate(buttons):
            self.group.addButton(b, i)
        self.use_all.setChecked(True)
        self.group.idToggled.connect(lambda _i, on: on and self.refresh())
        self.data_label = QLabel("", self)
        self.data_label.setObjectName(f"{name}_data_label")
        self.data_label.setWordWrap(True)
        self.data_label.setStyleSheet(f"color: {style.TEXT_DIM.name()};")

        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(spacing)
        if stacked:
            box.addWidget(self.use_selected)
            box.addWidget(self.use_all)
        else:
            row = QHBoxLayout()
            row.addWidget(self.use_selected)
            row.addWidget(self.use_all)
            row.addStretch(1)
            box.addLayout(row)
        if studies:
            study_row = QHBoxLayout()
            study_row.addWidget(self.use_study)
            study_row.addWidget(self.study_box, 1)
            box.addLayout(study_row)
        box.addWidget(self.data_label)

        sessions.folder_changed.connect(lambda _f: self._sessions_changed())
        sessions.scanned.connect(self._sessions_changed)
        sessions.model.modelReset.connect(self._sessions_changed)
        sessions.table.selectionModel().selectionChanged.connect(lambda *_: self.refresh())
        self._sessions_changed()

    def readable_rows(self) -> list:
        """The Sessions tab's rows, unreadable files left out."""
        return [r for r in self.sessions.model.rows() if r.state != "unreadable"]

    def selected_rows(self) -> list:
        """The rows selected in the Sessions tab, unreadable files left out."""
        return [r for r in self.sessions.selected_rows() if r.state != "unreadable"]

    def chosen_rows(self) -> list:
        """The session rows the choice stands for, sorted by path."""
        if self.use_selected.isChecked():
            rows = self.selected_rows()
        elif self.use_study is not None and self.use_study.isChecked():
            study = self.study_box.currentData()
            rows = [r for r in self.readable_rows() if study and r.study == study]
        else:
            rows = self.readable_rows()
        return sorted(rows, key=lambda r: r.path)

    def refresh(self) -> None:
        """Take the Sessions tab's rows and selection again: ``sources``, the options' counts
        and the line under them; emits ``changed``."""
        rows = self.chosen_rows()
        self.sources = [r.path for r in rows]
        self.use_selected.setText(f"Selected sessions ({len(self.selected_rows())})")
        self.use_all.setText(self.all_text.format(n=len(self.readable_rows())))
        people = {r.participant or r.path for r in rows}
        if not self.sessions.folder:
            text = "No data folder."
        elif not rows:
            text = ("No session selected: select sessions in the Sessions tab." if self.use_selected.isChecked()
                    else self.empty)
        else:
            rated = sum(r.turns_rated for r in rows)
            text = (f"{len(rows)} session{'s' if len(rows) != 1 else ''}, {len(people)} "
                    f"participant{'s' if len(people) != 1 else ''}, {rated} rated questions")
        self.data_label.setText(text)
        self.changed.emit()

    def _sessions_changed(self) -> None:
        if self.study_box is not None:
            studies = sorted({r.study for r in self.readable_rows() if r.study})
            current = self.study_box.currentData()
            self.study_box.blockSignals(True)
            self.study_box.clear()
            for s in studies:
                self.study_box.addItem(s, s)
            if current in studies:
                self.study_box.setCurrentIndex(studies.index(current))
            self.study_box.blockSignals(False)
            self.study_box.setEnabled(bool(studies))
            self.use_study.setEnabled(bool(studies))
            if not studies and self.use_study.isChecked():
                self.use_all.setChecked(True)
        self.refresh()

    def _study_chosen(self) -> None:
        if self.study_box.count():
            self.use_study.setChecked(True)
        self.refresh()


def registry_combo(parent: QWidget, name: str, items: dict[str, str]) -> QComboBox:
    """A combo box of a registry's entries: each one's name as its text and data, its
    description as its tooltip."""
    box = QComboBox(parent)
    box.setObjectName(name)
    for key, what in items.items():
        box.addItem(key, key)
        box.setItemData(box.count() - 1, what, Qt.ItemDataRole.ToolTipRole)
    return box


def push_button(parent: QWidget, text: str, name: str, on_click, *, default: bool = False) -> QPushButton:
    """A button named ``name`` that calls ``on_click``; ``default``: the one Enter presses."""
    b = QPushButton(text, parent)
    b.setObjectName(name)
    if default:
        b.setDefault(True)
    b.clicked.connect(on_click)
    return b


def message_label(parent: QWidget, name: str, *, rich: bool = False) -> QLabel:
    """An empty label for messages: word-wrapped, its text selectable (to copy a path or an
    error); ``rich``: its text is HTML."""
    label = QLabel("", parent)
    label.setObjectName(name)
    label.setWordWrap(True)
    if rich:
        label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def show_message(label: QLabel, text: str, *, bad: bool = False, good: bool = False) -> None:
    """``text`` in ``label``: red when ``bad``, green when ``good``, else dim."""
    colour = style.BAD if bad else (style.GOOD if good else style.TEXT_DIM)
    label.setStyleSheet(f"color: {colour.name()};")
    label.setText(text)


def form_scroll(parent: QWidget, inner: QWidget, *, name: str, sideways: bool) -> QScrollArea:
    """``inner`` in a frameless scroll area that scrolls down, and sideways too when
    ``sideways`` (else it is never narrower than ``inner`` needs)."""
    scroll = QScrollArea(parent)
    scroll.setObjectName(name)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if sideways
                                        else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setWidget(inner)
    return scroll


def beside(panel: QWidget, form: QWidget, rest: QWidget, *, name: str, form_width: int) -> QSplitter:
    """Fill ``panel`` with ``form`` (``form_width`` wide to start with) beside ``rest``, which
    takes whatever width is left; neither can be collapsed. Returns the splitter."""
    splitter = QSplitter(Qt.Orientation.Horizontal, panel)
    splitter.setObjectName(name)
    splitter.addWidget(form)
    splitter.addWidget(rest)
    splitter.setStretchFactor(0, 0)
    splitter.setStretchFactor(1, 1)
    splitter.setCollapsible(0, False)
    splitter.setCollapsible(1, False)
    splitter.setSizes([form_width, 1200])
    box = QVBoxLayout(panel)
    box.addWidget(splitter, 1)
    return splitter

