"""Rule-based extractors for entities with a fixed shape, in English and Chinese.

E-mail addresses, phone numbers, order and ticket ids (by configurable pattern), dates and
times, and money amounts. Patterns run on the text with full-width characters folded to
ASCII, so they find entities inside unspaced Chinese text, and every entity's offsets index
into the text as written. Build the set with ``build_rule_extractors``.
"""

from nlu.rules.identifiers import DEFAULT_ID_CONTEXT_WORDS, DEFAULT_ID_PATTERNS
from nlu.rules.registry import (
    BUILT_IN_TYPES,
    DEFAULT_MAX_TEXT_CHARS,
    RuleEntityExtractor,
    build_rule_extractors,
)

__all__ = [
    "BUILT_IN_TYPES",
    "DEFAULT_ID_CONTEXT_WORDS",
    "DEFAULT_ID_PATTERNS",
    "DEFAULT_MAX_TEXT_CHARS",
    "RuleEntityExtractor",
    "build_rule_extractors",
]
