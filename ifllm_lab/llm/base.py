"""The backend interface (:class:`ChatBackend`) and the bookkeeping both backends share.

Contract of :meth:`ChatBackend.generate`:

* runs in the caller's thread and blocks until the answer is complete (the UI
  calls it from a worker thread);
* hands every piece of text to ``on_token`` as soon as it exists, in order; the
  pieces concatenate to ``result.text``;
* stops within one token once ``cancel`` (a :class:`threading.Event`) is set and
  returns with ``finish_reason == "cancelled"`` and the text shown so far;
* does not raise for things that go wrong at run time (model cannot load,
  service down, prompt too long, ...): it returns a result with
  ``finish_reason == "error"``, ``error`` for people and ``error_detail`` for the
  log. Invalid arguments still raise (``TypeError`` / ``ValueError``).

Times are seconds on the caller's clock; lengths are tokens.
"""
from __future__ import annotations

import abc
import logging
import secrets
import threading
import time
from typing import Sequence

from .types import (
    ChatMessage,
    Clock,
    FinishReason,
    GenerationResult,
    GenerationSettings,
    TokenCallback,
    TokenEvent,
)

log = logging.getLogger(__name__)


def random_seed() -> int:
    """A fresh random seed in [0, 2**31) (fits every server's seed field)."""
    return secrets.randbelow(2**31)


def resolve_settings(settings: GenerationSettings | None) -> GenerationSettings:
    """``settings`` (or the defaults) with ``seed`` filled in when it was ``None``."""
    settings = settings if settings is not None else GenerationSettings()
    if settings.seed is None:
        settings = settings.replace(seed=random_seed())
    return settings


def check_messages(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Validate a message list (non-empty, ChatMessage items, ends with a user turn)."""
    msgs = list(messages)
    if not msgs:
        raise ValueError("messages must not be empty")
    for m in msgs:
        if not isinstance(m, ChatMessage):
            raise TypeError(f"messages must be ChatMessage, not {type(m).__name__}")
    if msgs[-1].role != "user":
        raise ValueError("the last message must be the user's turn")
    return msgs


class ResultBuilder:
    """Collects pieces and times while a backend streams, then builds the result.

    Backends call :meth:`emit` for each piece; it stamps the time, calls the
    caller's ``on_token`` and records everything.
    """

    def __init__(self, backend: str, model: str, settings: GenerationSettings,
                 clock: Clock, on_token: TokenCallback | None):
        self.backend = backend
        self.model = model
        self.settings = settings
        self.clock = clock
        self.on_token = on_token
        self.t_request = clock()
        self.pieces: list[str] = []
        self.token_times: list[float] = []
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.trimmed_messages = 0

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def emit(self, text: str) -> None:
        """Hand one piece (seconds stamped now) to the caller. Empty pieces are skipped."""
        if not text:
            return
        t = self.clock()
        event = TokenEvent(index=len(self.pieces), text=text, t=t)
        self.pieces.append(text)
        self.token_times.append(t)
        if self.on_token is not None:
            self.on_token(event)

    def finish(self, finish_reason: FinishReason, error: str | None = None,
               error_detail: str | None = None) -> GenerationResult:
        result = GenerationResult(
            text=self.text,
            model=self.model,
            backend=self.backend,
            settings=self.settings,
            finish_reason=finish_reason,
            t_request=self.t_request,
            t_done=self.clock(),
            t_first_token=self.token_times[0] if self.token_times else None,
            token_times=list(self.token_times),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            error=error,
            error_detail=(error_detail or error) if finish_reason == "error" else error_detail,
            trimmed_messages=self.trimmed_messages,
        )
        if finish_reason == "error":
            log.error("%s (%s): %s", self.backend, self.model, result.error_detail)
        return result


class ChatBackend(abc.ABC):
    """Something that answers a chat: a local llama.cpp model or an HTTP service.

    ``name`` is the model's name as recorded in results. ``clock`` (seconds) is the
    default clock for result times; ``generate(clock=...)`` overrides it per call.
    Backends are usable as context managers (``close()`` on exit). One backend
    answers one request at a time; concurrent calls wait for each other.
    """

    backend_kind: str = "backend"

    def __init__(self, clock: Clock | None = None):
        self.clock: Clock = clock or time.monotonic
        self._lock = threading.Lock()

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The model's name (as recorded in :attr:`GenerationResult.model`)."""

    @abc.abstractmethod
    def generate(self, messages: Sequence[ChatMessage], settings: GenerationSettings | None = None,
                 on_token: TokenCallback | None = None, cancel: threading.Event | None = None,
                 *, clock: Clock | None = None) -> GenerationResult:
        """Answer the conversation ``messages`` (the last one is the user's turn).

        Streams pieces through ``on_token``; ``cancel`` stops within one token.
        See the module docstring for the full contract.
        """

    @abc.abstractmethod
    def check(self) -> str | None:
        """``None`` when the backend is usable, else a message for people saying why not."""

    def close(self) -> None:
        """Free resources (model memory, connections). Safe to call twice."""

    def __enter__(self) -> "ChatBackend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
