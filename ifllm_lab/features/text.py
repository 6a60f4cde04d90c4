"""Text features of one answer: its length, its Markdown formatting, its readability and a
few style cues — the honest text-only baseline (IFLLM found length and formatting predict
preference). Plain Python; a small line-based Markdown reader, no Markdown library.

Structure is counted on the raw text; words, sentences and syllables on the *prose*: the
visible text with the Markdown syntax stripped, outside fenced code blocks, without bare
URLs (inline code stays, as words). ``\\r\\n`` and ``\\r`` count as ``\\n``, tabs as 4 spaces.

Features (unit):

- ``text_chars`` (chars): characters of the raw text, syntax included.
- ``text_words`` (count): prose words: runs of word characters (letters, digits, ``_``),
  joined by an inner ``'``, ``’``, ``-`` or ``.`` (``don't``, ``single-player``, ``e.g``,
  ``3.5``, ``stdio.h``) or by ``,`` before three digits (``1,000``).
- ``text_sentences`` (count): prose sentences: every block (paragraph, heading, list
  item, table row) with words is at least one; inside it a run of ``. ! ? …`` (closing
  quotes/brackets allowed) followed by a space or the end ends one, except after
  e.g./i.e./Mr./Mrs./Ms./Dr./Prof./Sr./Jr./St./vs./cf./approx./fig./U.S.
- ``text_paragraphs`` (count): content blocks: paragraphs, headings, list items, tables,
  fenced code blocks. Blank lines and structure separate them; two text lines in a row are
  one paragraph only when the first is soft-wrapped (ends neither a sentence — ``. ! ? : ;
  …`` before closing quotes/brackets/emphasis — nor in a hard break of two spaces or
  ``\\``), because LLM answers do not hard-wrap and the IFLLM release lost its blank lines.
  An indented text line after a list item continues the item; an unindented one starts a
  new paragraph (the author's intent, not CommonMark's lazy continuation).
- ``text_lines`` (count): non-blank raw lines (code, fences and rules included).
- ``text_bullets`` (count): list items marked ``-``, ``*``, ``+`` or ``•`` plus a space, any
  indentation (nesting).
- ``text_numbered`` (count): list items marked ``1.`` or ``1)`` (up to 9 digits) plus a space.
- ``text_headings`` (count): ATX headings: up to 6 ``#`` then a space or the end; also the
  LLM quirks ``##Heading`` (2+ ``#`` glued to text) and ``#**Heading**`` (glued emphasis).
  A single ``#`` glued to a word (``#include``, ``#1``) is text. Setext headings are not
  read: a ``---`` line is always a rule (the release's answers put it right under text).
- ``text_bold`` (count): ``**x**`` / ``__x__`` spans (``***x***`` is bold and italic).
- ``text_italic`` (count): ``*x*`` / ``_x_`` spans (delimiters not next to a space inside;
  ``_`` not inside a word, so ``snake_case`` is not italic).
- ``text_code_blocks`` (count): fenced blocks (3+ backticks or tildes, any indentation; an
  unclosed fence runs to the end). Nothing inside is structure or prose.
- ``text_inline_code`` (count): `` `code` `` spans.
- ``text_links`` (count): ``[text](url)``, ``<url>`` autolinks and bare ``http(s)://`` /
  ``www.`` URLs (images ``![alt](url)`` are not links).
- ``text_table_rows`` (count): rows of pipe tables (a row with ``|`` over a ``---|---``
  delimiter row), header included, delimiter row not.
- ``text_markup_share`` (share): part of the raw text's non-whitespace characters that is
  Markdown syntax (markers, ``#``, emphasis and code delimiters, fences and info strings,
  link brackets and targets, table pipes and delimiter rows, rules, ``>``, escapes), not
  visible content. Code inside fences is content; so is a ``•`` (it is shown as typed) and
  an unmatched ``**``.
- ``text_words_per_sentence`` (words): words / sentences.
- ``text_chars_per_word`` (chars): mean characters of a word.
- ``text_flesch`` (score): Flesch reading ease, 206.835 - 1.015 * words/sentence - 84.6 *
  syllables/word.
- ``text_type_token_ratio`` (share): distinct lowercase words / words over the first
  :data:`TTR_WORDS` words, so length beyond that does not drive it.
- ``text_questions`` / ``text_exclamations`` (count): ``?`` / ``!`` characters in the prose.
- ``text_first_person`` (count): prose words ``I`` (capital only: a lowercase ``i`` is
  mostly an index), ``me``, ``my``, ``we``, ``our`` (any case), and the contractions of I and
  we (``I'm``, ``I've``, ``we're``, ...).
- ``text_hedges`` (count): prose words of :data:`HEDGES`, any case (``Mayday`` and
  ``often-cited`` are not hedges).
- ``text_refusal`` (0/1): 1 when the prose opens with a phrase of :data:`REFUSALS` (any
  case, ``’`` read as ``'``).

Syllables (for Flesch), per word: a word without letters (``2023``) is 1; otherwise its
``-``/``.`` parts are summed, each lowercased with apostrophes and non-letters dropped
(accents folded). A part of 1-3 letters is 1. Else one ending is dropped: consonant +
``le(s)`` is kept (``ta-ble``); ``es`` is kept after ``c g h s x z`` (``pla-ces``,
``box-es``) and dropped otherwise (``makes``, ``tries``); ``ed`` is kept after ``t``/``d``
(``want-ed``) and dropped otherwise (``jumped``); a final ``e`` is dropped (``make``);
then a leading ``y`` is dropped (a consonant), and the syllables are the groups of
consecutive vowels ``a e i o u y``, at least 1.

NaN: ``text_words_per_sentence``, ``text_chars_per_word``, ``text_flesch`` and
``text_type_token_ratio`` when the prose has no word (empty text, only code, only
syntax); ``text_markup_share`` when the text has no non-whitespace character. Every
count of an empty text is 0.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from functools import lru_cache

from .registry import feature

__all__ = ["HEDGES", "REFUSALS", "TTR_WORDS", "syllables", "text_features"]

TTR_WORDS = 200  #: the type-token ratio is taken over this many first words

#: hedge words (whole words, any case)
HEDGES = ("may", "might", "could", "perhaps", "possibly", "likely", "generally", "often", "typically",
          "usually")
#: refusal openings (the prose's start, any case, ``’`` read as ``'``; a phrase ends at a word boundary)
REFUSALS = ("i'm sorry", "i am sorry", "sorry,", "i apologize", "i apologise", "i can't", "i cannot",
            "i can not", "i won't", "i will not", "i'm unable", "i am unable", "i'm not able", "i am not able",
            "as an ai", "as a language model", "as an artificial intelligence")

_G = "text"
CHARS = feature("text_chars", _G, "chars", "characters of the raw answer, Markdown syntax included")
WORDS = feature("text_words", _G, "count", "words of the prose (Markdown syntax, code blocks and URLs left out)")
SENTENCES = feature("text_sentences", _G, "count", "sentences of the prose (each heading, list item, table row "
                    "and paragraph with words is at least one)")
PARAGRAPHS = feature("text_paragraphs", _G, "count", "content blocks: paragraphs, headings, list items, tables, "
                     "code blocks")
LINES = feature("text_lines", _G, "count", "non-blank lines of the raw answer")
BULLETS = feature("text_bullets", _G, "count", "bullet items (-, *, +, • and a space), any nesting")
NUMBERED = feature("text_numbered", _G, "count", "numbered items (1. or 1) and a space), any nesting")
HEADINGS = feature("text_headings", _G, "count", "# headings (also ##Heading and #**Heading**)")
BOLD = feature("text_bold", _G, "count", "bold spans (**x** or __x__)")
ITALIC = feature("text_italic", _G, "count", "italic spans (*x* or _x_)")
CODE_BLOCKS = feature("text_code_blocks", _G, "count", "fenced code blocks")
INLINE_CODE = feature("text_inline_code", _G, "count", "inline code spans")
LINKS = feature("text_links", _G, "count", "links: [text](url), <url> and bare URLs")
TABLE_ROWS = feature("text_table_rows", _G, "count", "rows of pipe tables, header included, delimiter row not")
MARKUP_SHARE = feature("text_markup_share", _G, "share", "part of the non-whitespace characters that is "
                       "Markdown syntax rather than content")
WORDS_PER_SENTENCE = feature("text_words_per_sentence", _G, "words", "mean words per sentence (NaN without words)")
CHARS_PER_WORD = feature("text_chars_per_word", _G, "chars", "mean characters per word (NaN without words)")
FLESCH = feature("text_flesch", _G, "score", "Flesch reading ease of the prose (higher: easier; NaN without "
                 "words)")
TTR = feature("text_type_token_ratio", _G, "share", f"distinct lowercase words / words over the first {TTR_WORDS} "
              "words (NaN without words)")
QUESTIONS = feature("text_questions", _G, "count", "question marks in the prose")
EXCLAMATIONS = feature("text_exclamations", _G, "count", "exclamation marks in the prose")
FIRST_PERSON = feature("text_first_person", _G, "count", "first-person words: I, me, my, we, our")
HEDGE_WORDS = feature("text_hedges", _G, "count", "hedge words: " + ", ".join(HEDGES))
REFUSAL = feature("text_refusal", _G, "0/1", "1 when the answer opens with a refusal (I'm sorry, I can't, "
                  "As an AI, ...)")

# -- block level ------------------------------------------------------------------------------
_QUOTE = re.compile(r"^(?:\s*>[ ]?)+")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
_RULE = re.compile(r"^\s*([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_HEADING = re.compile(r"^\s*(#{1,6})(?:[ \t]+|$|(?=[*_])|(?<=##)(?=[^#\s]))(.*?)(?:[ \t]+#+)?[ \t]*$")
_BULLET = re.compile(r"^(\s*)[-*+•][ \t]+(\S.*)$")
_NUMBERED = re.compile(r"^(\s*)\d{1,9}[.)][ \t]+(\S.*)$")
_DELIMITER = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_ENDS_SENTENCE = re.compile(r"[.!?:;…][*_\"'’”)\]]*$")

# -- inline -----------------------------------------------------------------------------------
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto):[^\s<>]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>")
_TARGET = r"\(\s*((?:[^()\s]|\([^()\s]*\))*)(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
_IMAGE = re.compile(r"!\[([^\[\]]*)\]" + _TARGET)
_LINK = re.compile(r"\[([^\[\]]+)\]" + _TARGET)
_BARE_URL = re.compile(r"(?<![\w/@])(?:https?://|www\.)[^\s<>\[\]()\"]*[^\s<>\[\]()\".,;:!?'’”*_]")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD = (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"),
         re.compile(r"(?<![^\W_])__(?=\S)(.+?)(?<=\S)__(?![^\W_])"))
_ITALIC = (re.compile(r"(?<!\*)\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?!\*)"),
           re.compile(r"(?<![^\W_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![^\W_])"))
_PH0 = 0xF0000  # placeholders: one private-use character each
_PLACEHOLDER = re.compile("[\U000F0000-\U000FFFFD]")

# -- prose ------------------------------------------------------------------------------------
_WORD = re.compile(r"\w+(?:['’.\-]\w+|,\d{3}(?!\d))*")
_HAS_WORD = re.compile(r"\w")
_SENTENCE_END = re.compile(r"[.!?…]+[\"'’”)\]]*(?=\s|$)")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "approx",
                            "fig", "u.s"})
_FIRST_PERSON = ("me", "my", "we", "our")
_CONTRACTIONS_I = ("I'", "I’")
_CONTRACTIONS_WE = ("we'", "we’")
_REFUSAL = re.compile(r"(?:" + "|".join(re.escape(p) for p in REFUSALS) + r")(?!\w)", re.IGNORECASE)


def _nonspace(s: str) -> int:
    return len("".join(s.split()))


class _Reader:
    """One pass over an answer: structure counts, visible content and prose units."""

    def __init__(self) -> None:
        self.n = dict.fromkeys(("bullets", "numbered", "headings", "bold", "italic", "code_blocks", "inline_code",
                                "links", "table_rows", "blocks"), 0)
        self.visible = 0  # non-whitespace characters of visible content
        self.units: list[str] = []  # prose of each block (the sentence units)
        self._open: list[str] | None = None  # raw lines of the open paragraph or list item
        self._open_item = False

    # -- blocks --
    def read(self, text: str) -> None:
        lines = text.split("\n")
        i, n = 0, len(lines)
        while i < n:
            line = lines[i]
            if "\t" in line:
                line = line.expandtabs(4)
            if not line.strip():
                self._close()
                i += 1
                continue
            q = _QUOTE.match(line)
            if q:
                line = line[q.end():]
                if not line.strip():
                    self._close()
                    i += 1
                    continue
            f = _FENCE.match(line)
            if f and not (f.group(1)[0] == "`" and "`" in f.group(2)):
                self._close()
                fence = f.group(1)
                close = re.compile(r"^\s*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
                i += 1
                while i < n and not close.match(lines[i]):
                    self.visible += _nonspace(lines[i])
                    i += 1
                i += 1  # the closing fence (or past the end)
                self.n["code_blocks"] += 1
                self.n["blocks"] += 1
                continue
            i += 1
            if _RULE.match(line):
                self._close()
                continue
            h = _HEADING.match(line)
            if h:
                self._close()
                self.n["headings"] += 1
                self.n["blocks"] += 1
                self.units.append(self._inline(h.group(2)))
                continue
            if "|" in line and i < n and "|" in lines[i] and _DELIMITER.match(lines[i]):
                self._close()
                self.n["blocks"] += 1
                i += 1  # the delimiter row: syntax only
                self._row(line)
                while i < n and "|" in lines[i] and lines[i].strip():
                    self._row(lines[i])
                    i += 1
                continue
            b = _BULLET.match(line)
            m = b or _NUMBERED.match(line)
            if m:
                self._close()
                self.n["bullets" if b else "numbered"] += 1
                self.n["blocks"] += 1
                self._open, self._open_item = [m.group(2)], True
                continue
            if self._open is not None and (
                    (self._open_item and line[:1].isspace())
                    or (not self._open_item and self._soft_wrapped(self._open[-1]))):
                self._open.append(line)
                continue
            self._close()
            self.n["blocks"] += 1
            self._open, self._open_item = [line], False
        self._close()

    @staticmethod
    def _soft_wrapped(raw: str) -> bool:
        if raw.endswith(("  ", "\\")):
            return False
        return not _ENDS_SENTENCE.search(raw.rstrip())

    def _close(self) -> None:
        if self._open is not None:
            self.units.append(self._inline("\n".join(self._open)))
            self._open = None

    def _row(self, line: str) -> None:
        s = line.strip().removeprefix("|")
        if s.endswith("|") and not s.endswith("\\|"):
            s = s[:-1]
        self.n["table_rows"] += 1
        self.units.append(" ".join(self._inline(c) for c in _CELL_SPLIT.split(s)))

    # -- inline --
    def _inline(self, s: str) -> str:
        """Count the inline syntax of ``s``; add its visible characters; return its prose."""
        store: list[tuple[str, str]] = []  # (visible, prose) of each placeholder

        def hold(visible: str, prose: str) -> str:
            store.append((visible, prose))
            return chr(_PH0 + len(store) - 1)

        n = self.n
        if "`" in s:
            s, k = _CODE_SPAN.subn(lambda m: hold(m.group(2), m.group(2)), s)
            n["inline_code"] += k
        if "\\" in s:
            s = _ESCAPE.sub(lambda m: hold(m.group(1), m.group(1)), s)
        if "<" in s:
            s, k = _AUTOLINK.subn(lambda m: hold(m.group(1), " "), s)
            n["links"] += k
        if "](" in s:
            s = _IMAGE.sub(lambda m: m.group(1), s)

            def link(m: re.Match) -> str:
                t = m.group(1)
                u = _BARE_URL.fullmatch(t)
                return hold(t, " ") if u else t

            s, k = _LINK.subn(link, s)
            n["links"] += k
        if "http" in s or "www." in s:
            s, k = _BARE_URL.subn(lambda m: hold(m.group(0), " "), s)
            n["links"] += k
        if "~~" in s:
            s = _STRIKE.sub(r"\1", s)
        if "*" in s or "_" in s:
            for rx in _BOLD:
                s, k = rx.subn(r"\1", s)
                n["bold"] += k
            for rx in _ITALIC:
                s, k = rx.subn(r"\1", s)
                n["italic"] += k
        if store:
            visible = _PLACEHOLDER.sub(lambda m: store[ord(m.group()) - _PH0][0], s)
            prose = _PLACEHOLDER.sub(lambda m: store[ord(m.group()) - _PH0][1], s)
        else:
            visible = prose = s
        self.visible += _nonspace(visible)
        return prose


# -- syllables ---------------------------------------------------------------------------------
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
_PART_SPLIT = re.compile(r"[-.]")
_NON_LETTER = re.compile(r"[^a-z]")
_CONSONANT_LE = re.compile(r"[^aeiouy]les?$")


def _part_syllables(w: str) -> int:
    if len(w) <= 3:
        return 1
    if _CONSONANT_LE.search(w):
        pass
    elif w.endswith("es"):
        if w[-3] not in "cghsxz":
            w = w[:-2]
    elif w.endswith("ed"):
        if w[-3] not in "td":
            w = w[:-2]
    elif w.endswith("e"):
        w = w[:-1]
    w = w.removeprefix("y")  # a leading y is a consonant
    return max(1, len(_VOWEL_GROUP.findall(w)))


@lru_cache(maxsize=65536)
def syllables(word: str) -> int:
    """Syllables of one word by the heuristic in the module's docstring (at least 1)."""
    w = word.lower().replace("'", "").replace("’", "")
    if not w.isascii():
        w = unicodedata.normalize("NFKD", w).encode("ascii", "ignore").decode("ascii")
    total = 0
    for part in _PART_SPLIT.split(w):
        part = _NON_LETTER.sub("", part)
        if part:
            total += _part_syllables(part)
    return max(1, total)


def _sentences(unit: str) -> int:
    count, start = 0, 0
    for m in _SENTENCE_END.finditer(unit):
        if m.group().startswith(".") and not m.group().startswith(".."):
            before = unit[max(0, m.start() - 8):m.start()].rsplit(None, 1)
            if before and before[-1].lstrip("(\"'‘“").lower() in _ABBREVIATIONS:
                continue
        if _HAS_WORD.search(unit, start, m.start()):
            count += 1
        start = m.end()
    if _HAS_WORD.search(unit, start):
        count += 1
    return count


def text_features(text: str) -> dict[str, float]:
    """The text features of one answer (see the module's docstring), keyed by feature name."""
    if not isinstance(text, str):
        raise TypeError(f"text_features wants a str, not {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _PLACEHOLDER.search(text):  # the reader's own placeholders: not in answers, but never trust that
        text = _PLACEHOLDER.sub("\ufffd", text)
    r = _Reader()
    r.read(text)
    n = r.n
    prose = "\n".join(r.units)
    words = _WORD.findall(prose)
    n_words = len(words)
    n_sentences = sum(_sentences(u) for u in r.units)
    raw_nonspace = _nonspace(text)
    nan = math.nan
    if n_words:
        n_syllables = sum(map(syllables, words))
        wps = n_words / n_sentences
        cpw = sum(map(len, words)) / n_words
        flesch = 206.835 - 1.015 * wps - 84.6 * n_syllables / n_words
        head = words[:TTR_WORDS]
        ttr = len(set(map(str.lower, head))) / len(head)
    else:
        wps = cpw = flesch = ttr = nan
    forms = Counter(words)
    lower = Counter(map(str.lower, words))
    first_person = (forms["I"] + sum(k for w, k in forms.items() if w.startswith(_CONTRACTIONS_I))
                    + sum(lower[w] for w in _FIRST_PERSON)
                    + sum(k for w, k in lower.items() if w.startswith(_CONTRACTIONS_WE)))
    opening = prose.lstrip().replace("’", "'")
    return {
        CHARS: float(len(text)),
        WORDS: float(n_words),
        SENTENCES: float(n_sentences),
        PARAGRAPHS: float(n["blocks"]),
        LINES: float(sum(1 for line in text.split("\n") if line.strip())),
        BULLETS: float(n["bullets"]),
        NUMBERED: float(n["numbered"]),
        HEADINGS: float(n["headings"]),
        BOLD: float(n["bold"]),
        ITALIC: float(n["italic"]),
        CODE_BLOCKS: float(n["code_blocks"]),
        INLINE_CODE: float(n["inline_code"]),
        LINKS: float(n["links"]),
        TABLE_ROWS: float(n["table_rows"]),
        MARKUP_SHARE: (raw_nonspace - r.visible) / raw_nonspace if raw_nonspace else nan,
        WORDS_PER_SENTENCE: wps,
        CHARS_PER_WORD: cpw,
        FLESCH: flesch,
        TTR: ttr,
        QUESTIONS: float(prose.count("?")),
        EXCLAMATIONS: float(prose.count("!")),
        FIRST_PERSON: float(first_person),
        HEDGE_WORDS: float(sum(lower[w] for w in HEDGES)),
        REFUSAL: 1.0 if _REFUSAL.match(opening) else 0.0,
    }
