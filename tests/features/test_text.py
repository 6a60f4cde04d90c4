"""Text features of an answer: hand-counted Markdown samples, the syllable heuristic and
Flesch by hand, the type-token ratio's length invariance, empty text, refusals, and the
invariants over real answers of the IFLLM release."""
from __future__ import annotations

import csv
import math
import re

import pytest

from ifllm_lab.features.registry import FEATURES, features_of
from ifllm_lab.features.text import (
    HEDGES,
    REFUSALS,
    TTR_WORDS,
    syllables,
    text_features,
)

RATIOS = {"text_words_per_sentence", "text_chars_per_word", "text_flesch", "text_type_token_ratio"}
NAN_WHEN_EMPTY = RATIOS | {"text_markup_share"}


def flesch(words: int, sentences: int, syllables_: int) -> float:
    return 206.835 - 1.015 * words / sentences - 84.6 * syllables_ / words


# Every key of this sample is counted by hand below.
SAMPLE = """# Title

Intro with **bold** and *italic* words.

- first item
  * nested star
    + deeper plus
- second item

1. one
2) two

###**Glued heading**
## Spaced heading ##
```python
# not a heading
- not a bullet
```
| a | b |
|---|---|
| 1 | 2 |
| 3 | 4 |

See [the docs](https://example.com/x) or `code`."""


def test_every_key_of_a_hand_counted_sample():
    f = text_features(SAMPLE)
    # prose units (sentences): Title | Intro with bold and italic words. | 4 bullets | 2 numbered
    # | 2 headings | 3 table rows | See the docs or code.  -> 14, one sentence each
    # words: 1 + 6 + 8 + 2 + 4 + 6 + 5 = 32 (the URL is not prose, inline code is)
    # word characters: 5 + 27 + 39 + 6 + 25 + 6 + 16 = 124
    # syllables: ti-tle 2; in-tro 2 with bold and 1 i-ta-lic 3 words 1 -> 9; first 1 i-tem 2 nest-ed 2 star 1
    #   dee-per 2 plus 1 se-cond 2 i-tem 2 -> 13; one two -> 2; glued 1 hea-ding 2 spaced 1 hea-ding 2 -> 6;
    #   a b 1 2 3 4 -> 6; see the docs or code -> 5; total 2 + 9 + 13 + 2 + 6 + 6 + 5 = 43
    # distinct lowercase words: 32 less a second "item" and a second "heading" -> 30
    # non-whitespace characters: 232; syntax among them: # 1, ** ** * * 6, four bullet markers 4,
    #   "1." "2)" 4, ### ** ** 7, ## ## 4, ```python 9, ``` 3, table pipes 3 + 3 + 3 and delimiter row 9,
    #   [ ]( https://example.com/x ) 25, backticks 2 -> 83
    assert f == {
        "text_chars": len(SAMPLE),
        "text_words": 32,
        "text_sentences": 14,
        "text_paragraphs": 13,  # 1 heading, 1 paragraph, 6 items, 2 headings, code, table, paragraph
        "text_lines": 19,
        "text_bullets": 4,
        "text_numbered": 2,
        "text_headings": 3,
        "text_bold": 2,
        "text_italic": 1,
        "text_code_blocks": 1,
        "text_inline_code": 1,
        "text_links": 1,
        "text_table_rows": 3,
        "text_markup_share": pytest.approx(83 / 232),
        "text_words_per_sentence": pytest.approx(32 / 14),
        "text_chars_per_word": pytest.approx(124 / 32),
        "text_flesch": pytest.approx(flesch(32, 14, 43)),
        "text_type_token_ratio": pytest.approx(30 / 32),
        "text_questions": 0,
        "text_exclamations": 0,
        "text_first_person": 0,
        "text_hedges": 0,
        "text_refusal": 0,
    }


def test_all_keys_are_registered_text_response_features():
    f = text_features("Hello.")
    assert list(f) == [x.name for x in features_of(level="response", group="text")]
    for name in f:
        spec = FEATURES[name]
        assert (spec.group, spec.level, spec.needs) == ("text", "response", ())
        assert spec.unit and spec.meaning
    assert all(isinstance(v, float) for v in f.values())


def test_bullets_and_numbers_at_two_levels():
    text = ("Intro line\n- dash\n  * star nested\n  + plus nested\n* star\n    - deep dash\n+ plus\n"
            "\t+ tab nested\n• dot\n1. one\n   1) nested one\n2) two\n10. ten\n"
            "-not a bullet\n*not a bullet either*\n1.5 million is not an item\n- - -\n")
    f = text_features(text)
    assert f["text_bullets"] == 8  # dash, star nested, plus nested, star, deep dash, plus, tab nested, dot
    assert f["text_numbered"] == 4
    assert f["text_italic"] == 1  # *not a bullet either*
    # intro, 8 + 4 items, the three "not" lines as one soft-wrapped paragraph; "- - -" is a rule
    assert f["text_paragraphs"] == 1 + 8 + 4 + 1


def test_headings_with_and_without_space():
    text = ("# One\n##Two\n###**Three**\n#### **Four** ####\n  ## Five\n#\n"
            "#hashtag\n#include <stdio.h>\n#1 fan\n####### seven hashes\n")
    f = text_features(text)
    assert f["text_headings"] == 6  # a lone "#" is an (empty) heading
    assert f["text_bold"] == 2
    # "#hashtag" ... "####### seven hashes": text, one soft-wrapped paragraph
    assert f["text_paragraphs"] == 6 + 1
    # One Two Three Four Five | hashtag include stdio.h 1 fan seven hashes
    assert f["text_words"] == 5 + 7
    assert f["text_sentences"] == 5 + 1  # the empty heading has no sentence


def test_bold_and_italic_are_told_apart():
    def bi(t: str) -> tuple[float, float]:
        f = text_features(t)
        return f["text_bold"], f["text_italic"]

    assert bi("**a** and *b*") == (1, 1)
    assert bi("*a* and **b** and **c**") == (2, 1)
    assert bi("***both***") == (1, 1)
    assert bi("**bold with *italic* inside**") == (1, 1)
    assert bi("__under__ and _score_") == (1, 1)
    assert bi("snake_case_name and 2 * 3 * 4 and a ** b") == (0, 0)
    assert bi("**unclosed and *it*") == (0, 1)
    assert bi(r"\*escaped\* and \*\*escaped\*\*") == (0, 0)
    assert bi("- **Item:** text *x*\n* *star item*") == (1, 2)


def test_code_fences_hide_their_content():
    text = ("Before.\n```markdown\n# not a heading\n- not a bullet\n1. not numbered\n| a | b |\n|---|---|\n"
            "**not bold** [not](http://a.link) why? yes!\n```\n~~~\n* also code\n~~~\n   ```\n   # indented fence\n"
            "   ```\nAfter `inline` and ``double `tick` span``.\n")
    f = text_features(text)
    assert (f["text_code_blocks"], f["text_inline_code"]) == (3, 2)
    for k in ("text_headings", "text_bullets", "text_numbered", "text_table_rows", "text_bold", "text_links",
              "text_questions", "text_exclamations"):
        assert f[k] == 0, k
    assert f["text_words"] == 1 + 6  # Before; After inline and double tick span
    assert f["text_paragraphs"] == 5
    assert f["text_lines"] == len([line for line in text.split("\n") if line.strip()])
    # an unclosed fence runs to the end
    f = text_features("Text.\n```\n- a\n# b")
    assert (f["text_code_blocks"], f["text_bullets"], f["text_headings"], f["text_words"]) == (1, 0, 0, 1)
    # only code: no prose, NaN ratios, a finite markup share (6 of 10 characters are fences)
    f = text_features("```\ncode\n```")
    assert f["text_words"] == 0 and all(math.isnan(f[k]) for k in RATIOS)
    assert f["text_markup_share"] == pytest.approx(6 / 10)


def test_a_table_with_three_rows():
    text = ("Compare:\n| Name | Age |\n|:-----|----:|\n| **Ann** | 30 |\n| Bob | 41 |\nAfter the table.\n"
            "a | b\n---\nnot a table (no pipe in the rule)\n")
    f = text_features(text)
    assert f["text_table_rows"] == 3
    assert f["text_bold"] == 1
    # Compare | table | After the table. | "a / b" + rule + text: a rule ends a paragraph
    assert f["text_paragraphs"] == 5
    assert f["text_sentences"] == 1 + 3 + 1 + 1 + 1


def test_links():
    text = ("See [the docs](https://x.org/a_(b)) and <https://z.org/p> or www.w3.org/TR. "
            "Also https://a.b/c_d_e, ![an image](p.png) and [https://same.url](https://same.url).")
    f = text_features(text)
    assert f["text_links"] == 5
    assert f["text_italic"] == 0  # underscores in URLs are not emphasis
    # See the docs and or . Also , an image and .  -> URLs are not prose words
    assert f["text_words"] == 9
    assert f["text_sentences"] == 2


def test_paragraphs_sentences_and_soft_wraps():
    f = text_features("A line that wraps\nhere.\n\nFirst.\nSecond line  \nthird")
    assert f["text_paragraphs"] == 1 + 2 + 1  # soft wrap joins; a sentence end or a hard break splits
    f = text_features("- item one\n  continued here\nNew paragraph.")
    assert (f["text_bullets"], f["text_paragraphs"], f["text_sentences"]) == (1, 2, 2)
    f = text_features("Dr. Smith arrived, e.g. at 3.5 pm. Then he left! Why? Wait... (Done.) Fine")
    assert f["text_sentences"] == 6
    assert (f["text_questions"], f["text_exclamations"]) == (1, 1)
    assert f["text_words"] == 14  # Dr Smith arrived e.g at 3.5 pm Then he left Why Wait Done Fine
    assert text_features("a\r\nb.\r\n")["text_chars"] == text_features("a\nb.\n")["text_chars"] == 5


def test_syllable_heuristic():
    cases = {"the": 1, "cat": 1, "table": 2, "tables": 2, "little": 2, "people": 2, "make": 1, "makes": 1,
             "places": 2, "boxes": 2, "wishes": 2, "tries": 1, "wanted": 2, "needed": 2, "jumped": 1,
             "played": 1, "happy": 2, "year": 1, "yellow": 2, "reading": 2, "education": 4, "2023": 1,
             "don't": 1, "I'm": 1, "Brasília": 3, "well-known": 2}
    assert {w: syllables(w) for w in cases} == cases


def test_flesch_by_hand():
    # The(1) lit-tle(2) ta-ble(2) makes(1) peo-ple(2) hap-py(2): 6 words, 1 sentence, 10 syllables
    f = text_features("The little table makes people happy.")
    assert (f["text_words"], f["text_sentences"]) == (6, 1)
    assert f["text_flesch"] == pytest.approx(206.835 - 1.015 * 6 / 1 - 84.6 * 10 / 6)
    assert f["text_flesch"] == pytest.approx(59.745)
    # We(1) want-ed(2) it(1). They(1) jumped(1).: 5 words, 2 sentences, 6 syllables
    f = text_features("**We** wanted it. They *jumped*.")
    assert f["text_flesch"] == pytest.approx(206.835 - 1.015 * 5 / 2 - 84.6 * 6 / 5)
    assert f["text_words_per_sentence"] == 2.5
    assert f["text_chars_per_word"] == pytest.approx((2 + 6 + 2 + 4 + 6) / 5)


def test_type_token_ratio_ignores_length_past_the_first_words():
    vocab = ["the", "model", "answers", "each", "question", "with", "care", "and", "some", "detail", "about",
             "its", "sources"]
    words = [vocab[(i * 7 + i // 13) % len(vocab)] for i in range(TTR_WORDS + 37)]
    text = " ".join(words) + "."
    one = text_features(text)
    three = text_features("\n\n".join([text] * 3))
    assert three["text_words"] == 3 * one["text_words"]
    assert three["text_type_token_ratio"] == one["text_type_token_ratio"]
    head = [w.lower() for w in words[:TTR_WORDS]]
    assert one["text_type_token_ratio"] == pytest.approx(len(set(head)) / TTR_WORDS)
    # below the window, repeating does lower it
    assert text_features("Alpha beta gamma delta.")["text_type_token_ratio"] == 1.0
    assert text_features("Alpha beta gamma delta. " * 2)["text_type_token_ratio"] == 0.5
    assert text_features("Go go GO.")["text_type_token_ratio"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\n"])
def test_empty_text(text):
    f = text_features(text)
    for k, v in f.items():
        if k in NAN_WHEN_EMPTY:
            assert math.isnan(v), k
        elif k == "text_chars":
            assert v == len(text.replace("\r", ""))
        else:
            assert v == 0, k


def test_only_syntax_has_no_words_but_a_markup_share():
    f = text_features("---\n- \n**\n#")
    assert f["text_words"] == 0 and all(math.isnan(f[k]) for k in RATIOS)
    assert 0 < f["text_markup_share"] <= 1


def test_refusals_and_style_words():
    def refusal(t: str) -> float:
        return text_features(t)["text_refusal"]

    assert refusal("I'm sorry, but I can't help with that.") == 1
    assert refusal("I’m sorry, I cannot do that.") == 1
    assert refusal("  **As an AI** language model, I have no opinions.") == 1
    assert refusal("I apologize, but I couldn't find that film.") == 1
    assert refusal("Here is why I can't stop listening.") == 0
    assert refusal("As an aide to the senator, she ...") == 0
    assert refusal("") == 0
    assert {p.lower() for p in REFUSALS} == set(REFUSALS)
    f = text_features("I'm sorry, but I can't help. We think our view and my view may differ; "
                      "ask me. i is an index. Mayday, AI! It typically, usually, perhaps could, might.")
    assert f["text_first_person"] == 2 + 1 + 1 + 1 + 1  # I'm I | We | our | my | me
    assert f["text_hedges"] == 6  # may typically usually perhaps could might ("Mayday" is not "may")
    assert f["text_exclamations"] == 1
    assert len(HEDGES) == 10


def test_non_text_is_refused_and_odd_characters_are_text():
    with pytest.raises(TypeError):
        text_features(None)  # type: ignore[arg-type]
    f = text_features("\U000f0000 `x` \U000f0005 **y**")  # the reader's placeholder characters, in the input
    assert (f["text_words"], f["text_inline_code"], f["text_bold"]) == (2, 1, 1)


# -- real answers ---------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_BULLET_LINE = re.compile(r"^\s*[-*+•][ \t]+\S", re.MULTILINE)


@pytest.fixture(scope="module")
def release_answers(release_root) -> list[str]:
    """The non-empty answers of the release (unpacked once per run by conftest)."""
    with open(release_root / "query_logs_table.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r[k] for r in rows for k in ("llm_response_1", "llm_response_2") if (r[k] or "").strip()]


def test_real_answers_invariants(release_answers):
    assert len(release_answers) > 1000
    step = len(release_answers) // 200
    sample = release_answers[::step][:200]
    names = [x.name for x in features_of(level="response", group="text")]
    with_bullets = 0
    for text in sample:
        f = text_features(text)
        assert list(f) == names
        assert all(math.isfinite(v) for v in f.values()), text[:80]  # a real answer has words: no NaN
        assert f["text_words"] > 0
        assert 0 < f["text_sentences"] <= f["text_words"]
        assert 0 < f["text_paragraphs"] <= f["text_lines"]
        assert 0 <= f["text_markup_share"] < 1
        assert 0 < f["text_type_token_ratio"] <= 1
        assert f["text_refusal"] in (0, 1)
        for k, v in f.items():
            if FEATURES[k].unit == "count":
                assert v >= 0 and v == int(v), k
        if not _FENCE.search(text):  # outside code, every "- x" line is a bullet item
            assert f["text_bullets"] == len(_BULLET_LINE.findall(text))
        with_bullets += f["text_bullets"] > 0
    assert with_bullets >= 0.5 * len(sample)  # the release's answers are mostly bullet lists
