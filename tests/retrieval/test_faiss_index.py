from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.errors import IndexCorruptError
from retrieval.faiss_index import MANIFEST_NAME, FaissPassageIndex, read_manifest

DIMENSION = 32


def _unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, DIMENSION)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _brute_force_top_k(queries, vectors, ids, k):
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


@pytest.fixture
def filled_index():
    vectors = _unit_vectors(200)
    ids = np.arange(200, dtype=np.int64) * 7 + 3
    index = FaissPassageIndex(DIMENSION, use_gpu=False)
    index.build(ids, vectors)
    return index, ids, vectors


def test_search_matches_brute_force(filled_index):
    index, ids, vectors = filled_index
    queries = _unit_vectors(10, seed=1)

    scores, found = index.search(queries, k=5)

    expected_scores, expected_ids = _brute_force_top_k(queries, vectors, ids, 5)
    np.testing.assert_array_equal(found, expected_ids)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-5)


def test_search_with_allowed_ids_matches_brute_force(filled_index):
    index, ids, vectors = filled_index
    queries = _unit_vectors(4, seed=2)
    allowed = ids[::3]

    _, found = index.search(queries, k=5, allowed_ids=allowed)

    mask = np.isin(ids, allowed)
    _, expected_ids = _brute_force_top_k(queries, vectors[mask], ids[mask], 5)
    np.testing.assert_array_equal(found, expected_ids)


def test_search_pads_missing_results():
    index = FaissPassageIndex(DIMENSION, use_gpu=False)
    index.add(np.array([1, 2]), _unit_vectors(2))

    scores, found = index.search(_unit_vectors(1, seed=3), k=4)

    assert found[0, 2:].tolist() == [-1, -1]
    assert np.isneginf(scores[0, 2:]).all()


def test_remove_drops_vectors(filled_index):
    index, ids, vectors = filled_index
    removed = ids[:50]

    count = index.remove(np.append(removed, 999_999))

    assert count == 50
    assert len(index) == 150
    _, found = index.search(vectors[:50], k=1)
    assert not np.isin(found, removed).any()


def test_add_rejects_existing_and_duplicate_ids(filled_index):
    index, ids, _ = filled_index

    with pytest.raises(ValueError, match="already in the index"):
        index.add(ids[:1], _unit_vectors(1))
    with pytest.raises(ValueError, match="duplicates"):
        index.add(np.array([5000, 5000]), _unit_vectors(2))
    with pytest.raises(ValueError, match=r"shape \(n, 32\)"):
        index.add(np.array([5000]), np.zeros((1, 8), dtype=np.float32))


def test_reconstruct_returns_stored_vectors(filled_index):
    index, ids, vectors = filled_index

    np.testing.assert_allclose(index.reconstruct(ids[[4, 9]]), vectors[[4, 9]])
    with pytest.raises(KeyError, match="chunk id 1 is not in the index"):
        index.reconstruct(np.array([1]))


def test_save_load_round_trip(filled_index, tmp_path):
    index, ids, vectors = filled_index
    queries = _unit_vectors(5, seed=4)

    manifest = index.save(tmp_path, embedding_model="test-model", source_fingerprint="abc")
    loaded, loaded_manifest = FaissPassageIndex.load(tmp_path, use_gpu=False)

    assert loaded_manifest == manifest
    assert manifest.count == 200
    assert manifest.dimension == DIMENSION
    assert manifest.embedding_model == "test-model"
    np.testing.assert_array_equal(loaded.ids, np.sort(ids))
    np.testing.assert_array_equal(loaded.search(queries, 5)[1], index.search(queries, 5)[1])


def test_save_replaces_previous_index_file(filled_index, tmp_path):
    index, ids, _ = filled_index
    first = index.save(tmp_path, embedding_model="m")
    index.remove(ids[:10])

    second = index.save(tmp_path, embedding_model="m")

    files = sorted(path.name for path in tmp_path.iterdir() if not path.name.startswith("."))
    assert files == sorted([MANIFEST_NAME, second.index_file])
    assert first.index_file != second.index_file
    assert FaissPassageIndex.load(tmp_path)[1].count == 190


def test_load_without_index_fails(tmp_path):
    assert read_manifest(tmp_path) is None
    with pytest.raises(IndexCorruptError, match="no index in"):
        FaissPassageIndex.load(tmp_path)


def test_load_detects_manifest_mismatch(filled_index, tmp_path):
    index, _, _ = filled_index
    index.save(tmp_path, embedding_model="m")
    manifest_path = tmp_path / MANIFEST_NAME
    values = json.loads(manifest_path.read_text())
    values["count"] = 10
    manifest_path.write_text(json.dumps(values))

    with pytest.raises(IndexCorruptError, match="does not match its manifest"):
        FaissPassageIndex.load(tmp_path)


def test_load_detects_truncated_file(filled_index, tmp_path):
    index, _, _ = filled_index
    manifest = index.save(tmp_path, embedding_model="m")
    path = tmp_path / manifest.index_file
    path.write_bytes(path.read_bytes()[:100])

    with pytest.raises(IndexCorruptError, match="missing or unreadable"):
        FaissPassageIndex.load(tmp_path)


def test_unparsable_manifest_fails(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text("{not json")

    with pytest.raises(IndexCorruptError, match="manifest .* is unreadable"):
        read_manifest(tmp_path)


def test_empty_index_round_trip(tmp_path):
    FaissPassageIndex(DIMENSION).save(tmp_path, embedding_model="m")

    loaded, manifest = FaissPassageIndex.load(tmp_path)

    assert manifest.count == 0
    assert loaded.search(_unit_vectors(1), k=3)[1].tolist() == [[-1, -1, -1]]
