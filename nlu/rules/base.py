"""The interface every rule extractor implements, and helpers they share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from nlu.types import Entity

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, as Chinese input methods type
# them. Each maps to exactly one character, so offsets into the folded text are offsets into
# the original.
_FULL_WIDTH_TO_ASCII = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_FULL_WIDTH_TO_ASCII[0x3000] = 0x20


def fold_width(text: str) -> str:
    """Replace full-width ASCII characters with their ASCII forms, keeping every offset.

    ``１３８``, ``＠`` and ``：`` become ``138``, ``@`` and ``:``, so one set of ASCII patterns
    covers both widths. Unlike NFKC, the result always has the length of ``text``.
    """
    return text.translate(_FULL_WIDTH_TO_ASCII)


def compile_context_words(words: Iterable[str]) -> re.Pattern[str] | None:
    """Compile context words into one case-insensitive pattern, or ``None`` for no words.

    A word that starts with an ASCII letter must not follow another ASCII letter, so
    ``tel`` matches in ``tel:`` and ``telephone`` but not in ``hotel``. Chinese words
    match anywhere.
    """
    alternatives = [
        (r"(?<![A-Za-z])" if word[:1].isascii() and word[:1].isalpha() else "") + re.escape(word)
        for word in words
    ]
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


class RuleExtractor(Protocol):
    """One rule-based extractor, for example of e-mail addresses or of dates.

    Attributes:
        name: The name in each entity's ``source`` (``rule:<name>``).
        entity_types: Every entity type the extractor can return.
    """

    name: str
    entity_types: frozenset[str]

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Find entities in ``text``.

        Args:
            text: The text as the customer wrote it; entity offsets index into it.
            folded: ``fold_width(text)``, which the patterns run on.
            reference_time: The time-zone-aware moment that relative dates count from.

        Returns:
            The entities found, possibly overlapping, in no particular order.
        """
        ...


def make_entity(
    text: str, start: int, end: int, entity_type: str, value: str, extractor: str
) -> Entity:
    """Build a rule entity for ``text[start:end]``, with no confidence."""
    return Entity(
        type=entity_type,
        value=value,
        text=text[start:end],
        start=start,
        end=end,
        source=f"rule:{extractor}",
    )
