"""An OpenAI-compatible chat service over HTTP (llama-server, vLLM, Ollama, ...).

Standard library only (``http.client``). ``POST {base_url}/v1/chat/completions``
with ``stream: true``; the reply is read as server-sent events, one JSON chunk
per ``data:`` line, until ``data: [DONE]``.

Failures and what happens:

* connection refused / reset, connect timeout, HTTP 5xx or 429 **before the
  first token**: retried up to ``retries`` times, waiting ``backoff_s``,
  2 x ``backoff_s``, ... seconds; then an error result ("The answer service at
  ... is not reachable ..." for a server that is down);
* anything after a token has been streamed is never retried (the participant
  has already seen text): error result with the partial text;
* no data for ``timeout_s`` seconds (connect or any read): error result, no
  retry (the server is there but stalled; retrying would queue more work);
* HTTP 4xx: error result quoting the server's message, no retry;
* a line that is not valid JSON: error result.

Sampling fields beyond the OpenAI set (``top_k``, ``min_p``, ``repeat_penalty``)
are sent when ``send_sampling_extras`` is true; llama-server honours them, other
servers may ignore them. Servers that honour ``seed`` (llama-server, vLLM,
Ollama) give reproducible text for a fixed seed only on the same server setup.
Times are seconds; counts are tokens (from the server's ``usage`` when it sends
one, requested with ``stream_options.include_usage``).
"""
from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from typing import Any, Sequence
from urllib.parse import urlsplit

from .base import ChatBackend, ResultBuilder, check_messages, resolve_settings
from .types import ChatMessage, Clock, GenerationResult, GenerationSettings, TokenCallback

log = logging.getLogger(__name__)

_RETRY_STATUS = {429, 500, 502, 503, 504}


class _Retryable(Exception):
    """Failed before any token, in a way worth retrying."""

    def __init__(self, user: str, detail: str):
        super().__init__(detail)
        self.user = user
        self.detail = detail


class _Fatal(Exception):
    def __init__(self, user: str, detail: str):
        super().__init__(detail)
        self.user = user
        self.detail = detail


class _Cancelled(Exception):
    pass


def _error_text(body: bytes) -> str:
    """The server's error message from a JSON or plain-text body (short)."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            text = str(err.get("message") or err)
        else:
            text = str(err)
    except ValueError:
        pass
    text = " ".join(text.split())
    return text[:300] + ("..." if len(text) > 300 else "")


class OpenAICompatibleBackend(ChatBackend):
    """Chat with an OpenAI-compatible server (see the module docstring).

    * ``base_url``: e.g. ``http://127.0.0.1:8080`` (a trailing ``/v1`` is accepted).
    * ``model``: the model id to request (``None``: leave it to the server).
    * ``api_key``: sent as ``Authorization: Bearer ...`` when given.
    * ``timeout_s``: connect / inactivity timeout in seconds (per request:
      ``GenerationSettings.timeout_s`` overrides it).
    * ``retries``: extra attempts before the first token; ``backoff_s``: first wait.
    """

    backend_kind = "openai-http"

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout_s: float = 60.0, retries: int = 2, *, backoff_s: float = 0.5,
                 send_sampling_extras: bool = True, clock: Clock | None = None):
        super().__init__(clock)
        parts = urlsplit(base_url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/path], not {base_url!r}")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be > 0 seconds, retries and backoff_s >= 0")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/v1"):
            prefix = prefix[:-3]
        self.prefix = prefix
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"{self.scheme}://{host}:{self.port}{self.prefix}"
        self.model = model
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.send_sampling_extras = send_sampling_extras

    @property
    def name(self) -> str:
        return self.model or f"(default model at {self.base_url})"

    # -- plumbing -------------------------------------------------------------------
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, stream: bool) -> dict[str, str]:
        h = {"Content-Type": "application/json",
             "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            h["Authorization"] = f"Bearer {self.api_key}"
        return h

    def _unreachable(self, e: BaseException) -> _Retryable:
        return _Retryable(
            f"The answer service at {self.base_url} is not reachable. "
            "Check that the server is running and the address is right.",
            f"connecting to {self.base_url} failed: {e!r}")

    def _open(self, method: str, path: str, body: dict | None, timeout: float,
              stream: bool) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Connect, send, read the status line. Raises _Retryable / _Fatal."""
        conn = self._connection(timeout)
        url = self.base_url + path
        try:
            conn.connect()
        except ssl.SSLCertVerificationError as e:
            conn.close()
            raise _Fatal(f"The answer service at {self.base_url} has a certificate this computer "
                         "does not trust.", f"TLS verification failed for {url}: {e!r}") from e
        except (OSError, http.client.HTTPException) as e:  # refused, DNS, connect timeout
            conn.close()
            raise self._unreachable(e) from e
        try:
            data = json.dumps(body).encode("utf-8") if body is not None else None
            conn.request(method, self.prefix + path, body=data, headers=self._headers(stream))
            resp = conn.getresponse()
        except (socket.timeout, TimeoutError) as e:
            conn.close()
            raise _Fatal(f"The answer service at {self.base_url} did not respond within {timeout:g} s.",
                         f"{method} {url}: no response within {timeout} s: {e!r}") from e
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            conn.close()
            raise _Retryable(f"The connection to the answer service at {self.base_url} broke off.",
                             f"{method} {url}: {e!r}") from e
        if resp.status != 200:
            try:
                raw = resp.read(65536)
            except (OSError, http.client.HTTPException):
                raw = b""
            conn.close()
            msg = _error_text(raw) or resp.reason
            detail = f"{method} {url}: HTTP {resp.status} {resp.reason}: {raw[:2000]!r}"
            if resp.status in _RETRY_STATUS:
                raise _Retryable(f"The answer service at {self.base_url} failed "
                                 f"(HTTP {resp.status}: {msg}). Please try again.", detail)
            raise _Fatal(f"The answer service at {self.base_url} refused the request "
                         f"(HTTP {resp.status}: {msg}).", detail)
        return conn, resp

    def _payload(self, msgs: list[ChatMessage], s: GenerationSettings) -> dict[str, Any]:
        p: dict[str, Any] = {
            "messages": [m.to_dict() for m in msgs],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
        }
        if self.model:
            p["model"] = self.model
        if s.stop:
            p["stop"] = list(s.stop)
        if self.send_sampling_extras:
            p.update(top_k=s.top_k, min_p=s.min_p, repeat_penalty=s.repeat_penalty)
        return p

    # -- API ------------------------------------------------------------------------
    def check(self) -> str | None:
        """GET /v1/models (timeout at most 5 s, no retries): ``None`` if the service
        answers and offers ``model`` (any model when ``model`` is ``None``)."""
        timeout = min(self.timeout_s, 5.0)
        try:
            conn, resp = self._open("GET", "/v1/models", None, timeout, stream=False)
        except (_Retryable, _Fatal) as e:
            log.warning("check %s: %s", self.base_url, e.detail)
            return e.user
        try:
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            return f"The answer service at {self.base_url} broke off its reply ({e})."
        finally:
            conn.close()
        try:
            obj = json.loads(raw)
            ids = [str(m.get("id")) for m in obj.get("data", [])]
        except (ValueError, AttributeError, TypeError):
            log.warning("check %s: /v1/models is not a model list: %r", self.base_url, raw[:500])
            return f"The answer service at {self.base_url} sent a model list that cannot be read."
        if self.model and self.model not in ids:
            offered = ", ".join(ids[:10]) or "none"
            return (f"The answer service at {self.base_url} does not offer the model "
                    f"{self.model!r} (it offers: {offered}).")
        return None

    def generate(self, messages: Sequence[ChatMessage], settings: GenerationSettings | None = None,
                 on_token: TokenCallback | None = None, cancel: threading.Event | None = None,
                 *, clock: Clock | None = None) -> GenerationResult:
        """Answer ``messages``; see :class:`~ifllm_lab.llm.base.ChatBackend`."""
        msgs = check_messages(messages)
        settings = resolve_settings(settings)
        rb = ResultBuilder(self.backend_kind, self.name, settings, clock or self.clock, on_token)
        timeout = settings.timeout_s or self.timeout_s
        payload = self._payload(msgs, settings)
        with self._lock:
            attempt = 0
            while True:
                if cancel is not None and cancel.is_set():
                    return rb.finish("cancelled")
                try:
                    return self._attempt(payload, timeout, rb, cancel)
                except _Cancelled:
                    return rb.finish("cancelled")
                except _Retryable as e:
                    if rb.pieces or attempt >= self.retries:
                        return rb.finish("error", e.user, f"{e.detail} (attempt {attempt + 1})")
                    delay = self.backoff_s * (2 ** attempt)
                    attempt += 1
                    log.warning("%s; retry %d/%d in %.2f s", e.detail, attempt, self.retries, delay)
                    if cancel is not None:
                        if cancel.wait(delay):
                            return rb.finish("cancelled")
                    else:
                        time.sleep(delay)
                except _Fatal as e:
                    return rb.finish("error", e.user, e.detail)
                except Exception as e:  # e.g. the caller's on_token raised
                    log.exception("generate via %s failed", self.base_url)
                    return rb.finish("error", "The answer could not be completed; please try again.",
                                     f"unexpected {e!r}")

    def _attempt(self, payload: dict, timeout: float, rb: ResultBuilder,
                 cancel: threading.Event | None) -> GenerationResult:
        conn, resp = self._open("POST", "/v1/chat/completions", payload, timeout, stream=True)
        done = threading.Event()
        if cancel is not None:
            threading.Thread(target=_watch_cancel, args=(cancel, done, conn),
                             name="llm-http-cancel", daemon=True).start()
        url = self.base_url + "/v1/chat/completions"
        finish: str | None = None
        got_done = False
        try:
            while True:
                try:
                    raw = resp.readline(1 << 20)
                except (socket.timeout, TimeoutError) as e:
                    if cancel is not None and cancel.is_set():
                        raise _Cancelled() from e
                    raise _Fatal(f"The answer service at {self.base_url} stopped responding "
                                 f"(nothing for {timeout:g} s).",
                                 f"POST {url}: read timed out after {timeout} s: {e!r}") from e
                except (OSError, http.client.HTTPException, ValueError) as e:
                    if cancel is not None and cancel.is_set():
                        raise _Cancelled() from e
                    raise _Retryable(f"The connection to the answer service at {self.base_url} "
                                     "broke off during the answer.", f"POST {url}: {e!r}") from e
                if cancel is not None and cancel.is_set():
                    raise _Cancelled()
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.startswith("data:"):
                    continue  # blank separators, ": comments", event:/id:/retry: fields
                data = line[5:]
                if data.startswith(" "):
                    data = data[1:]
                if data.strip() == "[DONE]":
                    got_done = True
                    break
                try:
                    obj = json.loads(data)
                    if not isinstance(obj, dict):
                        raise ValueError("chunk is not a JSON object")
                except ValueError as e:
                    raise _Fatal(f"The answer service at {self.base_url} sent a reply that cannot be read.",
                                 f"POST {url}: bad JSON in stream ({e}): {data[:500]!r}") from e
                if obj.get("error") is not None:
                    err = obj["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise _Fatal(f"The answer service at {self.base_url} reported an error: {msg}",
                                 f"POST {url}: error chunk: {data[:2000]}")
                usage = obj.get("usage")
                if isinstance(usage, dict):
                    rb.prompt_tokens = usage.get("prompt_tokens", rb.prompt_tokens)
                    rb.completion_tokens = usage.get("completion_tokens", rb.completion_tokens)
                for choice in obj.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        rb.emit(content)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        finally:
            done.set()
            conn.close()
        if not got_done and finish is None:
            raise _Retryable(f"The connection to the answer service at {self.base_url} broke off "
                             "during the answer.", f"POST {url}: stream ended without [DONE]")
        if rb.completion_tokens is None:
            log.debug("%s sent no usage; completion_tokens unknown", self.base_url)
        return rb.finish("length" if finish == "length" else "stop")


def _watch_cancel(cancel: threading.Event, done: threading.Event, conn: http.client.HTTPConnection) -> None:
    """Unblock a pending read when ``cancel`` is set (polls every 0.05 s)."""
    while not done.is_set():
        if cancel.wait(0.05):
            if not done.is_set():
                sock = conn.sock
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            return
