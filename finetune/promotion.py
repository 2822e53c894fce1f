"""Decide whether a fine-tuned model replaces the model that serves now.

The rule: the candidate must beat the baseline's mean ROUGE-L on the same held-out
test pairs by at least ``min_rouge_l_gain``, and must not be worse on token F1. Both are
computed on generated answers, so they measure what customers would read; perplexity
is reported beside them but does not decide, because a base model that was never
trained on the team's answers can still have the lower perplexity on short replies.

Example:
    >>> decision = decide_promotion(candidate_scores, baseline_scores)
    >>> decision.promote, decision.reason
    (True, 'ROUGE-L 0.312 vs 0.118 (+0.194), token F1 0.355 vs 0.141')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)

DEFAULT_MIN_ROUGE_L_GAIN = 0.005


class Scores(Protocol):
    """Mean metrics of one model on the test pairs."""

    rouge_l: float
    token_f1: float


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the candidate should serve, and why, in one line for logs and reports."""

    promote: bool
    reason: str


def decide_promotion(
    candidate: Scores, baseline: Scores, *, min_rouge_l_gain: float = DEFAULT_MIN_ROUGE_L_GAIN
) -> PromotionDecision:
    """Apply the promotion rule of this module to two score sets of the same test pairs."""
    gain = candidate.rouge_l - baseline.rouge_l
    summary = (
        f"ROUGE-L {candidate.rouge_l:.3f} vs {baseline.rouge_l:.3f} ({gain:+.3f}), "
        f"token F1 {candidate.token_f1:.3f} vs {baseline.token_f1:.3f}"
    )
    if gain < min_rouge_l_gain:
        return PromotionDecision(
            False, f"{summary}: ROUGE-L gain below the required {min_rouge_l_gain:+.3f}"
        )
    if candidate.token_f1 < baseline.token_f1:
        return PromotionDecision(False, f"{summary}: token F1 is lower")
    return PromotionDecision(True, summary)
