"""Choose the confidence under which a turn counts as out of scope.

With out-of-scope examples in the validation data, each distinct confidence is tried as a
threshold, or 401 evenly spaced quantiles of them when there are more than 400. Two rates
compete: in-scope accuracy (an in-scope turn gets its own intent) and out-of-scope recall
(an out-of-scope turn is recognised). The chosen threshold recognises the most
out-of-scope turns while in-scope accuracy stays within ``max_in_scope_drop`` of its value
without a threshold, so a support team decides how many real questions it will give up.
Without such examples, the threshold is set so that a small share of the correctly
classified validation turns would fall under it, and the rest of them keep their intent.
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

DEFAULT_MAX_IN_SCOPE_DROP = 0.01
"""In-scope accuracy the threshold may cost on validation data with out-of-scope turns."""


@dataclass(frozen=True)
class ThresholdChoice:
    """A chosen threshold with its scores on the validation data.

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

    Raises:
        ValueError: If ``labels`` contains no in-scope intent.
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
    max_in_scope_drop: float = DEFAULT_MAX_IN_SCOPE_DROP,
) -> ThresholdChoice:
    """Choose the out-of-scope threshold on validation data.

    Args:
        probabilities: Calibrated probabilities, shape (n, len(labels)).
        labels: The model's classes, possibly including ``oos``.
        gold: The correct label of each row; ``oos`` marks out-of-scope rows.
        in_scope_loss: Without out-of-scope rows, the share of correctly classified
            in-scope rows that may fall under the threshold.
        max_in_scope_drop: With out-of-scope rows, how much in-scope accuracy the
            threshold may cost compared with no threshold (0.01 is one point).

    Returns:
        The threshold with its validation figures.

    Raises:
        ValueError: If there are no rows or no in-scope rows, or if ``in_scope_loss`` is
            outside [0, 1) when it is used.
    """
    gold_array = np.asarray(gold)
    is_oos = gold_array == OUT_OF_SCOPE
    if len(gold_array) == 0 or is_oos.all():
        raise ValueError(
            "choosing a threshold needs in-scope validation examples: add validation turns "
            "labelled with intents"
        )

    if is_oos.any():
        if not 0.0 <= max_in_scope_drop < 1.0:
            raise ValueError(f"max_in_scope_drop must be in [0, 1), got {max_in_scope_drop}")
        return _constrained_threshold(probabilities, labels, gold_array, is_oos, max_in_scope_drop)
    return _quantile_threshold(probabilities, labels, gold_array, in_scope_loss)


def _constrained_threshold(probabilities, labels, gold, is_oos, max_drop) -> ThresholdChoice:
    _, confidence = decide(probabilities, labels, 0.0)
    candidates = np.unique(np.concatenate([[0.0], confidence]))
    # Bound the search cost: above 400 candidates, try 401 evenly spaced quantiles.
    if len(candidates) > 400:
        candidates = np.unique(np.quantile(candidates, np.linspace(0.0, 1.0, 401)))

    best: ThresholdChoice | None = None
    floor: float | None = None
    for threshold in candidates:
        decisions, _ = decide(probabilities, labels, float(threshold))
        decisions_array = np.asarray(decisions)
        in_scope_accuracy = float((decisions_array[~is_oos] == gold[~is_oos]).mean())
        oos_recall = float((decisions_array[is_oos] == OUT_OF_SCOPE).mean())
        if floor is None:
            # The first candidate is 0.0: accuracy without a threshold sets the floor.
            floor = in_scope_accuracy - max_drop
        if in_scope_accuracy < floor:
            continue
        # Candidates rise, so on equal recall the lower threshold, kept first, wins.
        if best is None or oos_recall > best.oos_recall:
            best = ThresholdChoice(
                float(threshold), "oos_validation", in_scope_accuracy, oos_recall
            )

    assert best is not None, "threshold 0.0 always meets the accuracy floor"
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
    # "lower" takes an observed confidence at or under the quantile, so on a small set no
    # more than the allowed share of correct turns falls under the threshold.
    threshold = (
        float(np.quantile(confidence[correct], in_scope_loss, method="lower"))
        if correct.any()
        else 0.0
    )
    decisions, _ = decide(probabilities, labels, threshold)
    in_scope_accuracy = float((np.asarray(decisions) == gold).mean())
    logger.info(
        "Chose threshold %.4f from %d in-scope validation rows (no OOS rows): accuracy %.4f",
        threshold,
        len(gold),
        in_scope_accuracy,
    )
    return ThresholdChoice(threshold, "in_scope_quantile", in_scope_accuracy, None)
