"""The Sessions tab's Participant dialog on a real data folder: an unknown code finds
nothing, the participant's files and what was built from them are listed, Export copies
them, Delete asks, deletes through the job runner and the tabs show the stale models
and jobs. Screenshots at 1024 x 640 and 1920 x 1080."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QMessageBox

from ifllm_lab.study.rights import DELETION_LOG
from ifllm_lab.ui import style

from tests.support.participant_data import CODE, build_lab_data
from tests.support.screenshots import shots_folder
from tests.support.workbench import SIZES

PSEUDONYM = re.compile(r"P-[A-Z2-7]{10}")
KEEP = Path(os.environ.get("IFLLM_RIGHTS_SHOTS", "/tmp/rights-shots"))


def _shot(wb, dialog, shots: Path, name: str) -> Path:
    """The window with the dialog (and a box over it) drawn where they stand on the screen."""
    img = wb.grab().toImage()
    p = QPainter(img)
    for w in [dialog, *(c for c in dialog.findChildren(QMessageBox) if c.isVisible())]:
        pix = w.grab()
        x, y = (img.width() - pix.width()) // 2, (img.height() - pix.height()) // 2
        p.drawPixmap(x, y, pix)
        p.setPen(style.PANEL_EDGE)
        p.drawRect(x - 1, y - 1, pix.width() + 1, pix.height() + 1)
    p.end()
    path = shots / f"{name}.png"
    assert img.save(str(path))
    KEEP.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, KEEP / path.name)
    return path


def _tree_text(dialog) -> str:
    from PySide6.QtWidgets import QTreeWidgetItemIterator

    out = []
    it = QTreeWidgetItemIterator(dialog.tree)
    while it.value():
        item = it.value()
        out.append(" | ".join(item.text(c) for c in range(3)))
        it += 1
    return "\n".join(out)


def test_participant_dialog_finds_exports_and_deletes(make_wb, qtbot, tmp_path):
    lab = build_lab_data(tmp_path / "lab")
    shots = shots_folder(tmp_path)
    wb = make_wb(lab.data, size=SIZES["small"])
    qtbot.waitUntil(lambda: wb.sessions.scans >= 1, timeout=120_000)
    qtbot.waitUntil(lambda: wb.sessions.model.rowCount() == 6, timeout=60_000)

    qtbot.mouseClick(wb.sessions.participant_btn, Qt.MouseButton.LeftButton)
    dialog = wb.sessions.participant_dialog
    assert dialog is not None and dialog.isVisible()
    assert not dialog.find_btn.isEnabled() and not dialog.export_btn.isEnabled()

    # an unknown code: nothing found, nobody named
    qtbot.keyClicks(dialog.code, "lab-99")
    dialog.find()
    qtbot.waitUntil(lambda: dialog.findings is not None, timeout=60_000)
    assert dialog.message.text().startswith("Nothing found")
    assert dialog.tree.topLevelItemCount() == 0 and not dialog.delete_btn.isEnabled()
    assert not PSEUDONYM.search(dialog.message.text())
    _shot(wb, dialog, shots, "participant-unknown-1024")

    # their code: their files, what must be rebuilt, what may hold their data
    dialog.code.clear()
    qtbot.keyClicks(dialog.code, CODE.upper())
    qtbot.mouseClick(dialog.find_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.findings is not None and not dialog.busy, timeout=60_000)
    f = dialog.findings
    assert f.found and {x.path for x in f.files} == {str(p) for p in lab.theirs}
    text = _tree_text(dialog)
    assert f"Their files ({len(lab.theirs)}" in text and "must be rebuilt" in text and "May contain" in text
    assert set(PSEUDONYM.findall(text + dialog.message.text())) == {lab.pseudonym}
    assert str(tmp_path / "cache") in text  # the workbench's own catalog cache has their rows
    assert dialog.export_btn.isEnabled() and dialog.delete_btn.isEnabled()
    _shot(wb, dialog, shots, "participant-found-1024")
    wb.resize(*SIZES["large"])
    dialog.resize(880, 560)
    qtbot.wait(50)
    _shot(wb, dialog, shots, "participant-found-1920")

    # export through the job runner
    out = tmp_path / "request"
    dialog.export_to(str(out))
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Exported"), timeout=60_000)
    assert (out / "summary.txt").is_file() and (out / "files.json").is_file()
    assert all((out / "files" / p.relative_to(lab.data)).read_bytes() == p.read_bytes() for p in lab.theirs)

    # delete: asked first; Cancel changes nothing, Delete goes on
    box = dialog.ask_delete()
    assert box is not None and box.isVisible() and lab.pseudonym in box.text()
    _shot(wb, dialog, shots, "participant-confirm-1920")
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    assert all(p.exists() for p in lab.theirs) and not dialog.busy
    box = dialog.ask_delete()
    scans = wb.sessions.scans
    qtbot.mouseClick(dialog.confirm_delete_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.message.text().startswith("Deleted"), timeout=60_000)
    assert not any(p.exists() for p in lab.theirs)
    record = json.loads((lab.data / DELETION_LOG).read_text().splitlines()[-1])
    assert record["pseudonym"] == lab.pseudonym and len(record["files"]) == len(lab.theirs)
    # the table is read again: their sessions are gone, the others' stay
    qtbot.waitUntil(lambda: wb.sessions.scans > scans, timeout=60_000)
    qtbot.waitUntil(lambda: wb.sessions.model.rowCount() == 2, timeout=60_000)
    assert not any(lab.pseudonym in p for p in wb.sessions.shown_paths())
    assert f"Deleted: {len(lab.theirs)} files" in _tree_text(dialog)
    _shot(wb, dialog, shots, "participant-deleted-1920")
    dialog.close()
    assert dialog.code.text() == ""  # the code is not kept

    # the reward models and DPO jobs built from the data show it
    wb.reward.refresh_models()
    t = wb.reward.models_table
    names = {t.item(i, 0).text(): t.item(i, 9).text() for i in range(t.rowCount())}
    assert names["rm  (stale)"].startswith("stale: built from data of a participant whose data was deleted")
    assert names["rm-old  (stale)"].startswith("stale: may hold data")
    assert names["rm-elsewhere"] == ""
    wb.dpo.refresh_jobs()
    jt = wb.dpo.jobs_table
    assert sorted(jt.item(i, 0).text() for i in range(jt.rowCount())) == ["older  (stale)", "tuned  (stale)"]
    for tab, name in ((wb.reward, "participant-stale-reward-1920"), (wb.dpo, "participant-stale-dpo-1920")):
        wb.tabs.setCurrentWidget(tab)
        if tab is wb.reward:
            wb.reward.pages.setCurrentIndex(1)
        qtbot.wait(50)
        img = wb.grab().toImage()
        assert img.save(str(shots / f"{name}.png"))
        shutil.copyfile(shots / f"{name}.png", KEEP / f"{name}.png")
