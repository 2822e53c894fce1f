"""Turn per-word BIO tags into entities with character offsets into the original text.

A tagger may emit sequences that BIO forbids. They are read the way the CoNLL evaluation
script ``conlleval`` reads them, so that served entities and evaluated entities agree:

- an ``I-X`` after ``O`` (or at the start) is an orphan and starts a new ``X`` entity;
- an ``I-Y`` right after a ``B-X`` or ``I-X`` starts a new ``Y`` entity;
- ``B-X`` always starts a new entity, even right after another ``X``.

These are the rules of ``nlu.schemes.spans_from_bio``, which this module uses.
``repair_bio`` rewrites a sequence by them (each entity then starts with ``B-``), and
``decode_entities`` builds the ``Entity`` objects.

Example:
    >>> from nlu.words import split_words
    >>> text = "fly from new york to boston"
    >>> words = split_words(text, "en")
    >>> tags = ["O", "O", "B-from", "I-from", "O", "I-to"]
    >>> [(e.type, e.text) for e in decode_entities(text, words, tags, version="v1")]
    [('from', 'new york'), ('to', 'boston')]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nlu.schemes import OUTSIDE, InvalidTagError, parse_tag, spans_from_bio
from nlu.types import Entity
from nlu.words import Word

logger = logging.getLogger(__name__)

_BIO_PREFIXES = (OUTSIDE, "B", "I")
# Probabilities are floored before the logarithm so that a zero does not give -inf.
_MIN_PROBABILITY = 1e-12


@dataclass(frozen=True)
class TagSpan:
    """A run of words that forms one entity.

    Attributes:
        type: The entity type, the tag without its ``B-``/``I-`` prefix.
        first: Index of the entity's first word.
        stop: Index one past its last word.
    """

    type: str
    first: int
    stop: int


def tag_spans(tags: Sequence[str]) -> list[TagSpan]:
    """Group BIO tags into entity spans by the rules in the module docstring.

    Args:
        tags: One BIO tag per word.

    Returns:
        The spans in order; they never overlap.

    Raises:
        InvalidTagError: If a tag is not ``O``, ``B-<type>`` or ``I-<type>``; it is a
            ``ValueError``.
    """
    for index, tag in enumerate(tags):
        prefix, _ = parse_tag(tag)
        if prefix not in _BIO_PREFIXES:
            raise InvalidTagError(
                tag,
                f"tag {tag!r} at word {index} is not a BIO tag: use O, B-<type> or I-<type>, "
                "and convert BIOES or IOB1 tags with nlu.schemes.to_bio first",
                word_index=index,
            )
    return [TagSpan(entity_type, first, stop) for first, stop, entity_type in spans_from_bio(tags)]


def repair_bio(tags: Sequence[str]) -> list[str]:
    """Rewrite tags so that every entity starts with ``B-``, without changing the entities.

    Args:
        tags: One BIO tag per word, possibly with orphan ``I-`` tags.

    Returns:
        A new list where the first tag of each span from ``tag_spans`` is ``B-<type>``.

    Raises:
        ValueError: If a tag is not ``O``, ``B-<type>`` or ``I-<type>``.
    """
    repaired = list(tags)
    for span in tag_spans(tags):
        repaired[span.first] = f"B-{span.type}"
    return repaired


def bio_viterbi(probabilities: np.ndarray, labels: Sequence[str]) -> list[int]:
    """Find the most probable label sequence in which every ``I-X`` follows ``B-X`` or ``I-X``.

    Per-word argmax may produce orphan ``I-`` tags, which the decoder then reads as entity
    starts. This search instead picks the best well-formed sequence under the per-word
    probabilities, which usually repairs a wrongly typed first or middle word. It costs
    O(words * labels^2).

    Args:
        probabilities: Label probabilities per word, shape (words, labels).
        labels: The BIO tag of each label index.

    Returns:
        The chosen label index of each word.

    Raises:
        ValueError: If the shape does not match ``labels`` or a label is not BIO.
    """
    if probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise ValueError(
            f"probabilities of shape {probabilities.shape} do not match {len(labels)} labels: "
            "pass one column per label"
        )
    if probabilities.shape[0] == 0:
        return []
    is_allowed, is_start_allowed = _bio_transitions(labels)
    transition_penalty = np.where(is_allowed, 0.0, -np.inf)  # (previous, next)
    log_probabilities = np.log(np.clip(probabilities, _MIN_PROBABILITY, None))

    scores = np.where(is_start_allowed, log_probabilities[0], -np.inf)
    backpointers = np.zeros(probabilities.shape, dtype=np.int64)
    for word in range(1, probabilities.shape[0]):
        candidates = scores[:, None] + transition_penalty  # (previous, next)
        backpointers[word] = candidates.argmax(axis=0)
        scores = candidates.max(axis=0) + log_probabilities[word]

    path = [int(scores.argmax())]
    for word in range(probabilities.shape[0] - 1, 0, -1):
        path.append(int(backpointers[word, path[-1]]))
    return path[::-1]


def _bio_transitions(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Return the allowed (previous, next) label pairs and the labels allowed first."""
    parsed = [parse_tag(label) for label in labels]
    for label, (prefix, _) in zip(labels, parsed, strict=True):
        if prefix not in _BIO_PREFIXES:
            raise InvalidTagError(label, f"label {label!r} is not a BIO tag")
    is_inside = np.array([prefix == "I" for prefix, _ in parsed])
    types = [entity_type for _, entity_type in parsed]

    is_allowed = np.ones((len(labels), len(labels)), dtype=bool)
    for next_index in np.flatnonzero(is_inside):
        is_allowed[:, next_index] = [
            prefix != OUTSIDE and entity_type == types[next_index] for prefix, entity_type in parsed
        ]
    return is_allowed, ~is_inside


def decode_entities(
    text: str,
    words: Sequence[Word],
    tags: Sequence[str],
    *,
    version: str,
    confidences: Sequence[float] | None = None,
) -> list[Entity]:
    """Build entities from per-word tags.

    An entity runs from its first word's start to its last word's end, so its ``text`` is
    ``text[start:end]`` and includes the spaces and punctuation between its words.

    Args:
        text: The original text the words were split from.
        words: The words with their character offsets into ``text``.
        tags: One BIO tag per word.
        version: Model version, stored as ``source="model:<version>"``.
        confidences: The probability of each word's tag (0..1), or None. An entity's
            confidence is the mean over its words; it is None without confidences.

    Returns:
        The entities in text order. ``value`` is the surface text: normalising values is
        left to the caller.

    Raises:
        ValueError: If the lengths of ``words``, ``tags`` and ``confidences`` differ, a tag
            is not BIO, or a word's offsets lie outside ``text``.
    """
    _validate_decode_inputs(text, words, tags, confidences)

    entities = []
    for span in tag_spans(tags):
        start, end = words[span.first].start, words[span.stop - 1].end
        surface = text[start:end]
        confidence = None
        if confidences is not None:
            confidence = math.fsum(confidences[span.first : span.stop]) / (span.stop - span.first)
        entities.append(
            Entity(
                type=span.type,
                value=surface,
                text=surface,
                start=start,
                end=end,
                source=f"model:{version}",
                confidence=confidence,
            )
        )
    return entities


def _validate_decode_inputs(
    text: str,
    words: Sequence[Word],
    tags: Sequence[str],
    confidences: Sequence[float] | None,
) -> None:
    if len(words) != len(tags):
        raise ValueError(f"got {len(words)} words but {len(tags)} tags: give one tag per word")
    if confidences is not None and len(confidences) != len(tags):
        raise ValueError(
            f"got {len(tags)} tags but {len(confidences)} confidences: give one per word"
        )
    for word in words:
        if not 0 <= word.start <= word.end <= len(text):
            raise ValueError(
                f"word {word.text!r} has offsets ({word.start}, {word.end}) outside the text "
                f"of {len(text)} characters: split the same text the offsets refer to"
            )
