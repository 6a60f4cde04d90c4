"""A conversation: system prompt + alternating user/assistant turns, single or pairwise.

Pairwise answers (for preference studies) come either from two backends or from
two samples of one backend with different seeds. Answers are generated one after
the other in the caller's thread (one CPU model cannot usefully run two at once).
Nothing is added to the history until an answer is accepted: :meth:`Conversation.ask`
commits complete answers ("stop"/"length") by default; for a pair, the caller
commits the chosen side with :meth:`Conversation.choose`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Literal

from .base import ChatBackend, random_seed
from .types import ChatMessage, Clock, GenerationResult, GenerationSettings, TokenCallback, TokenEvent

Side = Literal["a", "b"]
PairTokenCallback = Callable[[Side, TokenEvent], None]
"""Streaming for pairs: called with the side ("a" / "b") and the piece."""


@dataclass
class Pair:
    """Two answers to the same user turn (``a`` first, then ``b``)."""

    user_text: str
    a: GenerationResult
    b: GenerationResult

    def __getitem__(self, side: Side) -> GenerationResult:
        if side not in ("a", "b"):
            raise KeyError(side)
        return self.a if side == "a" else self.b


class Conversation:
    """System prompt plus turns; builds the message list a backend answers."""

    def __init__(self, system_prompt: str | None = None):
        self.system_prompt = system_prompt
        self.turns: list[ChatMessage] = []

    def __len__(self) -> int:
        return len(self.turns)

    def messages(self, user_text: str | None = None) -> list[ChatMessage]:
        """System prompt (if any) + turns (+ a new user turn ``user_text``)."""
        msgs = [ChatMessage("system", self.system_prompt)] if self.system_prompt else []
        msgs += self.turns
        if user_text is not None:
            msgs.append(ChatMessage("user", user_text))
        return msgs

    def add_user(self, text: str) -> None:
        if self.turns and self.turns[-1].role == "user":
            raise ValueError("two user turns in a row; add the assistant's answer first")
        self.turns.append(ChatMessage("user", text))

    def add_assistant(self, text: str) -> None:
        if not self.turns or self.turns[-1].role != "user":
            raise ValueError("an assistant turn must follow a user turn")
        self.turns.append(ChatMessage("assistant", text))

    def ask(self, backend: ChatBackend, user_text: str, settings: GenerationSettings | None = None,
            on_token: TokenCallback | None = None, cancel: threading.Event | None = None, *,
            clock: Clock | None = None, commit: bool = True) -> GenerationResult:
        """One answer to ``user_text``; with ``commit``, a complete answer joins the history."""
        result = backend.generate(self.messages(user_text), settings, on_token, cancel, clock=clock)
        if commit and result.ok:
            self.add_user(user_text)
            self.add_assistant(result.text)
        return result

    def ask_pair(self, user_text: str, backend_a: ChatBackend, backend_b: ChatBackend | None = None,
                 settings: GenerationSettings | None = None, *, seeds: tuple[int, int] | None = None,
                 on_token: PairTokenCallback | None = None, cancel: threading.Event | None = None,
                 clock: Clock | None = None) -> Pair:
        """Two answers to ``user_text`` (history unchanged; see :meth:`choose`).

        With one backend the two samples get different seeds: ``seeds`` if given,
        else ``(settings.seed, settings.seed + 1)`` when a seed is set, else two
        different random seeds. With two backends both get ``settings`` (seeds as
        given, else each its own random seed).
        """
        settings = settings or GenerationSettings()
        if seeds is None and backend_b is None:
            if settings.seed is not None:
                seeds = (settings.seed, (settings.seed + 1) % 2**32)
            else:
                sa = random_seed()
                sb = random_seed()
                while sb == sa:
                    sb = random_seed()
                seeds = (sa, sb)
        if seeds is not None and seeds[0] == seeds[1] and backend_b is None:
            raise ValueError("two samples of one backend need two different seeds")
        set_a = settings if seeds is None else settings.replace(seed=seeds[0])
        set_b = settings if seeds is None else settings.replace(seed=seeds[1])
        msgs = self.messages(user_text)

        def side_cb(side: Side) -> TokenCallback | None:
            if on_token is None:
                return None
            return lambda ev: on_token(side, ev)

        a = backend_a.generate(msgs, set_a, side_cb("a"), cancel, clock=clock)
        b = (backend_b or backend_a).generate(msgs, set_b, side_cb("b"), cancel, clock=clock)
        return Pair(user_text, a, b)

    def choose(self, pair: Pair, side: Side) -> None:
        """Commit ``pair.user_text`` and the chosen side's answer to the history."""
        self.add_user(pair.user_text)
        self.add_assistant(pair[side].text)
