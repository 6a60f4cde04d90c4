"""ifllm_lab.llm against the real llama.cpp and the real SmolLM2-135M model (no mocks).

HTTP tests talk to real socket servers on 127.0.0.1 started here: one streams
answers produced by the real LlamaCppBackend, others misbehave on purpose
(HTTP 500, stalls, broken streams, bad JSON).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ifllm_lab.llm import (
    TOO_LONG_MESSAGE,
    ChatMessage,
    Conversation,
    GenerationSettings,
    LlamaCppBackend,
    LLMError,
    OpenAICompatibleBackend,
    default_model_path,
)
from ifllm_lab.llm.gguf import inspect_gguf

M = ChatMessage
QUESTION = [M("user", "What is the capital of France?")]
STORY = [M("user", "Write a long story about a dragon who learns to cook.")]


@pytest.fixture(scope="module")
def backend():
    b = LlamaCppBackend()
    b.load()
    yield b
    b.close()


# ---------------------------------------------------------------------------- local model

def test_default_model_streams_tokens(backend):
    offset = 1_000_000.0
    clock = lambda: time.monotonic() + offset  # noqa: E731  (a caller-supplied clock)
    events = []
    r = backend.generate(QUESTION, GenerationSettings(max_tokens=40, seed=1), on_token=events.append,
                         clock=clock)
    assert "SmolLM2" in r.model and r.backend == "llama.cpp"
    assert r.finish_reason in ("stop", "length"), (r.error, r.error_detail)
    assert r.text.strip() and events
    assert "".join(e.text for e in events) == r.text
    assert [e.index for e in events] == list(range(len(events)))
    assert r.token_times == [e.t for e in events]
    assert all(b >= a for a, b in zip(r.token_times, r.token_times[1:]))
    assert offset <= r.t_request < r.t_first_token <= r.token_times[-1] <= r.t_done
    assert r.t_first_token == events[0].t
    assert 0 < r.first_token_latency_s < 10
    assert r.settings.seed == 1
    assert r.prompt_tokens == backend.count_prompt_tokens(QUESTION) > 10
    # pieces are tokens, except where llama.cpp joins a few (UTF-8 / stop-string prefixes)
    assert len(events) <= r.completion_tokens <= 40
    assert r.tokens_per_s and r.tokens_per_s > 1
    json.dumps(r.to_dict())


def test_random_seed_is_reported(backend):
    r = backend.generate(QUESTION, GenerationSettings(max_tokens=3))
    assert isinstance(r.settings.seed, int)
    again = backend.generate(QUESTION, GenerationSettings(max_tokens=3, seed=r.settings.seed))
    assert again.text == r.text


def test_same_seed_same_text_different_seed_differs(backend):
    s = GenerationSettings(max_tokens=32, temperature=0.9, seed=11)
    first = backend.generate(STORY, s).text
    assert backend.generate(STORY, s).text == first  # the same prompt again (KV cache hit)
    backend.generate(QUESTION, GenerationSettings(max_tokens=8, seed=5))  # history must not matter
    assert backend.generate(STORY, s).text == first
    others = {backend.generate(STORY, s.replace(seed=seed)).text for seed in (12, 13)}
    assert others - {first}, "three seeds gave the same text"


def test_cancel_stops_within_one_token(backend):
    cancel = threading.Event()
    events = []

    def on_token(ev):
        events.append(ev)
        if ev.index == 3:
            cancel.set()

    r = backend.generate(STORY, GenerationSettings(max_tokens=200, seed=2), on_token=on_token,
                         cancel=cancel)
    assert r.finish_reason == "cancelled"
    assert len(events) == 4 and r.text == "".join(e.text for e in events)
    assert r.completion_tokens <= 5
    # set before the call: nothing is generated
    r2 = backend.generate(STORY, GenerationSettings(max_tokens=200), cancel=cancel)
    assert r2.finish_reason == "cancelled" and r2.text == "" and r2.t_first_token is None


def test_cancel_from_another_thread(backend):
    cancel = threading.Event()
    first = threading.Event()
    events = []

    def on_token(ev):
        events.append(ev)
        first.set()

    def canceller():
        first.wait(30)
        cancel.set()

    t = threading.Thread(target=canceller)
    t.start()
    r = backend.generate(STORY, GenerationSettings(max_tokens=300, seed=3), on_token=on_token,
                         cancel=cancel)
    t.join()
    assert r.finish_reason == "cancelled"
    assert 1 <= len(events) <= 4 and r.completion_tokens <= 5


def test_max_tokens_gives_length(backend):
    r = backend.generate(STORY, GenerationSettings(max_tokens=5, seed=4))
    assert r.finish_reason == "length"
    assert r.completion_tokens == 5 and r.text


def test_on_token_exception_becomes_error_result(backend):
    def boom(ev):
        raise RuntimeError("UI bug")

    r = backend.generate(QUESTION, GenerationSettings(max_tokens=8, seed=1), on_token=boom)
    assert r.finish_reason == "error" and "UI bug" in r.error_detail and r.error


def test_over_long_prompt_trims_old_turns_or_refuses():
    small = LlamaCppBackend(n_ctx=256)
    try:
        settings = GenerationSettings(max_tokens=16, seed=1)
        system = M("system", "Answer briefly.")
        history = []
        for i in range(6):
            history += [M("user", f"Tell me fact number {i} about the sea. " * 3),
                        M("assistant", f"Fact {i}: the sea is large and salty. " * 3)]
        msgs = [system] + history + [M("user", "And the sky?")]
        assert small.count_prompt_tokens(msgs) > 256
        r = small.generate(msgs, settings)
        assert r.finish_reason in ("stop", "length"), (r.error, r.error_detail)
        assert r.trimmed_messages > 0 and r.trimmed_messages % 2 == 0
        kept = [system] + msgs[1 + r.trimmed_messages:]
        assert kept[1].role == "user" and kept[-1].content == "And the sky?"
        assert r.prompt_tokens == small.count_prompt_tokens(kept) <= 256 - 16
        assert small.count_prompt_tokens([system] + msgs[r.trimmed_messages - 1:]) > 256 - 16  # minimal trim

        long_q = [system, M("user", "Please explain this. " * 200)]
        events = []
        r = small.generate(long_q, settings, on_token=events.append)
        assert r.finish_reason == "error" and r.error == TOO_LONG_MESSAGE
        assert "tokens" in r.error_detail and r.prompt_tokens > 256
        assert r.text == "" and not events
        # still usable afterwards
        assert small.generate([M("user", "Hi")], settings).ok
    finally:
        small.close()


# ---------------------------------------------------------------------------- bad model files

@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad-gguf")
    real = default_model_path()
    files = {kind: d / f"model-{i}.gguf" for i, kind in enumerate(("missing", "random", "cut_1mb", "cut_half"))}
    import random
    files["random"].write_bytes(random.Random(0).randbytes(1 << 20))
    with open(real, "rb") as f:
        files["cut_1mb"].write_bytes(f.read(1 << 20))  # header cut off
        f.seek(0)
        files["cut_half"].write_bytes(f.read(real.stat().st_size // 2))  # tensor data cut off
    return files


@pytest.mark.parametrize("kind,words", [("missing", "does not exist"), ("random", "is not a GGUF model"),
                                        ("cut_1mb", "is truncated"), ("cut_half", "is truncated")])
def test_bad_model_file_gives_llm_error(bad_files, kind, words):
    path = str(bad_files[kind])
    b = LlamaCppBackend(path)
    with pytest.raises(LLMError) as exc:
        b.load()
    assert path in str(exc.value) and words in str(exc.value)
    assert exc.value.path == path and exc.value.detail
    msg = b.check()
    assert msg and path in msg
    r = b.generate(QUESTION, GenerationSettings(max_tokens=4))
    assert r.finish_reason == "error" and path in r.error and not b.loaded


def test_gguf_check_accepts_the_real_model():
    info = inspect_gguf(default_model_path())
    assert info.version == 3 and info.n_tensors > 100
    assert info.needed_size == info.file_size and not info.unknown_tensor_types


def test_bad_models_do_not_kill_the_process(bad_files, tmp_path):
    """In a child process: good model silent on stderr; broken ones -> LLMError; it lives on.
    Includes a GGUF that passes the Python check but that llama.cpp itself rejects."""
    data = bytearray(default_model_path().read_bytes())
    i = data.index(b"llama", data.index(b"general.architecture"))
    data[i:i + 5] = b"llamb"
    badarch = tmp_path / "badarch.gguf"
    badarch.write_bytes(bytes(data))
    code = textwrap.dedent("""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING,
                            format="LOG %(name)s %(levelname)s %(message)s")
        from ifllm_lab.llm import LlamaCppBackend, LLMError, ChatMessage, GenerationSettings
        r = LlamaCppBackend().generate([ChatMessage("user", "Hi")], GenerationSettings(max_tokens=3))
        print("GOOD", r.finish_reason)
        for p in sys.argv[1:]:
            try:
                LlamaCppBackend(p).load()
                print("LOADED", p)
            except LLMError as e:
                print("LLMERROR", e)
        print("ALIVE")
    """)
    paths = [str(bad_files["cut_1mb"]), str(bad_files["random"]), str(badarch)]
    proc = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=120)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ALIVE" in out and "LOADED" not in out
    assert "GOOD stop" in out or "GOOD length" in out
    assert f"LLMERROR The model file {paths[0]} is truncated" in out
    assert f"LLMERROR The model file {paths[1]} is not a GGUF model" in out
    assert f"LLMERROR The model file {paths[2]} could not be loaded by llama.cpp" in out
    assert "unknown model architecture" in out  # llama.cpp's own error is in the Python log
    assert proc.stderr.strip() == "", proc.stderr[-2000:]  # llama.cpp prints nothing itself


# ---------------------------------------------------------------------------- HTTP backend

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, obj):
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _end(self):
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _delta(self, text, finish=None):
        return {"object": "chat.completion.chunk", "model": "smollm2",
                "choices": [{"index": 0, "delta": {"content": text} if text else {},
                             "finish_reason": finish}]}

    def do_GET(self):
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "smollm2", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "no such path"}})

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.posts += 1
            n = srv.posts
            srv.bodies.append(body)
        mode = srv.mode
        if mode == "llama":
            self._start_sse()
            self._chunk(b": keep-alive comment\n\n")
            s = body
            settings = GenerationSettings(max_tokens=s["max_tokens"], temperature=s["temperature"],
                                          top_p=s["top_p"], top_k=s["top_k"], min_p=s["min_p"],
                                          repeat_penalty=s["repeat_penalty"], seed=s["seed"])
            msgs = [ChatMessage(m["role"], m["content"]) for m in s["messages"]]
            r = srv.backend.generate(msgs, settings, on_token=lambda ev: self._event(self._delta(ev.text)))
            self._event(self._delta(None, r.finish_reason))
            self._event({"choices": [], "usage": {"prompt_tokens": r.prompt_tokens,
                                                  "completion_tokens": r.completion_tokens}})
            self._end()
        elif mode == "fail500" and n <= srv.fail_times:
            self._json(500, {"error": {"message": "model is warming up"}})
        elif mode in ("fail500", "canned"):
            self._start_sse()
            for piece in ("Hello", ",", " world"):
                self._event(self._delta(piece))
            self._event(self._delta(None, "stop"))
            self._end()
        elif mode == "stall":
            self._start_sse()
            srv.release.wait(10)
        elif mode == "break_after_token":
            self._start_sse()
            self._event(self._delta("Partial"))
            self.close_connection = True  # ends without [DONE] or a finish_reason
        elif mode == "badjson":
            self._start_sse()
            self._chunk(b"data: {not json\n\n")
            self._end()
        elif mode == "notfound":
            self._json(404, {"error": {"message": "model 'x' not found"}})


@pytest.fixture
def server(backend):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.lock = threading.Lock()
    srv.posts = 0
    srv.bodies = []
    srv.mode = "canned"
    srv.fail_times = 2
    srv.backend = backend
    srv.release = threading.Event()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_http_streams_answers_from_the_real_model(server, backend):
    server.mode = "llama"
    http = OpenAICompatibleBackend(server.url + "/v1", model="smollm2", timeout_s=30)
    assert http.check() is None
    settings = GenerationSettings(max_tokens=24, seed=21)
    events = []
    r = http.generate(QUESTION, settings, on_token=events.append)
    assert r.ok, (r.error, r.error_detail)
    assert r.backend == "openai-http" and r.model == "smollm2"
    assert events and "".join(e.text for e in events) == r.text
    assert r.token_times == [e.t for e in events] and r.t_first_token == events[0].t
    direct = backend.generate(QUESTION, settings)
    assert r.text == direct.text  # the seed travels through HTTP
    assert (r.prompt_tokens, r.completion_tokens) == (direct.prompt_tokens, direct.completion_tokens)
    sent = server.bodies[-1]
    assert sent["stream"] is True and sent["seed"] == 21 and sent["model"] == "smollm2"
    assert sent["messages"] == [m.to_dict() for m in QUESTION]


def test_http_check_names_missing_model(server):
    msg = OpenAICompatibleBackend(server.url, model="llama-70b").check()
    assert msg and "llama-70b" in msg and "smollm2" in msg


def test_http_refused_port_is_not_reachable_quickly():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    http = OpenAICompatibleBackend(f"http://127.0.0.1:{port}", model="m", retries=2, backoff_s=0.05)
    t0 = time.monotonic()
    r = http.generate(QUESTION)
    took = time.monotonic() - t0
    assert r.finish_reason == "error"
    assert f"The answer service at http://127.0.0.1:{port} is not reachable" in r.error
    assert "attempt 3" in r.error_detail and took < 3
    assert "not reachable" in http.check()


def test_http_retries_500_then_succeeds(server):
    server.mode = "fail500"
    r = OpenAICompatibleBackend(server.url, model="smollm2", retries=2, backoff_s=0.05).generate(QUESTION)
    assert r.ok and r.text == "Hello, world" and server.posts == 3


def test_http_gives_up_after_retries(server):
    server.mode = "fail500"
    server.fail_times = 10
    r = OpenAICompatibleBackend(server.url, model="smollm2", retries=1, backoff_s=0.05).generate(QUESTION)
    assert r.finish_reason == "error" and "HTTP 500" in r.error and "warming up" in r.error
    assert server.posts == 2


def test_http_stall_times_out_without_retry(server):
    server.mode = "stall"
    http = OpenAICompatibleBackend(server.url, model="smollm2", timeout_s=30, retries=2, backoff_s=0.05)
    t0 = time.monotonic()
    r = http.generate(QUESTION, GenerationSettings(timeout_s=0.5))
    took = time.monotonic() - t0
    assert r.finish_reason == "error" and "stopped responding" in r.error
    assert 0.4 < took < 3 and server.posts == 1


def test_http_cancel_unblocks_a_stalled_read(server):
    server.mode = "stall"
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    r = OpenAICompatibleBackend(server.url, model="smollm2", timeout_s=20).generate(QUESTION, cancel=cancel)
    assert r.finish_reason == "cancelled" and time.monotonic() - t0 < 2


def test_http_never_retries_after_tokens(server):
    server.mode = "break_after_token"
    r = OpenAICompatibleBackend(server.url, model="smollm2", retries=2, backoff_s=0.05).generate(QUESTION)
    assert r.finish_reason == "error" and r.text == "Partial" and server.posts == 1
    assert "broke off" in r.error


def test_http_bad_json_and_4xx(server):
    server.mode = "badjson"
    r = OpenAICompatibleBackend(server.url, model="smollm2").generate(QUESTION)
    assert r.finish_reason == "error" and "cannot be read" in r.error and "not json" in r.error_detail
    server.mode = "notfound"
    server.posts = 0
    r = OpenAICompatibleBackend(server.url, model="x", retries=2, backoff_s=0.05).generate(QUESTION)
    assert r.finish_reason == "error" and "HTTP 404" in r.error and "not found" in r.error
    assert server.posts == 1


# ---------------------------------------------------------------------------- conversation

def test_conversation_single_and_pairwise(backend):
    conv = Conversation("You are brief.")
    settings = GenerationSettings(max_tokens=12, seed=30)
    r = conv.ask(backend, "Name a fruit.", settings)
    assert r.ok and [m.role for m in conv.messages()] == ["system", "user", "assistant"]
    assert conv.turns[-1].content == r.text

    seen = []
    pair = conv.ask_pair("Name a colour.", backend, settings=settings.replace(temperature=1.0),
                         on_token=lambda side, ev: seen.append(side))
    assert pair.a.settings.seed == 30 and pair.b.settings.seed == 31
    assert pair.a.ok and pair.b.ok and seen and set(seen) == {"a", "b"}
    assert seen == sorted(seen)  # all of a, then all of b
    assert len(conv) == 2  # nothing committed yet
    conv.choose(pair, "b")
    assert conv.turns[-1].content == pair.b.text and conv.turns[-2].content == "Name a colour."
    with pytest.raises(ValueError):
        conv.add_assistant("twice")


def test_reuse_kv_cache_option_answers_follow_ups():
    b = LlamaCppBackend(reuse_kv_cache=True)
    try:
        conv = Conversation("You are brief.")
        for i, q in enumerate(["Name a fruit.", "Name another one."]):
            msgs = conv.messages(q)
            r = conv.ask(b, q, GenerationSettings(max_tokens=10, seed=40 + i))
            assert r.ok and r.text
            assert r.prompt_tokens == b.count_prompt_tokens(msgs)  # full prompt, cached or not
        assert len(conv) == 4
    finally:
        b.close()
