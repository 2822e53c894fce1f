"""Result types of understanding one turn: the intent and the entities found in it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

OUT_OF_SCOPE = "oos"
"""Label of the out-of-scope class in training data and in predictions' rankings."""


@dataclass(frozen=True)
class Entity:
    """A span of the customer's text with a type and a normalised value.

    Attributes:
        type: The entity or slot type, for example ``email``, ``order_id`` or ``singer_name``.
        value: The normalised value, such as an ISO date for dates or the digits of a phone
            number. It is the surface text when there is nothing to normalise.
        text: The text exactly as written, ``original[start:end]``.
        start: Character offset of the first character in the original text.
        end: Character offset one past the last character.
        source: The extractor that found it: ``rule:<name>`` for a rule, ``model:<version>``
            for a model.
        confidence: The model's confidence, or ``None`` for rules.
    """

    type: str
    value: str
    text: str
    start: int
    end: int
    source: str
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class IntentPrediction:
    """The intent of one turn, or the verdict that it matches none.

    Attributes:
        intent: The predicted intent, or ``None`` when the turn is out of scope.
        confidence: Calibrated probability of the best in-scope intent (0..1).
        out_of_scope: True when the best intent's confidence is under ``threshold``, when the
            explicit out-of-scope class wins, when the text has nothing to classify or is a
            slash command, or when no model classified it.
        threshold: The confidence threshold that the model compared against.
        ranking: The best intents with their probabilities, best first.
        reason: Why the turn is out of scope (``below_threshold``, ``oos_class``,
            ``no_content``, ``command``, ``no_model`` or ``model_error``), or ``None`` when
            it is in scope.
    """

    intent: str | None
    confidence: float
    out_of_scope: bool
    threshold: float
    ranking: list[tuple[str, float]] = field(default_factory=list)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        return {
            "intent": self.intent,
            "confidence": round(self.confidence, 4),
            "out_of_scope": self.out_of_scope,
            "threshold": round(self.threshold, 4),
            "ranking": [[name, round(score, 4)] for name, score in self.ranking],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class TaggedSentence:
    """One sentence of token-classification data: words with one BIO tag each.

    Readers convert every scheme they accept (IOB1, BIO, BIOES) to BIO, so a sentence's
    ``tags`` are always ``O``, ``B-<type>`` or ``I-<type>``.

    Attributes:
        words: The words (for Chinese, one character per word).
        tags: One BIO tag per word.
        text: The sentence as a customer would type it. ``text[start:end]`` of each offset
            is the word.
        offsets: ``(start, end)`` character offsets of each word in ``text``.
        source: Where the sentence came from, ``FILE:LINE`` of its first word.
    """

    words: list[str]
    tags: list[str]
    text: str
    offsets: list[tuple[int, int]]
    source: str = ""

    def __post_init__(self) -> None:
        if not (len(self.words) == len(self.tags) == len(self.offsets)):
            raise ValueError(
                f"{self.source or 'sentence'}: {len(self.words)} words, {len(self.tags)} tags "
                f"and {len(self.offsets)} offsets, but each word needs one tag and one offset"
            )
