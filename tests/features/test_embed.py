"""Answer embeddings against the real llama.cpp and the bundled SmolLM2 model (no mocks):
shape and unit length, zeros for empty text, the same text the same vector, paraphrases
closer than unrelated texts, truncation by tokens, the cache (served without starting the
model, damaged or unwritable caches), cancel, and clear errors for bad model files."""
from __future__ import annotations

import itertools
import os
import shutil

import numpy as np
import pytest

from ifllm_lab.features.embed import (
    EmbeddingCancelled,
    embed_texts,
    embedding_fingerprint,
    model_load_count,
)
from ifllm_lab.jobs.job import JobCancelled
from ifllm_lab.llm.llama import default_model_path
from ifllm_lab.llm.types import LLMError

DIM = 576  # SmolLM2-135M
PARIS = "The capital of France is Paris."
PARIS_AGAIN = "Paris is the capital city of France."
BREAD = "To bake bread, mix flour, water, yeast and salt, then let the dough rise."
TEXTS = [PARIS, PARIS_AGAIN, BREAD, "", PARIS]


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """(vectors of TEXTS, their cache folder, progress calls, model loads it took)."""
    cache = str(tmp_path_factory.mktemp("embeddings"))
    calls = []
    before = model_load_count()
    vectors = embed_texts(TEXTS, cache_dir=cache, progress=lambda done, total: calls.append((done, total)))
    return vectors, cache, calls, model_load_count() - before


def test_unit_vectors_zeros_for_empty_text_and_progress(first):
    vectors, _cache, calls, loads = first
    assert vectors.shape == (len(TEXTS), DIM) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(norms[[0, 1, 2, 4]], 1.0, atol=1e-5)
    assert not vectors[3].any()  # the empty text
    assert np.array_equal(vectors[0], vectors[4])  # the same text twice in one call
    assert loads == 1
    # the empty text is done at once; PARIS counts twice when it is embedded
    assert calls[0] == (1, 5) and calls[-1] == (5, 5)
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(calls)) and {t for _, t in calls} == {5}


def test_paraphrases_are_closer_than_unrelated_texts(first):
    v = first[0]
    paraphrase = float(v[0] @ v[1])
    unrelated = float(v[0] @ v[2])
    assert paraphrase > unrelated + 0.1, (paraphrase, unrelated)


def test_same_text_same_vector_in_a_fresh_process_state(first, tmp_path):
    again = embed_texts([PARIS_AGAIN, PARIS], cache_dir=str(tmp_path))  # empty cache: computed again
    np.testing.assert_allclose(again, first[0][[1, 0]], atol=1e-6)


def test_cached_texts_do_not_start_the_model(first):
    vectors, cache, _calls, _loads = first
    before = model_load_count()
    calls = []
    again = embed_texts([BREAD, "", PARIS], cache_dir=cache, progress=lambda d, t: calls.append((d, t)))
    assert model_load_count() == before
    assert np.array_equal(again, vectors[[2, 3, 0]])
    assert calls == [(3, 3)]
    assert embed_texts([], cache_dir=cache).shape == (0, DIM) and model_load_count() == before


def test_cache_folder_holds_one_file_per_model_and_settings(first):
    _vectors, cache, _calls, _loads = first
    names = sorted(os.listdir(cache))
    assert len(names) == 2 and names[0].endswith(".json") and names[1].endswith(".npz")
    with np.load(os.path.join(cache, names[1])) as z:
        assert z["keys"].shape == (3,) and z["vectors"].shape == (3, DIM)  # 3 distinct non-empty texts


def test_long_texts_are_cut_to_their_first_tokens(tmp_path):
    head = "one two three four five six seven eight nine ten eleven twelve "
    a = head + "the weather is nice today and we are going to the beach"
    b = head + "quantum chromodynamics describes the strong interaction"
    short = embed_texts([a, b], cache_dir=str(tmp_path), max_tokens=8)
    assert np.array_equal(short[0], short[1])
    longer = embed_texts([a, b], cache_dir=str(tmp_path), max_tokens=64)
    assert float(longer[0] @ longer[1]) < 0.999
    assert embedding_fingerprint(max_tokens=8) != embedding_fingerprint(max_tokens=64)


def test_cancel_before_any_text_starts_nothing(tmp_path):
    before = model_load_count()
    with pytest.raises(EmbeddingCancelled) as err:
        embed_texts([PARIS, BREAD], cache_dir=str(tmp_path), cancel=lambda: True)
    assert isinstance(err.value, JobCancelled)  # a job running it ends as cancelled
    assert (err.value.done, err.value.total) == (0, 2)
    assert "cancelled" in str(err.value).lower()
    assert model_load_count() == before


def test_cancel_between_texts_keeps_what_was_done(first, tmp_path):
    checks = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) > 1  # stop before the second text

    with pytest.raises(EmbeddingCancelled) as err:
        embed_texts([PARIS, BREAD, PARIS_AGAIN], cache_dir=str(tmp_path), cancel=cancel)
    assert (err.value.done, err.value.total) == (1, 3)
    before = model_load_count()
    kept = embed_texts([PARIS], cache_dir=str(tmp_path), cancel=lambda: True)  # cached: never asks
    assert model_load_count() == before
    np.testing.assert_allclose(kept[0], first[0][0], atol=1e-6)


def test_damaged_cache_is_ignored_and_rewritten(first, tmp_path):
    vectors, cache, _calls, _loads = first
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    npz = next(p for p in copy.iterdir() if p.suffix == ".npz")
    npz.write_bytes(b"not a numpy file")
    again = embed_texts([PARIS], cache_dir=str(copy))
    np.testing.assert_allclose(again[0], vectors[0], atol=1e-6)
    before = model_load_count()
    embed_texts([PARIS], cache_dir=str(copy))
    assert model_load_count() == before


def test_cache_that_cannot_be_written_only_costs_time(first, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    for _ in range(2):
        before = model_load_count()
        got = embed_texts([BREAD], cache_dir=str(blocked))
        np.testing.assert_allclose(got[0], first[0][2], atol=1e-6)
        assert model_load_count() == before + 1


def test_corrupt_or_missing_model_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    missing = tmp_path / "nowhere.gguf"
    before = model_load_count()
    for path in (bad, missing):
        for call in (lambda p=path: embed_texts([PARIS], model_path=str(p), cache_dir=str(tmp_path)),
                     lambda p=path: embed_texts([""], model_path=p, cache_dir=str(tmp_path)),
                     lambda p=path: embedding_fingerprint(p)):
            with pytest.raises(LLMError) as err:
                call()
            message = str(err.value)
            assert str(path) in message and "\n" not in message, message
    assert model_load_count() == before


def test_fingerprint_names_model_and_settings():
    fp = embedding_fingerprint()
    assert fp == embedding_fingerprint(default_model_path(), 512)
    assert fp.startswith(default_model_path().name[:-5]) and "-mean512-" in fp and len(fp) < 80


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    before = model_load_count()
    with pytest.raises(ValueError, match="max_tokens"):
        embed_texts([PARIS], cache_dir=str(tmp_path), max_tokens=0)
    with pytest.raises(ValueError, match="max_tokens"):
        embed_texts([PARIS], cache_dir=str(tmp_path), max_tokens=10**6)
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embed_texts([PARIS, None], cache_dir=str(tmp_path))  # type: ignore[list-item]
    assert model_load_count() == before
