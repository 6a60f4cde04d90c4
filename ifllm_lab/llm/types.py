"""Plain data types shared by every chat backend.

Units, everywhere in :mod:`ifllm_lab.llm`:

* times are **seconds** on the clock the caller hands in (a callable returning
  seconds, by default :func:`time.monotonic`; a recording session passes its own
  session clock so answer tokens line up with gaze and mouse samples);
* lengths and budgets are **tokens** of the model's own tokenizer.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Clock = Callable[[], float]
"""A callable returning the current time in seconds (monotonic within a run)."""

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]

ROLES: tuple[str, ...] = ("system", "user", "assistant")
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "cancelled", "error")

TOO_LONG_MESSAGE = "That question is too long for this model; please shorten it."


class LLMError(Exception):
    """A backend cannot be used (model file missing or broken, service unreachable...).

    ``str(err)`` and :attr:`user_message` are meant for people (they name the file
    or address and say what to do); :attr:`detail` is the precise, technical text
    for the log.
    """

    def __init__(self, user_message: str, detail: str | None = None, *, path: str | None = None):
        super().__init__(user_message)
        self.user_message = user_message
        self.detail = detail or user_message
        self.path = path


@dataclass(frozen=True)
class ChatMessage:
    """One chat message. ``role`` is "system", "user" or "assistant"."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"content must be str, not {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationSettings:
    """How to sample one answer.

    * ``max_tokens``: upper bound on answer length (tokens).
    * ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``: sampling;
      ``temperature == 0`` is greedy decoding.
    * ``seed``: ``None`` means "pick a random one"; the seed actually used is always
      reported in :attr:`GenerationResult.settings`, so every answer can be replayed.
    * ``stop``: extra stop strings (the model's own end-of-turn marker always stops).
    * ``timeout_s``: HTTP backends only: connect / inactivity timeout (seconds);
      ``None`` uses the backend's default.
    """

    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if int(self.max_tokens) < 1:
            raise ValueError(f"max_tokens must be >= 1 (tokens), not {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if self.seed is not None and not (0 <= int(self.seed) < 2**32):
            raise ValueError(f"seed must be in [0, 2**32), not {self.seed}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 seconds, not {self.timeout_s}")

    def replace(self, **changes: Any) -> "GenerationSettings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        return d


@dataclass(frozen=True)
class TokenEvent:
    """One streamed piece of answer text.

    ``index`` counts pieces from 0; ``t`` is when the piece was handed to the
    caller (seconds, caller's clock). A piece is normally exactly one model token;
    llama.cpp joins a few tokens into one piece when a character spans tokens
    (UTF-8) or while text might be the start of a stop string.
    """

    index: int
    text: str
    t: float


TokenCallback = Callable[[TokenEvent], None]
"""Streaming protocol: called once per piece, in order, in the generating thread."""


@dataclass
class GenerationResult:
    """Everything about one answer, ready for the session log.

    Times (seconds, caller's clock): ``t_request`` when ``generate`` was called,
    ``t_first_token`` when the first piece was handed over (``None`` if none was),
    ``t_done`` when ``generate`` returned, ``token_times`` one entry per streamed
    piece (:class:`TokenEvent`). Counts (tokens): ``prompt_tokens``,
    ``completion_tokens`` (``None`` when the backend could not tell).

    ``finish_reason``: "stop" (the model ended its turn or hit a stop string),
    "length" (``max_tokens`` or the context was reached), "cancelled", "error".
    On "error", ``error`` is a sentence for people and ``error_detail`` the
    precise text for the log. ``trimmed_messages`` is how many old messages were
    dropped so the conversation fits the model's context (0 = none).
    """

    text: str
    model: str
    backend: str
    settings: GenerationSettings
    finish_reason: FinishReason
    t_request: float
    t_done: float
    t_first_token: float | None = None
    token_times: list[float] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    error_detail: str | None = None
    trimmed_messages: int = 0

    @property
    def ok(self) -> bool:
        """True when the answer is complete ("stop" or "length")."""
        return self.finish_reason in ("stop", "length")

    @property
    def seed(self) -> int | None:
        """The seed actually used."""
        return self.settings.seed

    @property
    def first_token_latency_s(self) -> float | None:
        """Seconds from request to first piece."""
        return None if self.t_first_token is None else self.t_first_token - self.t_request

    @property
    def duration_s(self) -> float:
        """Seconds from request to return."""
        return self.t_done - self.t_request

    @property
    def tokens_per_s(self) -> float | None:
        """Decode rate after the first piece (tokens/s); ``None`` with fewer than 2 pieces."""
        if len(self.token_times) < 2:
            return None
        span = self.token_times[-1] - self.token_times[0]
        if span <= 0:
            return None
        n = self.completion_tokens if self.completion_tokens else len(self.token_times)
        return (n - 1) / span

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for session attributes / logs)."""
        d = dataclasses.asdict(self)
        d["settings"] = self.settings.to_dict()
        return d
