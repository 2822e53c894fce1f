"""The interface of entity taggers, their manifest, and the steps every backend shares.

A tagger folder contains the model files of one backend and a manifest, ``nlu_model.json``:

.. code-block:: json

    {"kind": "ner", "backend": "crf", "language": "zh", "labels": ["O", "B-song", "I-song"],
     "base_model": null, "max_length": 512}

``labels`` lists the BIO tags in the order of the model's label indices. ``max_length`` is
the most sub-word tokens (transformer, special tokens included) or words (CRF) one text is
tagged with; later words are predicted as outside (``O``). Other keys (training settings,
metrics) may be present and are kept in ``TaggerManifest.extra``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nlu.decoding import decode_entities, tag_spans
from nlu.manifest import MANIFEST_NAME, ModelFolderError, write_manifest
from nlu.manifest import read_manifest as read_model_manifest
from nlu.taggers.errors import TaggerLoadError
from nlu.types import Entity
from nlu.words import Word, split_words

logger = logging.getLogger(__name__)

MANIFEST_FILE = MANIFEST_NAME
MANIFEST_KIND = "ner"
BACKENDS = ("transformer", "crf")
_REQUIRED_KEYS = ("kind", "backend", "language", "labels", "max_length")


@runtime_checkable
class EntityTagger(Protocol):
    """Interface of an entity tagger as the dialog manager uses it.

    ``version`` is set by the code that loads the tagger and appears in each entity's
    ``source`` as ``model:<version>``.
    """

    version: str

    @property
    def labels(self) -> list[str]:
        """The BIO tags the model predicts, in the order of its label indices."""
        ...

    @property
    def language(self) -> str:
        """The language tag the model was trained for, such as ``en`` or ``zh``."""
        ...

    def predict(self, text: str) -> list[Entity]:
        """Return the entities found in ``text``, in text order."""
        ...

    def predict_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Return the entities of each text, in the order of ``texts``."""
        ...


@dataclass(frozen=True)
class TagPrediction:
    """The predicted tags of one word sequence.

    Attributes:
        tags: One BIO tag per word.
        probabilities: The model's probability of each word's tag (0..1).
    """

    tags: list[str]
    probabilities: list[float]


@dataclass(frozen=True)
class TaggerManifest:
    """The contents of ``nlu_model.json``.

    Attributes:
        backend: ``transformer`` or ``crf``.
        language: Language tag of the training data, such as ``en`` or ``zh``; it selects
            how text is split into words.
        labels: The BIO tags in the order of the model's label indices.
        max_length: Maximum sub-word tokens (transformer) or words (CRF) tagged per text.
        base_model: The model the tagger was fine-tuned from, or None for a CRF.
        extra: Any further keys, such as training settings and metrics.
    """

    backend: str
    language: str
    labels: list[str]
    max_length: int
    base_model: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object written to ``nlu_model.json``."""
        return {
            "kind": MANIFEST_KIND,
            "backend": self.backend,
            "language": self.language,
            "labels": list(self.labels),
            "base_model": self.base_model,
            "max_length": self.max_length,
            **self.extra,
        }

    def write(self, folder: Path) -> Path:
        """Write the manifest into ``folder`` (created if missing) and return the file's path."""
        return write_manifest(Path(folder), self.to_dict())


def read_manifest(folder: Path) -> TaggerManifest:
    """Read and check the manifest of a tagger folder.

    Args:
        folder: A folder written by entity-tagger training.

    Returns:
        The manifest.

    Raises:
        TaggerLoadError: If the folder or its ``nlu_model.json`` is missing, the file is not
            a JSON object, ``kind`` is not ``ner``, a required key is missing, the backend is
            unknown, or the labels or ``max_length`` are invalid.
    """
    folder = Path(folder)
    try:
        data = read_model_manifest(folder, MANIFEST_KIND)
    except ModelFolderError as error:
        raise TaggerLoadError(str(error)) from error

    _validate_manifest_data(data, folder / MANIFEST_FILE)
    known = {*_REQUIRED_KEYS, "base_model"}
    return TaggerManifest(
        backend=data["backend"],
        language=data["language"],
        labels=list(data["labels"]),
        max_length=int(data["max_length"]),
        base_model=data.get("base_model"),
        extra={key: value for key, value in data.items() if key not in known},
    )


def _validate_manifest_data(data: dict[str, Any], path: Path) -> None:
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise TaggerLoadError(f"{path} lacks the keys {missing}: retrain the tagger")
    if data["backend"] not in BACKENDS:
        raise TaggerLoadError(
            f"{path} names the unknown backend {data['backend']!r}: use one of {BACKENDS}"
        )
    if not isinstance(data["language"], str) or not data["language"].strip():
        raise TaggerLoadError(f"{path}: language must be a tag such as 'en' or 'zh'")
    labels = data["labels"]
    if not isinstance(labels, list) or "O" not in labels or len(set(labels)) != len(labels):
        raise TaggerLoadError(f"{path}: labels must be a list of unique BIO tags including 'O'")
    for label in labels:
        try:
            tag_spans([label])
        except (TypeError, ValueError, AttributeError) as error:
            raise TaggerLoadError(f"{path}: invalid label {label!r}: {error}") from error
    if not isinstance(data["max_length"], int) or data["max_length"] < 1:
        raise TaggerLoadError(
            f"{path}: max_length must be a positive integer, got {data['max_length']!r}"
        )


class WordTaggerBase:
    """Text-level prediction shared by the backends, on top of their ``tag_words``.

    Subclasses set ``_manifest`` and ``version`` and implement ``tag_words``.
    """

    version: str
    _manifest: TaggerManifest

    @property
    def labels(self) -> list[str]:
        """The BIO tags the model predicts, in the order of its label indices."""
        return list(self._manifest.labels)

    @property
    def language(self) -> str:
        """The language tag the model was trained for, such as ``en`` or ``zh``."""
        return self._manifest.language

    @property
    def manifest(self) -> TaggerManifest:
        """The manifest the tagger was loaded with."""
        return self._manifest

    def tag_words(self, word_lists: Sequence[Sequence[str]]) -> list[TagPrediction]:
        """Tag already split word sequences; evaluation calls this with the gold words.

        Words past the model's ``max_length`` are tagged ``O`` with probability 1.0, and an
        empty sequence gives an empty prediction.
        """
        raise NotImplementedError

    def predict(self, text: str) -> list[Entity]:
        """Find the entities in one text.

        Args:
            text: The customer's text, any length. Only its first ``max_length`` tokens or
                words are tagged.

        Returns:
            The entities in text order, with character offsets into ``text`` and
            ``source="model:<version>"``; an empty list for empty or blank text.
        """
        return self.predict_many([text])[0]

    def predict_many(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Find the entities in each of several texts, tagged in batches.

        Args:
            texts: The texts; each is handled as in ``predict``.

        Returns:
            The entities of each text, in the order of ``texts``.
        """
        split_texts: list[list[Word]] = [split_words(text, self.language) for text in texts]
        predictions = self.tag_words([[word.text for word in words] for words in split_texts])

        results = []
        for text, words, prediction in zip(texts, split_texts, predictions, strict=True):
            results.append(
                decode_entities(
                    text,
                    words,
                    prediction.tags,
                    version=self.version,
                    confidences=prediction.probabilities,
                )
            )
        return results
