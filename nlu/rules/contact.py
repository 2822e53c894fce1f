"""E-mail addresses and phone numbers.

Phone numbers favour precision over recall. A number is found only in one of these shapes:

- with a leading ``+`` country code: 8 to 15 digits (``+44 20 7946 0958``, ``+86 138 1234 5678``);
- a Chinese mobile number of 11 digits starting ``13``..``19`` (``13812345678``);
- grouped by spaces, hyphens, dots or an area code in brackets: 7 to 12 digits
  (``(555) 123-4567``, ``555-123-4567``, ``010-12345678``, ``020 7946 0958``);
- any other unbroken run of 7 to 12 digits, but only right after a phone word such as
  ``phone``, ``call`` or ``电话``.

A digit run that touches a letter, ``#``, ``-``, ``/``, a decimal point or a currency sign is
never a phone number. Neither is a run followed by a currency word, a date shape, or a
dotted run of short groups. So the rule skips order ids (``#A12345678``, ``ORD-2024-0001``),
prices (``$1234567.50``, ``13812345678元``), dates (``2026-12-05``), versions and IP
addresses (``2.0.1``, ``192.168.1.100``). Without ``+`` a number has at most 12 digits,
which also skips card numbers (13 to 19 digits).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from nlu.rules.base import compile_context_words, make_entity
from nlu.types import Entity

logger = logging.getLogger(__name__)

# The local part may not start inside a longer run of local-part characters, and every
# repetition is bounded, so a 100,000-character message costs linear time.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])"
    r"[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9_-])"
)

# A maximal run of digits with single separators. The run is possessive (``*+``), so the
# engine never retries shorter prefixes of a long digit run, and the lookbehinds stop a new
# match from starting inside a run that an earlier character disqualified.
_PHONE_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9#@_/+$€£¥￥-])"
    r"(?<!\d[ .,(-])"
    r"(?:\+ ?\d{1,3}[ .-]?)?"
    r"(?:\(\d{1,4}\) ?)?"
    r"\d(?:[ .-]?\d)*+"
    r"(?![A-Za-z0-9@_%])"
)
_DATE_SHAPE = re.compile(r"\d{4}([-./ ])\d{1,2}\1\d{1,2}|\d{1,2}([-./ ])\d{1,2}\2\d{2,4}")
_CHINESE_MOBILE = re.compile(r"1[3-9]\d{9}")
_CURRENCY_AFTER = re.compile(
    r" ?(?:元|块|圆|人民币|美元|欧元|英镑|日元|港币"
    r"|(?:USD|EUR|GBP|CNY|RMB|JPY|HKD|dollars?|euros?|pounds?|yuan)(?![A-Za-z]))",
    re.IGNORECASE,
)

PHONE_CONTEXT_WORDS = (
    "phone", "tel", "mobile", "cell", "call", "text me", "whatsapp", "sms",
    "电话", "手机", "致电", "联系方式",
)  # fmt: skip
"""Words that, shortly before an unbroken digit run, make the run a phone number."""

_PHONE_CONTEXT = compile_context_words(PHONE_CONTEXT_WORDS)


class EmailExtractor:
    """Find e-mail addresses with ASCII local parts and domains; the value is lower-cased.

    Internationalised addresses (``张三@例子.中国``) and quoted local parts are not found.
    """

    name = "email"
    entity_types = frozenset({"email"})

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Return one entity per e-mail address in ``text``."""
        return [
            make_entity(text, match.start(), match.end(), "email", match.group().lower(), self.name)
            for match in _EMAIL.finditer(folded)
        ]


class PhoneExtractor:
    """Find phone numbers; the value keeps only the digits and a leading ``+``.

    Args:
        context_window_chars: How many characters before an unbroken digit run are searched
            for a phone word; 0 disables the rule for such runs.
    """

    name = "phone"
    entity_types = frozenset({"phone"})

    def __init__(self, context_window_chars: int = 16) -> None:
        if context_window_chars < 0:
            raise ValueError(
                f"phone context_window_chars must be 0 or more, got {context_window_chars}"
            )

        self.context_window_chars = context_window_chars

    def extract(self, text: str, folded: str, reference_time: datetime) -> list[Entity]:
        """Return one entity per phone number in ``text``."""
        entities = []
        for match in _PHONE_CANDIDATE.finditer(folded):
            found = self._validate(folded, match.start(), match.end())
            if found is not None:
                end, value = found
                entities.append(make_entity(text, match.start(), end, "phone", value, self.name))
        return entities

    def _validate(self, folded: str, start: int, end: int) -> tuple[int, str] | None:
        """Return the end and value of the phone number at ``start``, or ``None``."""
        value = self._phone_value(folded, start, end)
        if value is not None:
            return end, value

        # "call 555-123-4567 2 times": drop one short trailing group and try again.
        candidate = folded[start:end]
        head, separator, tail = candidate.rpartition(" ")
        if separator and len(tail) <= 2:
            shorter_end = start + len(head)
            value = self._phone_value(folded, start, shorter_end)
            if value is not None:
                return shorter_end, value
        return None

    def _phone_value(self, folded: str, start: int, end: int) -> str | None:
        candidate = folded[start:end]
        digits = re.sub(r"\D", "", candidate)
        groups = re.findall(r"\d+", candidate)
        if _DATE_SHAPE.fullmatch(candidate) or _CURRENCY_AFTER.match(folded, end):
            return None

        if candidate.startswith("+"):
            # "+44 (0)20 ...": the bracketed trunk prefix is not dialled from abroad.
            digits = re.sub(r"\D", "", candidate.replace("(0)", ""))
            return "+" + digits if 8 <= len(digits) <= 15 else None
        if not 7 <= len(digits) <= 12:
            return None
        if len(groups) == 1:
            if _CHINESE_MOBILE.fullmatch(digits) or self._follows_phone_word(folded, start):
                return digits
            return None
        return digits if _is_phone_grouping(candidate, groups) else None

    def _follows_phone_word(self, folded: str, start: int) -> bool:
        window = folded[max(0, start - self.context_window_chars) : start]
        return _PHONE_CONTEXT.search(window) is not None


def _is_phone_grouping(candidate: str, groups: list[str]) -> bool:
    """Return whether the digit groups of a separated number look like a phone number."""
    # Versions and IP addresses: dotted groups of at most three digits.
    if "." in candidate and max(len(group) for group in groups) <= 3:
        return False
    # Every group after the first has 2 or more digits: "1 800 555 1234" but not "12 3 4567".
    if any(len(group) < 2 for group in groups[1:]):
        return False
    if len(groups) == 2 and not candidate.startswith("("):
        # Two groups: a trunk-prefixed area code (010-12345678) or a US local number
        # (555-1234), never a year range such as 2024-2025.
        first, second = groups
        return first.startswith("0") or (len(first) == 3 and len(second) == 4)
    return True
