"""Split a customer's text into words with character offsets, for entity tagging.

Taggers label words, so training data built from character spans and the text a customer
types at serving time must be split by the same function. ``split_words`` is that function.

- English and other space-separated languages: a word is a run of letters, digits and
  underscores, joined by inner hyphens, apostrophes, ampersands, dots, colons, slashes, ``@``
  or ``+`` (``top-rated``, ``i'd``, ``r&b``, ``3:30``, ``ORD-2024-0001``,
  ``ann@example.com``). Every other non-space character is a word of its own, and so is each
  Han, kana or Hangul character.
- Chinese: every character that is not whitespace is a word, Latin letters and digits
  included (a letter with combining marks counts as one character). This matches
  character-level training data such as CAIS, where the singer ``tfboys`` is six lines.

Whitespace never becomes a word.

Example:
    >>> [word.text for word in split_words("Where is ORD-2024-0001?", "en")]
    ['Where', 'is', 'ORD-2024-0001', '?']
    >>> [(word.text, word.start) for word in split_words("播放 tfboys", "zh")][:3]
    [('播', 0), ('放', 1), ('t', 3)]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

# The third-party ``regex`` module (a dependency of transformers) matches Unicode scripts and
# combining marks, so "naïve" written with a combining diaeresis stays one word.
import regex

logger = logging.getLogger(__name__)

# Scripts written without spaces between words: each of their characters is a word.
_UNSPACED_CHAR = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"
_WORD_CHAR = rf"(?:(?!{_UNSPACED_CHAR})[\p{{L}}\p{{M}}\p{{N}}_])"
# A full stop or colon joins only before a lower-case letter or a digit ("3.5", "18:30",
# "a.b@example.com"), so a missing space after a sentence ("month.American") still splits.
_JOINER = r"(?:['’&/@+\-]|[.:](?=[\p{Ll}\p{N}]))"
_SPACED_WORD_PATTERN = regex.compile(
    rf"{_WORD_CHAR}+(?:{_JOINER}{_WORD_CHAR}+)*|{_UNSPACED_CHAR}|[^\s]"
)
# One user-perceived character (a grapheme cluster, so a letter keeps its combining marks).
_NON_SPACE_PATTERN = regex.compile(r"(?!\s)\X")


@dataclass(frozen=True)
class Word:
    """One word of a text and where it sits.

    Attributes:
        text: The word, ``original[start:end]``.
        start: Character offset of its first character.
        end: Character offset one past its last character.
    """

    text: str
    start: int
    end: int


def is_chinese(language: str) -> bool:
    """Return whether ``language`` is a Chinese language tag such as ``zh`` or ``zh-CN``."""
    return language.lower().split("-")[0] == "zh"


def split_words(text: str, language: str) -> list[Word]:
    """Split ``text`` into words with their character offsets.

    Args:
        text: Any string; an empty or all-whitespace string gives no words.
        language: A language tag. ``zh`` and its regional forms (``zh-CN``) split into
            characters; every other tag splits by the English rules in the module docstring.

    Returns:
        The words in order of appearance, with ``text[word.start:word.end] == word.text``.

    Raises:
        ValueError: If ``language`` is empty.
    """
    if not language or not language.strip():
        raise ValueError("language is empty: give a language tag such as 'en' or 'zh'")

    pattern = _NON_SPACE_PATTERN if is_chinese(language) else _SPACED_WORD_PATTERN
    return [Word(match.group(), match.start(), match.end()) for match in pattern.finditer(text)]
