"""Map word labels onto sub-word tokens and read word predictions back from token scores.

A sub-word tokenizer splits one word into several tokens ("ORD-2024-0001" becomes ``or``,
``##d``, ``-``, ``202``, ...). Training puts each word's label on its first sub-token and
ignores the others, and prediction reads each word's label from its first sub-token. The
mapping comes from a fast tokenizer's ``word_ids()``: one word index per token, ``None`` for
special and padding tokens.

Two cases leave a word without any token, and such a word is predicted as outside (``O``):

- the tokenizer drops it, as BERT's tokenizer drops a lone zero-width space or control
  character;
- truncation at the model's maximum length cuts it off.

Example:
    >>> encoding = tokenizer(["naïve", "ORD-1"], is_split_into_words=True)
    >>> align_labels(encoding.word_ids(), [0, 3])
    [-100, 0, 3, -100, -100, -100, -100]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
"""Label of tokens that take no part in the loss; PyTorch's cross-entropy skips it."""


@dataclass(frozen=True)
class WordPredictions:
    """Predictions for the words of one text, read from its token scores.

    Attributes:
        label_ids: The predicted label index of each word.
        probabilities: The probability of each word's predicted label (0..1); 1.0 for words
            without a token.
        is_covered: False for each word that had no token (dropped by the tokenizer or cut
            off by truncation) and was therefore given the outside label.
    """

    label_ids: list[int]
    probabilities: list[float]
    is_covered: list[bool]


def first_token_positions(word_ids: Sequence[int | None], num_words: int) -> list[int | None]:
    """Find the position of each word's first sub-token.

    Args:
        word_ids: The word index of each token, ``None`` for special and padding tokens.
        num_words: The number of words the text was split into.

    Returns:
        For each word, the index of its first token, or None when no token belongs to it.

    Raises:
        ValueError: If a token refers to a word index outside ``0..num_words - 1``.
    """
    positions: list[int | None] = [None] * num_words
    for position, word_id in enumerate(word_ids):
        if word_id is None:
            continue
        if not 0 <= word_id < num_words:
            raise ValueError(
                f"token {position} belongs to word {word_id}, but the text has {num_words} "
                "words: pass the word list the tokenizer was given"
            )
        if positions[word_id] is None:
            positions[word_id] = position
    return positions


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Give each token the label it is trained on.

    Args:
        word_ids: The word index of each token, ``None`` for special and padding tokens.
        word_labels: The label index of each word.

    Returns:
        One label per token: the word's label on its first sub-token, ``IGNORE_INDEX`` on
        later sub-tokens and on special and padding tokens. Words without a token get no
        label, so they take no part in the loss.

    Raises:
        ValueError: If a token refers to a word index outside ``word_labels``.
    """
    positions = first_token_positions(word_ids, len(word_labels))

    token_labels = [IGNORE_INDEX] * len(word_ids)
    for word_index, position in enumerate(positions):
        if position is not None:
            token_labels[position] = word_labels[word_index]
    return token_labels


def gather_word_scores(
    token_scores: np.ndarray,
    word_ids: Sequence[int | None],
    num_words: int,
    outside_id: int,
) -> tuple[np.ndarray, list[bool]]:
    """Take each word's row of label scores from its first sub-token.

    Args:
        token_scores: Label probabilities (or logits) per token, shape (tokens, labels), for
            the same tokens as ``word_ids``.
        word_ids: The word index of each token, ``None`` for special and padding tokens.
        num_words: The number of words the text was split into.
        outside_id: Label index of ``O``.

    Returns:
        The word rows, shape (num_words, labels), and whether each word had a token. A word
        without a token gets a one-hot row on ``outside_id``.

    Raises:
        ValueError: If the scores and ``word_ids`` disagree in length, or a token refers to
            a word index outside ``0..num_words - 1``.
    """
    if token_scores.ndim != 2 or token_scores.shape[0] < len(word_ids):
        raise ValueError(
            f"token scores of shape {token_scores.shape} do not cover "
            f"{len(word_ids)} tokens: pass one row of label scores per token"
        )
    positions = first_token_positions(word_ids, num_words)

    rows = np.zeros((num_words, token_scores.shape[1]), dtype=np.float64)
    for word_index, position in enumerate(positions):
        if position is None:
            rows[word_index, outside_id] = 1.0
        else:
            rows[word_index] = token_scores[position]
    return rows, [position is not None for position in positions]


def read_word_predictions(
    token_probabilities: np.ndarray,
    word_ids: Sequence[int | None],
    num_words: int,
    outside_id: int,
) -> WordPredictions:
    """Read each word's most probable label and its probability from its first sub-token.

    Args:
        token_probabilities: Label probabilities per token, shape (tokens, labels), for the
            same tokens as ``word_ids``. Logits work too, but then ``probabilities`` contains
            logits.
        word_ids: The word index of each token, ``None`` for special and padding tokens.
        num_words: The number of words the text was split into.
        outside_id: Label index of ``O``, given to words without a token.

    Returns:
        The predictions for all ``num_words`` words.

    Raises:
        ValueError: If the scores and ``word_ids`` disagree in length, or a token refers to
            a word index outside ``0..num_words - 1``.
    """
    rows, is_covered = gather_word_scores(token_probabilities, word_ids, num_words, outside_id)

    label_ids = [int(index) for index in np.argmax(rows, axis=1)] if num_words else []
    probabilities = [float(rows[word, label]) for word, label in enumerate(label_ids)]
    return WordPredictions(label_ids, probabilities, is_covered)
