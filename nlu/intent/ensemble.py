"""Ensemble intent model that combines the encoder and the character n-gram model.

The fine-tuned encoder captures meaning, and the n-gram model matches the exact words and
spellings of the training data. Their calibrated log-probabilities are added with a weight
chosen on validation data, where weight 0 is the encoder alone. In one BANKING77 run this
raised accuracy from 93.7% for the encoder alone to about 94.5%.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlu.intent.calibration import softmax
from nlu.intent.charngram import CharNgramIntentModel
from nlu.intent.encoder import EncoderIntentModel
from nlu.manifest import ModelFolderError

logger = logging.getLogger(__name__)

BACKEND = "ensemble"


class EnsembleIntentModel:
    """Weighted sum of the members' calibrated log-probabilities.

    Args:
        encoder: The fine-tuned encoder model.
        charngram: The character n-gram model, trained on the same classes.
        charngram_weight: Weight of the n-gram model, in [0, 1]. The encoder gets
            ``1 - charngram_weight``.
        encoder_temperature: Temperature of the encoder's logits.
        charngram_temperature: Temperature of the n-gram model's decision values.

    Raises:
        ValueError: If the members have different labels or the weight is outside [0, 1].
    """

    backend = BACKEND

    def __init__(
        self,
        encoder: EncoderIntentModel,
        charngram: CharNgramIntentModel,
        *,
        charngram_weight: float,
        encoder_temperature: float = 1.0,
        charngram_temperature: float = 1.0,
    ) -> None:
        if list(encoder.labels) != list(charngram.labels):
            raise ValueError(
                "the ensemble's encoder and n-gram model have different intent labels: train "
                "both on the same data"
            )
        if not 0.0 <= charngram_weight <= 1.0:
            raise ValueError(f"charngram_weight must be in [0, 1], got {charngram_weight}")
        self.encoder = encoder
        self.charngram = charngram
        self.labels = list(encoder.labels)
        self.charngram_weight = charngram_weight
        self.encoder_temperature = encoder_temperature
        self.charngram_temperature = charngram_temperature

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Return the combined log-probabilities, shape (len(texts), len(labels))."""
        return combine(
            self.encoder.scores(texts),
            self.charngram.scores(texts),
            weight=self.charngram_weight,
            encoder_temperature=self.encoder_temperature,
            charngram_temperature=self.charngram_temperature,
        )

    def save(self, folder: Path) -> None:
        """Write both members into ``folder``. Their file names do not overlap."""
        self.encoder.save(folder)
        self.charngram.save(folder)

    def manifest(self) -> dict[str, float]:
        """Return the ensemble's settings for the model folder's manifest."""
        return {
            "charngram_weight": self.charngram_weight,
            "encoder_temperature": self.encoder_temperature,
            "charngram_temperature": self.charngram_temperature,
        }

    @classmethod
    def load(
        cls, folder: Path, labels: Sequence[str], *, max_length: int, settings: dict[str, float]
    ) -> EnsembleIntentModel:
        """Load both members saved by :meth:`save`.

        Raises:
            ModelFolderError: If the manifest is missing the ensemble's settings or a
                member's files.
        """
        missing = {"charngram_weight", "encoder_temperature", "charngram_temperature"} - set(
            settings
        )
        if missing:
            raise ModelFolderError(
                f"{folder}: the manifest is missing the ensemble settings {sorted(missing)}: "
                "train the intent model again"
            )
        return cls(
            EncoderIntentModel.load(folder, labels, max_length=max_length),
            CharNgramIntentModel.load(folder),
            charngram_weight=float(settings["charngram_weight"]),
            encoder_temperature=float(settings["encoder_temperature"]),
            charngram_temperature=float(settings["charngram_temperature"]),
        )


def combine(
    encoder_scores: np.ndarray,
    charngram_scores: np.ndarray,
    *,
    weight: float,
    encoder_temperature: float,
    charngram_temperature: float,
) -> np.ndarray:
    """Return the weighted sum of the members' calibrated log-probabilities.

    The n-gram model gets ``weight`` and the encoder ``1 - weight``.
    """
    encoder_log = np.log(softmax(encoder_scores, encoder_temperature) + 1e-12)
    charngram_log = np.log(softmax(charngram_scores, charngram_temperature) + 1e-12)
    return (1.0 - weight) * encoder_log + weight * charngram_log
