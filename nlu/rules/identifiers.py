r"""Order, ticket and other ids, each type found by a configurable regular expression.

A match counts only when the characters right before and after it are not ASCII letters,
digits, ``_`` or ``-``. Chinese text around it is fine, so ``订单号A12345678``
yields ``A12345678``. When a pattern has a group named ``id``, the entity is that group and
the rest of the match is context (``order (?P<id>\\d+)``).

Bare numbers are ambiguous (prices, phone numbers, quantities), so an id that contains no
letter counts only with context: one of its type's context words (``order``, ``订单``) within
``context_window_chars`` characters before it, or pattern text matched around the ``id``
group. Context words match case-insensitively, and an English one must start a word
(``order`` but not ``border``). A type with neither finds only ids that contain a letter.
Values are the id in upper case.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime

from nlu.rules.base import compile_context_words, make_entity
from nlu.types import Entity

logger = logging.getLogger(__name__)

DEFAULT_ID_PATTERNS = {
    # ORD-2024-0001, A12345678 (one capital and 8 to 11 digits), or 6 to 20 digits after
    # a context word: "订单号123456789".
    "order_id": r"(?i:ORD)-?\d{4}-?\d{3,8}|[A-Z]\d{8,11}|\d{6,20}",
    # TKT-12345, TICKET-12345, or 4 to 12 digits after a context word: "ticket 4821".
    "ticket_id": r"(?i:TKT|TICKET)-?\d{4,10}|\d{4,12}",
}
"""Default id patterns: entity type -> regular expression."""

DEFAULT_ID_CONTEXT_WORDS = {
    "order_id": ("order", "订单"),
    "ticket_id": ("ticket", "case", "工单"),
}
"""Default context words for bare-number ids: entity type -> words."""

_TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*")
_ID_NEIGHBOUR_CHAR = re.compile(r"[A-Za-z0-9_-]")


class IdExtractor:
    """Find ids of the configured types.

    Args:
        patterns: Entity type -> regular expression, as described in the module docstring.
        context_words: Entity type -> words that make a bare-number match count. Types not
            listed have none.
        context_window_chars: How many characters before a match are searched for a context
            word.
        reserved_types: Types that other extractors return; an id type may not reuse them.

    Raises:
        ValueError: If a type name is invalid or reserved, a pattern does not compile or
            matches the empty string, context words name a type without a pattern, or
            ``context_window_chars`` is negative. The message names the setting and value.
    """

    name = "id"

    def __init__(
        self,
        patterns: Mapping[str, str],
        context_words: Mapping[str, Sequence[str]],
        context_window_chars: int = 16,
        reserved_types: frozenset[str] = frozenset(),
    ) -> None:
        self._compiled = {
            entity_type: _compile_id_pattern(entity_type, pattern, reserved_types)
            for entity_type, pattern in patterns.items()
        }
        _validate_context_words(context_words, patterns)
        if context_window_chars < 0:
            raise ValueError(
                f"id_context_window_chars must be 0 or more, got {context_window_chars}"
            )

        self._context_patterns = {
            entity_type: compile_context_words(context_words.get(entity_type, ()))
            for entity_type in patterns
        }
        self.context_window_chars = context_window_chars
        self.entity_types = frozenset(patterns)

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Return every standalone match of every id pattern in ``text``."""
        entities = []
        for entity_type, pattern in self._compiled.items():
            for match in pattern.finditer(folded):
                start, end = match.span("id") if "id" in pattern.groupindex else match.span()
                if start == end or not _is_standalone(folded, start, end):
                    continue
                if not _has_letter(folded[start:end]) and not self._has_context(
                    folded, entity_type, match, (start, end)
                ):
                    continue
                value = folded[start:end].upper()
                entities.append(make_entity(text, start, end, entity_type, value, self.name))
        return entities

    def _has_context(
        self, folded: str, entity_type: str, match: re.Match[str], id_span: tuple[int, int]
    ) -> bool:
        if match.span() != id_span:
            return True  # The pattern matched its own context around the id group.
        context = self._context_patterns[entity_type]
        window = folded[max(0, match.start() - self.context_window_chars) : match.start()]
        return context is not None and context.search(window) is not None


def _compile_id_pattern(
    entity_type: str, pattern: str, reserved_types: frozenset[str]
) -> re.Pattern[str]:
    setting = f"id_patterns[{entity_type!r}]"
    if not isinstance(entity_type, str) or not _TYPE_NAME.fullmatch(entity_type):
        raise ValueError(
            f"Invalid entity type {entity_type!r} in id_patterns: use lower-case letters, "
            "digits and '_', starting with a letter, for example 'order_id'."
        )
    if entity_type in reserved_types:
        raise ValueError(
            f"Invalid entity type {entity_type!r} in id_patterns: another rule extractor "
            f"returns it ({', '.join(sorted(reserved_types))}); choose another name."
        )
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(
            f"Invalid {setting}: expected a non-empty regular expression, got {pattern!r}."
        )

    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(
            f"Invalid regular expression in {setting}: {pattern!r}: {error}. Fix the "
            "pattern, or remove the entry to stop finding this id type."
        ) from error
    if compiled.fullmatch("") is not None:
        raise ValueError(
            f"Invalid {setting}: {pattern!r} matches the empty string, so it would find ids "
            "everywhere; make every alternative require at least one character."
        )
    return compiled


def _validate_context_words(
    context_words: Mapping[str, Sequence[str]], patterns: Mapping[str, str]
) -> None:
    for entity_type, words in context_words.items():
        if entity_type not in patterns:
            raise ValueError(
                f"id_context_words names {entity_type!r}, which has no pattern in id_patterns "
                f"(types: {', '.join(sorted(patterns)) or 'none'}); add a pattern or remove "
                "the entry."
            )
        if isinstance(words, str) or any(not isinstance(w, str) or not w for w in words):
            raise ValueError(
                f"Invalid id_context_words[{entity_type!r}]: expected a list of non-empty "
                f"words, got {words!r}."
            )


def _is_standalone(folded: str, start: int, end: int) -> bool:
    before_ok = start == 0 or not _ID_NEIGHBOUR_CHAR.match(folded, start - 1)
    after_ok = end == len(folded) or not _ID_NEIGHBOUR_CHAR.match(folded, end)
    return before_ok and after_ok


def _has_letter(value: str) -> bool:
    return any(char.isalpha() for char in value)
