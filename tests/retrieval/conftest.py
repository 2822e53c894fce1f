"""Fixtures for the retrieval tests: the packaged embedder and copies of the knowledge files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

# Set before sentence-transformers imports huggingface_hub, which reads it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from retrieval.embedder import SentenceTransformerEmbedder  # noqa: E402

FIXTURES_DIR = Path(__file__).parent / "fixtures"
PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The packaged all-MiniLM-L6-v2 on the CPU, loaded once per session."""
    return SentenceTransformerEmbedder(PACKAGED_MODEL, batch_size=16, device="cpu")


@pytest.fixture
def knowledge_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture knowledge files."""
    target = tmp_path / "knowledge"
    shutil.copytree(FIXTURES_DIR / "knowledge", target)
    return target


class RecordingEmbedder:
    """Wraps the real embedder, records what it embeds and can fail after some texts."""

    def __init__(self, inner: SentenceTransformerEmbedder, *, name: str | None = None) -> None:
        self._inner = inner
        self.name = name or inner.name
        self.dimension = inner.dimension
        self.batch_size = 2
        self.embedded: list[str] = []
        self.fail_after_texts: int | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.fail_after_texts is not None and len(self.embedded) >= self.fail_after_texts:
            raise RuntimeError("simulated embedding failure")
        self.embedded.extend(texts)
        return self._inner.embed(texts)


@pytest.fixture
def recording_embedder(embedder: SentenceTransformerEmbedder) -> RecordingEmbedder:
    """The packaged embedder wrapped to record calls; batch size 2 for several batches."""
    return RecordingEmbedder(embedder)
