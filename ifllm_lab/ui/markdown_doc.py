"""Markdown answers laid into a QTextDocument, with the raw character of every shown one.

:class:`MarkdownRenderer` turns the blocks of :func:`ifllm_lab.analysis.markdown.parse`
into a ``QTextDocument`` (headings, lists with their bullets or numbers, code blocks in a
monospace font on a darker ground, tables as tables, quotes indented, rules) and keeps,
for each document position, the index in the raw answer of the character shown there.

Streaming: :meth:`MarkdownRenderer.render` compares the new blocks with the ones already
in the document and rebuilds only from the first one that changed (while an answer
streams, that is the last paragraph, or the list or table it belongs to): the lines above
it are not touched, so they never re-flow or flicker.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import (QBrush, QColor, QFont, QFontDatabase, QTextBlockFormat, QTextCharFormat, QTextCursor,
                           QTextDocument, QTextFormat, QTextFrameFormat, QTextLength, QTextListFormat, QTextTableFormat)

from ..analysis import markdown as md

__all__ = ["MarkdownRenderer"]

#: heading sizes relative to the body text (h1 .. h6), as chat apps set them
HEADING_SCALE = {1: 1.45, 2: 1.28, 3: 1.14, 4: 1.0, 5: 1.0, 6: 1.0}
CODE_GROUND = QColor("#262626")
CODE_TEXT = QColor("#e6e6e6")
LINK = QColor("#7fb8ff")
QUOTE_TEXT = QColor("#b8b8b8")
TABLE_EDGE = QColor("#5a5a5a")
HEADER_GROUND = QColor("#343434")


class MarkdownRenderer:
    """Keeps one QTextDocument showing the Markdown blocks given to :meth:`render`.

    ``block_format``: the base paragraph format (line spacing); ``font_px``: the body
    text size."""

    def __init__(self, document: QTextDocument, block_format: QTextBlockFormat, font_px: int):
        self.doc = document
        self.base = QTextBlockFormat(block_format)
        self.font_px = int(font_px)
        self.blocks: list[md.Block] = []
        self._keys: list[tuple] = []
        self._starts: list[int] = []  # document position before each block was inserted
        self._segments: list[list[tuple[int, str, list[int], int]]] = []  # per block: (pos, text, raw, style)
        self._mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).families()

    def set_font_px(self, px: int) -> None:
        self.font_px = int(px)
        self.reset()

    def reset(self) -> None:
        """Forget the document's content: the next render builds it from the start."""
        self.blocks, self._keys, self._starts, self._segments = [], [], [], []

    # -- building ----------------------------------------------------------------------------
    def render(self, blocks: list[md.Block]) -> int:
        """Show ``blocks``; returns the index of the first block rebuilt (``len(blocks)``
        when nothing changed; 0: the document was cleared and built again)."""
        keys = [b.key() for b in blocks]
        k = 0
        while k < min(len(keys), len(self._keys)) and keys[k] == self._keys[k]:
            k += 1
        if k == len(keys) == len(self._keys):
            return k
        # a list or a quote run is rebuilt from its first block: its items share QTextLists
        while k > 0 and k <= len(self.blocks) and (self.blocks[k - 1].kind == "item"
                                                   or (k < len(blocks) and blocks[k].kind == "item"
                                                       and self.blocks[k - 1].kind == "item")):
            k -= 1
        cursor = QTextCursor(self.doc)
        cursor.beginEditBlock()
        if k == 0:
            self.doc.clear()
            self.reset()
        elif k < len(self.blocks):
            cursor.setPosition(self._starts[k])
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            del self.blocks[k:], self._keys[k:], self._starts[k:], self._segments[k:]
        cursor.movePosition(QTextCursor.MoveOperation.End)
        lists: dict[int, object] = {}
        for j in range(k, len(blocks)):
            self._insert(cursor, blocks[j], j, lists)
            self.blocks.append(blocks[j])
            self._keys.append(keys[j])
        cursor.endEditBlock()
        return k

    def _char_format(self, style: int, block: md.Block) -> QTextCharFormat:
        f = QTextCharFormat()
        px = self.font_px
        level = block.level if block.kind == "heading" else 0
        if level:
            px = round(self.font_px * HEADING_SCALE.get(level, 1.0))
            f.setFontWeight(QFont.Weight.Bold)
        f.setProperty(QTextFormat.Property.FontPixelSize, px)
        if style & md.BOLD:
            f.setFontWeight(QFont.Weight.Bold)
        if style & md.ITALIC:
            f.setFontItalic(True)
        if style & md.STRIKE:
            f.setFontStrikeOut(True)
        if style & md.CODE or block.kind == "code":
            f.setFontFamilies(self._mono)
            f.setProperty(QTextFormat.Property.FontPixelSize, round(px * 0.92))
            if block.kind != "code":
                f.setBackground(QBrush(CODE_GROUND))
            f.setForeground(QBrush(CODE_TEXT))
        if style & md.LINK:
            f.setForeground(QBrush(LINK))
            f.setFontUnderline(True)
        if block.quote and not style & (md.LINK | md.CODE):
            f.setForeground(QBrush(QUOTE_TEXT))
        return f

    def _block_format(self, block: md.Block) -> QTextBlockFormat:
        f = QTextBlockFormat(self.base)
        em = self.font_px
        indent = 1.2 * em * block.quote
        if block.kind == "heading":
            f.setTopMargin(0.9 * em)
            f.setBottomMargin(0.25 * em)
        elif block.kind == "code":
            f.setBackground(QBrush(CODE_GROUND))
            indent += 0.6 * em
            f.setRightMargin(0.6 * em)
            f.setLineHeight(100.0, QTextBlockFormat.LineHeightTypes.ProportionalHeight.value)
            f.setTopMargin(0.5 * em if block.fence_first else 0)
            f.setBottomMargin(0.5 * em if block.fence_last else 0)
            f.setNonBreakableLines(False)
        elif block.kind == "rule":
            f.setProperty(QTextFormat.Property.BlockTrailingHorizontalRulerWidth,
                          QTextLength(QTextLength.Type.PercentageLength, 100))
            f.setTopMargin(0.3 * em)
            f.setBottomMargin(0.3 * em)
        elif block.kind == "item" and not block.bullet:
            indent += 1.6 * em * (block.level + 1)
        else:
            f.setBottomMargin(0.35 * em)
        if block.kind == "item":
            f.setBottomMargin(0.1 * em)
        f.setLeftMargin(indent)
        return f

    def _insert(self, cursor: QTextCursor, block: md.Block, j: int, lists: dict) -> None:
        segs: list[tuple[int, str, list[int], int]] = []
        start = cursor.position()
        reuse = j == 0 or (self.blocks and self.blocks[-1].kind == "table")
        if block.kind == "table":
            self._starts.append(start)
            self._table(cursor, block, segs)
            self._segments.append(segs)
            lists.clear()
            return
        fmt = self._block_format(block)
        base_char = self._char_format(0, block)
        if reuse:
            cursor.setBlockFormat(fmt)
            cursor.setBlockCharFormat(base_char)
        else:
            cursor.insertBlock(fmt, base_char)
        self._starts.append(start)
        if block.kind == "item" and block.bullet:
            for lvl in [lv for lv in lists if lv > block.level]:
                del lists[lvl]
            current = lists.get(block.level)
            if current is not None and current[1] == block.ordered:
                current[0].add(cursor.block())
            else:
                lf = QTextListFormat()
                if block.ordered:
                    lf.setStyle(QTextListFormat.Style.ListDecimal)
                    lf.setStart(block.number)
                else:
                    lf.setStyle((QTextListFormat.Style.ListDisc, QTextListFormat.Style.ListCircle,
                                 QTextListFormat.Style.ListSquare)[block.level % 3])
                lf.setIndent(block.level + 1)
                lf.setProperty(QTextFormat.Property.ListIndent, block.level + 1)
                lists[block.level] = (cursor.createList(lf), block.ordered)
        elif block.kind != "item":
            lists.clear()
        for run in block.runs:
            segs.append((cursor.position(), run.text, run.raw, run.style))
            cursor.insertText(run.text, self._char_format(run.style, block))
        self._segments.append(segs)

    def _table(self, cursor: QTextCursor, block: md.Block, segs: list) -> None:
        rows, cols = len(block.rows), max(1, len(block.align))
        tf = QTextTableFormat()
        tf.setBorder(1)
        tf.setBorderBrush(QBrush(TABLE_EDGE))
        tf.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        tf.setBorderCollapse(True)
        tf.setCellPadding(0.35 * self.font_px)
        tf.setCellSpacing(0)
        tf.setHeaderRowCount(1)
        tf.setTopMargin(0.3 * self.font_px)
        tf.setBottomMargin(0.5 * self.font_px)
        tf.setLeftMargin(1.2 * self.font_px * block.quote)
        table = cursor.insertTable(rows, cols, tf)
        align = {"center": Qt.AlignmentFlag.AlignHCenter, "right": Qt.AlignmentFlag.AlignRight}
        for r, row in enumerate(block.rows):
            for c in range(cols):
                cell = table.cellAt(r, c)
                if r == 0:
                    cf = cell.format()
                    cf.setBackground(QBrush(HEADER_GROUND))
                    cell.setFormat(cf)
                cc = cell.firstCursorPosition()
                bf = QTextBlockFormat(self.base)
                bf.setAlignment(align.get(block.align[c] if c < len(block.align) else "", Qt.AlignmentFlag.AlignLeft))
                cc.setBlockFormat(bf)
                for run in (row[c] if c < len(row) else []):
                    style = run.style | (md.BOLD if r == 0 else 0)
                    segs.append((cc.position(), run.text, run.raw, style | (md.TABLE_HEADER if r == 0 else 0)))
                    cc.insertText(run.text, self._char_format(style, block))
        cursor.movePosition(QTextCursor.MoveOperation.End)

    # -- what is shown where --------------------------------------------------------------------
    def maps(self, raw_len: int) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
        """``(t_of_d, u16, shown, style)`` over the document's characters in code points
        (block separators and table frame marks included): ``t_of_d[d]`` the raw index of
        shown character ``d`` (characters that come from no raw character -- separators --
        get the raw index after the one before them), ``u16[d]`` its document position,
        ``shown`` the document's characters, ``style[d]`` its style bits (inline and block).
        Each array has one more entry than there are characters (the end)."""
        shown = self.doc.toRawText()
        codes = np.frombuffer(shown.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        wide = codes > 0xFFFF
        u16 = np.concatenate(([0], np.cumsum(1 + wide.astype(np.int64))))
        n_units = int(u16[-1])
        raw_at = np.full(n_units + 1, -1, dtype=np.int64)
        style_at = np.zeros(n_units + 1, dtype=np.int64)
        for blk, segs in zip(self.blocks, self._segments):
            bstyle = _block_style(blk)
            for pos, text, raw, style in segs:
                p = pos
                for ch, r in zip(text, raw):
                    if p < len(raw_at):
                        raw_at[p] = r
                        style_at[p] = style | bstyle
                    p += 2 if ord(ch) > 0xFFFF else 1
        t_of_d = raw_at[u16]
        styles = style_at[u16]
        # characters from no raw character continue from the one before them
        idx = np.where(t_of_d >= 0, np.arange(len(t_of_d)), -1)
        np.maximum.accumulate(idx, out=idx)
        filled = np.where(idx >= 0, t_of_d[np.maximum(idx, 0)] + (t_of_d < 0), 0)
        filled[-1] = raw_len
        return filled.astype(np.int64), u16, shown, styles


def _block_style(block: md.Block) -> int:
    s = 0
    if block.kind == "heading":
        s |= (block.level & 7) << md.HEADING_SHIFT
    elif block.kind == "code":
        s |= md.CODE_BLOCK
    elif block.kind == "item":
        s |= md.LIST_ITEM
    elif block.kind == "table":
        s |= md.TABLE
    if block.quote:
        s |= md.QUOTE
    return s
