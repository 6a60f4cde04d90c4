"""``ifllm-lab bench answers``: what streaming an answer costs the participant's window.

One Markdown answer (headings, lists, bold, code, a table; about 1,100 characters) is
streamed into a real answer view in pieces the size of LLM tokens, with the layout
tracker recording snapshots as in a session, once rendered as Markdown and once as plain
text, alternating runs side by side. Reported per mode: the GUI-thread time of each piece
(``append_text`` plus the snapshot it triggers) as median, p95 and max in ms, and the whole
answer's total."""
from __future__ import annotations

import os
import statistics
import tempfile
import time

ANSWER = """# Cooking rice well

Rice is easy once you know **three things**: the *ratio*, the heat and the rest.

## What you need

- 1 cup of rice (long grain, such as **basmati** or jasmine)
- 1.5 cups of water, or 2 cups for short grain
- a pinch of salt and a pot with a *tight* lid

## Steps

1. **Rinse** the rice in cold water until it runs clear; this removes surface starch.
2. **Boil** the water with the salt, add the rice and stir once.
   - Keep the lid on from here.
   - Turn the heat to the lowest setting.
3. **Simmer** for 15 minutes, then take the pot off the heat.
4. **Rest** it for 10 minutes with the lid on, then fluff it with a fork.

| Rice | Water per cup | Time |
|:-----|:-------------:|-----:|
| Basmati | 1.5 cups | 15 min |
| Jasmine | 1.25 cups | 12 min |
| Brown | 2 cups | 40 min |

If you cook often, a timer helps:

```python
import time
time.sleep(15 * 60)  # simmer
print("Rest the rice now")
```

> Tip: do not lift the lid while it simmers; the steam does the cooking.

That is all. Enjoy your rice, and try adding a bay leaf or a little butter next time.
"""


def _pieces(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def bench_answers(runs: int = 3, folder: str | None = None) -> dict:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from ..session import SessionClock, SessionMeta, SessionWriter
    from .response_view import LayoutTracker, ResponseView
    from .style import application

    app = application()
    pieces = _pieces(ANSWER)
    per: dict[str, list[float]] = {"markdown": [], "plain": []}
    totals: dict[str, list[float]] = {"markdown": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="ifllm-bench-answers-", dir=folder) as tmp:
        for r in range(runs):
            for mode in ("markdown", "plain") if r % 2 == 0 else ("plain", "markdown"):
                writer = SessionWriter(os.path.join(tmp, f"{mode}-{r}.h5"), SessionMeta(participant="bench"),
                                       clock=SessionClock())
                view = ResponseView(1, markdown=mode == "markdown", font_px=24)
                view.resize(860, 1000)
                view.show()
                tracker = LayoutTracker(writer)
                tracker.add_view(view)
                app.processEvents()
                t_all = time.perf_counter()
                for piece in pieces:
                    t0 = time.perf_counter()
                    view.append_text(piece)
                    app.processEvents()  # the snapshot timer and the repaint, as in the event loop
                    per[mode].append((time.perf_counter() - t0) * 1000.0)
                view.finish_text()
                tracker.snapshot("answers complete")
                totals[mode].append((time.perf_counter() - t_all) * 1000.0)
                view.close()
                view.deleteLater()
                writer.close()
                QApplication.processEvents()

    def q(v: list[float], p: float) -> float:
        v = sorted(v)
        return round(v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))], 3)

    out = {"answer_chars": len(ANSWER), "pieces": len(pieces), "runs": runs}
    for mode, v in per.items():
        out[f"{mode}_piece_ms_median"] = round(statistics.median(v), 3)
        out[f"{mode}_piece_ms_p95"] = q(v, 0.95)
        out[f"{mode}_piece_ms_max"] = round(max(v), 3)
        out[f"{mode}_answer_ms"] = [round(t, 1) for t in totals[mode]]
    return out
