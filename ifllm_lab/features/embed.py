"""Sentence embeddings of answer texts from the local llama.cpp model: the input of the
text-only reward-model baseline. Plain Python + numpy; llama.cpp through ``llama-cpp-python``.

A text's vector is the mean over its tokens of the model's last hidden state (after the
final norm), L2-normalised, as float32 (576 values for the bundled SmolLM2-135M). Every
text is read on its own (never packed with others in one batch), so its vector does not
depend on the texts around it. Texts longer than ``max_tokens`` tokens are cut to their
first ``max_tokens`` tokens (the head of the answer). An empty text (one that gives no
tokens) gets a zero vector: the one row that is not unit length.

The model (default: the bundled SmolLM2 GGUF, :func:`~ifllm_lab.llm.llama.default_model_path`)
is checked in Python by :func:`~ifllm_lab.llm.gguf.inspect_gguf` on every call, so a
missing, foreign or damaged file gives an :class:`~ifllm_lab.llm.types.LLMError` naming the
path; llama.cpp itself is only started when some text is not in the cache.

Cache: one ``<key>.npz`` per model + settings in ``cache_dir`` (default: ``embeddings/``
under :func:`~ifllm_lab.session.catalog.default_cache_dir`), holding the SHA-256 key of
every text (bound to the model and settings) and its vector, rewritten atomically (a
temporary file renamed over the old one) and merged with what another process may have
written meanwhile; ``<key>.json`` beside it says, for people, which model it belongs to. A
cache that cannot be read is ignored and one that cannot be written only costs time.

Speed (2-core development machine, SmolLM2-135M Q4_1): ~65 tokens/s a thread (1 thread,
the default there: 200 IFLLM answers, 62k tokens, took ~17 min; 2 threads ~2x faster);
~0.3-0.7 s to start the model; ~0.1 s a call to check the model file; a cached answer
costs microseconds.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..jobs.job import JobCancelled
from ..llm.gguf import inspect_gguf
from ..llm.llama import default_model_path, default_n_threads, import_llama_cpp, open_llama
from ..llm.types import LLMError
from ..paths import write_text_atomic

__all__ = [
    "EMBEDDING_VERSION",
    "EmbeddingCancelled",
    "default_embedding_cache_dir",
    "embed_texts",
    "embedding_fingerprint",
    "model_load_count",
]

log = logging.getLogger(__name__)

#: bumped whenever the way a vector is made changes (pooling, normalisation, truncation):
#: fingerprints and cache keys change with it
EMBEDDING_VERSION = 1
POOLING = "mean"
#: bytes hashed from the start, the middle and the end of the model file for its identity
_SAMPLE_BYTES = 1 << 20
#: while embedding, the cache is written at least this often (s), so a crash or a cancel
#: keeps what was done
_SAVE_EVERY_S = 60.0

_loads = 0
_loads_lock = threading.Lock()


def model_load_count() -> int:
    """How many times this process has started llama.cpp for embeddings (a call whose
    texts are all cached, empty or none starts it zero times)."""
    return _loads


class EmbeddingCancelled(JobCancelled):
    """``cancel()`` said stop. ``done`` of ``total`` texts had their vectors by then
    (those are in the cache); ``partial`` is ``done``."""

    def __init__(self, done: int, total: int):
        super().__init__(f"Embedding cancelled after {done} of {total} texts.", partial=done)
        self.done = done
        self.total = total


def default_embedding_cache_dir() -> str:
    """``embeddings/`` in the user's cache folder."""
    from ..session.catalog import default_cache_dir

    return os.path.join(default_cache_dir(), "embeddings")


# ----------------------------------------------------------------------------------------
# the model's identity


@dataclass(frozen=True)
class _Model:
    path: str
    name: str  # the file name without .gguf
    dim: int  # values per vector
    context_length: int  # tokens the model was trained on
    content: str  # SHA-256 of the file's size and three 1 MiB samples of it (hex)


def _identify(model_path: str | os.PathLike | None) -> _Model:
    """Check the model file (LLMError naming it when it is missing, foreign or damaged) and
    identify it by content: the same file copied elsewhere has the same identity."""
    path = str(os.path.expanduser(os.fspath(model_path))) if model_path is not None else str(default_model_path())
    info = inspect_gguf(path)
    meta = info.metadata
    arch = meta.get("general.architecture")
    dim = meta.get(f"{arch}.embedding_length")
    ctx = meta.get(f"{arch}.context_length")
    if not isinstance(dim, int) or dim <= 0:
        raise LLMError(f"The model file {path} does not state its embedding size; choose another .gguf model file.",
                       f"no {arch}.embedding_length in the GGUF metadata of {path}", path=path)
    h = hashlib.sha256(f"{info.file_size}\n".encode())
    try:
        with open(path, "rb") as fh:
            for at in sorted({0, max(0, info.file_size // 2 - _SAMPLE_BYTES // 2),
                              max(0, info.file_size - _SAMPLE_BYTES)}):
                fh.seek(at)
                h.update(fh.read(_SAMPLE_BYTES))
    except OSError as e:
        raise LLMError(f"The model file {path} cannot be read ({e.strerror}). Check its permissions.",
                       f"reading {path} for its identity failed: {e!r}", path=path) from e
    name = os.path.basename(path)
    name = name[:-5] if name.lower().endswith(".gguf") else name
    return _Model(path, name, dim, ctx if isinstance(ctx, int) and ctx > 0 else 0, h.hexdigest())


def _settings_key(model: _Model, max_tokens: int) -> str:
    text = json.dumps([EMBEDDING_VERSION, POOLING, model.content, int(max_tokens)])
    return hashlib.sha256(text.encode()).hexdigest()


def _check_max_tokens(model: _Model, max_tokens: int) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive whole number, not {max_tokens!r}")
    if model.context_length and max_tokens > model.context_length:
        raise ValueError(f"max_tokens={max_tokens} is more than the {model.context_length} tokens "
                         f"{model.name} was trained on")
    return int(max_tokens)


def embedding_fingerprint(model_path: str | os.PathLike | None = None, max_tokens: int = 512) -> str:
    """A short string naming the model file (by content) and the settings of
    :func:`embed_texts`, e.g. ``SmolLM2-135M-Instruct.Q4_1-mean512-3fa9c0d1e2b4``: two calls
    give comparable vectors exactly when their fingerprints are equal. Raises
    :class:`LLMError` for a missing or damaged model file."""
    model = _identify(model_path)
    max_tokens = _check_max_tokens(model, max_tokens)
    return f"{model.name}-{POOLING}{max_tokens}-{_settings_key(model, max_tokens)[:12]}"


# ----------------------------------------------------------------------------------------
# the cache


class _Cache:
    """The vectors of one model + settings: ``{text key: vector}``, read once, written
    atomically and merged with the file on disk."""

    def __init__(self, cache_dir: str, settings_key: str, dim: int, about: dict):
        stem = os.path.join(cache_dir, settings_key[:24])
        self.dir = cache_dir
        self.path = stem + ".npz"
        self.about_path = stem + ".json"
        self.dim = dim
        self.about = about
        self.new: dict[bytes, np.ndarray] = {}
        self.failed = False
        self.known = self._read()

    def _read(self, warn: bool = True) -> dict[bytes, np.ndarray]:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                keys, vectors = z["keys"], z["vectors"]
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError, zipfile.BadZipFile) as e:
            # damaged or foreign (a lone .npy gives TypeError/AttributeError): rewritten on the next save
            if warn:
                log.warning("ignoring the unreadable embedding cache %s (%s)", self.path, e)
            return {}
        if (keys.dtype != np.dtype("S64") or keys.ndim != 1 or vectors.dtype != np.float32
                or vectors.shape != (len(keys), self.dim)):
            if warn:
                log.warning("ignoring the embedding cache %s: unexpected contents", self.path)
            return {}
        return dict(zip(keys.tolist(), vectors))

    def get(self, key: bytes) -> np.ndarray | None:
        return self.known.get(key)

    def put(self, key: bytes, vector: np.ndarray) -> None:
        self.known[key] = vector
        self.new[key] = vector

    def save(self) -> None:
        """Write what is new (plus what is already on disk); an error is logged, not raised."""
        if not self.new or self.failed:
            return
        merged = self._read(warn=False)  # another process may have added vectors since we read
        merged.update(self.new)
        keys = np.array(list(merged), dtype="S64")
        vectors = np.stack(list(merged.values())).astype(np.float32, copy=False)
        tmp = f"{self.path}.tmp-{os.getpid()}-{threading.get_ident()}"
        try:
            os.makedirs(self.dir, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors)
            os.replace(tmp, self.path)
            write_text_atomic(self.about_path, json.dumps(dict(self.about, count=len(keys)), indent=1))
        except OSError as e:
            self.failed = True  # do not retry for every text
            log.warning("the embedding cache %s cannot be written (%s); vectors will be computed again next time",
                        self.path, e)
            try:
                os.remove(tmp)
            except OSError:
                pass
            return
        self.known = merged
        self.new = {}


# ----------------------------------------------------------------------------------------
# llama.cpp


def _open_llama(model: _Model, max_tokens: int, n_threads: int):
    """llama.cpp with the model in embedding mode (mean pooling, one text per batch of at
    most ``max_tokens`` tokens). Raises :class:`LLMError` naming the file."""
    global _loads
    path = model.path
    llama_cpp = import_llama_cpp(path)
    llm = open_llama(path, ", embedding=True", embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                     n_ctx=max_tokens, n_batch=max_tokens, n_ubatch=max_tokens, n_threads=n_threads,
                     n_threads_batch=n_threads)
    with _loads_lock:
        _loads += 1
    if llm.n_embd() != model.dim:
        llm.close()
        raise LLMError(f"The model file {path} is inconsistent (embedding size {llm.n_embd()}, "
                       f"its metadata says {model.dim}); choose another .gguf model file.",
                       f"n_embd {llm.n_embd()} != {model.dim}", path=path)
    log.info("loaded %s for embeddings (%d threads, max %d tokens a text)", path, n_threads, max_tokens)
    return llm


def _embed_one(llm, model: _Model, text: str, max_tokens: int) -> tuple[np.ndarray, int]:
    """(unit vector or zeros, tokens read) for one text."""
    n_tokens = min(len(llm.tokenize(text.encode("utf-8"))), max_tokens)
    if n_tokens == 0:  # llama.cpp fails on an empty batch
        return np.zeros(model.dim, np.float32), 0
    try:
        out = llm.embed(text, truncate=True)  # truncate: the first n_batch = max_tokens tokens
    except Exception as e:
        raise LLMError(f"The model {model.path} failed to read a text ({n_tokens} tokens); "
                       "try again or choose another .gguf model file.",
                       f"Llama.embed failed: {e!r}", path=model.path) from e
    v = np.asarray(out, dtype=np.float32)
    if v.ndim == 2:  # per-token vectors (a llama.cpp that ignored the pooling asked for)
        v = v.mean(axis=0)
    norm = float(np.linalg.norm(v))
    if v.shape != (model.dim,) or not np.isfinite(norm) or norm == 0.0:
        raise LLMError(f"The model {model.path} gave an unusable embedding; choose another .gguf model file.",
                       f"embedding shape {v.shape}, norm {norm}", path=model.path)
    return (v / norm).astype(np.float32), n_tokens


# ----------------------------------------------------------------------------------------


def embed_texts(texts: Sequence[str], *, model_path: str | os.PathLike | None = None,
                cache_dir: str | os.PathLike | None = None, n_threads: int | None = None,
                max_tokens: int = 512, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> np.ndarray:
    """The embeddings of ``texts``: a float32 array of shape ``(len(texts), dim)``, one row a
    text, mean-pooled over its first ``max_tokens`` tokens and L2-normalised. An empty text
    (one that gives no tokens) gets a row of zeros.

    * ``model_path``: a ``.gguf`` file; ``None`` = the bundled SmolLM2 model.
    * ``cache_dir``: where vectors are kept (``None`` = :func:`default_embedding_cache_dir`).
      Cached texts cost no model time; when every text is cached, empty or none, llama.cpp
      is not started at all.
    * ``n_threads``: CPU threads (``None`` = :func:`~ifllm_lab.llm.llama.default_n_threads`).
    * ``progress(done, total)``: ``total`` = ``len(texts)``; called once after the cache is
      read (cached and empty texts count as done) and after every text embedded.
    * ``cancel()``: checked before every text that needs the model; when it returns true,
      what was embedded is written to the cache and :class:`EmbeddingCancelled` is raised.

    Raises :class:`LLMError` (naming the file) for a missing, foreign or damaged model
    file, even when every text is cached; ``ValueError`` for a ``max_tokens`` below 1 or
    beyond the model's context. Speed: see the module docstring (~65 tokens/s a thread for
    SmolLM2-135M on the development machine: an IFLLM answer, ~300 tokens, takes ~5 s).
    """
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be str, not {type(t).__name__}")
    model = _identify(model_path)
    max_tokens = _check_max_tokens(model, max_tokens)
    threads = int(n_threads) if n_threads else default_n_threads()
    skey = _settings_key(model, max_tokens)
    cache = _Cache(os.fspath(cache_dir) if cache_dir is not None else default_embedding_cache_dir(), skey,
                   model.dim, {"model": model.path, "model_name": model.name, "model_content_sha256": model.content,
                               "pooling": POOLING, "max_tokens": max_tokens, "dim": model.dim,
                               "version": EMBEDDING_VERSION,
                               "fingerprint": f"{model.name}-{POOLING}{max_tokens}-{skey[:12]}"})

    out = np.zeros((len(texts), model.dim), np.float32)
    todo: dict[bytes, list[int]] = {}  # key -> rows, in first-seen order
    texts_of: dict[bytes, str] = {}
    done = 0
    for i, text in enumerate(texts):
        if not text:
            done += 1
            continue
        key = hashlib.sha256(skey.encode() + b"\0" + text.encode("utf-8")).hexdigest().encode()
        hit = cache.get(key)
        if hit is not None:
            out[i] = hit
            done += 1
        else:
            todo.setdefault(key, []).append(i)
            texts_of[key] = text
    total = len(texts)
    if progress is not None:
        progress(done, total)
    if not todo:
        return out

    llm = None
    tokens = 0
    started = time.perf_counter()
    last_save = started
    try:
        for key, rows in todo.items():
            if cancel is not None and cancel():
                raise EmbeddingCancelled(done, total)
            if llm is None:
                llm = _open_llama(model, max_tokens, threads)
            vector, n = _embed_one(llm, model, texts_of[key], max_tokens)
            tokens += n
            out[rows] = vector
            cache.put(key, vector)
            done += len(rows)
            if progress is not None:
                progress(done, total)
            if time.perf_counter() - last_save > _SAVE_EVERY_S:
                cache.save()
                last_save = time.perf_counter()
    finally:
        cache.save()
        if llm is not None:
            llm.close()
    took = time.perf_counter() - started
    log.info("embedded %d texts (%d tokens) in %.1f s (%.0f tokens/s); %d from the cache", len(todo), tokens,
             took, tokens / took if took > 0 else 0.0, total - sum(len(r) for r in todo.values()))
    return out
