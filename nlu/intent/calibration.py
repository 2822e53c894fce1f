"""Temperature scaling, which turns a model's scores into calibrated probabilities.

A classifier's softmax is usually over-confident. Dividing the scores by one temperature,
fitted on validation data by minimising the negative log-likelihood, keeps the ranking and
makes a confidence of 0.7 correct about 70% of the time. One threshold can then separate
out-of-scope turns.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize_scalar

logger = logging.getLogger(__name__)

# Search bounds of the natural log of the temperature.
_LOG_T_BOUNDS = (-4.0, 4.0)


def softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``scores / temperature``."""
    scaled = np.asarray(scores, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def fit_temperature(scores: np.ndarray, targets: np.ndarray) -> float:
    """Return the temperature that minimises the negative log-likelihood of ``targets``.

    Args:
        scores: Shape (n, classes), raw scores (logits or decision values).
        targets: Shape (n,), the index of the correct class of each row.

    Returns:
        A temperature between e^-4 and e^4, or 1.0 when there are no rows or every row is
        classified correctly.
    """
    if len(targets) == 0:
        return 1.0
    if (np.asarray(scores).argmax(axis=1) == targets).all():
        # When every row is correct, the likelihood keeps growing as the temperature falls,
        # which would push every later probability towards 0 or 1. So the scores stay as
        # they are.
        logger.warning(
            "All %d validation rows are classified correctly, so the temperature stays 1.0. "
            "Add harder validation turns to calibrate the confidences",
            len(targets),
        )
        return 1.0
    rows = np.arange(len(targets))

    def negative_log_likelihood(log_temperature: float) -> float:
        probabilities = softmax(scores, float(np.exp(log_temperature)))
        return float(-np.log(probabilities[rows, targets] + 1e-12).mean())

    result = minimize_scalar(negative_log_likelihood, bounds=_LOG_T_BOUNDS, method="bounded")
    temperature = float(np.exp(result.x))
    logger.info(
        "Fitted temperature %.3f on %d rows (NLL %.4f -> %.4f)",
        temperature,
        len(targets),
        negative_log_likelihood(0.0),
        result.fun,
    )
    return temperature


def expected_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, bins: int = 10
) -> float:
    """Return the expected calibration error over equal-width confidence bins."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidences) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidences > low) & (confidences <= high)
        if in_bin.any():
            gap = abs(confidences[in_bin].mean() - correct[in_bin].mean())
            error += gap * in_bin.mean()
    return float(error)
