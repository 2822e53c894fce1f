"""Clean one customer message before the models classify or tag it.

Models get the text in Unicode NFKC form (full-width letters and digits become ASCII), with
runs of whitespace collapsed and cut to a length the models accept. Text with no letter
and no digit (only emoji, punctuation or symbols) has nothing to classify, and a message
that starts with ``/`` followed by a word is a slash command, not a question.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 2000
"""Maximum characters passed to a model. Encoders truncate to fewer tokens, so this bounds work."""

_WHITESPACE = re.compile(r"\s+")
_COMMAND = re.compile(r"^/([A-Za-z][\w-]{0,63})(?:\s|$)")


@dataclass(frozen=True)
class NormalizedText:
    """A message ready for the models.

    Attributes:
        text: NFKC text with collapsed whitespace, at most ``max_chars`` characters.
        truncated: True when the cleaned text was longer than ``max_chars``.
        has_content: False when the text contains no letter and no digit.
        command: The name of a slash command (``"intent"`` for ``/intent``), else None.
    """

    text: str
    truncated: bool
    has_content: bool
    command: str | None


def normalize_text(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> NormalizedText:
    """Clean ``text`` for classification and tagging.

    Args:
        text: The message as the customer sent it.
        max_chars: Maximum length of the cleaned text in characters. Must be positive.

    Returns:
        The cleaned text with its truncation, content and slash-command flags.

    Raises:
        ValueError: If ``max_chars`` is not positive.
    """
    if max_chars <= 0:
        raise ValueError(f"max_chars must be positive, got {max_chars}")

    # Cut before NFKC as well, so that a huge message costs no more than a long one. Leading
    # whitespace is stripped first, so that padding cannot push the words past the cut.
    stripped = text.lstrip()
    cut = max_chars * 2  # Twice the limit leaves room for whitespace runs that collapse.
    cleaned = unicodedata.normalize("NFKC", stripped[:cut])
    cleaned = _WHITESPACE.sub(" ", cleaned).strip()
    truncated = len(cleaned) > max_chars or bool(stripped[cut:].strip())
    if len(cleaned) > max_chars:
        cleaned = cleaned[:max_chars]
    if truncated:
        logger.debug("Message of %d characters cut to %d for NLU", len(text), len(cleaned))

    command_match = _COMMAND.match(cleaned)
    return NormalizedText(
        text=cleaned,
        truncated=truncated,
        has_content=any(_is_word_character(char) for char in cleaned),
        command=command_match.group(1).lower() if command_match else None,
    )


def _is_word_character(char: str) -> bool:
    return unicodedata.category(char)[0] in ("L", "N")
