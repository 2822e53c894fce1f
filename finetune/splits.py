"""Train, validation and test splits that keep each conversation in one split.

Example:
    >>> splits = split_by_conversation(pairs, validation=0.1, test=0.1, seed=42)
    >>> len(splits.train), len(splits.validation), len(splits.test)
    (1460, 190, 180)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from finetune.pairs import TrainingPair

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "validation", "test")
# Hash values are read as integers in [0, 2**64) and scaled to [0, 1).
_HASH_RANGE = float(2**64)


@dataclass(frozen=True)
class DatasetSplits:
    """Pairs per split, each list in the order of the input pairs."""

    train: list[TrainingPair]
    validation: list[TrainingPair]
    test: list[TrainingPair]

    def items(self) -> list[tuple[str, list[TrainingPair]]]:
        """Return (split name, pairs) for train, validation and test in that order."""
        return [(name, getattr(self, name)) for name in SPLIT_NAMES]


def split_by_conversation(
    pairs: Sequence[TrainingPair],
    *,
    validation: float = 0.1,
    test: float = 0.1,
    seed: int = 42,
) -> DatasetSplits:
    """Assign every conversation, with all of its pairs, to one split.

    Each conversation's split comes from a SHA-256 hash of the seed and its external id
    alone. So adding conversations later never moves an existing one to another split,
    and a re-import with new primary keys gives the same splits.
    The fractions are expected shares of conversations, not of pairs, so with few
    conversations the actual shares can differ noticeably.

    Args:
        pairs: Pairs from any number of conversations.
        validation: Expected fraction of conversations in validation, in [0, 1).
        test: Expected fraction of conversations in test, in [0, 1).
        seed: Changes the assignment; the same seed always gives the same splits.

    Returns:
        The three splits.

    Raises:
        ValueError: If a fraction is outside [0, 1) or the two sum to 1 or more.
    """
    _validate_fractions(validation=validation, test=test)

    splits = DatasetSplits(train=[], validation=[], test=[])
    for pair in pairs:
        name = conversation_split(pair.external_id, validation=validation, test=test, seed=seed)
        getattr(splits, name).append(pair)

    fractions = {"train": 1.0 - validation - test, "validation": validation, "test": test}
    for name, split_pairs in splits.items():
        if pairs and fractions[name] > 0 and not split_pairs:
            logger.warning(
                "Split %s is empty; use more conversations or a larger fraction for it", name
            )
    logger.info(
        "Split pairs train=%d validation=%d test=%d seed=%d",
        len(splits.train),
        len(splits.validation),
        len(splits.test),
        seed,
    )
    return splits


def conversation_split(
    external_id: str, *, validation: float = 0.1, test: float = 0.1, seed: int = 42
) -> str:
    """Return the split ("train", "validation" or "test") of one conversation.

    The same function assigns pairs in :func:`split_by_conversation`, so the dialogs
    that ``supportbot eval`` replays are the ones fine-tuning held out.

    Raises:
        ValueError: If a fraction is outside [0, 1) or the two sum to 1 or more.
    """
    _validate_fractions(validation=validation, test=test)
    position = _hash_position(external_id, seed)
    if position < test:
        return "test"
    if position < test + validation:
        return "validation"
    return "train"


def _hash_position(external_id: str, seed: int) -> float:
    """Map a conversation to a uniform position in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _HASH_RANGE


def _validate_fractions(*, validation: float, test: float) -> None:
    for name, value in (("validation", validation), ("test", test)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value}")
    if validation + test >= 1.0:
        raise ValueError(
            f"validation ({validation}) + test ({test}) must be below 1 to leave pairs "
            "for training; lower one of them"
        )
