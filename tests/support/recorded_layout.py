"""A hand-made recorded layout for the AOI and reading-measure tests: the monospace layout
of :mod:`ifllm_lab.synthetic.layout` written as the response view writes it, two answers."""
from __future__ import annotations

from ifllm_lab.session.schema import LayoutLevel
from ifllm_lab.synthetic.layout import SAMPLE_TEXT as TEXT_1
from ifllm_lab.synthetic.layout import monospace_layout_rows as layout_rows

__all__ = ["TEXT_1", "TEXT_2", "layout_rows", "word_centre"]

TEXT_2 = "Short second answer with a few words only."


def word_centre(rows: dict, word: int) -> tuple[float, float]:
    """The centre of word ``word`` in the rows of :func:`layout_rows`."""
    i = next(j for j, (lv, ix) in enumerate(zip(rows["level"], rows["index"]))
             if lv == int(LayoutLevel.WORD) and ix == word)
    return (rows["x0"][i] + rows["x1"][i]) / 2, (rows["y0"][i] + rows["y1"][i]) / 2
