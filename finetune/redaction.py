"""Replace personal data in support dialogs with typed placeholders before training.

Each kind of personal data becomes one placeholder: ``[EMAIL]``, ``[PHONE]``, ``[CARD]``,
``[NATIONAL_ID]``, ``[ADDRESS]`` and ``[NAME]``. Patterns cover English and Simplified
Chinese text. Numbers are redacted only when their shape and checksum fit, so order ids,
dates, times, amounts, versions and ISBNs stay in the text.

Person names are redacted only through an NER callable, because no pattern finds names
reliably. Without one, names stay in the text.

What the patterns miss:
    * E-mail addresses with non-ASCII local parts or domains, and obfuscated ones
      ("jane at example dot com").
    * Phone numbers in national formats other than North American and Chinese ones
      (for example "020 7946 0958" without +44), and Chinese landlines without a
      separator after the area code ("01085007938").
    * Card numbers whose first digit is 0, 1, 7, 8 or 9, 2-series numbers outside the
      Mastercard range 2221-2720, and card numbers split by characters other than
      spaces and dashes.
    * 15-digit Chinese IDs (issued before 1999), IDs of other countries, and SSNs
      written without dashes.
    * English addresses whose street name is lower-case, that lack a house number or a
      street suffix, or that use a suffix outside ``_STREET_SUFFIXES``. City, state and
      postcode after the street stay in the text. Chinese addresses without a road (路/街/道/巷/弄)
      and a house number ending in 号, such as "北京市朝阳区建国门外大街".

Example:
    >>> redactor = Redactor()
    >>> result = redactor.redact("Mail jane.doe@example.com or call +1 415 555 0100.")
    >>> result.text
    'Mail [EMAIL] or call [PHONE].'
    >>> result.counts["PHONE"]
    1
"""

from __future__ import annotations

import bisect
import datetime
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

logger = logging.getLogger(__name__)

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
NATIONAL_ID = "NATIONAL_ID"
ADDRESS = "ADDRESS"
NAME = "NAME"
# Order decides ties between overlapping matches of equal length: earlier kinds win.
ALL_KINDS: tuple[str, ...] = (NATIONAL_ID, CARD, EMAIL, PHONE, ADDRESS, NAME)
_PRIORITY = {kind: rank for rank, kind in enumerate(ALL_KINDS)}

# NER labels that mean a person. Other labels are redacted only if they equal a kind.
_PERSON_LABELS = frozenset({"PER", "PERSON", "NAME"})

NerCallable = Callable[[str], Iterable[tuple[int, int, str]]]

# Every quantifier below is bounded, so a match attempt costs a bounded number of steps
# and a whole scan is linear in the text length. re.ASCII keeps \d and \w to ASCII, so a
# Chinese character next to a number counts as a boundary.
_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}"
    r"(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![\w-])",
    re.ASCII,
)
_PHONE_INTERNATIONAL_RE = re.compile(
    r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,4}){2,6}(?!\d)", re.ASCII
)
_PHONE_NORTH_AMERICAN_RE = re.compile(
    r"(?<![\w+.-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w]|[.-]\d)",
    re.ASCII,
)
_PHONE_CN_MOBILE_RE = re.compile(
    r"(?<![\w+.-])(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![\w]|[.-]\d)", re.ASCII
)
_PHONE_CN_LANDLINE_RE = re.compile(
    r"(?<![\w+.-])(?:\(0\d{2,3}\)[ -]?|0\d{2,3}[ -])\d{7,8}(?![\w]|[.-]\d)", re.ASCII
)
_CARD_RE = re.compile(r"(?<![\w.-])\d(?:[ -]?\d){12,18}(?![\w]|[.-]\d)", re.ASCII)
_CN_ID_RE = re.compile(r"(?<![\w.-])\d{17}[\dXx](?![\w]|[.-]\d)", re.ASCII)
_SSN_RE = re.compile(r"(?<![\w.-])(\d{3})-(\d{2})-(\d{4})(?![\w]|[.-]\d)", re.ASCII)

_STREET_SUFFIXES = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Way|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq"
)
_ADDRESS_EN_RE = re.compile(
    r"(?<![\w#-])\d{1,6}[A-Za-z]?"
    r"(?:[ ]{1,3}(?:[A-Z][A-Za-z'-]{0,30}\.?|\d{1,3}(?:st|nd|rd|th)))"
    r"{1,5}[ ]{1,3}(?:" + _STREET_SUFFIXES + r")\b\.?(?:[ ]{1,3}(?:[NS][EW]?|[EW])\b)?"
    r"(?:,?[ ]{1,3}(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Room|Rm)\.?[ ]{0,3}#?"
    r"[A-Za-z0-9-]{1,8}|,?[ ]{1,3}#[A-Za-z0-9-]{1,8})?",
    re.ASCII,
)
# One Chinese character that is not a particle or verb that usually precedes an address,
# so "我住在北京市…" redacts "北京市…" and keeps "我住在".
_HAN = r"(?:(?![的是在住址到至寄送发我您你他她请为])[\u4e00-\u9fff])"
_CN_NUMERAL = r"[0-9一二三四五六七八九十百零〇]"
_ADDRESS_CN_RE = re.compile(
    rf"(?:{_HAN}{{2,7}}(?:省|自治区))?(?:{_HAN}{{1,7}}市)?(?:{_HAN}{{1,7}}[区县])?"
    rf"(?:{_HAN}|[0-9]){{1,15}}(?:路|街|道|巷|弄){_CN_NUMERAL}{{1,6}}号"
    rf"(?:[0-9A-Za-z一二三四五六七八九十]{{1,6}}号?(?:栋|幢|座|楼|单元|室|层)){{0,4}}"
)
_ADDRESS_CN_ANCHOR_RE = re.compile(rf"(?:路|街|道|巷|弄){_CN_NUMERAL}{{1,6}}号")
# Maximum lengths the optional parts of _ADDRESS_CN_RE can match before and after the anchor.
_ADDRESS_CN_MAX_PREFIX_CHARS = (7 + 3) + (7 + 1) + (7 + 1) + 15
_ADDRESS_CN_MAX_SUFFIX_CHARS = 4 * (6 + 1 + 2)

# Check-digit weights and characters of the Chinese ID (ISO 7064 MOD 11-2).
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK_CHARS = "10X98765432"
# First two digits of a Chinese ID: mainland province-level codes, plus 71 and 81-83 for
# Taiwan, Hong Kong and Macau and 91 for foreigners' permanent residence IDs.
_CN_PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
)


@dataclass(frozen=True)
class RedactionResult:
    """Redacted text and the number of placeholders inserted per kind."""

    text: str
    counts: Counter[str]


@dataclass(frozen=True, order=True)
class _Span:
    start: int
    end: int
    kind: str


class Redactor:
    """Replace e-mails, phones, cards, national IDs, addresses and names with placeholders.

    Without an ``ner`` callable, person names are NOT redacted. Regular expressions are
    compiled once at import time, and every quantifier is bounded, so the time of the
    pattern scans grows linearly with the text. The NER callable adds its own cost.

    Overlapping matches become one placeholder: the longest match wins, and among matches
    of equal length the kind listed first in ``ALL_KINDS`` wins.

    Example:
        >>> def find_names(text):
        ...     start = text.find("Ann Lee")
        ...     return [(start, start + 7, "PER")] if start >= 0 else []
        >>> Redactor(ner=find_names).redact("Hi, I am Ann Lee.").text
        'Hi, I am [NAME].'
    """

    def __init__(self, ner: NerCallable | None = None, kinds: Iterable[str] | None = None):
        """Create a redactor.

        Args:
            ner: Callable that takes the text and returns ``(start, end, label)`` spans,
                with character offsets into that text and ``end`` exclusive. Labels
                ``PER``, ``PERSON`` and ``NAME`` (any case) become ``[NAME]``, and a label
                equal to another kind becomes that kind's placeholder. Other labels are
                ignored. ``None`` leaves names in the text.
            kinds: Kinds to redact, a subset of ``ALL_KINDS``. ``None`` enables all.

        Raises:
            TypeError: If ``ner`` is neither ``None`` nor callable.
            ValueError: If ``kinds`` contains an unknown kind.
        """
        if ner is not None and not callable(ner):
            raise TypeError(
                f"ner must be a callable (text) -> [(start, end, label)] or None, "
                f"got {type(ner).__name__}"
            )
        enabled = frozenset(ALL_KINDS if kinds is None else kinds)
        unknown = sorted(enabled - set(ALL_KINDS))
        if unknown:
            raise ValueError(
                f"kinds contains unknown kinds {unknown}; use a subset of {list(ALL_KINDS)}"
            )

        self._ner = ner
        self.kinds = enabled

    def redact(self, text: str) -> RedactionResult:
        """Replace personal data in ``text`` with placeholders such as ``[EMAIL]``.

        Args:
            text: Text to redact, of any length.

        Returns:
            The redacted text and a Counter of placeholders per kind. Kinds with no match
            are absent from the Counter.

        Raises:
            TypeError: If ``text`` is not a str.
            ValueError: If the NER callable returns a span outside ``text`` or with
                ``start >= end``.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")

        candidates = [span for span in self._find_candidates(text) if span.kind in self.kinds]
        spans = _resolve_overlaps(candidates)

        parts = []
        position = 0
        for span in spans:
            parts.append(text[position : span.start])
            parts.append(f"[{span.kind}]")
            position = span.end
        parts.append(text[position:])
        counts = Counter(span.kind for span in spans)
        logger.debug("Redacted %d spans: %s", len(spans), dict(counts))
        return RedactionResult(text="".join(parts), counts=counts)

    def _find_candidates(self, text: str) -> Iterator[_Span]:
        yield from _find_emails(text)
        yield from _find_phones(text)
        yield from _find_cards(text)
        yield from _find_national_ids(text)
        yield from _find_addresses(text)
        if self._ner is not None:
            yield from _find_ner_spans(self._ner, text)


_DEFAULT_REDACTOR = Redactor()


def redact(text: str) -> RedactionResult:
    """Redact ``text`` with a shared ``Redactor()``: all kinds, no NER, so names stay.

    See ``Redactor.redact`` for the return value and exceptions.
    """
    return _DEFAULT_REDACTOR.redact(text)


def _resolve_overlaps(candidates: list[_Span]) -> list[_Span]:
    """Keep the longest, then highest-priority span of each overlapping group, in order."""
    ranked = sorted(candidates, key=lambda s: (s.start - s.end, _PRIORITY[s.kind], s.start))
    starts: list[int] = []
    selected: list[_Span] = []
    for span in ranked:
        index = bisect.bisect_right(starts, span.start)
        overlaps_before = index > 0 and selected[index - 1].end > span.start
        overlaps_after = index < len(selected) and selected[index].start < span.end
        if overlaps_before or overlaps_after:
            continue
        starts.insert(index, span.start)
        selected.insert(index, span)
    return selected


def _find_emails(text: str) -> Iterator[_Span]:
    for match in _EMAIL_RE.finditer(text):
        yield _Span(match.start(), match.end(), EMAIL)


def _find_phones(text: str) -> Iterator[_Span]:
    for match in _PHONE_INTERNATIONAL_RE.finditer(text):
        # E.164 numbers have at most 15 digits, and 8 is the minimum this pattern accepts.
        if 8 <= _count_digits(match.group()) <= 15:
            yield _Span(match.start(), match.end(), PHONE)
    for pattern in (_PHONE_NORTH_AMERICAN_RE, _PHONE_CN_MOBILE_RE, _PHONE_CN_LANDLINE_RE):
        for match in pattern.finditer(text):
            yield _Span(match.start(), match.end(), PHONE)


def _find_cards(text: str) -> Iterator[_Span]:
    for match in _CARD_RE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if _is_card_prefix(digits) and _passes_luhn(digits) and not _looks_like_cn_id(digits):
            yield _Span(match.start(), match.end(), CARD)


def _find_national_ids(text: str) -> Iterator[_Span]:
    for match in _CN_ID_RE.finditer(text):
        if _is_valid_cn_id(match.group()):
            yield _Span(match.start(), match.end(), NATIONAL_ID)
    for match in _SSN_RE.finditer(text):
        if _is_valid_ssn(*match.groups()):
            yield _Span(match.start(), match.end(), NATIONAL_ID)


def _find_addresses(text: str) -> Iterator[_Span]:
    for match in _ADDRESS_EN_RE.finditer(text):
        yield _Span(match.start(), match.end(), ADDRESS)
    # The Chinese pattern tries many prefix lengths at every position, so it runs only in
    # a window around each road-and-number anchor, and text without one costs one scan.
    found = set()
    for anchor in _ADDRESS_CN_ANCHOR_RE.finditer(text):
        window_start = max(0, anchor.start() - _ADDRESS_CN_MAX_PREFIX_CHARS)
        window_end = anchor.end() + _ADDRESS_CN_MAX_SUFFIX_CHARS
        for match in _ADDRESS_CN_RE.finditer(text, window_start, window_end):
            found.add((match.start(), match.end()))
    for start, end in found:
        yield _Span(start, end, ADDRESS)


def _find_ner_spans(ner: NerCallable, text: str) -> Iterator[_Span]:
    for start, end, label in ner(text):
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise ValueError(
                f"ner returned the invalid span ({start!r}, {end!r}) for a text of "
                f"{len(text)} characters; spans need integer offsets with "
                f"0 <= start < end <= len(text)"
            )
        kind = NAME if label.upper() in _PERSON_LABELS else label.upper()
        if kind in _PRIORITY:
            yield _Span(start, end, kind)


def _count_digits(value: str) -> int:
    return sum(char.isdigit() for char in value)


def _passes_luhn(digits: str) -> bool:
    total = 0
    for offset, char in enumerate(reversed(digits)):
        value = int(char)
        if offset % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card_prefix(digits: str) -> bool:
    # Issuer prefixes: 3 (Amex, JCB, Diners), 4 (Visa), 5 (Mastercard), 6 (Discover,
    # UnionPay, Maestro) and 2221-2720 (Mastercard, 16 digits only).
    if digits[0] in "3456":
        return True
    return len(digits) == 16 and 2221 <= int(digits[:4]) <= 2720


def _looks_like_cn_id(digits: str) -> bool:
    # NOTE: an 18-digit run with a province code and birth date is treated as a mistyped
    # Chinese ID and left alone, so a failed ID check digit is not redacted as a card.
    return len(digits) == 18 and _has_cn_id_prefix(digits)


def _has_cn_id_prefix(value: str) -> bool:
    if int(value[:2]) not in _CN_PROVINCE_CODES:
        return False
    try:
        birth_date = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= birth_date <= datetime.date.today()


def _is_valid_cn_id(value: str) -> bool:
    if not _has_cn_id_prefix(value):
        return False
    total = sum(int(char) * weight for char, weight in zip(value, _CN_ID_WEIGHTS, strict=False))
    return _CN_ID_CHECK_CHARS[total % 11] == value[17].upper()


def _is_valid_ssn(area: str, group: str, serial: str) -> bool:
    # SSNs never use the area 000, 666 or 900-999, the group 00 or the serial 0000.
    if area in ("000", "666") or area[0] == "9":
        return False
    return group != "00" and serial != "0000"
