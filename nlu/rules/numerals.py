"""Number words in Chinese and English, read as integers.

Chinese numerals are read in both forms customers type: with units (``二十五``, ``三千五百``,
``一万二千``, ``两千五`` for 2500) and digit by digit (``二〇二六`` for a year). The financial
forms (``壹贰叁``, ``拾佰仟``) and traditional ``萬``/``億`` read the same, and ``亿`` and
``万`` combine (``三亿五千万``). Fractions, decimals (``三点五``) and negative numbers are not
supported.
"""

from __future__ import annotations

CHINESE_DIGITS = {
    "零": 0, "〇": 0,
    "一": 1, "壹": 1,
    "二": 2, "贰": 2, "貳": 2, "两": 2, "兩": 2,
    "三": 3, "叁": 3, "參": 3,
    "四": 4, "肆": 4,
    "五": 5, "伍": 5,
    "六": 6, "陆": 6, "陸": 6,
    "七": 7, "柒": 7,
    "八": 8, "捌": 8,
    "九": 9, "玖": 9,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_WAN = {"万", "萬"}
_YI = {"亿", "億"}

CHINESE_NUMERAL_CHARS = "".join([*CHINESE_DIGITS, *_SMALL_UNITS, *_WAN, *_YI])
"""Every character that ``parse_chinese_number`` reads, for building regular expressions."""

ENGLISH_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
}  # fmt: skip
"""English words for the small counts used in relative dates (``in three days``)."""


def parse_chinese_number(text: str) -> int | None:
    """Read a Chinese numeral such as ``一百零五``, ``两千五`` or ``二〇二六`` as an integer.

    Args:
        text: Only numeral characters from ``CHINESE_NUMERAL_CHARS``; no spaces or digits.

    Returns:
        The value, or ``None`` when ``text`` is empty, contains another character, has no
        digit character (``万`` alone) or puts digits and units in an order that is not a
        number (``一二百``).
    """
    if not text or any(char not in CHINESE_NUMERAL_CHARS for char in text):
        return None
    if not any(char in CHINESE_DIGITS or char in _SMALL_UNITS for char in text):
        return None

    # Digit by digit, as years are written: 二〇二六.
    if len(text) > 1 and all(char in CHINESE_DIGITS for char in text):
        return int("".join(str(CHINESE_DIGITS[char]) for char in text))

    return _parse_with_units(text)


def _parse_with_units(text: str) -> int | None:
    total = 0  # the part already multiplied by 亿
    section = 0  # the part above the pending digit and below the next 万 or 亿
    digit: int | None = None
    last_unit = 1
    after_zero = False
    for char in text:
        if char in CHINESE_DIGITS:
            if digit is not None and digit != 0:
                return None
            digit = CHINESE_DIGITS[char]
            after_zero = after_zero or digit == 0
        elif char in _SMALL_UNITS:
            unit = _SMALL_UNITS[char]
            # 十二 means 12, so a unit with no digit before it counts once.
            section += (1 if digit is None else digit) * unit
            digit, last_unit, after_zero = None, unit, False
        elif char in _WAN:
            section += digit or 0
            total += section * 10_000
            section, digit, last_unit, after_zero = 0, None, 10_000, False
        else:
            total = (total + section + (digit or 0)) * 100_000_000
            section, digit, last_unit, after_zero = 0, None, 100_000_000, False

    # A final digit right after a unit stands for the next lower unit: 两千五 is 2500.
    if digit and not after_zero and last_unit >= 100:
        digit *= last_unit // 10
    return total + section + (digit or 0)


def parse_count(text: str) -> int | None:
    """Read a small count written in ASCII digits, English words or Chinese numerals.

    Args:
        text: For example ``3``, ``three``, ``an``, ``三`` or ``两``.

    Returns:
        The count, or ``None`` when ``text`` matches none of these forms.
    """
    if text.isascii() and text.isdigit():
        return int(text)

    word = text.lower()
    if word in ENGLISH_NUMBER_WORDS:
        return ENGLISH_NUMBER_WORDS[word]

    return parse_chinese_number(text)
