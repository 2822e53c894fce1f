"""Classify one customer turn: calibrated probabilities, then the out-of-scope decision.

:class:`IntentClassifier` wraps any intent model that scores texts (character n-gram or
encoder), divides the scores by the fitted temperature, and applies the threshold chosen on
validation data. Texts with nothing to classify (empty, emoji, punctuation) and slash
commands are out of scope without asking the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nlu.intent.calibration import softmax
from nlu.intent.threshold import decide
from nlu.manifest import ModelFolderError, read_manifest, write_manifest
from nlu.normalize import DEFAULT_MAX_CHARS, normalize_text
from nlu.types import OUT_OF_SCOPE, IntentPrediction

logger = logging.getLogger(__name__)

RANKING_SIZE = 3
# Manifest keys that the classifier stores as attributes or rebuilds on save, so they are
# not kept in ``metadata``.
_OWN_MANIFEST_KEYS = frozenset(
    {"kind", "backend", "labels", "temperature", "threshold", "language", "max_chars", "ensemble"}
)


class IntentScorer(Protocol):
    """Interface of an intent backend: its labels, raw scores and saving."""

    backend: str
    labels: list[str]

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Return raw scores, shape (len(texts), len(labels))."""

    def save(self, folder: Path) -> None:
        """Write the model's files into ``folder``."""


class IntentClassifier:
    """An intent model with its temperature and out-of-scope threshold.

    Attributes:
        model: The backend that scores texts.
        temperature: Divisor of the scores before the softmax, fitted on validation data.
        threshold: Best in-scope probability under which a turn is out of scope.
        language: Language the model serves ("en", "zh-CN"), or None for every language.
        version: Registered version name, set by the code that loads it for serving.
        max_chars: Maximum characters of a turn that the model reads.
        metadata: Other manifest entries, such as ``base_model``, written back on save.

    Raises:
        ValueError: If ``temperature`` is not positive.
    """

    def __init__(
        self,
        model: IntentScorer,
        *,
        temperature: float = 1.0,
        threshold: float = 0.0,
        language: str | None = None,
        version: str | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.model = model
        self.temperature = temperature
        self.threshold = threshold
        self.language = language
        self.version = version
        self.max_chars = max_chars
        self.metadata = dict(metadata or {})

    @property
    def labels(self) -> list[str]:
        """The model's classes, with ``oos`` when it was trained with an explicit class."""
        return self.model.labels

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Return calibrated probabilities, shape (len(texts), len(labels))."""
        return softmax(self.model.scores(texts), self.temperature)

    def classify(self, text: str) -> IntentPrediction:
        """Classify one turn as one of the intents or as out of scope."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[IntentPrediction]:
        """Classify each text and return the predictions in input order.

        Slash commands and texts without a letter or digit are out of scope without
        running the model.
        """
        normalized = [normalize_text(text, self.max_chars) for text in texts]
        results: list[IntentPrediction | None] = [None] * len(texts)
        to_score: list[int] = []
        for index, item in enumerate(normalized):
            if item.command is not None:
                results[index] = self._without_model("command")
            elif not item.has_content:
                results[index] = self._without_model("no_content")
            else:
                to_score.append(index)

        if to_score:
            probabilities = self.probabilities([normalized[index].text for index in to_score])
            decisions, confidences = decide(probabilities, self.labels, self.threshold)
            for row, index in enumerate(to_score):
                results[index] = self._prediction(
                    probabilities[row], decisions[row], float(confidences[row])
                )
        return [result for result in results if result is not None]

    def _prediction(self, row: np.ndarray, decision: str, confidence: float) -> IntentPrediction:
        order = np.argsort(-row)[:RANKING_SIZE]
        ranking = [(self.labels[index], float(row[index])) for index in order]
        if decision != OUT_OF_SCOPE:
            return IntentPrediction(decision, confidence, False, self.threshold, ranking)
        reason = "below_threshold" if confidence < self.threshold else "oos_class"
        return IntentPrediction(None, confidence, True, self.threshold, ranking, reason)

    def _without_model(self, reason: str) -> IntentPrediction:
        return IntentPrediction(None, 0.0, True, self.threshold, [], reason)

    def save(self, folder: Path, **manifest_extra: Any) -> None:
        """Write the model and a manifest with temperature, threshold and ``manifest_extra``.

        An ensemble's member settings go under the manifest key ``ensemble``.
        """
        self.model.save(folder)
        member_settings = getattr(self.model, "manifest", None)
        manifest = {
            "kind": "intent",
            "backend": self.model.backend,
            "language": self.language,
            "labels": self.labels,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "max_chars": self.max_chars,
            **self.metadata,
            **manifest_extra,
        }
        if member_settings is not None:
            manifest["ensemble"] = member_settings()
        write_manifest(folder, manifest)
        logger.info("Saved %s intent model to %s", self.model.backend, folder)


def load_intent_classifier(folder: Path | str, version: str | None = None) -> IntentClassifier:
    """Load a classifier saved by :meth:`IntentClassifier.save`.

    Args:
        folder: The model folder, which contains ``nlu_model.json``.
        version: Registered version name to set on the classifier, or None.

    Raises:
        ModelFolderError: If the folder is not a complete intent model or names an unknown
            backend.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, "intent")
    backend = manifest.get("backend")
    labels = manifest.get("labels") or []
    if backend == "charngram":
        from nlu.intent.charngram import CharNgramIntentModel

        model: IntentScorer = CharNgramIntentModel.load(folder)
    elif backend == "encoder":
        from nlu.intent.encoder import EncoderIntentModel

        model = EncoderIntentModel.load(
            folder, labels, max_length=int(manifest.get("max_length", 64))
        )
    elif backend == "ensemble":
        from nlu.intent.ensemble import EnsembleIntentModel

        model = EnsembleIntentModel.load(
            folder,
            labels,
            max_length=int(manifest.get("max_length", 64)),
            settings=manifest.get("ensemble") or {},
        )
    else:
        raise ModelFolderError(
            f"{folder} names the unknown intent backend {backend!r}. This version of supportbot "
            "supports 'charngram', 'encoder' and 'ensemble': train the model again with it"
        )
    if list(model.labels) != list(labels):
        raise ModelFolderError(
            f"{folder}: the labels in the manifest do not match the saved model: train the "
            "intent model again"
        )
    logger.info("Loaded %s intent model %s from %s", backend, version or "(unregistered)", folder)
    return IntentClassifier(
        model,
        temperature=float(manifest.get("temperature", 1.0)),
        threshold=float(manifest.get("threshold", 0.0)),
        language=manifest.get("language"),
        version=version,
        max_chars=int(manifest.get("max_chars", DEFAULT_MAX_CHARS)),
        metadata={key: value for key, value in manifest.items() if key not in _OWN_MANIFEST_KEYS},
    )
