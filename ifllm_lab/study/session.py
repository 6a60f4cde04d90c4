"""One participant's session as the study sees it: the plan of turns, the side
randomisation, the LLM calls of a turn, and what is written into the session file when.

Plain Python (the Qt screens in :mod:`ifllm_lab.ui.study_app` drive it).

What is written when (everything on the one session clock)
---------------------------------------------------------
* The file is created only when the participant agrees (no consent, no recording):
  phase ``consent`` with the consent text's SHA-256 and source.
* Every step of the flow is a ``phases`` row (``calibration``, ``turn``, ``answers``,
  ``rating``, ``drift_check``, ``questionnaire``, ``end`` ...) with JSON details.
* A turn is written twice, so that killing the app loses at most the last flush: the
  ``turn`` phase when the question is sent (prompt, mode, sides), the ``answers`` phase
  when the answers are complete (texts, models, seeds, finish reasons), and the ``turns``
  row when the participant leaves the turn (ratings, times and every generation detail).
* Questionnaire answers are ``phases`` rows named ``questionnaire`` (item, question,
  answer).
* With ``lsl = true`` the session also publishes its gaze, mouse and phases as Lab
  Streaming Layer streams (:mod:`ifllm_lab.study.lsl`) and records the offset between its
  clock and LSL's: ``extra["lsl"]`` in the metadata and ``lsl_clock`` phases at the start
  and the end (``lsl_time = t + clock_offset_s``). Should the streams fail to open, the
  session is recorded without them (the reason in its log).

Pairwise turns
--------------
Response 1 and 2 are the two generations (model ``a`` = the first [[llm]], ``b`` = the
second, or two seeds of the only one). Whether response 1 is shown on the left or the
right is drawn per turn from a seeded generator (``turns/swapped``; the seed is in the
file's metadata). The answers are generated and streamed in display order, left first,
so any order effect belongs to the screen position, which the randomisation balances.
The conversation goes on with the preferred answer (on a tie, a side drawn at random),
recorded in the turn's settings as ``context``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..config import LLMSettings, StudyConfig
from ..llm.base import ChatBackend
from ..llm.chat import Conversation
from ..llm.types import GenerationResult, GenerationSettings, TokenEvent
from ..session.recovery import ResumeInfo, continuation_meta
from ..session.schema import LogLevel, Response, SessionMeta, TurnMode
from ..session.writer import SessionClock, SessionWriter
from .lsl import TAPPED_STREAMS, LslPublisher

log = logging.getLogger(__name__)

POINTWISE, PAIRWISE = "pointwise", "pairwise"
LEFT, RIGHT, SINGLE = "left", "right", "single"


def plan_turns(mode: str, n: int, rng: random.Random) -> list[str]:
    """The mode of each turn: all one mode, or for "mixed" a shuffled half/half plan
    (pointwise gets the extra turn when ``n`` is odd)."""
    if mode in (POINTWISE, PAIRWISE):
        return [mode] * n
    plan = [POINTWISE] * ((n + 1) // 2) + [PAIRWISE] * (n // 2)
    rng.shuffle(plan)
    return plan


def generation_settings(s: LLMSettings) -> GenerationSettings:
    return GenerationSettings(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed,
                              timeout_s=s.timeout_s)


def make_backend(s: LLMSettings, clock: Callable[[], float] | None = None) -> ChatBackend:
    """The backend an [[llm]] entry describes (models load on first use)."""
    if s.backend == "openai":
        from ..llm.openai_http import OpenAICompatibleBackend

        key = os.environ.get(s.api_key_env) if s.api_key_env else None
        return OpenAICompatibleBackend(s.base_url, s.model, api_key=key, timeout_s=s.timeout_s, clock=clock)
    from ..llm.llama import LlamaCppBackend

    return LlamaCppBackend(s.model_path or None, s.chat_format or None, name=s.name if s.model_path else None,
                           clock=clock)


class Backends:
    """One backend per distinct model (two [[llm]] entries that differ only in sampling
    share one loaded model)."""

    def __init__(self, config: StudyConfig, clock: Callable[[], float] | None = None):
        self.settings = list(config.llm)
        self._by_key: dict[tuple, ChatBackend] = {}
        self.backends: list[ChatBackend] = []
        for s in self.settings:
            key = (s.backend, os.path.expanduser(s.model_path), s.chat_format, s.base_url, s.model)
            if key not in self._by_key:
                self._by_key[key] = make_backend(s, clock)
            self.backends.append(self._by_key[key])

    def check(self) -> list[str]:
        """Problems for the researcher ("" none): one per [[llm]] that cannot be used."""
        out = []
        for s, b in zip(self.settings, self.backends):
            msg = b.check()
            if msg:
                out.append(f"LLM {s.name!r}: {msg}")
        return out

    def warm_up(self) -> None:
        """Load local models now (so the first question does not wait for it)."""
        for b in set(self._by_key.values()):
            load = getattr(b, "load", None)
            if callable(load):
                try:
                    load()
                except Exception as exc:  # reported by check() and at the first turn
                    log.warning("loading %r failed: %s", b, exc)

    def close(self) -> None:
        for b in self._by_key.values():
            b.close()


@dataclass
class Turn:
    """One question and its answers while it is under way."""

    index: int
    mode: str
    prompt: str
    t: float  # question sent
    swapped: bool = False  # pairwise: response 1 shown on the right
    results: dict[int, GenerationResult] = field(default_factory=dict)  # Response code -> result
    configs: dict[int, LLMSettings] = field(default_factory=dict)  # Response code -> its [[llm]]
    t_first_token: float = float("nan")
    t_done: float = float("nan")
    context: str = ""  # which answer the conversation goes on with

    @property
    def pairwise(self) -> bool:
        return self.mode == PAIRWISE

    def display_order(self) -> list[tuple[str, int]]:
        """[(screen side, Response code)] in the order the answers are generated and shown."""
        if not self.pairwise:
            return [(SINGLE, int(Response.SINGLE))]
        first, second = int(Response.FIRST), int(Response.SECOND)
        return [(LEFT, second), (RIGHT, first)] if self.swapped else [(LEFT, first), (RIGHT, second)]

    def response_on(self, side: str) -> int:
        return dict(self.display_order())[side]

    @property
    def ok(self) -> bool:
        """Every answer arrived complete enough to rate."""
        return bool(self.results) and all(r.ok and r.text.strip() for r in self.results.values())

    @property
    def error(self) -> str | None:
        for r in self.results.values():
            if not r.ok:
                return r.error or "The answer could not be generated."
        return None


def _result_record(r: GenerationResult | None, s: LLMSettings | None) -> dict | None:
    if r is None:
        return None
    d = r.to_dict()
    d.pop("text", None)  # the text is in the turns row itself
    d["seed"] = r.seed
    d["config_name"] = s.name if s is not None else ""
    return d


class StudySession:
    """The session of one participant: creates the file (on consent), plans the turns,
    randomises sides, runs the LLM calls and writes the turns.

    Args:
        config: the study.
        path: the session file to create.
        participant: the participant's pseudonym (never the code).
        clock: the session clock (shared with the camera and the gaze tracker).
        screen_px: (width, height) of the participant's screen in px.
        backends: the study's :class:`Backends` (the session does not close them).
        resume: a :class:`~ifllm_lab.session.recovery.ResumeInfo` to continue an
            interrupted session in a new part file (``path`` is then ``resume.next_path``).
        seed: the side-randomisation seed (a fresh one when None; always recorded).
        on_error: called once (writer thread) if recording stops (full disk).
    """

    def __init__(self, config: StudyConfig, path: str | os.PathLike, participant: str, clock: SessionClock,
                 screen_px: tuple[int, int], backends: Backends, *, resume: ResumeInfo | None = None,
                 seed: int | None = None, on_error: Callable[[str], None] | None = None,
                 extra: dict | None = None):
        self.config = config
        self.clock = clock
        self.backends = backends
        self.participant = participant
        self.seed = int(seed) if seed is not None else random.SystemRandom().randrange(2**31)
        self.rng = random.Random(self.seed)
        self.first_turn = resume.next_turn if resume is not None else 0
        self.plan = plan_turns(config.study.mode, config.study.questions, self.rng)
        if resume is not None:  # go on with the interrupted session's plan
            old_plan = (resume.meta.extra or {}).get("plan") if isinstance(resume.meta.extra, dict) else None
            if isinstance(old_plan, list) and old_plan and all(m in (POINTWISE, PAIRWISE) for m in old_plan):
                self.plan = [str(m) for m in old_plan]
        self.conversation = Conversation(config.llm[0].system_prompt or None)
        self.turn: Turn | None = None
        self.turns_done = 0
        self.ended = False
        w, h = int(screen_px[0]), int(screen_px[1])
        info = {
            "app_version": __version__,
            "config": config.to_dict(),
            "side_seed": self.seed,
            "plan": self.plan,
            "camera": config.camera.source,
            "keep_video": config.study.keep_video,
            "python_pid": os.getpid(),
        }
        info.update(extra or {})
        if resume is not None:
            meta = continuation_meta(resume)
            meta.extra.update(info)
            meta.screen_width_px, meta.screen_height_px = w, h
            # the earlier part's turns are gone from the model's context: say so
            meta.extra["context_restarted"] = True
        else:
            meta = SessionMeta(
                participant=participant, study=config.study.name, session_id=uuid.uuid4().hex,
                screen_width_px=w, screen_height_px=h, screen_width_mm=config.screen.width_mm,
                screen_height_mm=config.screen.height_mm, viewing_distance_mm=config.screen.viewing_distance_mm,
                extra=info,
            )
        self.meta = meta
        meta.extra.pop("lsl", None)  # a continued session's streams are new ones
        self.lsl = None  # the LslPublisher while streams are published
        lsl_error = self._open_lsl(config, meta, (w, h), resume) if config.study.lsl else ""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.writer = SessionWriter(path, meta, clock=clock, on_error=on_error)
        except BaseException:
            if self.lsl is not None:
                self.lsl.close(linger_s=0)
                self.lsl = None
            raise
        self.path = self.writer.path
        if self.lsl is not None:
            self.writer.add_tap(TAPPED_STREAMS, self.lsl.tap)
            off = self.lsl.offset
            self.phase("lsl_clock", when="start", offset_s=off.offset_s, uncertainty_s=off.uncertainty_s,
                       lsl_t=off.lsl_t, session_t=off.session_t)
            self.log(LogLevel.INFO, "lsl", f"LSL streams open ({', '.join(self.meta.extra['lsl']['streams'])}); "
                     f"lsl_time = session t + {off.offset_s:.6f} s (+- {off.uncertainty_s * 1e6:.1f} us)")
        elif lsl_error:
            self.log(LogLevel.ERROR, "lsl", f"the LSL streams could not be opened; the session is recorded "
                     f"without them: {lsl_error}")

    def _open_lsl(self, config: StudyConfig, meta: SessionMeta, screen_px: tuple[int, int],
                  resume: ResumeInfo | None) -> str:
        """Open the LSL streams (before the file: their clock offset goes into its metadata).
        Returns why they could not be opened ("" when they are)."""
        pub = None
        try:
            pub = LslPublisher(
                session_id=meta.session_id, study=meta.study, participant=meta.participant,
                session_now=self.clock.now, gaze_rate_hz=config.camera.fps, screen_px=screen_px,
                app_version=__version__,
                extra={"clock_start_unix": repr(self.clock.unix_start),
                       **({"part": resume.next_part} if resume is not None else {})})
            meta.extra["lsl"] = pub.info()
        except Exception as exc:  # pylsl missing or broken, no network: record without LSL
            log.exception("opening the LSL streams")
            if pub is not None:
                pub.close(linger_s=0)
            return str(exc) or repr(exc)
        self.lsl = pub
        return ""

    # -- bookkeeping ---------------------------------------------------------------------
    @property
    def session_id(self) -> str:
        return self.meta.session_id

    @property
    def next_index(self) -> int:
        return self.first_turn + self.turns_done

    def mode_of(self, turn_index: int) -> str:
        return self.plan[min(turn_index, len(self.plan) - 1)]

    @property
    def questions_left(self) -> int:
        return max(0, len(self.plan) - self.next_index)

    def phase(self, name: str, **detail) -> None:
        self.writer.put("phases", (self.clock.now(), name, json.dumps(detail, default=str)))

    def log(self, level: LogLevel, source: str, message: str) -> None:
        self.writer.log(level, source, message)

    def consent(self, text: str, source: str, *, continued_from: str = "") -> None:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        d = {"agreed": True, "text_sha256": digest, "source": source}
        if continued_from:
            d["continued_from"] = continued_from
        self.phase("consent", **d)

    # -- turns ---------------------------------------------------------------------------
    def begin_turn(self, prompt: str) -> Turn:
        if self.turn is not None:
            raise RuntimeError("a turn is already under way")
        idx = self.next_index
        mode = self.mode_of(idx)
        swapped = bool(self.rng.random() < 0.5) if mode == PAIRWISE else False
        turn = Turn(index=idx, mode=mode, prompt=prompt, t=self.clock.now(), swapped=swapped)
        self.turn = turn
        self.phase("turn", turn=idx, mode=mode, swapped=swapped if mode == PAIRWISE else None, prompt=prompt)
        return turn

    def _jobs(self, turn: Turn) -> list[tuple[str, int, ChatBackend, LLMSettings, GenerationSettings]]:
        """(screen side, Response code, backend, its [[llm]], sampling) in generation order."""
        cfgs, bks = self.config.llm, self.backends.backends
        if not turn.pairwise:
            return [(SINGLE, int(Response.SINGLE), bks[0], cfgs[0], generation_settings(cfgs[0]))]
        if len(cfgs) >= 2:
            per = {int(Response.FIRST): (bks[0], cfgs[0], generation_settings(cfgs[0])),
                   int(Response.SECOND): (bks[1], cfgs[1], generation_settings(cfgs[1]))}
        else:
            base = generation_settings(cfgs[0])
            if base.seed is not None:
                seeds = (base.seed + 2 * turn.index, base.seed + 2 * turn.index + 1)
            else:
                sr = random.SystemRandom()
                a = sr.randrange(2**31)
                b = sr.randrange(2**31)
                while b == a:
                    b = sr.randrange(2**31)
                seeds = (a, b)
            per = {int(Response.FIRST): (bks[0], cfgs[0], base.replace(seed=seeds[0])),
                   int(Response.SECOND): (bks[0], cfgs[0], base.replace(seed=seeds[1]))}
        return [(side, r, *per[r]) for side, r in turn.display_order()]

    def generate(self, turn: Turn, on_token: Callable[[str, int, TokenEvent], None] | None = None,
                 cancel: threading.Event | None = None) -> Turn:
        """Generate the turn's answers (blocks: call it from a worker thread), streaming
        ``on_token(side, response_code, piece)``. Never raises for run-time faults: a
        failed answer is a result with ``finish_reason == "error"``."""
        for side, r, backend, cfg, gs in self._jobs(turn):
            turn.configs[r] = cfg
            if cancel is not None and cancel.is_set():
                break

            def cb(ev: TokenEvent, side=side, r=r):
                if turn.t_first_token != turn.t_first_token:  # NaN: the first piece shown
                    turn.t_first_token = ev.t
                if on_token is not None:
                    on_token(side, r, ev)

            try:
                res = backend.generate(self.conversation.messages(turn.prompt), gs, cb, cancel, clock=self.clock.now)
            except Exception as exc:  # a backend bug must not end the session
                log.exception("generation failed")
                now = self.clock.now()
                res = GenerationResult(text="", model=getattr(backend, "name", "?"), backend="?", settings=gs,
                                       finish_reason="error", t_request=now, t_done=now,
                                       error="The answer could not be generated.", error_detail=repr(exc))
            turn.results[r] = res
            if res.finish_reason == "error":
                self.log(LogLevel.ERROR, "llm", f"turn {turn.index} response {r}: {res.error_detail or res.error}")
                break  # a second answer from a failing backend would only fail again
        turn.t_done = self.clock.now()
        self.phase("answers", turn=turn.index,
                   texts={str(r): res.text for r, res in turn.results.items()},
                   models={str(r): res.model for r, res in turn.results.items()},
                   seeds={str(r): res.seed for r, res in turn.results.items()},
                   finish={str(r): res.finish_reason for r, res in turn.results.items()})
        return turn

    def finish_turn(self, turn: Turn, *, likert: dict[int, int] | None = None, preference: int = -1,
                    t_rated: float = float("nan")) -> None:
        """Write the ``turns`` row and move the conversation on (pointwise: the answer;
        pairwise: the preferred one, a random side on a tie)."""
        likert = likert or {}
        t_end = self.clock.now()
        r1 = turn.results.get(int(Response.SINGLE)) or turn.results.get(int(Response.FIRST))
        r2 = turn.results.get(int(Response.SECOND)) if turn.pairwise else None
        if turn.ok:
            if turn.pairwise:
                if preference in (1, 2):
                    chosen = preference
                else:
                    chosen = 1 if self.rng.random() < 0.5 else 2
                res = r1 if chosen == 1 else r2
                turn.context = f"response_{chosen}"
            else:
                res = r1
                turn.context = "response_1"
            self.conversation.add_user(turn.prompt)
            self.conversation.add_assistant(res.text)
        else:
            turn.context = "none"
        cfgs = turn.configs
        settings = {
            "response_1": _result_record(r1, cfgs.get(int(Response.SINGLE)) or cfgs.get(int(Response.FIRST))),
            "response_2": _result_record(r2, cfgs.get(int(Response.SECOND))),
            "context": turn.context,
            "display_order": "left first" if turn.pairwise else "single",
            "history_messages": len(self.conversation.turns),
            "error": turn.error,
        }
        l1 = int(likert.get(1, likert.get(0, -1)))
        l2 = int(likert.get(2, -1)) if turn.pairwise else -1
        row = (
            turn.t, turn.index, int(TurnMode.PAIRWISE if turn.pairwise else TurnMode.POINTWISE), turn.prompt,
            r1.text if r1 else "", r2.text if r2 else "", r1.model if r1 else "", r2.model if r2 else "",
            l1, l2, int(preference) if turn.pairwise else -1, -1, (int(turn.swapped) if turn.pairwise else -1),
            turn.t_first_token, turn.t_done, t_rated, t_end, json.dumps(settings, default=_json_default),
        )
        self.writer.put("turns", row)
        self.phase("turn_end", turn=turn.index, likert={str(k): v for k, v in likert.items()}, preference=preference)
        self.turn = None
        self.turns_done += 1

    def questionnaire(self, item: int, question: str, answer) -> None:
        self.phase("questionnaire", item=item, question=question, answer=answer)

    def close(self, complete: bool = True, reason: str = "") -> dict:
        """End the session: an ``end`` phase, then the file is closed (and compacted)."""
        if self.ended:
            return {}
        self.ended = True
        if self.lsl is not None:
            self._lsl_end_clock()
        self.phase("end", complete=complete, reason=reason, turns=self.turns_done)
        stats = self.writer.close(complete=complete)
        out = {"written": stats.written, "lost": stats.lost}
        if self.lsl is not None:
            self.writer.remove_tap(self.lsl.tap)
            out["lsl"] = self.lsl.close()
            self.lsl = None
        return out

    def _lsl_end_clock(self) -> None:
        """The clock offset again at the end: its change since the start is the drift."""
        try:
            start, end = self.lsl.offset, self.lsl.measure()
        except Exception as exc:
            self.log(LogLevel.WARNING, "lsl", f"the LSL clock could not be read at the end: {exc!r}")
            return
        drift = end.offset_s - start.offset_s
        self.phase("lsl_clock", when="end", offset_s=end.offset_s, uncertainty_s=end.uncertainty_s,
                   lsl_t=end.lsl_t, session_t=end.session_t, drift_s=drift)
        self.log(LogLevel.INFO, "lsl", f"LSL clock offset at the end {end.offset_s:.6f} s: drift "
                 f"{drift * 1e6:+.1f} us over {end.session_t - start.session_t:.0f} s")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, float):
        return None
    return str(o)


def session_path(config: StudyConfig, participant: str, when: float | None = None) -> Path:
    """``<data folder>/<study>/<participant>_<local date-time>.h5`` (a new name, never an
    existing file)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when if when is not None else time.time()))
    folder = config.data_folder / _safe(config.study.name)
    base = folder / f"{_safe(participant)}_{stamp}.h5"
    k = 2
    path = base
    while path.exists():
        path = base.with_name(f"{base.stem}-{k}.h5")
        k += 1
    return path


def study_folder(config: StudyConfig) -> Path:
    return config.data_folder / _safe(config.study.name)


def _safe(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
    return out or "study"
