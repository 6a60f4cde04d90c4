"""Markdown of LLM answers, parsed with every shown character tied to the raw answer.

The participant app renders answers as chat apps do (:mod:`ifllm_lab.ui.response_view`),
and the data stays exact: every character shown comes from one character of the answer
string exactly as the model produced it, so every recorded box carries ``char_start`` /
``char_end`` into that raw string. This module is the parser (plain Python); the Qt side
only lays out what it returns.

What is understood (CommonMark and GitHub's tables, as LLMs write them): ATX (``#``) and
setext (``===`` / ``---``) headings; paragraphs (a single line break inside one shows as a
space); ``-`` ``*`` ``+`` and ``1.`` ``1)`` lists, nested by indentation, with lazy
continuation lines; fenced code blocks (``````` or ``~~~``, unclosed ones run to the end);
block quotes (``>``); thematic breaks; pipe tables with a delimiter row and column
alignment; inline ``*em*`` ``_em_`` ``**strong**`` ``__strong__`` ``~~strike~~``
`` `code` ``, ``[links](url)``, ``![images](src)`` (their text), ``<autolinks>`` and
backslash escapes. Raw HTML and entities are shown as they are written.

Streaming (``partial=True``): the text may end in the middle of something. Then an
emphasis, code or link opener with no closer *yet* is not shown at all (instead of as a
literal ``**`` that would vanish a moment later), and the words after it are shown plain
until the closer arrives: an unfinished ``**`` never bolds the rest of the answer, and the
characters the participant already reads do not move. Once the answer is complete
(``partial=False``) unmatched markers are shown as written, as CommonMark does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "BOLD", "ITALIC", "CODE", "STRIKE", "LINK", "HEADING_SHIFT", "CODE_BLOCK", "LIST_ITEM", "QUOTE", "TABLE",
    "TABLE_HEADER", "Run", "Block", "parse", "heading_level",
]

# -- style bits (the ``style`` column of the layout stream) ------------------------------
BOLD = 1
ITALIC = 2
CODE = 4  #: inline code
STRIKE = 8
LINK = 16
HEADING_SHIFT = 8  #: bits 8-10: heading level 1-6 (0: not a heading)
CODE_BLOCK = 1 << 11
LIST_ITEM = 1 << 12
QUOTE = 1 << 13
TABLE = 1 << 14
TABLE_HEADER = 1 << 15


def heading_level(style: int) -> int:
    return (int(style) >> HEADING_SHIFT) & 7


@dataclass
class Run:
    """Characters shown with one inline style; ``raw[i]`` is the index in the raw answer
    of ``text[i]`` (one entry per code point)."""

    text: str
    raw: list[int]
    style: int = 0


@dataclass
class Block:
    """One block as shown.

    ``kind``: "paragraph", "heading", "code", "item", "rule" or "table". ``level``: the
    heading level, or for an item its list depth (0 = top level). ``runs``: the inline
    content (a code block: one run per line, each line its own block). For an item:
    ``ordered`` and ``number`` (its list's first number is the item's for the first item).
    ``quote``: block quote depth. A table: ``rows`` (list of rows, each a list of cells,
    each a list of runs), ``header`` rows count (1) and ``align`` per column ("left",
    "center", "right" or ""). ``raw_start`` / ``raw_end``: the raw characters the block
    came from (its markup included); ``key``: what the block looks like, to compare two
    renderings cheaply."""

    kind: str
    runs: list[Run] = field(default_factory=list)
    level: int = 0
    ordered: bool = False
    number: int = 1
    quote: int = 0
    rows: list = field(default_factory=list)
    align: list = field(default_factory=list)
    raw_start: int = 0
    raw_end: int = 0
    fence_first: bool = False
    fence_last: bool = False
    bullet: bool = True  #: an item's first paragraph shows the bullet; a later one is only indented

    @property
    def text(self) -> str:
        if self.kind == "table":
            return "\n".join("\t".join("".join(r.text for r in cell) for cell in row) for row in self.rows)
        return "".join(r.text for r in self.runs)

    def key(self) -> tuple:
        def runs_key(runs):
            return tuple((r.text, r.style, r.raw[0] if r.raw else -1) for r in runs)

        if self.kind == "table":
            return ("table", tuple(tuple(runs_key(c) for c in row) for row in self.rows), tuple(self.align),
                    self.quote)
        return (self.kind, self.level, self.ordered, self.number, self.quote, self.fence_first, self.fence_last,
                self.bullet, runs_key(self.runs))


# -- lines -----------------------------------------------------------------------------------
@dataclass
class _Line:
    start: int  # raw index of the first character
    text: str  # without its line break

    def chars(self, a: int = 0, b: int | None = None) -> list[tuple[str, int]]:
        b = len(self.text) if b is None else b
        return [(self.text[i], self.start + i) for i in range(a, b)]


def _lines(raw: str) -> list[_Line]:
    out, i, n = [], 0, len(raw)
    for m in re.finditer(r"\r\n|\r|\n", raw):
        out.append(_Line(i, raw[i:m.start()]))
        i = m.end()
    if i <= n:
        out.append(_Line(i, raw[i:]))
    return out


_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?=[ \t]|$)[ \t]*")
_ATX_CLOSE = re.compile(r"[ \t]+#+[ \t]*$|^#+[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,9}[.)])([ \t]+|$)")
_QUOTE = re.compile(r"^ {0,3}> ?")
_DELIM_ROW = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")


def _indent(s: str) -> int:
    n = 0
    for c in s:
        if c == " ":
            n += 1
        elif c == "\t":
            n += 4 - n % 4
        else:
            break
    return n


def _split_cells(chars: list[tuple[str, int]]) -> list[list[tuple[str, int]]]:
    """A table row's characters split at unescaped pipes outside code spans; the outer
    pipes and the cells' surrounding blanks dropped."""
    cells, cur, i, tick = [], [], 0, 0
    while i < len(chars):
        c = chars[i][0]
        if c == "\\" and i + 1 < len(chars) and chars[i + 1][0] == "|":
            cur.append(chars[i + 1])  # "\|" is a pipe inside the cell
            i += 2
            continue
        if c == "`":
            tick ^= 1
        if c == "|" and not tick:
            cells.append(cur)
            cur = []
        else:
            cur.append(chars[i])
        i += 1
    cells.append(cur)
    if cells and not "".join(c for c, _ in cells[0]).strip():
        cells = cells[1:]
    if cells and not "".join(c for c, _ in cells[-1]).strip():
        cells = cells[:-1]
    return [_strip(c) for c in cells]


def _strip(chars: list[tuple[str, int]]) -> list[tuple[str, int]]:
    a, b = 0, len(chars)
    while a < b and chars[a][0] in " \t":
        a += 1
    while b > a and chars[b - 1][0] in " \t":
        b -= 1
    return chars[a:b]


def _alignments(line: str) -> list[str]:
    out = []
    for cell in line.strip().strip("|").split("|"):
        c = cell.strip()
        left, right = c.startswith(":"), c.endswith(":")
        out.append("center" if left and right else "right" if right else "left" if left else "")
    return out


# -- blocks --------------------------------------------------------------------------------------
def parse(raw: str, *, partial: bool = False) -> list[Block]:
    """The blocks of ``raw`` as shown. ``partial``: the text is still streaming (see the
    module doc); only the last block is affected."""
    lines = _lines(raw)
    blocks: list[Block] = []
    para: list[list[tuple[str, int]]] = []  # the open paragraph's lines (characters)
    para_kind: dict = {}  # the open paragraph's block attributes (kind item / quote ...)
    list_stack: list[tuple[int, int]] = []  # (marker column, content column) of open items
    i = 0

    def close_para() -> None:
        nonlocal para, para_kind
        if para:
            chars: list[tuple[str, int]] = []
            for k, ln in enumerate(para):
                if k:
                    prev_end = para[k - 1][-1][1] + 1 if para[k - 1] else ln[0][1] - 1
                    chars.append((" ", prev_end))  # a soft line break shows as a space
                chars.extend(ln)
            blk = Block(para_kind.get("kind", "paragraph"), level=para_kind.get("level", 0),
                        bullet=not para_kind.get("continued", False),
                        ordered=para_kind.get("ordered", False), number=para_kind.get("number", 1),
                        quote=para_kind.get("quote", 0), raw_start=para_kind.get("raw_start", chars[0][1] if chars
                                                                                   else 0),
                        raw_end=(chars[-1][1] + 1) if chars else para_kind.get("raw_start", 0))
            blk._chars = chars  # inline parsing below
            blocks.append(blk)
        elif para_kind.get("kind") == "item":  # an empty list item still shows its bullet
            blk = Block("item", level=para_kind["level"], ordered=para_kind["ordered"], number=para_kind["number"],
                        quote=para_kind.get("quote", 0), raw_start=para_kind["raw_start"],
                        raw_end=para_kind["raw_start"])
            blk._chars = []
            blocks.append(blk)
        para, para_kind = [], {}

    while i < len(lines):
        ln = lines[i]
        text, start = ln.text, ln.start
        # block quote prefix(es)
        quote, off = 0, 0
        while True:
            m = _QUOTE.match(text[off:])
            if not m:
                break
            quote += 1
            off += m.end()
        body = text[off:]
        if not body.strip():
            close_para()  # a blank line ends the paragraph; lists stay open for a following item
            i += 1
            continue
        m = _FENCE.match(body)
        if m:
            close_para()
            list_stack.clear()
            fence = m.group(2)
            j = i + 1
            code_lines = []
            while j < len(lines):
                t = lines[j].text
                q_off = 0
                for _ in range(quote):
                    mq = _QUOTE.match(t[q_off:])
                    if mq:
                        q_off += mq.end()
                mc = re.match(r"^ {0,3}(`{3,}|~{3,})[ \t]*$", t[q_off:])
                if mc and mc.group(1)[0] == fence[0] and len(mc.group(1)) >= len(fence):
                    break
                indent = min(len(m.group(1)), _indent(t[q_off:]))
                code_lines.append((lines[j], q_off + indent))
                j += 1
            closed = j < len(lines)
            if not code_lines:
                code_lines = [(_Line(lines[i].start + len(text), ""), 0)]
            for k, (cl, a) in enumerate(code_lines):
                chars = cl.chars(a)
                blk = Block("code", runs=[Run("".join(c for c, _ in chars), [r for _, r in chars], 0)] if chars
                            else [], quote=quote, raw_start=cl.start, raw_end=cl.start + len(cl.text),
                            fence_first=k == 0, fence_last=k == len(code_lines) - 1)
                if k == 0:
                    blk.raw_start = start
                blocks.append(blk)
            if closed:
                blocks[-1].raw_end = lines[j].start + len(lines[j].text)
            i = j + 1
            continue
        m = _ATX.match(body)
        if m:
            close_para()
            list_stack.clear()
            content_start = m.end()
            content = body[content_start:]
            mc = _ATX_CLOSE.search(content)
            content_end = content_start + (mc.start() if mc else len(content))
            chars = _strip([(body[k], start + off + k) for k in range(content_start, content_end)])
            blk = Block("heading", level=len(m.group(1)), quote=quote, raw_start=start, raw_end=start + len(text))
            blk._chars = chars
            blocks.append(blk)
            i += 1
            continue
        if para and para_kind.get("kind", "paragraph") == "paragraph" and _SETEXT.match(body) \
                and para_kind.get("quote", 0) == quote:
            level = 1 if body.strip()[0] == "=" else 2
            para_kind = {**para_kind, "kind": "heading", "level": level}
            close_para()
            blocks[-1].raw_end = start + len(text)
            i += 1
            continue
        if _RULE.match(body):
            close_para()
            list_stack.clear()
            blocks.append(Block("rule", quote=quote, raw_start=start, raw_end=start + len(text)))
            i += 1
            continue
        # a table: this line has a pipe and the next one is a delimiter row
        if "|" in body and i + 1 < len(lines) and _DELIM_ROW.match(lines[i + 1].text[off:]) \
                and "-" in lines[i + 1].text:
            close_para()
            header = _split_cells(ln.chars(off))
            align = _alignments(lines[i + 1].text[off:])
            rows = [header]
            j = i + 2
            while j < len(lines):
                t = lines[j].text[off:] if quote else lines[j].text
                if not t.strip() or "|" not in t:
                    break
                rows.append(_split_cells(lines[j].chars(off if quote else 0)))
                j += 1
            n_cols = max(len(header), 1)
            rows = [(r + [[]] * n_cols)[:n_cols] for r in rows]
            blk = Block("table", quote=quote, align=(align + [""] * n_cols)[:n_cols], raw_start=start,
                        raw_end=lines[j - 1].start + len(lines[j - 1].text))
            blk._cells = rows
            blocks.append(blk)
            i = j
            continue
        m = _ITEM.match(body)
        ind = _indent(body)
        if m and not (para and para_kind.get("kind", "paragraph") == "paragraph" and not list_stack
                      and m.group(2)[0].isdigit() and m.group(2)[:-1] != "1"):
            close_para()
            marker_col = _indent(m.group(1))
            content_col = m.end()
            while list_stack and marker_col < list_stack[-1][1]:  # not nested in it: a sibling or an outer item
                list_stack.pop()
            list_stack.append((marker_col, content_col))
            mark = m.group(2)
            para_kind = {"kind": "item", "level": len(list_stack) - 1, "ordered": mark[0].isdigit(),
                         "number": int(mark[:-1]) if mark[0].isdigit() else 1, "quote": quote, "raw_start": start}
            content = body[content_col:]
            if content.strip():
                para = [_strip([(body[k], start + off + k) for k in range(content_col, len(body))])]
            i += 1
            continue
        # a paragraph line: a continuation of the open paragraph or item, or a new paragraph
        chars = _strip([(body[k], start + off + k) for k in range(len(body))])
        if para or para_kind.get("kind") == "item":
            if not para and para_kind.get("kind") == "item":
                para = [chars]
            else:
                para.append(chars)
        else:
            while list_stack and ind < list_stack[-1][1]:
                list_stack.pop()
            if list_stack:  # a new paragraph inside the open item
                para_kind = {"kind": "item", "level": len(list_stack) - 1, "ordered": False, "number": 0,
                             "quote": quote, "raw_start": start, "continued": True}
            else:
                list_stack.clear()
                para_kind = {"kind": "paragraph", "quote": quote, "raw_start": start}
            para = [chars]
        i += 1
    close_para()

    # inline content
    last = len(blocks) - 1
    for k, blk in enumerate(blocks):
        tail = partial and k == last
        if hasattr(blk, "_chars"):
            blk.runs = _inline(blk._chars, partial=tail)
            del blk._chars
        if hasattr(blk, "_cells"):
            blk.rows = [[_inline(cell, partial=tail) for cell in row] for row in blk._cells]
            del blk._cells
    return blocks


# -- inline ------------------------------------------------------------------------------------
_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


@dataclass
class _Delim:
    ch: str
    pos: int  # index into the token list
    count: int
    can_open: bool
    can_close: bool
    active: bool = True


def _flanking(prev: str, nxt: str) -> tuple[bool, bool]:
    """(left-flanking, right-flanking) of a delimiter run between ``prev`` and ``nxt``
    ("" at the text's ends, which count as white space)."""
    ws_next = not nxt or nxt.isspace()
    ws_prev = not prev or prev.isspace()
    p_next = nxt in _PUNCT or (nxt and not nxt.isalnum() and not nxt.isspace())
    p_prev = prev in _PUNCT or (prev and not prev.isalnum() and not prev.isspace())
    left = not ws_next and (not p_next or ws_prev or p_prev)
    right = not ws_prev and (not p_prev or ws_next or p_next)
    return left, right


def _inline(chars: list[tuple[str, int]], *, partial: bool = False) -> list[Run]:
    """Inline Markdown of a block's characters -> runs (see the module doc)."""
    # tokens: [char, raw, style, kind] with kind "t" (text) or "d" (a delimiter char, may vanish)
    toks: list[list] = []
    delims: list[_Delim] = []
    n = len(chars)
    i = 0
    link_stack: list[int] = []  # token indices of "[" openers
    while i < n:
        c, r = chars[i]
        if c == "\\" and i + 1 < n and chars[i + 1][0] in _PUNCT:
            toks.append([chars[i + 1][0], chars[i + 1][1], 0, "t"])
            i += 2
            continue
        if c == "`":
            j = i
            while j < n and chars[j][0] == "`":
                j += 1
            ticks = j - i
            k = j
            close = -1
            while k < n:
                if chars[k][0] == "`":
                    e = k
                    while e < n and chars[e][0] == "`":
                        e += 1
                    if e - k == ticks:
                        close = k
                        break
                    k = e
                else:
                    k += 1
            if close < 0:
                if partial:  # an opening backtick run with no closer yet: hidden, the rest plain
                    i = j
                    continue
                for q in range(i, j):
                    toks.append([chars[q][0], chars[q][1], 0, "t"])
                i = j
                continue
            inner = chars[j:close]
            inner = [(" " if ch in "\r\n" else ch, rr) for ch, rr in inner]
            if len(inner) >= 2 and inner[0][0] == " " and inner[-1][0] == " " and any(ch != " " for ch, _ in inner):
                inner = inner[1:-1]
            for ch, rr in inner:
                toks.append([ch, rr, CODE, "t"])
            i = close + ticks
            continue
        if c == "<":
            m = re.match(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*|[^\s<>@]+@[^\s<>@]+\.[^\s<>@]+)>",
                         "".join(ch for ch, _ in chars[i:i + 300]))
            if m:
                for q in range(i + 1, i + m.end() - 1):
                    toks.append([chars[q][0], chars[q][1], LINK, "t"])
                i += m.end()
                continue
        if c in "*_~":
            j = i
            while j < n and chars[j][0] == c:
                j += 1
            count = j - i
            if c == "~" and count != 2:
                for q in range(i, j):
                    toks.append([chars[q][0], chars[q][1], 0, "t"])
                i = j
                continue
            prev = chars[i - 1][0] if i > 0 else ""
            nxt = chars[j][0] if j < n else ""
            left, right = _flanking(prev, nxt)
            if c == "_":
                can_open = left and (not right or (prev in _PUNCT))
                can_close = right and (not left or (nxt in _PUNCT))
            else:
                can_open, can_close = left, right
            delims.append(_Delim(c, len(toks), count, can_open, can_close))
            for q in range(i, j):
                toks.append([chars[q][0], chars[q][1], 0, "d"])
            i = j
            continue
        if c == "!" and i + 1 < n and chars[i + 1][0] == "[":
            link_stack.append(len(toks))
            toks.append(["!", r, 0, "image"])
            toks.append(["[", chars[i + 1][1], 0, "open"])
            i += 2
            continue
        if c == "[":
            link_stack.append(len(toks))
            toks.append(["[", r, 0, "open"])
            i += 1
            continue
        if c == "]" and link_stack:
            opener = link_stack.pop()
            # "](destination)" (the destination may still be streaming in)
            if i + 1 < n and chars[i + 1][0] == "(":
                depth, k = 0, i + 1
                while k < n:
                    ch = chars[k][0]
                    if ch == "(":
                        depth += 1
                    elif ch == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    elif ch in " \t" and depth == 1 and not re.match(r'\s+["\'(]', "".join(
                            x for x, _ in chars[k:k + 3])):
                        break
                    k += 1
                ended = k < n and chars[k][0] == ")"
                if ended or (partial and k >= n):
                    for t in toks[opener:]:
                        if t[3] in ("t", "d"):
                            t[2] |= LINK
                    for t in toks[opener:opener + 2]:
                        if t[3] in ("open", "image"):
                            t[3] = "x"  # hidden
                    i = k + 1
                    continue
            if partial and i + 1 >= n:  # "]" at the very end: the "(" may come next
                for t in toks[opener:opener + 2]:
                    if t[3] in ("open", "image"):
                        t[3] = "x"
                i += 1
                continue
            toks.append(["]", r, 0, "t"])
            i += 1
            continue
        toks.append([c, r, 0, "t"])
        i += 1
    # an unclosed "[" (or "![") shows as written, or is hidden while its link may still come
    for t in toks:
        if t[3] in ("open", "image"):
            t[3] = "x" if partial else "t"

    _emphasis(toks, delims, partial)

    runs: list[Run] = []
    for ch, rr, st, kind in toks:
        if kind not in ("t", "d"):
            continue
        if runs and runs[-1].style == st:
            runs[-1].text += ch
            runs[-1].raw.append(rr)
        else:
            runs.append(Run(ch, [rr], st))
    return runs


def _emphasis(toks: list[list], delims: list[_Delim], partial: bool) -> None:
    """CommonMark's delimiter matching (rule of 3 included), applied to the tokens: matched
    delimiter characters vanish and style what lies between; unmatched ones stay text (or,
    ``partial``, unmatched openers vanish)."""
    remaining = {id(d): d.count for d in delims}
    used_close = {id(d): 0 for d in delims}
    for ci, closer in enumerate(delims):
        if not closer.can_close:
            continue
        at_end = partial and closer.pos + closer.count == len(toks)
        while remaining[id(closer)] > 0:
            found = None
            for oi in range(ci - 1, -1, -1):
                op = delims[oi]
                if op.ch != closer.ch or not op.can_open or remaining[id(op)] <= 0 or not op.active:
                    continue
                if (op.can_close or closer.can_open) and (op.count + closer.count) % 3 == 0 \
                        and not (op.count % 3 == 0 and closer.count % 3 == 0) and op.ch != "~":
                    continue
                found = oi
                break
            if found is None:
                break
            op = delims[found]
            if at_end and remaining[id(closer)] < remaining[id(op)]:
                break  # the run ends the streamed text and may still grow ("*" before "**")
            if op.ch == "~":
                use = 2 if remaining[id(op)] >= 2 and remaining[id(closer)] >= 2 else 0
                if not use:
                    break
                style = STRIKE
            else:
                use = 2 if remaining[id(op)] >= 2 and remaining[id(closer)] >= 2 else 1
                style = BOLD if use == 2 else ITALIC
            # the opener's innermost `use` characters and the closer's first `use` vanish
            o_end = op.pos + remaining[id(op)]
            c_start = closer.pos + used_close[id(closer)]
            for t in toks[o_end - use:o_end]:
                t[3] = "x"
            for t in toks[c_start:c_start + use]:
                t[3] = "x"
            for t in toks[o_end:c_start]:
                t[2] |= style
            remaining[id(op)] -= use
            remaining[id(closer)] -= use
            used_close[id(closer)] += use
            for d in delims[found + 1:ci]:  # delimiters between them can no longer match
                d.active = False
    for d in delims:
        if remaining[id(d)] <= 0:
            continue
        kind = "x" if partial and d.can_open and d.active else "t"
        if partial and d.pos + d.count == len(toks):
            kind = "x"  # a run at the very end may still grow into a closer or an opener
        for t in toks[d.pos:d.pos + d.count]:
            if t[3] == "d":
                t[3] = kind

