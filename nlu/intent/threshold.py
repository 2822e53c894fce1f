"""Choose the confidence under which a turn counts as out of scope.

With out-of-scope examples in the validation data, every distinct confidence is tried as a
threshold and the one that best balances two rates wins: in-scope accuracy (an in-scope turn
gets its own intent) and out-of-scope recall (an out-of-scope turn is recognised). Without
such examples, the threshold is set so that a small share of the correctly classified
validation turns would fall under it; the rest of them keep their intent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from nlu.types import OUT_OF_SCOPE

logger = logging.getLogger(__name__)

DEFAULT_IN_SCOPE_LOSS = 0.02
"""Share of correct validation turns allowed under the threshold when no OOS data exists."""


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold and how it did on the validation data.

    Attributes:
        threshold: Confidence under which a turn is out of scope.
        method: ``oos_validation`` or ``in_scope_quantile``.
        in_scope_accuracy: Share of in-scope validation turns given their own intent.
        oos_recall: Share of out-of-scope validation turns recognised, or None without them.
    """

    threshold: float
    method: str
    in_scope_accuracy: float
    oos_recall: float | None

    def to_dict(self) -> dict[str, float | str | None]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


def decide(
    probabilities: np.ndarray, labels: Sequence[str], threshold: float
) -> tuple[list[str], np.ndarray]:
    """Return the decision per row (an intent or ``oos``) and the best in-scope confidence.

    A row is out of scope when the explicit ``oos`` class (if the model has one) has the
    highest probability, or when the best in-scope intent's probability is under
    ``threshold``.
    """
    probabilities = np.asarray(probabilities)
    in_scope = np.array([label != OUT_OF_SCOPE for label in labels])
    if not in_scope.any():
        raise ValueError("the model has no in-scope intent: train it on labelled intents")

    in_scope_indices = np.flatnonzero(in_scope)
    best_local = probabilities[:, in_scope].argmax(axis=1)
    best_index = in_scope_indices[best_local]
    confidence = probabilities[np.arange(len(probabilities)), best_index]
    oos_wins = np.zeros(len(probabilities), dtype=bool)
    if not in_scope.all():
        oos_column = list(labels).index(OUT_OF_SCOPE)
        oos_wins = probabilities[:, oos_column] > confidence

    decisions = [
        OUT_OF_SCOPE if (oos or score < threshold) else labels[index]
        for index, score, oos in zip(best_index, confidence, oos_wins, strict=True)
    ]
    return decisions, confidence


def choose_threshold(
    probabilities: np.ndarray,
    labels: Sequence[str],
    gold: Sequence[str],
    *,
    in_scope_loss: float = DEFAULT_IN_SCOPE_LOSS,
) -> ThresholdChoice:
    """Choose the out-of-scope threshold on validation data.

    Args:
        probabilities: Calibrated probabilities, shape (n, len(labels)).
        labels: The model's classes, possibly including ``oos``.
        gold: The right label of each row; ``oos`` marks out-of-scope rows.
        in_scope_loss: Without out-of-scope rows, the share of correctly classified
            in-scope rows that may fall under the threshold.

    Returns:
        The threshold with its validation figures.

    Raises:
        ValueError: If there are no rows or no in-scope rows.
    """
    gold_array = np.asarray(gold)
    is_oos = gold_array == OUT_OF_SCOPE
    if len(gold_array) == 0 or is_oos.all():
        raise ValueError("choosing a threshold needs in-scope validation examples")

    if is_oos.any():
        return _balanced_threshold(probabilities, labels, gold_array, is_oos)
    return _quantile_threshold(probabilities, labels, gold_array, in_scope_loss)


def _balanced_threshold(probabilities, labels, gold, is_oos) -> ThresholdChoice:
    _, confidence = decide(probabilities, labels, 0.0)
    candidates = np.unique(np.concatenate([[0.0], confidence]))
    if len(candidates) > 400:
        candidates = np.unique(np.quantile(candidates, np.linspace(0.0, 1.0, 401)))

    best: ThresholdChoice | None = None
    best_score = -1.0
    for threshold in candidates:
        decisions, _ = decide(probabilities, labels, float(threshold))
        decisions_array = np.asarray(decisions)
        in_scope_accuracy = float((decisions_array[~is_oos] == gold[~is_oos]).mean())
        oos_recall = float((decisions_array[is_oos] == OUT_OF_SCOPE).mean())
        score = (in_scope_accuracy + oos_recall) / 2
        if score > best_score:
            best_score = score
            best = ThresholdChoice(
                float(threshold), "oos_validation", in_scope_accuracy, oos_recall
            )

    assert best is not None
    logger.info(
        "Chose threshold %.4f on %d validation rows: in-scope accuracy %.4f, OOS recall %.4f",
        best.threshold,
        len(gold),
        best.in_scope_accuracy,
        best.oos_recall,
    )
    return best


def _quantile_threshold(probabilities, labels, gold, in_scope_loss) -> ThresholdChoice:
    if not 0.0 <= in_scope_loss < 1.0:
        raise ValueError(f"in_scope_loss must be in [0, 1), got {in_scope_loss}")
    decisions, confidence = decide(probabilities, labels, 0.0)
    correct = np.asarray(decisions) == gold
    threshold = float(np.quantile(confidence[correct], in_scope_loss)) if correct.any() else 0.0
    decisions, _ = decide(probabilities, labels, threshold)
    in_scope_accuracy = float((np.asarray(decisions) == gold).mean())
    logger.info(
        "Chose threshold %.4f from %d in-scope validation rows (no OOS rows): accuracy %.4f",
        threshold,
        len(gold),
        in_scope_accuracy,
    )
    return ThresholdChoice(threshold, "in_scope_quantile", in_scope_accuracy, None)
