"""Every participant and researcher page rendered at one window size and display scale,
each checked for controls that are clipped, squeezed, elided or outside the window.

Run as a module, one size and scale per process (Qt reads ``QT_SCALE_FACTOR`` when the
application is made)::

    python -m tests.support.page_sizes --size 1536x960 --scale 1.5 --out DIR

``--size`` is the screen in physical px; the window is ``size / scale`` logical px, as on
a laptop at 150 % scaling. The offscreen screen is given that size too, so pages that
look at their screen see the one they are on. Prints one JSON object:
``{"scale", "logical": [w, h], "pages": {page: [problem, ...]}, "shots": [png, ...]}``;
``--shots`` saves a PNG of every page (at the physical size) into ``--out``.

What is checked, for every visible QLabel, QPushButton, QCheckBox, QRadioButton,
QComboBox, QLineEdit and spin box of a page (:func:`widget_problems`):

- it lies inside the window and inside every widget it is drawn in (a control in a
  scroll area only has to be reachable by scrolling);
- it is not narrower or shorter than its size hint (labels and buttons), its minimum
  size hint (combo boxes and line edits; a word-wrapped label: the height its text needs
  at its width, and its longest word; a spin box: the height of its size hint);
- the text of a combo box, a spin box's value, a read-only line edit's text, a line
  edit's placeholder and a tab's title are not cut or elided (a spin box may be narrower
  than its largest value needs; what is typed into a field scrolls, as in any editor),
  and no control's type is below ``MIN_FONT_PX``;
- text that a widget paints itself (the face guide, the calibration reports: their
  ``painted_texts()``) fits where it is drawn;
- a text box (QTextEdit, QPlainTextEdit: the question, the answers, the consent text, the
  workbench's reports) shows at least one whole line: its text scrolls, but not in a slot.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ifllm_lab.gaze.calibration import ValidationThresholds, drift_check, load_pattern, validate
from ifllm_lab.gaze.geometry import ScreenGeometry

MIN_FONT_PX = 11  # logical px: the smallest type a page may use

#: every page rendered, in order: the participant's (and the researcher's setup and
#: calibration reports, in the same window), then the workbench's tabs and the replay
PAGES = (
    "setup", "consent",
    "chat-pairwise-asking", "chat-pairwise-answering", "chat-pairwise-rating",
    "chat-pointwise-asking", "chat-pointwise-answering", "chat-pointwise-rating",
    "questionnaire", "thank-you", "message-error",
    "face-waiting", "face-hints", "face-good", "calibration-countdown", "validation-report", "drift-result",
    "workbench-sessions", "workbench-studies", "workbench-reward", "workbench-dpo", "workbench-replay", "replay",
)


# ======================================================================================
# The check (needs a QApplication; used in this process and by the tests themselves)
# ======================================================================================

def describe(w) -> str:
    """A widget as a failure names it: class, object name and text."""
    text = ""
    for attr in ("text", "currentText", "placeholderText"):
        fn = getattr(w, attr, None)
        if callable(fn):
            try:
                text = fn()
            except TypeError:
                continue
            if text:
                break
    name = w.objectName()
    text = " ".join(str(text).split())
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(w).__name__}" + (f"#{name}" if name else "") + (f" {text!r}" if text else "")


def _rect_str(r) -> str:
    return f"{r.x()},{r.y()} {r.width()}x{r.height()}"


def _clipped_by(w, window):
    """The first widget (from ``w`` up to ``window``) that ``w`` does not fit in, or None.
    In a scroll area, what can be scrolled to counts as inside along that axis."""
    from PySide6.QtCore import QPoint, QRect, Qt
    from PySide6.QtWidgets import QAbstractScrollArea

    rect = QRect(QPoint(0, 0), w.size())
    cur = w
    while cur is not window and cur is not None:
        parent = cur.parentWidget()
        if parent is None:
            break
        rect.translate(cur.pos())
        area = parent.parentWidget()
        if isinstance(area, QAbstractScrollArea) and area.viewport() is parent:
            off = Qt.ScrollBarPolicy.ScrollBarAlwaysOff
            pr = parent.rect()
            if area.horizontalScrollBarPolicy() == off and (rect.left() < pr.left() or rect.right() > pr.right()):
                return parent
            if area.verticalScrollBarPolicy() == off and (rect.top() < pr.top() or rect.bottom() > pr.bottom()):
                return parent
            rect = QRect(QPoint(0, 0), area.size())  # reachable: from here on the scroll area counts
            cur = area
            continue
        if not parent.rect().contains(rect):
            return parent
        cur = parent
    return None


def _font_px(w) -> float:
    from PySide6.QtGui import QFontInfo

    return float(QFontInfo(w.font()).pixelSize())


def _elided_combo(w) -> bool:
    from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

    text = w.currentText()
    if not text:
        return False
    opt = QStyleOptionComboBox()
    w.initStyleOption(opt)
    field = w.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, w)
    return w.fontMetrics().horizontalAdvance(text) > field.width() + 1


def _elided_line_edit(w, *, text: bool) -> str:
    """"placeholder" or "text" when that does not fit into the field (the text only when
    ``text``: what a person types scrolls, as in any editor), else ""."""
    from PySide6.QtWidgets import QStyle, QStyleOptionFrame

    opt = QStyleOptionFrame()
    w.initStyleOption(opt)
    r = w.style().subElementRect(QStyle.SubElement.SE_LineEditContents, opt, w)
    m = w.textMargins()
    room = r.width() - m.left() - m.right() - 4  # QLineEdit's own 2 px on each side
    shown = (("text", w.text() if text else ""), ("placeholder", w.placeholderText() if not w.text() else ""))
    for kind, value in shown:
        if value and w.fontMetrics().horizontalAdvance(value) > room:
            return kind
    return ""


def _text_view_problem(w) -> str:
    """A text box (a question field, an answer, a consent text) must show at least one
    whole line of its text: it scrolls, but a box lower than a line shows nothing whole."""
    from PySide6.QtGui import QFontMetricsF

    margin = w.document().documentMargin()
    need = QFontMetricsF(w.document().defaultFont()).lineSpacing() + 2 * margin
    have = w.viewport().height()
    return f"its text area is {have} px high, one line needs {need:.0f}" if have + 0.5 < need else ""


def widget_problems(window, *, min_font_px: float = MIN_FONT_PX) -> list[str]:
    """What is wrong with the controls of ``window`` as it is shown now (see the module
    docstring); each problem names the widget."""
    from PySide6.QtCore import QRect
    from PySide6.QtWidgets import (
        QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QPlainTextEdit, QTabBar, QTextEdit,
        QWidget,
    )

    out: list[str] = []
    for w in [window, *window.findChildren(QWidget)]:
        if not w.isVisible() or w.window() is not window:
            continue
        if isinstance(w, QTabBar):
            for i in range(w.count()):
                if w.tabRect(i).width() + 1 < w.tabSizeHint(i).width():
                    out.append(f"tab {w.tabText(i)!r}: {w.tabRect(i).width()} px wide, needs "
                               f"{w.tabSizeHint(i).width()} (its title is cut)")
            continue
        if isinstance(w, (QTextEdit, QPlainTextEdit)):
            problem = _text_view_problem(w)
            if problem:
                out.append(f"{describe(w)}: {problem}")
            continue
        if not isinstance(w, (QLabel, QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox)):
            continue
        if w.objectName().startswith("qt_") or isinstance(w.parentWidget(), QTabBar):
            continue  # a part of another control (a spin box's field, a tab bar's scroll button): checked with it
        if isinstance(w, QLabel) and not w.text() and w.pixmap().isNull():
            continue  # an empty label takes no room
        what = describe(w)
        size = w.size()
        if isinstance(w, QLabel) and w.wordWrap():
            need_w = w.minimumSizeHint().width()
            need_h = w.heightForWidth(size.width()) if w.hasHeightForWidth() else w.sizeHint().height()
        elif isinstance(w, (QLabel, QAbstractButton)):
            need_w, need_h = w.sizeHint().width(), w.sizeHint().height()
        elif isinstance(w, QAbstractSpinBox):  # kept narrower than its largest value: its value must show
            need_w, need_h = 0, w.sizeHint().height()
            if _elided_line_edit(w.lineEdit(), text=True):
                out.append(f"{what}: its value is cut ({size.width()} px wide)")
        else:
            msh = w.minimumSizeHint()
            need_w, need_h = msh.width(), max(msh.height(), w.sizeHint().height())
        if size.width() < need_w:
            out.append(f"{what}: {size.width()} px wide, needs {need_w}")
        if size.height() < need_h:
            out.append(f"{what}: {size.height()} px high, needs {need_h}")
        if isinstance(w, QComboBox) and _elided_combo(w):
            out.append(f"{what}: the text is cut ({size.width()} px wide)")
        if isinstance(w, QLineEdit):
            kind = _elided_line_edit(w, text=w.isReadOnly())
            if kind:
                out.append(f"{what}: its {kind} is cut ({size.width()} px wide)")
        px = _font_px(w)
        if px < min_font_px:
            out.append(f"{what}: type {px:g} px (at least {min_font_px:g})")
        clip = _clipped_by(w, window)
        if clip is not None:
            top_left = w.mapTo(window, w.rect().topLeft())
            where = QRect(top_left, w.size())
            inside = "the window" if clip is window else describe(clip)
            out.append(f"{what}: at {_rect_str(where)}, outside {inside} "
                       f"({_rect_str(QRect(clip.mapTo(window, clip.rect().topLeft()), clip.size()))})")
    out.extend(painted_problems(window))
    return out


def painted_problems(window) -> list[str]:
    """Text that widgets paint themselves (``painted_texts()``: [(QRectF, text, QFont, flags)])
    must fit where it is drawn, and that place must lie inside the widget."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QFontMetricsF
    from PySide6.QtWidgets import QWidget

    out = []
    for w in [window, *window.findChildren(QWidget)]:
        fn = getattr(w, "painted_texts", None)
        if not callable(fn) or not w.isVisible():
            continue
        inside = QRectF(w.rect()).adjusted(-0.5, -0.5, 0.5, 0.5)
        for rect, text, font, flags in fn():
            need = QFontMetricsF(font).boundingRect(rect, int(flags), text)
            name = f"{type(w).__name__} painted {' '.join(text.split())!r}"
            if need.width() > rect.width() + 0.5 or need.height() > rect.height() + 0.5:
                out.append(f"{name}: needs {need.width():.0f}x{need.height():.0f}, has "
                           f"{rect.width():.0f}x{rect.height():.0f}")
            if not inside.contains(rect):
                out.append(f"{name}: drawn at {rect.x():.0f},{rect.y():.0f} {rect.width():.0f}x{rect.height():.0f},"
                           f" outside the widget ({w.width()}x{w.height()})")
    return out


# ======================================================================================
# The pages
# ======================================================================================

ANSWER = (
    "Start with a few simple dishes you enjoy eating, and cook each of them several times until it feels easy. "
    "Learn the basic knife skills first: how to hold the knife, how to dice an onion and how to slice "
    "vegetables evenly.\n\nThen learn the main ways to cook: boiling, frying, roasting and braising. A good "
    "recipe explains why each step matters, so read it through before you begin.\n\nFinally, taste as you "
    "go and adjust the salt and acid at the end.")


SCREEN = ScreenGeometry(1920, 1080, 527.0, 297.0, 600.0)  # the calibration reports' screen: 24" at 60 cm


def failed_validation():
    """A validation report that failed: a point far off, one with too few samples."""
    rng = np.random.default_rng(0)
    targets = load_pattern("validation-9").targets_px(SCREEN)
    est = []
    for i, t in enumerate(targets):
        bias, n = rng.normal(0, 12, 2), 40
        if i == 2:
            bias = np.array([-110.0, 70.0])
        if i == 7:
            n = 3
        est.append(t + bias + rng.normal(0, 10, (n, 2)))
    return validate(est, None, SCREEN, targets=targets, thresholds=ValidationThresholds())


def settle(app, rounds: int = 6) -> None:
    for _ in range(rounds):
        app.processEvents()


def _wait(app, until, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not until():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.01)


def _study_config(tmp: Path) -> dict:
    from tests.support.study_app import study

    cfg = study(tmp, str(tmp / "no-camera.mp4"), mode="pairwise", questions=5)
    cfg["study"]["questionnaire"] = [
        "How natural did the conversation feel? (1-5)", "How much did you trust the answers? (1-5)",
        "How easy was it to compare the two answers? (1-5)", "How tiring was the session? (1-5)"]
    return cfg


def study_pages(app, size, tmp: Path):
    """(name, window) for each participant page, the window put into that page's state."""
    from ifllm_lab.config import config_from_dict
    from ifllm_lab.gaze.face_position import MESSAGES, FaceStatus
    from ifllm_lab.gaze.procedure import CalibrationFlow
    from ifllm_lab.ui.calibration_wizard import CalibrationWizard
    from ifllm_lab.ui.study_app import StudyApp

    from tests.support.study_app import CLOSE_FACE_OK

    win = StudyApp(config_from_dict(_study_config(tmp), "<page sizes>"), countdown_s=0.4,
                   face_targets=CLOSE_FACE_OK, preload=False)
    win.resize(*size)
    win.show()
    try:
        settle(app)
        sp = win.setup_page
        sp.set_interrupted([(str(tmp / "data" / "e2e" / "P-3F9A21C7.h5"),
                             "P-3F9A21C7, 2 of 5 questions, 6 min, interrupted 2025-03-14 10:42", True)])
        sp.set_code_error("A participant code is 2-32 letters, digits or dashes.")
        yield "setup", win

        win.setCurrentWidget(win.consent_page)
        yield "consent", win

        chat = win.chat_page
        win.setCurrentWidget(chat)
        for pairwise in (True, False):
            mode = "pairwise" if pairwise else "pointwise"
            chat.new_turn(2, 5, pairwise=pairwise)
            yield f"chat-{mode}-asking", win
            chat.start_answering("What is a good way to learn to cook, and how long does it usually take?")
            for side in ("left", "right") if pairwise else ("left",):
                chat.append(side, ANSWER)
            yield f"chat-{mode}-answering", win
            chat.start_rating(True)
            yield f"chat-{mode}-rating", win

        win.setCurrentWidget(win.questionnaire_page)
        yield "questionnaire", win

        win.message_page.show_message("Thank you!", "You have finished. Please let the researcher know.",
                                      "Next participant")
        win.setCurrentWidget(win.message_page)
        yield "thank-you", win
        win.message_page.show_message(
            "Please call the researcher.",
            "The session cannot go on. This is not your fault: the researcher will take it from here.",
            "Back to setup", detail="OSError: [Errno 28] No space left on device "
            f"({tmp / 'data' / 'e2e' / 'P-3F9A21C7.h5'})")
        yield "message-error", win

        wiz = CalibrationWizard(CalibrationFlow(win.screen_geometry()), win.clock, countdown_s=30.0,
                                face_targets=CLOSE_FACE_OK)
        win.addWidget(wiz)
        win.setCurrentWidget(wiz)
        wiz.start()
        yield "face-waiting", win
        codes = ("too_close", "move_left", "turn")
        wiz.face_guide._set_status(FaceStatus(codes[0], MESSAGES[codes[0]], tuple(MESSAGES[c] for c in codes),
                                              codes))
        yield "face-hints", win
        wiz.face_guide._set_status(FaceStatus("good", MESSAGES["good"], (MESSAGES["good"],), ("good",)))
        yield "face-good", win

        wiz.start_calibration()  # the countdown (long: it stays on screen), the face guide under it
        ts = wiz.target_screen
        ts._face_status = FaceStatus("too_close", MESSAGES["too_close"], (MESSAGES["too_close"],), ("too_close",))
        yield "calibration-countdown", win
        wiz.stop()

        wiz.report_view.set_report(failed_validation(), SCREEN)
        wiz.setCurrentWidget(wiz.report_view)
        yield "validation-report", win

        rng = np.random.default_rng(0)
        target = SCREEN.centre_px
        res = drift_check(np.array(target) + np.array([160.0, -48.0]) + rng.normal(0, 3, (20, 2)), target, None,
                          SCREEN)
        wiz.drift_view.set_result(res)
        wiz.setCurrentWidget(wiz.drift_view)
        yield "drift-result", win
    finally:
        win.close()
        win.deleteLater()


def _data_folder(tmp: Path) -> Path:
    from ifllm_lab.synthetic.session import make_replay_session

    data = tmp / "lab-data"
    (data / "bench-replay").mkdir(parents=True)
    make_replay_session(str(data / "bench-replay" / "P-SYNTHETIC.h5"), seconds=60, turn_s=30)
    return data


def researcher_pages(app, size, tmp: Path):
    """(name, window) for each workbench tab and the replay window."""
    from PySide6.QtCore import QSettings

    from ifllm_lab.analysis.replay import ReplayData
    from ifllm_lab.ui.replay.window import ReplayWindow
    from ifllm_lab.ui.style import apply_dark_palette
    from ifllm_lab.ui.workbench import Workbench

    apply_dark_palette(app)
    data = _data_folder(tmp)
    settings = QSettings(str(tmp / "wb.ini"), QSettings.Format.IniFormat)
    wb = Workbench(str(data), settings=settings, cache_dir=str(tmp / "cache"))
    wb.resize(*size)
    wb.show()
    try:
        _wait(app, lambda: wb.sessions.scans >= 1, 60)
        session = str(data / "bench-replay" / "P-SYNTHETIC.h5")
        wb.sessions.select_path(session)
        _wait(app, lambda: "duration" in wb.sessions.report.toPlainText(), 30)
        for i, name in enumerate(("sessions", "studies", "reward", "dpo")):
            wb.tabs.setCurrentIndex(i)
            if name == "studies" and wb.studies.list.count():
                wb.studies.list.setCurrentRow(1)
            yield f"workbench-{name}", wb
        view = wb.open_replay(session)
        if view.background is not None:
            _wait(app, lambda: not view.background.running, 60)
        yield "workbench-replay", wb
    finally:
        for runner, _ in list(wb.runners):
            runner.cancel()
            runner.wait(30_000)
        wb.close()
        wb.deleteLater()

    win = ReplayWindow(ReplayData(str(data / "bench-replay" / "P-SYNTHETIC.h5")))
    win.resize(*size)
    win.show()
    try:
        if win.background is not None:
            _wait(app, lambda: not win.background.running, 60)
        win.seek(win.data.t_start + 40.0)
        settle(app)
        _wait(app, lambda: "Turn 2" in win.turn_panel.toPlainText(), 5)
        yield "replay", win
    finally:
        if win.background is not None:
            win.background.cancel()
            win.background.wait(30_000)
        win.close()
        win.deleteLater()


# ======================================================================================
# One size and scale
# ======================================================================================

def _screen_config(folder: Path, width: int, height: int) -> str:
    path = folder / "screen.json"
    path.write_text(json.dumps({"screens": [{"name": "lab", "x": 0, "y": 0, "width": width, "height": height,
                                             "logicalDpi": 96, "logicalBaseDpi": 96, "dpr": 1}]}))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1024x640", help="the screen in physical px, WxH")
    ap.add_argument("--scale", type=float, default=1.0, help="the display scale (QT_SCALE_FACTOR)")
    ap.add_argument("--out", default="", help="folder for the screenshots")
    ap.add_argument("--shots", action="store_true", help="save a PNG of every page into --out")
    ap.add_argument("--pages", default="", help="only pages whose names start with one of these (comma-separated)")
    args = ap.parse_args(argv)
    pw, ph = (int(v) for v in args.size.lower().split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="ifllm-page-sizes-"))
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={_screen_config(tmp, pw, ph)}"
    os.environ["QT_SCALE_FACTOR"] = f"{args.scale:g}"
    for key in ("QT_SCREEN_SCALE_FACTORS", "QT_AUTO_SCREEN_SCALE_FACTOR", "QT_ENABLE_HIGHDPI_SCALING"):
        os.environ.pop(key, None)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["ifllm-lab"])
    size = (round(pw / args.scale), round(ph / args.scale))
    out = Path(args.out) if args.out else tmp / "shots"
    if args.shots:
        out.mkdir(parents=True, exist_ok=True)
    wanted = [p for p in args.pages.split(",") if p]
    tag = f"{pw}x{ph}@{round(args.scale * 100)}"
    report = {"scale": args.scale, "physical": [pw, ph], "logical": list(size), "pages": {}, "shots": []}
    for pages in (study_pages, researcher_pages):
        for name, win in pages(app, size, tmp):
            if wanted and not any(name.startswith(p) for p in wanted):
                continue
            win.resize(*size)
            settle(app)
            shot = win.grab()  # paints everything (the painted texts are recorded on the way)
            settle(app, 2)
            problems = []
            if (win.width(), win.height()) != size:
                problems.append(f"the window is {win.width()}x{win.height()}, not {size[0]}x{size[1]} "
                                f"(its minimum size is {win.minimumSizeHint().width()}x"
                                f"{win.minimumSizeHint().height()})")
            problems += widget_problems(win)
            report["pages"][name] = problems
            if args.shots:
                path = out / f"{name}-{tag}.png"
                shot.save(str(path))
                report["shots"].append(str(path))
    print(json.dumps(report))
    sys.stdout.flush()
    os._exit(0)  # threads of the camera, jobs and models end with the process


if __name__ == "__main__":
    raise SystemExit(main())
